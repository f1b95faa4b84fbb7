"""Training batches and the loss L = mean_i L_b(i) + λ·L_r of one batch (METHOD.md §5).

One forward pass serves a whole micro-batch (DistributedDataParallel allows one forward per backward):
the rows are both sentences of every pair in the batch and, with ``knn_mode: forward``, of the neighbours
the KNN term needs, plus, for masked LMs, the MLM-masked copies that L_r reads, or, for L_r as KL, the
neutral reference sentences (:mod:`fairgender_utils.train.reference`). With ``knn_mode: weights`` the
KNN term costs nothing: each batch pair's J is weighted by :func:`fairgender_utils.lm.losses.knn_weights`. The model's LM head runs only at the positions the
losses read, listed in four *segments* - J's s^m side, J's s^f side, gendered-word tokens (omega) and
L_r's positions - and its output is split by segment. A position read by two segments goes through the
head twice: cheaper than gathering rows of a 262k-wide tensor (each gather costs a full-size gradient
buffer in the backward pass).

Randomness is keyed by (seed, epoch, pair id): MLM masks and neighbour draws do not depend on how
pairs are split across processes or on where a run was resumed.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass, field

import torch

from fairgender_utils.lm.losses import batched_j, bias_loss, lm_loss, mlm_mask, stable_seed, topk_kl
from fairgender_utils.lm.slots import Family, PairSlots
from fairgender_utils.train.reference import NeutralReference

SEGMENTS = ("jsd_m", "jsd_f", "words", "lm")


@dataclass
class Batch:
    """Model inputs plus the bookkeeping that maps head positions back to pairs and sentences."""

    input_ids: torch.Tensor
    attention_mask: torch.Tensor
    union: list[int]  # pair indices whose J is computed: the batch pairs first, then extra neighbours
    neighbours: list[list[int]]  # per batch pair: positions in ``union`` of its neighbours
    sides: list[tuple[int, int]] = field(default_factory=list)  # (row of s^m, row of s^f) per union pair
    positions: dict[str, list[tuple[int, int]]] = field(default_factory=lambda: {s: [] for s in SEGMENTS})
    jsd_owner: list[int] = field(default_factory=list)  # per jsd_m/jsd_f position: union pos of its pair
    jsd_context: list[bool] = field(default_factory=list)  # ... and whether it is a shared position
    w_token: list[int] = field(default_factory=list)  # per words position: the token, its sign and owner
    w_sign: list[float] = field(default_factory=list)
    w_owner: list[int] = field(default_factory=list)
    attribute_rule: list[bool] = field(default_factory=list)  # per union pair
    lm_targets: list[int] = field(default_factory=list)  # per lm position: the token (KL: the reference
    # position) and its sentence
    lm_sentence: list[int] = field(default_factory=list)
    n_lm_sentences: int = 0
    pair_ids: list[str] = field(default_factory=list)
    weights: list[float] | None = None  # knn_mode weights: w_i of each batch pair

    @property
    def tokens(self) -> int:
        return int(self.attention_mask.sum())

    def head_positions(self) -> tuple[torch.Tensor, torch.Tensor, list[int]]:
        """(rows, cols) of every segment in SEGMENTS order, and the segment sizes (for ``torch.split``)."""
        flat = [p for s in SEGMENTS for p in self.positions[s]]
        rows = torch.tensor([r for r, _ in flat], dtype=torch.long)
        cols = torch.tensor([c for _, c in flat], dtype=torch.long)
        return rows, cols, [len(self.positions[s]) for s in SEGMENTS]


@dataclass(frozen=True)
class TokenInfo:
    pad_id: int
    mask_id: int | None
    vocab_size: int
    special_ids: frozenset[int]


def _bias_requests(b: Batch, s: PairSlots, family: Family, u: int, rm: int, rf: int,
                   context_weight: float) -> None:
    """The positions J(u) reads: target slot, or the gendered words (omega), and shared positions."""
    shift = 1 if family == "causal" else 0  # a causal LM predicts token k at position k-1
    attr = s.rule == "attribute_logodds"
    b.attribute_rule.append(attr)
    requests = [] if attr else [(s.target_m[0], s.target_f[0], False)]
    if family == "causal" and context_weight:
        requests += [(a, c, True) for a, c in s.shared]
    for a, c, context in requests:
        b.positions["jsd_m"].append((rm, a - shift))
        b.positions["jsd_f"].append((rf, c - shift))
        b.jsd_owner.append(u)
        b.jsd_context.append(context)
    if attr:
        for row, ids, span, sign in ((rm, s.ids_m, s.diff_m, 1.0), (rf, s.ids_f, s.diff_f, -1.0)):
            for k in range(*span):
                b.positions["words"].append((row, k - 1))
                b.w_token.append(ids[k])
                b.w_sign.append(sign)
                b.w_owner.append(u)


def draw_neighbours(nb: Sequence[int], k: int, seed: int, epoch: int, pair_id: str) -> list[int]:
    """All of N(i) (k = 0), or k of them drawn without replacement (seeded by epoch and pair id)."""
    if k == 0 or len(nb) <= k:
        return list(nb)
    return random.Random(stable_seed(seed, epoch, pair_id)).sample(list(nb), k)


def build_batch(slots: Sequence[PairSlots], idx: Sequence[int], neighbours: Sequence[Sequence[int]],
                family: Family, tok: TokenInfo, *, epoch: int, seed: int, use_bias: bool, use_lm: bool,
                neighbour_sample: int, w0: float, mlm_probability: float, context_weight: float,
                weights: Sequence[float] | None = None, reference: NeutralReference | None = None) -> Batch:
    """Rows, head positions and bookkeeping of one micro-batch of pair indices ``idx``. ``weights``
    (per pair of ``slots``): the KNN term as weights, no neighbour rows; ``reference``: L_r as KL on it."""
    union = list(idx)
    nb_pos: list[list[int]] = []
    for i in idx:
        drawn = []
        if use_bias and w0 < 1 and weights is None:
            drawn = draw_neighbours(neighbours[i], neighbour_sample, seed, epoch, slots[i].id)
        for k in drawn:
            if k not in union:
                union.append(k)
        nb_pos.append([union.index(k) for k in drawn])
    b = Batch(torch.empty(0), torch.empty(0), union, nb_pos, pair_ids=[slots[i].id for i in idx],
              weights=[weights[i] for i in idx] if weights is not None and use_bias else None)
    rows: list[list[int]] = []
    own_rows = family == "causal" and use_lm and reference is None  # a causal LM's own L_r reads the J rows
    for u in union if (use_bias or own_rows) else []:  # otherwise only L_b needs them
        s = slots[u]
        if family == "causal":
            rows += [list(s.ids_m), list(s.ids_f)]
        else:
            for ids, (t0, t1) in ((s.ids_m, s.target_m), (s.ids_f, s.target_f)):
                rows.append(list(ids[:t0]) + [tok.mask_id] * (t1 - t0) + list(ids[t1:]))
        b.sides.append((len(rows) - 2, len(rows) - 1))
        if use_bias:
            _bias_requests(b, s, family, len(b.sides) - 1, len(rows) - 2, len(rows) - 1, context_weight)
    if use_lm and reference is not None:
        for n, i in enumerate(idx):
            for j, r in enumerate(reference.draw(seed, epoch, slots[i].id)):
                rows.append(reference.rows[r])
                for q, col in enumerate(reference.cols[r]):
                    b.positions["lm"].append((len(rows) - 1, col))
                    b.lm_targets.append(reference.offset[r] + q)
                    b.lm_sentence.append(reference.per_pair * n + j)
        b.n_lm_sentences = reference.per_pair * len(idx)
    elif use_lm:
        for n, i in enumerate(idx):
            s = slots[i]
            for j, ids in enumerate((s.ids_m, s.ids_f)):
                if family == "causal":
                    r, targets = b.sides[n][j], [(k - 1, ids[k]) for k in range(1, len(ids))]
                else:
                    special = [t in tok.special_ids for t in ids]
                    masked, pos = mlm_mask(ids, special, tok.mask_id, tok.vocab_size,
                                           stable_seed(seed, epoch, s.id, j), mlm_probability)
                    rows.append(masked)
                    r, targets = len(rows) - 1, [(k, ids[k]) for k in pos]
                for col, target in targets:
                    b.positions["lm"].append((r, col))
                    b.lm_targets.append(target)
                    b.lm_sentence.append(2 * n + j)
        b.n_lm_sentences = 2 * len(idx)
    width = max(len(r) for r in rows)
    b.input_ids = torch.full((len(rows), width), tok.pad_id, dtype=torch.long)
    b.attention_mask = torch.zeros((len(rows), width), dtype=torch.long)
    for n, r in enumerate(rows):
        b.input_ids[n, :len(r)] = torch.tensor(r)
        b.attention_mask[n, :len(r)] = 1
    return b


def batch_loss(logits: Sequence[torch.Tensor], b: Batch, *, use_bias: bool, use_lm: bool, w0: float,
               lambda_r: float, context_weight: float = 1.0,
               reference: NeutralReference | None = None) -> dict[str, torch.Tensor]:
    """``loss`` = mean_i L_b(i) + λ·L_r, with its parts ``bias`` and ``lm`` (zeros when switched off).

    ``logits`` are the head outputs per segment (SEGMENTS order); ``reference``: L_r is the KL to its
    frozen predictions at the ``lm`` positions (the batch was built with it).
    """
    lg_m, lg_f, lg_w, lg_lm = logits
    dev = lg_m.device
    zero = lg_m.new_zeros(())
    out = {"bias": zero, "lm": zero}

    def t(values, dtype=torch.long):
        return torch.tensor(values, dtype=dtype, device=dev)

    if use_bias:
        j = batched_j(torch.log_softmax(lg_m, -1), torch.log_softmax(lg_f, -1), t(b.jsd_owner),
                      t(b.jsd_context, torch.bool), torch.log_softmax(lg_w, -1), t(b.w_token),
                      t(b.w_sign, lg_m.dtype), t(b.w_owner), t(b.attribute_rule, torch.bool), context_weight)
        out["bias"] = bias_loss(j, b.neighbours, w0, b.weights)
    if use_lm:
        sent = t(b.lm_sentence)
        if reference is None:
            out["lm"] = lm_loss(lg_lm, t(b.lm_targets), sent, b.n_lm_sentences)
        else:
            at = torch.tensor(b.lm_targets, dtype=torch.long)
            out["lm"] = topk_kl(torch.log_softmax(lg_lm.float(), -1), reference.top[at].to(dev),
                                reference.top_logp[at].to(dev), reference.rest_logp[at].to(dev), sent,
                                b.n_lm_sentences)
    out["loss"] = out["bias"] + lambda_r * out["lm"]
    return out
