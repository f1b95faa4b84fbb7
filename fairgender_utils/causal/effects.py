"""Per-pair effects of gender under the frozen model (METHOD.md §4), batched, both model families.

For every pair: ``tau`` (the unsigned effect, in nats and at most ln 2 whatever the rule: the target-slot
JSD, or for ``attribute_logodds`` pairs of a causal LM the two-way JSD of omega, the JSD between the
model's renormalised {m_j, f_j} distribution and its swap), ``slot_jsd`` (the target-slot JSD whatever
the rule; zero for those pairs), ``omega`` (gendered-word log-odds given the shared prefix),
``context_jsd`` (causal LMs: mean JSD over the shared positions after the first difference), ``delta``
(signed whole-word log p(t|s^m) - log p(t|s^f)), ``effect`` (the signed effect of the pair's rule: delta
or omega), and the per-token log-likelihood of each sentence (causal: mean next-token log-probability;
masked: pseudo-log-likelihood).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import pandas as pd
import torch

from fairgender_utils.lm.losses import Lookup, effect_terms, two_way_jsd, word_logprob
from fairgender_utils.lm.loading import pad_id
from fairgender_utils.lm.slots import Family, PairSlots, encode_pairs
from fairgender_utils.progress import tqdm


def _pad(rows: Sequence[Sequence[int]], pad_id: int, device) -> tuple[torch.Tensor, torch.Tensor]:
    width = max(len(r) for r in rows)
    ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    att = torch.zeros((len(rows), width), dtype=torch.long)
    for i, r in enumerate(rows):
        ids[i, :len(r)] = torch.tensor(r)
        att[i, :len(r)] = 1
    return ids.to(device), att.to(device)


def _next_token_lookup(logp: torch.Tensor, row: int) -> Lookup:
    """Causal LM: the prediction of token k of ``row`` is the distribution at position k-1."""
    return lambda ks: logp[row, [k - 1 for k in ks]]


def _row_lookup(rows: torch.Tensor, row: int) -> Lookup:
    """Masked LM with one read position per row: the same distribution for any token asked for."""
    return lambda ks: rows[[row] * len(ks)]


@torch.inference_mode()
def _causal_effects(model, pad_id: int, slots: Sequence[PairSlots], batch_size: int,
                    desc: str | None) -> list[dict[str, float]]:
    device = next(model.parameters()).device
    out: list[dict[str, float]] = []
    for b in tqdm(range(0, len(slots), batch_size), desc=desc, disable=desc is None, unit="batch"):
        chunk = slots[b:b + batch_size]
        ids, att = _pad([s.ids_m for s in chunk] + [s.ids_f for s in chunk], pad_id, device)
        logp = torch.log_softmax(model(input_ids=ids, attention_mask=att).logits.float(), -1)
        n = len(chunk)
        for i, s in enumerate(chunk):
            lp_m, lp_f = _next_token_lookup(logp, i), _next_token_lookup(logp, n + i)
            rec = {k: float(v) for k, v in effect_terms(s, "causal", lp_m, lp_f, naive_slot=True).items()}
            rec["delta"] = float(word_logprob(lp_m, s.ids_m, s.target_m)
                                 - word_logprob(lp_f, s.ids_f, s.target_f))
            for side, row, tok in (("m", i, s.ids_m), ("f", n + i, s.ids_f)):
                lp = _next_token_lookup(logp, row)
                rec[f"loglik_{side}"] = float(word_logprob(lp, tok, (1, len(tok)))) / (len(tok) - 1)
            out.append(rec)
    return out


@torch.inference_mode()
def _masked_rows(model, rows: Sequence[Sequence[int]], read: Sequence[int], pad_id: int, batch_size: int,
                 tokens: Sequence[int] | None = None) -> torch.Tensor:
    """Log-probabilities at position ``read[r]`` of each row: [n, V], or [n] of ``tokens[r]`` if given."""
    device = next(model.parameters()).device
    parts = []
    for b in range(0, len(rows), batch_size):
        ids, att = _pad(rows[b:b + batch_size], pad_id, device)
        logits = model(input_ids=ids, attention_mask=att).logits
        at = torch.tensor(read[b:b + batch_size], device=device)
        lp = torch.log_softmax(logits[torch.arange(len(ids), device=device), at].float(), -1)
        if tokens is not None:
            lp = lp.gather(1, torch.tensor(tokens[b:b + batch_size], device=device)[:, None])[:, 0]
        parts.append(lp.cpu())
    return torch.cat(parts)


def _masked_effects(model, tokenizer, slots: Sequence[PairSlots], batch_size: int, desc: str | None,
                    loglik: bool = True) -> list[dict[str, float]]:
    mask, pad = tokenizer.mask_token_id, pad_id(tokenizer)
    specials = set(tokenizer.all_special_ids)
    slot_rows, chain, pll = [], [], []  # chain/pll items: (pair, side, row ids, read position, token)
    for i, s in enumerate(slots):
        for side, ids, (t0, t1) in (("m", s.ids_m, s.target_m), ("f", s.ids_f, s.target_f)):
            for k in range(t0, t1):  # chain rule over the target's subtokens: k..t1-1 masked
                row = list(ids[:k]) + [mask] * (t1 - k) + list(ids[t1:])
                if k == t0:
                    slot_rows.append(row)
                chain.append((i, side, row, k, ids[k]))
            for k, tok in enumerate(ids if loglik else ()):
                if tok not in specials:
                    pll.append((i, side, [*ids[:k], mask, *ids[k + 1:]], k, tok))
    slot_lp = _masked_rows(model, slot_rows, [s.target_m[0] if j % 2 == 0 else s.target_f[0]
                                              for s in slots for j in range(2)], pad, batch_size)
    items = chain + pll
    lps = []
    for b in tqdm(range(0, len(items), batch_size * 8), desc=desc, disable=desc is None, unit="batch"):
        part = items[b:b + batch_size * 8]
        lps.append(_masked_rows(model, [x[2] for x in part], [x[3] for x in part], pad, batch_size,
                                tokens=[x[4] for x in part]))
    lp_all = torch.cat(lps) if lps else torch.empty(0)
    recs = [{"slot_jsd": 0.0, "omega": float("nan"), "context_jsd": float("nan"), "delta": 0.0,
             "loglik_m": 0.0, "loglik_f": 0.0} for _ in slots]
    n_tok = [{"m": 0, "f": 0} for _ in slots]
    for (i, side, _, _, _), v in zip(chain, lp_all[:len(chain)].tolist()):
        recs[i]["delta"] += v if side == "m" else -v
    for (i, side, _, _, _), v in zip(pll, lp_all[len(chain):].tolist()):
        recs[i][f"loglik_{side}"] += v
        n_tok[i][side] += 1
    for i, s in enumerate(slots):
        if not loglik:
            recs[i]["loglik_m"] = recs[i]["loglik_f"] = float("nan")
        lp_m, lp_f = _row_lookup(slot_lp, 2 * i), _row_lookup(slot_lp, 2 * i + 1)  # only the slot is read
        recs[i]["slot_jsd"] = float(effect_terms(s, "masked", lp_m, lp_f)["slot_jsd"])
        for side in "mf" if loglik else "":
            recs[i][f"loglik_{side}"] /= max(n_tok[i][side], 1)
    return recs


def pair_effects(model, tokenizer, family: Family, pairs: Sequence[Mapping[str, Any]], batch_size: int = 8,
                 max_length: int = 64, desc: str | None = None,
                 loglik: bool = True) -> tuple[pd.DataFrame, dict[str, str]]:
    """Effects of every pair (one row per scorable pair, keyed by ``id``) and {id: reason} for the rest.

    ``loglik=False`` skips the masked-LM pseudo-log-likelihood (one forward pass per token; NaN then)."""
    slots, failed = encode_pairs(tokenizer, pairs, family, max_length)
    order = sorted(range(len(slots)), key=lambda i: max(len(slots[i].ids_m), len(slots[i].ids_f)))
    slots = [slots[i] for i in order]  # similar lengths per batch: less padding
    pad = pad_id(tokenizer)
    if family == "causal":
        recs = _causal_effects(model, pad, slots, batch_size, desc)
    else:
        recs = _masked_effects(model, tokenizer, slots, batch_size, desc, loglik)
    rows = []
    for s, r in zip(slots, recs):
        attr = s.rule == "attribute_logodds"
        tau = float(two_way_jsd(torch.tensor(r["omega"]))) if attr else r["slot_jsd"]
        rows.append({"id": s.id, "rule": s.rule, "tau": tau,
                     "effect": r["omega"] if attr else r["delta"], **r,
                     "n_tokens_m": len(s.ids_m), "n_tokens_f": len(s.ids_f), "n_shared_after": len(s.shared)})
    cols = ["id", "rule", "tau", "effect", "slot_jsd", "omega", "context_jsd", "delta", "loglik_m",
            "loglik_f", "n_tokens_m", "n_tokens_f", "n_shared_after"]
    return pd.DataFrame(rows, columns=cols), failed
