"""The objective on held-out pairs and the perplexity of neutral text, for any model (METHOD.md §4-§5, §7, §9).

:func:`pair_objective` is the one definition of the per-pair endpoint: J(i) of §5 (the training loss's
J, computed by the model under test, :func:`fairgender_utils.lm.losses.pair_j`) and the signed effect
delta_i of §4 (log p(t|s^m) - log p(t|s^f), whole word: the chain rule over the target's subtokens). The
training stage's dev curve reads it on the dev pairs, the evaluate stage's primary endpoint on the test
pairs. :func:`text_nll` scores neutral sentences with the token conventions of the evaluate stage's scorer
(causal LM: every token after BOS from its prefix; masked LM: pseudo-log-likelihood, one content token
masked at a time), so the dev perplexity of training is the evaluate stage's perplexity on other text.

Both run without gradients, in eval mode (the model's mode is restored), the LM head only at the
positions read.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import pandas as pd
import torch

from fairgender_utils.lm.heads import PositionLogits
from fairgender_utils.lm.loading import pad_id
from fairgender_utils.lm.losses import pair_j, word_logprob
from fairgender_utils.lm.slots import Family, PairSlots, encode_pairs

COLUMNS = ["id", "target", "J", "delta"]


def _padded(rows: Sequence[Sequence[int]], pad: int, device) -> tuple[torch.Tensor, torch.Tensor]:
    width = max(len(r) for r in rows)
    ids = torch.full((len(rows), width), pad, dtype=torch.long)
    att = torch.zeros((len(rows), width), dtype=torch.long)
    for i, r in enumerate(rows):
        ids[i, :len(r)] = torch.tensor(list(r))
        att[i, :len(r)] = 1
    return ids.to(device), att.to(device)


class _Reads:
    """Rows to run and (row, column) positions to read; ``logp()`` gives their log-probabilities."""

    def __init__(self):
        self.rows: list[list[int]] = []
        self.at: list[tuple[int, int]] = []

    def row(self, ids: Sequence[int]) -> int:
        self.rows.append(list(ids))
        return len(self.rows) - 1

    def read(self, row: int, col: int) -> int:
        self.at.append((row, col))
        return len(self.at) - 1

    def logp(self, scorer: PositionLogits, pad: int, device) -> torch.Tensor:
        ids, att = _padded(self.rows, pad, device)
        r = torch.tensor([a for a, _ in self.at], device=device)
        c = torch.tensor([b for _, b in self.at], device=device)
        return torch.log_softmax(scorer(ids, att, r, c), -1).cpu()


def _lookups(reads: _Reads, s: PairSlots, family: Family, mask_id: int | None) -> list[dict[int, int]]:
    """Per side (m, f): {token index k: read index of the prediction of token k}."""
    out = []
    for ids, target, side in ((s.ids_m, s.target_m, "m"), (s.ids_f, s.target_f, "f")):
        if family == "causal":
            row = reads.row(ids)
            ks = sorted(set(s.needed(side)) | set(range(*target)))
            out.append({k: reads.read(row, k - 1) for k in ks})
        else:  # chain rule: token k predicted with k..end of the target masked (k = start: J's slot row)
            t0, t1 = target
            out.append({k: reads.read(reads.row([*ids[:k], *[mask_id] * (t1 - k), *ids[t1:]]), k)
                        for k in range(t0, t1)})
    return out


@torch.no_grad()
def pair_objective(model, tokenizer, family: Family, pairs: Sequence[Mapping[str, Any]], batch_size: int,
                   max_length: int, context_weight: float) -> pd.DataFrame:
    """One row per scorable pair, in input order: ``id``, ``target``, ``J`` (§5) and ``delta`` (§4).
    Pairs that cannot be scored are left out; ``attrs['unscorable']`` holds {id: reason}."""
    slots, failed = encode_pairs(tokenizer, pairs, family, max_length)
    target = {str(p["id"]): p["target"] for p in pairs}
    scorer, pad, device = PositionLogits(model), pad_id(tokenizer), next(model.parameters()).device
    was_training = model.training
    model.eval()
    order = sorted(range(len(slots)), key=lambda i: len(slots[i].ids_m))  # similar lengths: less padding
    values: dict[str, tuple[float, float]] = {}
    try:
        for b in range(0, len(order), batch_size):
            chunk = [slots[i] for i in order[b:b + batch_size]]
            reads = _Reads()
            maps = [_lookups(reads, s, family, tokenizer.mask_token_id) for s in chunk]
            logp = reads.logp(scorer, pad, device)
            for s, (m, f) in zip(chunk, maps, strict=True):
                lp_m = lambda ks, m=m: logp[[m[k] for k in ks]]  # noqa: E731
                lp_f = lambda ks, f=f: logp[[f[k] for k in ks]]  # noqa: E731
                j = pair_j(s, family, lp_m, lp_f, context_weight)
                delta = word_logprob(lp_m, s.ids_m, s.target_m) - word_logprob(lp_f, s.ids_f, s.target_f)
                values[s.id] = (float(j), float(delta))
    finally:
        model.train(was_training)
    rows = [{"id": s.id, "target": target[s.id], "J": values[s.id][0], "delta": values[s.id][1]} for s in slots]
    out = pd.DataFrame(rows, columns=COLUMNS)
    out.attrs["unscorable"] = failed
    return out


def scorable_tokens(tokenizer, text: str, family: Family) -> tuple[list[int], list[int]]:
    """(ids, positions whose tokens are scored), as the evaluate stage's scorer encodes a text: special
    tokens added (a causal LM gets BOS in front when its tokenizer adds none), content tokens scored, a
    causal LM's first token not (nothing to condition on)."""
    enc = tokenizer(text, return_offsets_mapping=True)
    ids, offsets = list(enc["input_ids"]), [tuple(o) for o in enc["offset_mapping"]]
    bos = tokenizer.bos_token_id
    if family == "causal" and bos is not None and (not ids or ids[0] != bos):
        ids, offsets = [bos, *ids], [(0, 0), *offsets]
    special = set(tokenizer.all_special_ids)
    positions = [k for k, (i, (a, b)) in enumerate(zip(ids, offsets, strict=True))
                 if (i not in special or b > a) and not (family == "causal" and k == 0)]
    return ids, positions


