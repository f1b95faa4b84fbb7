"""One scorer for masked and causal LMs: log-probabilities of chosen tokens of a token sequence.

A :class:`Request` names a token sequence and the positions whose tokens are to be scored:

- masked LM: ``log P(ids[p] | ids with position p replaced by the mask token)``, one position masked at
  a time (a pseudo-log-likelihood term, Salazar et al. 2020; Nangia et al. 2020);
- causal LM: ``log P(ids[p] | ids[:p])``.

:meth:`Scorer.logprobs` is the fast path: every masked variant of every sentence becomes one row, rows
are grouped by length into batches of at most ``batch_tokens`` tokens, the LM head runs only at the
positions read, and identical prediction contexts are computed once (the same masked row, or the same
causal prefix, as when StereoSet's three candidates share the words before the blank). A BERT-layout
masked LM runs through ``lm.encoder_reads`` (the last layer at the read positions only, the first
layer's projections once per distinct token and position, oneDNN products), once a check on the model
shows that it gives the model's own logits; other models run their body, then their head. For a causal LM,
requests that share a prefix are packed into one row with a tree mask (see ``scoring_plan``), once a
check on the model shows that it honours the mask.
:meth:`Scorer.logprobs_plain` is the reference: one full forward pass per masked position (per request
for a causal LM) with the full logits. Both return the same numbers up to float rounding.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from fairgender_utils.evaluate.scoring_plan import Plan, prefix_groups
from fairgender_utils.lm.encoder_reads import ReadEncoder, ReadHead
from fairgender_utils.lm.heads import body_of, head_logits, lm_head
from fairgender_utils.lm.loading import pad_id
from fairgender_utils.progress import tqdm


@dataclass(frozen=True)
class Request:
    """Score the tokens at ``positions`` of ``ids`` (ids include the special tokens)."""

    ids: tuple[int, ...]
    positions: tuple[int, ...]


@dataclass(frozen=True)
class Encoding:
    """A text as the scorer sees it: ids, character offsets, and which positions may be scored."""

    text: str
    ids: tuple[int, ...]
    offsets: tuple[tuple[int, int], ...]
    content: tuple[bool, ...]  # not a special token
    scorable: tuple[bool, ...]  # content, and for a causal LM not the first position


class Scorer:
    """Token log-probabilities from a masked or a causal LM, batched (fast) or plain (reference)."""

    def __init__(self, model, tokenizer, family: str, batch_tokens: int = 4096, head_rows: int = 256,
                 pack: bool = True, reads: bool = True):
        if family not in ("masked", "causal"):
            raise ValueError(f"family must be 'masked' or 'causal', not {family!r}")
        if family == "masked" and tokenizer.mask_token_id is None:
            raise ValueError("a masked LM needs a tokenizer with a mask token")
        if not getattr(tokenizer, "is_fast", False):
            raise ValueError("the scorer needs a fast tokenizer (character offsets)")
        self.model, self.tokenizer, self.family = model, tokenizer, family
        self.batch_tokens, self.head_rows = batch_tokens, head_rows
        self.device = next(model.parameters()).device
        self.pad_id = pad_id(tokenizer)
        self._special = set(tokenizer.all_special_ids)
        self._head = lm_head(model)
        self._head_checked = False
        self._reads = ReadEncoder.of(body_of(model)) if reads and family == "masked" else None
        self._reads_head = ReadHead.of(model) if self._reads is not None else None
        self._reads_checked = self._reads is None
        self._pack: bool | None = None if pack and family == "causal" else False  # None: not yet checked

    # ------------------------------------------------------------ text -> ids
    def encode(self, text: str) -> Encoding:
        """Tokenise with special tokens; a causal LM gets its BOS token in front when it has one."""
        enc = self.tokenizer(text, return_offsets_mapping=True)
        ids, offsets = list(enc["input_ids"]), [tuple(o) for o in enc["offset_mapping"]]
        bos = self.tokenizer.bos_token_id
        if self.family == "causal" and bos is not None and (not ids or ids[0] != bos):
            ids, offsets = [bos, *ids], [(0, 0), *offsets]
        # special tokens the tokenizer added (not <unk>, which stands for real text: it has a span)
        content = [i not in self._special or e > s for i, (s, e) in zip(ids, offsets, strict=True)]
        scorable = list(content)
        if self.family == "causal" and scorable:
            scorable[0] = False  # nothing to condition on
        return Encoding(text, tuple(ids), tuple(offsets), tuple(content), tuple(scorable))

    # ------------------------------------------------------------ fast path
    @torch.inference_mode()
    def logprobs(self, requests: Sequence[Request], desc: str | None = None) -> list[np.ndarray]:
        """Log-probabilities (float64) of the requested tokens, one array per request, in order."""
        if self._pack is None:
            self._pack = self._packing_works(requests)
        plan = Plan(requests, self.family, self.tokenizer.mask_token_id, pack=self._pack)
        values: dict[tuple[int, int], float] = {}
        # the masked variants of a sentence all have its length: batches of one length need no padding
        shape = (1.0, 0) if self.family == "masked" else ()
        for batch in tqdm(plan.batches(self.batch_tokens, *shape), desc=desc, disable=desc is None, unit="batch"):
            self._run_batch(plan, batch, values)
        return [np.array([values[key] for key in keys], dtype=np.float64) for keys in plan.request_keys]

    def _inputs(self, plan: Plan, batch: list[int]) -> dict[str, torch.Tensor]:
        return plan.inputs(batch, self.pad_id, next(self.model.parameters()).dtype, self.device)

    def _run_batch(self, plan: Plan, batch: list[int], values: dict[tuple[int, int], float]) -> None:
        inputs = self._inputs(plan, batch)
        slots = [(b, s) for b, r in enumerate(batch) for s in plan.row_slots[r]]
        rows = torch.tensor([b for b, _ in slots], device=self.device)
        cols = torch.tensor([plan.slot_read[s] for _, s in slots], device=self.device)
        if self._reads is not None and not self._reads_checked:
            self._check_reads(inputs, rows, cols)
        if self._head is not None and not self._head_checked and self._reads is None:
            self._check_head({k: v[:1] for k, v in inputs.items()})
        if self._reads is not None:  # hidden states at the read positions only
            at, logits_of = self._reads(inputs["input_ids"], inputs["attention_mask"], rows, cols), self._read_logits
        elif self._head is None:  # no separable head: full logits, then read
            at, logits_of = self.model(**inputs).logits[rows, cols], None
        else:
            at, logits_of = body_of(self.model)(**inputs).last_hidden_state[rows, cols], self._apply_head
        # every requested (slot, token) of the batch: its row in ``at`` and its token, gathered per chunk
        n_tok = [len(plan.slot_tokens[s]) for _, s in slots]
        where = np.repeat(np.arange(len(slots)), n_tok)
        tokens = [t for _, s in slots for t in plan.slot_tokens[s]]
        bounds = np.searchsorted(where, np.arange(0, len(slots) + self.head_rows, self.head_rows))
        got = []
        for start, (lo, hi) in zip(range(0, len(slots), self.head_rows), zip(bounds[:-1], bounds[1:])):
            chunk = at[start:start + self.head_rows]
            lg = chunk if logits_of is None else logits_of(chunk)
            got.append(_log_softmax_at(lg, where[lo:hi] - start, tokens[lo:hi]))
        got = np.concatenate(got).tolist() if got else []
        for i, tok, v in zip(where.tolist(), tokens, got, strict=True):
            values[(slots[i][1], tok)] = v

    def _read_logits(self, hidden: torch.Tensor) -> torch.Tensor:
        return self._reads_head(hidden) if self._reads_head is not None else self._apply_head(hidden)

    def _packing_works(self, requests: Sequence[Request]) -> bool:
        """Whether this model honours the tree mask: packed hidden states equal the separate ones."""
        group = next((g for g in prefix_groups(requests) if len(g) > 1), None)
        if group is None:
            return False
        reqs = [requests[i] for i in group]
        packed, plain = Plan(reqs, "causal", None, pack=True), Plan(reqs, "causal", None, pack=False)
        body = body_of(self.model)
        h_packed = body(**self._inputs(packed, [0])).last_hidden_state[0]
        h_plain = [body(**self._inputs(plain, [r])).last_hidden_state[0] for r in range(len(plain.rows))]
        owner = {s: r for r, slots in enumerate(plain.row_slots) for s in slots}
        for keys_packed, keys_plain in zip(packed.request_keys, plain.request_keys, strict=True):
            for (a, _), (b, _) in zip(keys_packed, keys_plain, strict=True):
                if not torch.allclose(h_packed[packed.slot_read[a]], h_plain[owner[b]][plain.slot_read[b]],
                                      atol=1e-4, rtol=1e-4):
                    return False
        return True

    def _apply_head(self, hidden: torch.Tensor) -> torch.Tensor:
        return head_logits(self.model, self._head, hidden)

    def _check_reads(self, inputs: dict[str, torch.Tensor], rows: torch.Tensor, cols: torch.Tensor) -> None:
        """Use ``encoder_reads`` only where it reproduces the model's own logits at the positions read."""
        keep = rows < 2  # the first two rows of the batch
        sub = {k: v[:2] for k, v in inputs.items()}
        full = self.model(**sub).logits[rows[keep], cols[keep]]
        if self._head is None and self._reads_head is None:
            self._reads = None
        else:
            got = self._read_logits(self._reads(sub["input_ids"], sub["attention_mask"], rows[keep], cols[keep]))
            if full.shape != got.shape or not torch.allclose(full, got, atol=1e-4, rtol=1e-4):
                self._reads, self._reads_head = None, None
        self._reads_checked = True

    def _check_head(self, inputs: dict[str, torch.Tensor]) -> None:
        """Use the body + head split only where it reproduces the model's own logits."""
        full = self.model(**inputs).logits
        split = self._apply_head(body_of(self.model)(**inputs).last_hidden_state)
        if full.shape != split.shape or not torch.allclose(full, split, atol=1e-4, rtol=1e-4):
            self._head = None
        self._head_checked = True

    # ------------------------------------------------------------ reference path
    @torch.inference_mode()
    def logprobs_plain(self, requests: Sequence[Request], desc: str | None = None) -> list[np.ndarray]:
        """Reference: one forward pass per masked position (masked) or per request (causal), full logits."""
        out = []
        for req in tqdm(requests, desc=desc, disable=desc is None):
            vals = []
            if self.family == "causal":
                logits = self._full_logits(req.ids)
                vals = _log_softmax_at(logits, [p - 1 for p in req.positions],
                                       [req.ids[p] for p in req.positions]).tolist()
            else:
                for p in req.positions:
                    masked = list(req.ids)
                    masked[p] = self.tokenizer.mask_token_id
                    vals += _log_softmax_at(self._full_logits(masked)[p:p + 1], [0], [req.ids[p]]).tolist()
            out.append(np.array(vals, dtype=np.float64))
        return out

    def _full_logits(self, ids: Sequence[int]) -> torch.Tensor:
        x = torch.tensor([list(ids)], device=self.device)
        return self.model(input_ids=x, attention_mask=torch.ones_like(x)).logits[0]


def _log_softmax_at(logits: torch.Tensor, rows: Sequence[int], tokens: Sequence[int]) -> np.ndarray:
    """log_softmax(logits)[rows, tokens] as float64 (normaliser by one fused float32 logsumexp)."""
    logits = logits.float()
    log_z = torch.logsumexp(logits, dim=-1).double()
    r = torch.as_tensor(list(rows), device=logits.device)
    t = torch.as_tensor(list(tokens), device=logits.device)
    return (logits[r, t].double() - log_z[r]).cpu().numpy()
