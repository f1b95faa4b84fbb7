"""Auto-Debias's probe (Guo et al. 2022; METHOD.md §6): a gendered word, a prompt and the slot after them.

A masked LM reads "[word] [prompt] [MASK]" at the mask; a causal LM reads "[word] [prompt]" at its last
token (the distribution of the token that follows the prompt), with a BOS token in front as everywhere in
this project (:func:`fairgender_utils.lm.slots.encode_text`). The prompt search (stage ``prompts``) and the
``autodebias`` training variant build their inputs here, so both read the same slot of the same text.

The slot distribution of the search is restricted to stereotype words: one token per word, the word's
first subtoken as it follows a space (``" " + word`` tokenised on its own; a word the tokenizer splits
is represented by its first piece, or left out with ``multi_subtoken='drop'``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

from fairgender_utils.lm.slots import Family, PairError


def probe_text(tokenizer, word: str, prompt: str, family: Family) -> str:
    """The probe's text: "word prompt [MASK]" (masked LM) or "word prompt" (causal LM)."""
    text = f"{word} {prompt}".strip()
    return f"{text} {tokenizer.mask_token}" if family == "masked" else text


def probe_inputs(tokenizer, texts: Sequence[str], family: Family, max_length: int) -> list[tuple[list[int], int]]:
    """(token ids, index of the slot's read position) per probe text, tokenised in one batch call.

    The read position is the mask (masked LM) or the last token (causal LM, BOS put in front when the
    tokenizer adds none). A text longer than ``max_length`` tokens, or a masked text without exactly one
    mask token, is a :class:`PairError` naming the text.
    """
    if not texts:
        return []
    enc = tokenizer(list(texts), add_special_tokens=True, truncation=False)["input_ids"]
    bos, mask = tokenizer.bos_token_id, tokenizer.mask_token_id
    out = []
    for text, ids in zip(texts, enc, strict=True):
        ids = list(ids)
        if family == "causal" and bos is not None and (not ids or ids[0] != bos):
            ids = [bos, *ids]
        if len(ids) > max_length:
            raise PairError(f"probe {text!r}: {len(ids)} tokens, more than max_length={max_length}")
        if family == "masked":
            reads = [k for k, t in enumerate(ids) if t == mask]
            if len(reads) != 1:
                raise PairError(f"probe {text!r}: {len(reads)} mask tokens after tokenisation, not one")
            out.append((ids, reads[0]))
        else:
            out.append((ids, len(ids) - 1))
    return out


def slot_token_ids(tokenizer, words: Sequence[str],
                   multi_subtoken: Literal["first", "drop"]) -> tuple[list[int], dict[str, list[str]]]:
    """Distinct token ids standing for ``words`` at the slot, in word order, and what was done to get
    them: ``multi_subtoken`` (words split into several tokens: represented by their first piece, or
    dropped), ``shared_token`` (words whose token an earlier word already stands for) and ``no_token``."""
    ids: list[int] = []
    report: dict[str, list[str]] = {"multi_subtoken": [], "shared_token": [], "no_token": []}
    for w in words:
        pieces = tokenizer(" " + w, add_special_tokens=False)["input_ids"]
        if not pieces:
            report["no_token"].append(w)
            continue
        if len(pieces) > 1:
            report["multi_subtoken"].append(w)
            if multi_subtoken == "drop":
                continue
        if pieces[0] in ids:
            report["shared_token"].append(w)
        else:
            ids.append(pieces[0])
    return ids, report