@torch.no_grad()
def text_nll(model, tokenizer, family: Family, texts: Sequence[str], batch_size: int) -> pd.DataFrame:
    """One row per text: ``n_tokens`` scored and their summed negative log-likelihood ``nll``."""
    scorer, pad, device = PositionLogits(model), pad_id(tokenizer), next(model.parameters()).device
    was_training = model.training
    model.eval()
    nll = [0.0] * len(texts)
    count = [0] * len(texts)
    try:
        for b in range(0, len(texts), batch_size):
            reads, owner, tokens = _Reads(), [], []
            for t in range(b, min(b + batch_size, len(texts))):
                ids, positions = scorable_tokens(tokenizer, texts[t], family)
                row = reads.row(ids) if family == "causal" and positions else None
                for k in positions:
                    if family == "causal":
                        reads.read(row, k - 1)
                    else:
                        reads.read(reads.row([*ids[:k], tokenizer.mask_token_id, *ids[k + 1:]]), k)
                    owner.append(t)
                    tokens.append(ids[k])
                count[t] = len(positions)
            if not tokens:
                continue
            lp = reads.logp(scorer, pad, device).gather(1, torch.tensor(tokens)[:, None])[:, 0].double()
            for t, v in zip(owner, lp.tolist(), strict=True):
                nll[t] -= v
    finally:
        model.train(was_training)
    return pd.DataFrame({"n_tokens": count, "nll": nll})


def perplexity(nll: pd.DataFrame) -> float:
    """exp(total NLL / total tokens) of a :func:`text_nll` table."""
    total = float(nll["n_tokens"].sum())
    return math.exp(float(nll["nll"].sum()) / total) if total else float("nan")
