"""Loader of the GLUE tasks' train and dev files, labels checked against each task's label set."""

from __future__ import annotations

import csv
import io
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, get_args

from fairgender_utils.loaders.formats import DataFormatError, _text


@dataclass(frozen=True)
class GlueExample:
    text_a: str
    text_b: str | None
    label: float  # class index for classification tasks, score for STS-B


GlueTask = Literal["sst2", "cola", "mrpc", "stsb", "rte", "wnli"]
GLUE_TASKS: tuple[str, ...] = get_args(GlueTask)
_BINARY = {"0": 0.0, "1": 1.0}
# task -> {label as written: class index}; STS-B is a score in [0, 5] instead
GLUE_LABELS: dict[str, dict[str, float]] = {
    "sst2": _BINARY, "cola": _BINARY, "mrpc": _BINARY, "wnli": _BINARY,
    "rte": {"entailment": 0.0, "not_entailment": 1.0}}
STSB_RANGE = (0.0, 5.0)

# task -> split -> (files, header?, text_a column, text_b column, label column)
_GLUE_LAYOUT: dict[str, dict[str, tuple[tuple[str, ...], bool, str | int, str | int | None, str | int]]] = {
    "sst2": {"train": (("SST-2/train_full.tsv",), True, "sentence", None, "label"),
             "dev": (("SST-2/dev.tsv",), True, "sentence", None, "label")},
    "cola": {"train": (("CoLA/in_domain_train.tsv",), False, 3, None, 1),
             "dev": (("CoLA/in_domain_dev.tsv", "CoLA/out_of_domain_dev.tsv"), False, 3, None, 1)},
    "mrpc": {"train": (("MRPC/train.tsv",), True, "#1 String", "#2 String", "Quality"),
             "dev": (("MRPC/dev.tsv",), True, "#1 String", "#2 String", "Quality")},
    "stsb": {"train": (("STS-B/train.tsv",), True, "sentence1", "sentence2", "score"),
             "dev": (("STS-B/dev.tsv",), True, "sentence1", "sentence2", "score")},
    "rte": {"train": (("RTE/train.tsv", "RTE/val.tsv"), True, "sentence1", "sentence2", "label"),
            "dev": (("RTE/dev.tsv",), True, "sentence1", "sentence2", "label")},
    "wnli": {"train": (("WNLI/train.tsv", "WNLI/val.tsv"), True, "sentence1", "sentence2", "label"),
             "dev": (("WNLI/dev.tsv",), True, "sentence1", "sentence2", "label")},
}


def glue_label(task: str, raw: str) -> float:
    """The label of a non-empty label cell: a class index (in the task's label set) or an STS-B score.

    Raises ValueError saying why the cell is not a label of ``task``.
    """
    if task == "stsb":
        try:
            score = float(raw)
        except ValueError:
            raise ValueError(f"score {raw!r} is not a number") from None
        if not STSB_RANGE[0] <= score <= STSB_RANGE[1]:  # also NaN
            raise ValueError(f"score {raw!r} is outside [{STSB_RANGE[0]:g}, {STSB_RANGE[1]:g}]")
        return score
    labels = GLUE_LABELS[task]
    if raw not in labels:
        raise ValueError(f"label {raw!r} is not a label of {task} ({', '.join(labels)})")
    return labels[raw]


def load_glue(data_dir: str | Path, task: str, split: str) -> tuple[list[GlueExample], Counter[str]]:
    """GLUE train/dev examples, and the reasons for rows that were skipped (a missing text or label).

    A label outside the task's label set is an error naming the file and the line.
    """
    if task not in _GLUE_LAYOUT:
        raise ValueError(f"unknown GLUE task '{task}' (known: {', '.join(GLUE_TASKS)})")
    files, has_header, col_a, col_b, col_y = _GLUE_LAYOUT[task][split]
    examples: list[GlueExample] = []
    skipped: Counter[str] = Counter()
    header: list[str] | None = None
    for name in files:
        path = Path(data_dir) / "glue" / name
        reader = csv.reader(io.StringIO(_text(path, "utf-8-sig"), newline=""), delimiter="\t",
                            quoting=csv.QUOTE_NONE)
        rows = [(reader.line_num, row) for row in reader]
        if has_header and rows and col_a in rows[0][1]:  # a re-split file (e.g. RTE val.tsv) may lack it
            header, rows = rows[0][1], rows[1:]
        if has_header and header is None:
            raise DataFormatError(f"{path}:1: no header row with column '{col_a}'")
        missing = [c for c in (col_a, col_b, col_y) if isinstance(c, str) and c not in (header or [])]
        if missing:
            raise DataFormatError(f"{path}:1: no column '{missing[0]}' in the header")
        pos = {c: (header.index(c) if isinstance(c, str) and header else c)
               for c in (col_a, col_b, col_y) if c is not None}
        for lineno, row in rows:
            if not any(cell.strip() for cell in row):
                continue  # a blank line
            cell = lambda c: row[pos[c]].strip() if c is not None and pos[c] < len(row) else ""  # noqa: E731
            a, b, raw_y = cell(col_a), cell(col_b), cell(col_y)
            if not a or (col_b is not None and not b):
                skipped["missing text"] += 1
            elif not raw_y:
                skipped["missing label"] += 1
            else:
                try:
                    y = glue_label(task, raw_y)
                except ValueError as err:
                    raise DataFormatError(f"{path}:{lineno}: {err}") from None
                examples.append(GlueExample(a, b or None, y))
    return examples, skipped
