"""The gender word lists (METHOD.md §2), curated where they are loaded.

Attribute pairs come from the line-aligned ``context_debias/male.txt`` / ``female.txt``, target words from
``context_debias/stereotype.txt``, the wider swap list from bias-bench plus pronouns. The committed curation
file (``gender_curation.tsv`` beside this module, :data:`CURATION_FILE`) names every dropped attribute pair
and target word by its line, its words and a reason; :func:`load_gender_words` applies it by default, so every
stage that loads the words gets the same curated lists. A curation line whose words no longer stand on that
line of the raw list is an error naming both files: the lists changed, the curation must be checked again.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from fairgender_utils.loaders.formats import DataFormatError, _json, _lines, _text

CURATION_FILE = Path(__file__).with_name("gender_curation.tsv")
CURATION_COLUMNS = ("list", "line", "word", "partner", "reason")


@dataclass(frozen=True)
class Dropped:
    """One curated-out entry: ``list`` is ``pairs`` or ``targets``, ``line`` its 1-based raw line."""

    list: str
    line: int
    word: str
    partner: str
    reason: str


@dataclass(frozen=True)
class GenderWords:
    """Attribute pairs (m_j, f_j), target words T, and the wider swap list for validation and CDA."""

    pairs: tuple[tuple[str, str], ...]  # context-debias male.txt / female.txt, line-aligned, curated
    targets: tuple[str, ...]  # context-debias stereotype.txt, curated
    swap_pairs: tuple[tuple[str, str], ...]  # pronouns + bias-bench gender pairs + the attribute pairs
    pair_lines: tuple[int, ...] = ()  # raw line (1-based) of each pair
    target_lines: tuple[int, ...] = ()  # raw line (1-based) of each target
    dropped: tuple[Dropped, ...] = ()  # what the curation removed


PRONOUN_PAIRS: tuple[tuple[str, str], ...] = (
    ("he", "she"), ("him", "her"), ("his", "her"), ("his", "hers"), ("himself", "herself"),
    ("man", "woman"), ("men", "women"), ("boy", "girl"), ("boys", "girls"), ("mr", "mrs"),
    ("mr.", "mrs."), ("sir", "madam"), ("gentleman", "lady"), ("gentlemen", "ladies"),
)


def load_curation(path: str | Path) -> tuple[Dropped, ...]:
    """The curation file: ``#`` comment lines, a header, then one tab-separated row per dropped entry."""
    path = Path(path)
    rows, header = [], None
    for lineno, line in enumerate(_text(path).splitlines(), 1):
        if not line.strip() or line.startswith("#"):
            continue
        cols = line.split("\t")
        if header is None:
            if tuple(cols) != CURATION_COLUMNS:
                raise DataFormatError(f"{path}:{lineno}: header {cols}, expected {list(CURATION_COLUMNS)}")
            header = cols
            continue
        if len(cols) != len(CURATION_COLUMNS) or cols[0] not in ("pairs", "targets") or not cols[1].isdigit():
            raise DataFormatError(f"{path}:{lineno}: expected list (pairs | targets), line number, word, "
                                  f"partner, reason separated by tabs, got {line!r}")
        if not cols[4].strip():
            raise DataFormatError(f"{path}:{lineno}: no reason given for {cols[2]!r}")
        rows.append(Dropped(cols[0], int(cols[1]), cols[2], cols[3], cols[4]))
    keys = [(d.list, d.line) for d in rows]
    if len(set(keys)) != len(keys):
        raise DataFormatError(f"{path}: a line is curated twice")
    return tuple(rows)


def _check(drop: Dropped, raw: tuple[str, str], path: Path, base: Path) -> None:
    name = "male.txt / female.txt" if drop.list == "pairs" else "stereotype.txt"
    if raw != (drop.word, drop.partner):
        found = " / ".join(w for w in raw if w) or "nothing"
        raise DataFormatError(f"{path}: {drop.list} line {drop.line} names {drop.word!r}"
                              f"{' / ' + repr(drop.partner) if drop.partner else ''}, but line {drop.line} of "
                              f"{base}/{name} holds {found}: the word lists changed, check the curation")


def load_gender_words(data_dir: str | Path, curation: str | Path | None = CURATION_FILE) -> GenderWords:
    """Load the attribute pairs, the target words and the swap list; drop what ``curation`` names
    (``None`` or ``""``: the raw lists). Dropped pairs are left out of the swap list too."""
    base = Path(data_dir) / "gender_word_lists"
    male = _lines(base / "context_debias" / "male.txt")
    female = _lines(base / "context_debias" / "female.txt")
    if len(male) != len(female):
        raise ValueError(f"{base}/context_debias: male.txt has {len(male)} words, female.txt {len(female)}")
    targets_raw = _lines(base / "context_debias" / "stereotype.txt")
    for name, words in (("male.txt", male), ("stereotype.txt", targets_raw)):
        if not words:
            raise DataFormatError(f"{base}/context_debias/{name}: no words")
    dropped = load_curation(curation) if curation else ()
    for d in dropped:
        raw = ((male[d.line - 1], female[d.line - 1]) if d.list == "pairs" and d.line <= len(male) else
               (targets_raw[d.line - 1], "") if d.list == "targets" and d.line <= len(targets_raw) else ("", ""))
        _check(d, raw, Path(curation), base)  # type: ignore[arg-type]
    gone = {(d.list, d.line) for d in dropped}
    pair_lines = tuple(i for i in range(1, len(male) + 1) if ("pairs", i) not in gone)
    target_lines = tuple(i for i in range(1, len(targets_raw) + 1) if ("targets", i) not in gone)
    pairs = tuple((male[i - 1], female[i - 1]) for i in pair_lines)
    bb_path = base / "bias_bench" / "bias_attribute_words.json"
    bb = _json(bb_path)
    if not isinstance(bb, dict) or not isinstance(bb.get("gender"), list):
        raise DataFormatError(f"{bb_path}: no list under the key 'gender'")
    bb = bb["gender"]
    for i, pair in enumerate(bb):
        if not (isinstance(pair, list) and len(pair) == 2 and all(isinstance(w, str) and w for w in pair)):
            raise DataFormatError(f"{bb_path}: gender[{i}] is {json.dumps(pair)[:60]}, not a pair of words")
    swap = list(dict.fromkeys([*PRONOUN_PAIRS, *((a.lower(), b.lower()) for a, b in bb), *pairs]))
    return GenderWords(pairs=pairs, targets=tuple(targets_raw[i - 1] for i in target_lines),
                       swap_pairs=tuple(swap), pair_lines=pair_lines, target_lines=target_lines,
                       dropped=dropped)
