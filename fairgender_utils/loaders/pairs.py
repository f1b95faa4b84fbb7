"""The generated pairs of one split (METHOD.md §3.5): training reads ``train``, tuning and the dev curve
``dev``, the primary endpoint ``test``. A record without a valid ``split`` is an error naming the file and
its line, never a pair of an unknown split let through."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

from fairgender_utils.io import numbered_jsonl
from fairgender_utils.loaders.formats import DataFormatError

SPLITS = ("train", "dev", "test")


def split_records(records: Iterable[tuple[int, dict[str, Any]]], split: str, source: str) -> list[dict[str, Any]]:
    """The records (with their line numbers) whose ``split`` is ``split``; any record without one of
    SPLITS is a :class:`DataFormatError` naming ``source`` and the line."""
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, not {split!r}")
    out = []
    for lineno, rec in records:
        value = rec.get("split")
        if value not in SPLITS:
            raise DataFormatError(f"{source}:{lineno}: 'split' is {value!r}, not one of {', '.join(SPLITS)} "
                                  "(pairs written before the splits existed: rerun the generate stage)")
        if value == split:
            out.append(rec)
    return out


def load_split(path: str | Path, split: str) -> list[dict[str, Any]]:
    """The pairs of ``path`` (JSONL) in ``split``; a corrupt line or a record without a split is an error."""
    rows = []
    for lineno, rec, problem in numbered_jsonl(path):
        if problem is not None:
            raise DataFormatError(f"{path}:{lineno}: {problem}")
        rows.append((lineno, rec))
    return split_records(rows, split, str(path))
