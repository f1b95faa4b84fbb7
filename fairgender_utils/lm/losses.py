"""The quantities of METHOD.md §4-§5: JSD effects, the KNN bias loss L_b, and the LM losses L_r.

Effect terms read a model's predictions through a *lookup*: ``lp(ks)`` returns the log-probabilities
(rows over the vocabulary) of the model's prediction for tokens ``ks`` of one sentence - for a causal
LM the distribution at position k-1, for a masked LM the distribution at k with the target masked. The
frozen-model effects (stage 02) and the training loss J (stage 03) use the same functions.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Callable, Sequence

import torch

from fairgender_utils.lm.slots import Family, PairSlots

Lookup = Callable[[Sequence[int]], torch.Tensor]
LOG2 = math.log(2.0)


class _JSD(torch.autograd.Function):
    """JSD with its closed-form gradient dJSD/dlog p_i = p_i·log(p_i/m_i)/2: fewer passes over the
    vocabulary than autograd through every elementwise step (it matters for a 262k vocabulary)."""

    @staticmethod
    def forward(ctx, logp: torch.Tensor, logq: torch.Tensor) -> torch.Tensor:
        logm = torch.logaddexp(logp, logq) - LOG2
        pa = torch.nan_to_num_(logp.exp() * (logp - logm), nan=0.0)  # 0 where p = 0 (0 log 0 = 0)
        qb = torch.nan_to_num_(logq.exp() * (logq - logm), nan=0.0)
        ctx.save_for_backward(pa, qb)
        return 0.5 * (pa.sum(-1) + qb.sum(-1))

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        pa, qb = ctx.saved_tensors
        g = 0.5 * grad.unsqueeze(-1)
        return g * pa, g * qb


def jsd(logp: torch.Tensor, logq: torch.Tensor) -> torch.Tensor:
    """Jensen-Shannon divergence (nats, in [0, ln 2]) between rows of two log-probability tensors
    (entries of -inf, i.e. p = 0, contribute 0)."""
    return _JSD.apply(logp.float(), logq.float()).clamp_min(0.0)


def two_way_jsd(omega: torch.Tensor) -> torch.Tensor:
    """The bounded effect of an ``attribute_logodds`` pair (METHOD.md §4-§5): with q = (σ(ω), σ(-ω)) the
    model's distribution over {m_j, f_j} renormalised (ω = log p(m_j) - log p(f_j)), the JSD between q and
    the same distribution with the genders swapped. 0 at ω = 0, rising to ln 2 as |ω| grows; elementwise."""
    omega = omega.float()
    logq = torch.stack([torch.nn.functional.logsigmoid(omega), torch.nn.functional.logsigmoid(-omega)], -1)
    return jsd(logq, logq.flip(-1))


def word_logprob(lp: Lookup, ids: Sequence[int], span: tuple[int, int]) -> torch.Tensor:
    """log p(word) = sum of the log-probabilities of its subtokens ``ids[span]`` (chain rule)."""
    ks = list(range(*span))
    rows = lp(ks)
    tok = torch.tensor([ids[k] for k in ks], device=rows.device)
    return rows.gather(1, tok[:, None]).sum()


def effect_terms(s: PairSlots, family: Family, lp_m: Lookup, lp_f: Lookup,
                 naive_slot: bool = False) -> dict[str, torch.Tensor]:
    """Effect terms of one pair: ``slot_jsd``, ``omega`` and ``context_jsd`` (0-dim tensors; NaN where
    a term does not apply). ``naive_slot`` also computes the target-slot JSD for ``attribute_logodds``
    pairs of a causal LM (it is zero there: the reason that rule exists)."""
    nan = torch.tensor(float("nan"))
    out = {"slot_jsd": nan, "omega": nan, "context_jsd": nan}
    if s.rule == "target_slot" or naive_slot:
        out["slot_jsd"] = jsd(lp_m([s.target_m[0]]), lp_f([s.target_f[0]]))[0]
    if family == "masked":
        return out
    if s.rule == "attribute_logodds":
        out["omega"] = word_logprob(lp_m, s.ids_m, s.diff_m) - word_logprob(lp_f, s.ids_f, s.diff_f)
    if s.shared:
        out["context_jsd"] = jsd(lp_m([a for a, _ in s.shared]), lp_f([b for _, b in s.shared])).mean()
    return out


def pair_j(s: PairSlots, family: Family, lp_m: Lookup, lp_f: Lookup,
           context_weight: float = 1.0) -> torch.Tensor:
    """J(i) of §5: target-slot JSD, or for an ``attribute_logodds`` pair the bounded two-way JSD of its
    omega (:func:`two_way_jsd`, at most ln 2), plus (causal LMs) ``context_weight`` x the mean JSD over
    the shared positions after the first difference."""
    t = effect_terms(s, family, lp_m, lp_f)
    j = two_way_jsd(t["omega"]) if s.rule == "attribute_logodds" else t["slot_jsd"]
    if family == "causal" and s.shared and context_weight:
        j = j + context_weight * t["context_jsd"]
    return j


def batched_j(logp_m: torch.Tensor, logp_f: torch.Tensor, jsd_owner: torch.Tensor, jsd_context: torch.Tensor,
              logp_w: torch.Tensor, w_token: torch.Tensor, w_sign: torch.Tensor, w_owner: torch.Tensor,
              attribute_rule: torch.Tensor, context_weight: float = 1.0) -> torch.Tensor:
    """J of many pairs at once (the value of :func:`pair_j` for each).

    JSD requests: row r of ``logp_m`` against row r of ``logp_f`` for pair ``jsd_owner[r]`` (its target
    slot, or a shared position when ``jsd_context[r]``). Word terms: ``w_sign[r]`` x
    ``logp_w[r, w_token[r]]`` summed into omega of pair ``w_owner[r]``.
    """
    n = attribute_rule.shape[0]
    d = jsd(logp_m, logp_f) if len(logp_m) else logp_m.new_zeros(0)
    slot = logp_m.new_zeros(n).index_add(0, jsd_owner[~jsd_context], d[~jsd_context])
    ctx_sum = logp_m.new_zeros(n).index_add(0, jsd_owner[jsd_context], d[jsd_context])
    ctx_n = logp_m.new_zeros(n).index_add(0, jsd_owner[jsd_context], torch.ones_like(d[jsd_context]))
    omega = logp_m.new_zeros(n)
    if len(w_token):
        omega = omega.index_add(0, w_owner, w_sign * logp_w.gather(1, w_token[:, None])[:, 0])
    context = ctx_sum / ctx_n.clamp_min(1.0)
    return torch.where(attribute_rule, two_way_jsd(omega), slot) + context_weight * context


def bias_loss(j: torch.Tensor, neighbours: Sequence[Sequence[int]], w0: float,
              weights: Sequence[float] | None = None) -> torch.Tensor:
    """mean_i L_b(i), L_b(i) = W0·J(i) + (1-W0)·mean_{k in N(i)} J(k).

    ``j`` holds J for the batch pairs first (index i = 0..len(neighbours)-1) and then any extra
    neighbours; ``neighbours[i]`` indexes into ``j``. A pair without neighbours keeps L_b(i) = J(i).
    With ``weights`` (:func:`knn_weights` of the batch pairs) the neighbours are not scored at all: the
    loss is mean_i w_i·J(i), whose sum over an epoch equals the sum of L_b(i).
    """
    if weights is not None:
        n = len(neighbours)
        return (j[:n] * torch.tensor(list(weights), dtype=j.dtype, device=j.device)).mean()
    terms = []
    for i, nb in enumerate(neighbours):
        if w0 >= 1.0 or not nb:
            terms.append(j[i])
        else:
            terms.append(w0 * j[i] + (1.0 - w0) * j[list(nb)].mean())
    return torch.stack(terms).mean()


def knn_weights(neighbours: Sequence[Sequence[int]], w0: float) -> list[float]:
    """Weights w_k with sum_i L_b(i) = sum_k w_k·J(k) over a whole set of pairs (``neighbours[i]``: the
    indices of N(i) in that set): w_k = (W0 if N(k) is not empty, else 1) + (1-W0)·sum_{i: k in N(i)} 1/|N(i)|.
    Training on w_k·J(k) optimises the KNN objective of §5 with no neighbour in the forward pass."""
    w = [w0 if nb else 1.0 for nb in neighbours]
    for nb in neighbours:
        for k in nb:
            w[k] += (1.0 - w0) / len(nb)
    return w


def rest_logprob(logp: torch.Tensor, top: torch.Tensor, floor: float = -1e4) -> torch.Tensor:
    """log of the probability left outside the tokens ``top`` of each row (``floor`` where none is left;
    finite, so that gradients stay finite)."""
    return torch.logsumexp(logp.scatter(1, top, floor), -1).clamp_min(floor)


def topk_kl(logp: torch.Tensor, top: torch.Tensor, top_logp0: torch.Tensor, rest_logp0: torch.Tensor,
            sentence: torch.Tensor, n: int) -> torch.Tensor:
    """KL(p0 || p) per position with both distributions coarsened to p0's top-k tokens ``top`` plus one
    bucket for the rest of the vocabulary (p0 given by ``top_logp0`` and ``rest_logp0``, p by the rows of
    ``logp``), averaged per sentence, then over sentences. A lower bound of the full KL (coarsening never
    increases a divergence), equal to it when the rest holds no probability."""
    lp_top, lp_rest = logp.gather(1, top), rest_logprob(logp, top)
    kl = (top_logp0.exp() * (top_logp0 - lp_top)).sum(-1) + rest_logp0.exp() * (rest_logp0 - lp_rest)
    return per_sentence_mean(kl, sentence, n).mean()


def per_sentence_mean(values: torch.Tensor, sentence: torch.Tensor, n: int) -> torch.Tensor:
    """Mean of ``values`` grouped by ``sentence`` (0..n-1); every sentence must have a value."""
    sums = values.new_zeros(n).index_add(0, sentence, values)
    counts = values.new_zeros(n).index_add(0, sentence, torch.ones_like(values))
    return sums / counts.clamp_min(1.0)


def lm_loss(logits: torch.Tensor, targets: torch.Tensor, sentence: torch.Tensor, n: int) -> torch.Tensor:
    """The model's own LM loss: token cross-entropy averaged per sentence, then over sentences (so that
    a batch split across processes averages to the same value)."""
    nll = torch.nn.functional.cross_entropy(logits.float(), targets, reduction="none")
    return per_sentence_mean(nll, sentence, n).mean()


def kl_loss(logp_frozen: torch.Tensor, logp: torch.Tensor, sentence: torch.Tensor, n: int) -> torch.Tensor:
    """KL(p_frozen || p) per position, averaged per sentence, then over sentences."""
    kl = (logp_frozen.exp() * (logp_frozen - logp)).sum(-1)
    return per_sentence_mean(kl, sentence, n).mean()


def stable_seed(*parts: object) -> int:
    """A seed from any values, identical across processes and Python runs (unlike ``hash``)."""
    return int(hashlib.sha256("\x1f".join(map(str, parts)).encode()).hexdigest()[:15], 16)


def mlm_mask(ids: Sequence[int], special: Sequence[bool], mask_id: int, vocab_size: int, seed: int,
             probability: float = 0.15) -> tuple[list[int], list[int]]:
    """BERT masking of one sentence: each non-special token is chosen with ``probability`` (at least one);
    chosen tokens become [MASK] 80%, a random token 10%, unchanged 10%. Returns (new ids, positions)."""
    g = torch.Generator().manual_seed(seed)
    cand = [k for k, sp in enumerate(special) if not sp]
    if not cand:
        return list(ids), []
    draw = torch.rand(len(cand), generator=g)
    pos = [k for k, r in zip(cand, draw.tolist()) if r < probability]
    if not pos:
        pos = [cand[int(torch.randint(len(cand), (1,), generator=g))]]
    out = list(ids)
    for k in pos:
        r = float(torch.rand(1, generator=g))
        if r < 0.8:
            out[k] = mask_id
        elif r < 0.9:
            out[k] = int(torch.randint(vocab_size, (1,), generator=g))
    return out, pos
