"""Where a sentence pair's gender effect is read: token spans and slot rules (METHOD.md §4-§5).

Words are located through the tokenizer's character offsets (``return_offsets_mapping``), so the same
code works for WordPiece, byte-level BPE (offsets that may include the leading space) and sentencepiece
(``▁`` pieces): a token belongs to a word when its character span overlaps the word's.

Rules. A masked LM sees both sides of the target, so its effect is always read at the target slot
(``target_slot``). A causal LM sees only the past: when the target comes before the first gendered
difference the two sentences share the whole prefix up to it and the target-slot distributions are
identical, so the effect is read at the gendered word itself (``attribute_logodds``: the log-odds of the
male vs. the female word given the shared prefix). For causal LMs ``shared`` also lists the token pairs
that both sentences share after the first difference (how gender changes what the model expects next).
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

Family = Literal["masked", "causal"]
Rule = Literal["target_slot", "attribute_logodds"]
Span = tuple[int, int]  # token indices [start, end)


class PairError(ValueError):
    """A pair cannot be scored (its target is missing after tokenisation, the sides are identical...)."""


@dataclass(frozen=True)
class PairSlots:
    """One tokenised pair and the positions its effects are read at (token indices)."""

    id: str
    ids_m: tuple[int, ...]
    ids_f: tuple[int, ...]
    target_m: Span
    target_f: Span
    diff_m: Span  # the first word that differs (the gendered word), in s_m
    diff_f: Span
    rule: Rule
    shared: tuple[tuple[int, int], ...]  # (k_m, k_f): equal tokens after the gendered word (causal only)

    def needed(self, side: str) -> list[int]:
        """Token indices whose prediction the causal-LM effect terms read on ``side`` ('m' or 'f')."""
        m = side == "m"
        target, diff = (self.target_m, self.diff_m) if m else (self.target_f, self.diff_f)
        out = set(range(*target)) if self.rule == "target_slot" else set(range(*diff))
        out.update(a if m else b for a, b in self.shared)
        return sorted(out)


def word_chars(text: str, word: str) -> Span:
    """Character span of the first whole-word, case-insensitive occurrence of ``word``."""
    m = re.search(rf"(?<!\w){re.escape(word)}(?!\w)", text, flags=re.IGNORECASE)
    if m is None:
        raise PairError(f"word '{word}' not found in: {text!r}")
    return m.span()


def token_span(offsets: Sequence[tuple[int, int]], chars: Span) -> Span:
    """Indices [start, end) of the (non-special) tokens whose character spans overlap ``chars``."""
    hits = [k for k, (a, b) in enumerate(offsets) if a < b and a < chars[1] and b > chars[0]]
    if not hits:
        raise PairError(f"characters {chars} are not covered by any token (truncated?)")
    return hits[0], hits[-1] + 1


WORD = re.compile(r"\w+(?:['’]\w+)*")


def first_difference(s_m: str, s_f: str) -> tuple[Span, Span]:
    """Character spans of the first word that differs between the two sentences (case-insensitive).

    Words, not tokens: "baron was" vs "baroness was" may share the token "baron", and the first
    differing *token* ("was" vs "ess") is then not the gendered word.
    """
    wm, wf = list(WORD.finditer(s_m)), list(WORD.finditer(s_f))
    for a, b in zip(wm, wf, strict=False):
        if a.group().lower() != b.group().lower():
            return a.span(), b.span()
    raise PairError("s_m and s_f have the same words")


def encode_text(tokenizer, text: str, family: Family,
                max_length: int) -> tuple[list[int], list[tuple[int, int]]]:
    """Token ids and offsets; causal LMs get a BOS token in front when their tokenizer adds none."""
    enc = tokenizer(text, return_offsets_mapping=True, truncation=True, max_length=max_length)
    ids, offs = list(enc["input_ids"]), [tuple(o) for o in enc["offset_mapping"]]
    bos = tokenizer.bos_token_id
    if family == "causal" and bos is not None and (not ids or ids[0] != bos):
        ids, offs = [bos, *ids], [(0, 0), *offs]
    return ids, offs


def encode_pair(tokenizer, pair: Mapping[str, Any], family: Family, max_length: int = 64) -> PairSlots:
    """Tokenise a pair (keys id, s_m, s_f, target) and locate its target, first difference and rule."""
    pid = str(pair.get("id", "?"))
    try:
        ids_m, off_m = encode_text(tokenizer, pair["s_m"], family, max_length)
        ids_f, off_f = encode_text(tokenizer, pair["s_f"], family, max_length)
        t_m = token_span(off_m, word_chars(pair["s_m"], pair["target"]))
        t_f = token_span(off_f, word_chars(pair["s_f"], pair["target"]))
        diff_chars_m, diff_chars_f = first_difference(pair["s_m"], pair["s_f"])
        diff_m, diff_f = token_span(off_m, diff_chars_m), token_span(off_f, diff_chars_f)
        if t_m[0] < diff_m[1] and diff_m[0] < t_m[1]:
            raise PairError(f"the target '{pair['target']}' overlaps the first gendered word")
    except PairError as err:
        raise PairError(f"pair {pid}: {err}") from None
    rule: Rule = "target_slot"
    shared: tuple[tuple[int, int], ...] = ()
    if family == "causal":
        if t_m[0] < diff_m[0]:
            rule = "attribute_logodds"
        if diff_m[0] == 0 or diff_f[0] == 0:
            raise PairError(f"pair {pid}: the gendered word is the first token and the tokenizer has no BOS")
        blocks = difflib.SequenceMatcher(None, ids_m, ids_f, autojunk=False).get_matching_blocks()
        shared = tuple((a + j, b + j) for a, b, n in blocks for j in range(n)
                       if a + j >= diff_m[1] and b + j >= diff_f[1])
    return PairSlots(pid, tuple(ids_m), tuple(ids_f), t_m, t_f, diff_m, diff_f, rule, shared)


def encode_pairs(tokenizer, pairs: Sequence[Mapping[str, Any]], family: Family,
                 max_length: int = 64) -> tuple[list[PairSlots], dict[str, str]]:
    """Encode many pairs; return the encoded ones and {pair id: reason} for those that cannot be scored."""
    ok: list[PairSlots] = []
    failed: dict[str, str] = {}
    for p in pairs:
        try:
            ok.append(encode_pair(tokenizer, p, family, max_length))
        except PairError as err:
            failed[str(p.get("id", "?"))] = str(err)
    return ok, failed
