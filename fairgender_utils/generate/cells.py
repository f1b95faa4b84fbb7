"""Grid cells of the generate stage and the train / dev / test split of the target words (METHOD.md §3).

Cells (j, t) of the attribute x target grid are sampled without replacement and balanced over
attributes, targets and the side that starts. The split assigns every target word to one of train, dev
and test (seeded, by shares), so that no target word occurs in two splits; a pair takes the split of its
target word.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from math import gcd
from typing import Any, Literal

from fairgender_utils.loaders import GenderWords

SPLITS = ("train", "dev", "test")


@dataclass(frozen=True)
class Cell:
    index: int
    id: str
    attr_index: int
    male_word: str
    female_word: str
    target: str
    start: Literal["m", "f"]

    @property
    def attribute(self) -> str:
        """The attribute word step 1 is given."""
        return self.male_word if self.start == "m" else self.female_word


def sample_cells(words: GenderWords, n: int, seed: int) -> list[Cell]:
    """``n`` distinct grid cells; every prefix is balanced over attributes, targets and starting side.

    Attributes and targets are shuffled (seeded); cell k pairs attribute k mod A with target
    (k + k // lcm(A, T)) mod T, which visits every (attribute, target) once before any repeats. An
    attribute alternates its starting side between its successive visits, half of them start male.
    """
    n_a, n_t = len(words.pairs), len(words.targets)
    if n > n_a * n_t:
        raise ValueError(f"n_cells={n} exceeds the grid ({n_a} attributes x {n_t} targets)")
    rng = random.Random(seed)
    attrs, targs = rng.sample(range(n_a), n_a), rng.sample(range(n_t), n_t)
    period = n_a * n_t // gcd(n_a, n_t)
    cells = []
    for k in range(n):
        a, t = k % n_a, (k % period + k // period) % n_t
        j, target = attrs[a], words.targets[targs[t]]
        start = "m" if (k // n_a + a) % 2 == 0 else "f"
        m, f = (w.replace("_", " ") for w in words.pairs[j])  # list entries write spaces as "_"
        digest = hashlib.sha256(f"{m}|{f}|{target}|{start}".encode()).hexdigest()[:8]
        cells.append(Cell(k, f"p{k:05d}-{digest}", j, m, f, target, start))  # type: ignore[arg-type]
    return cells


def cell_fields(cell: Cell) -> dict[str, Any]:
    d = asdict(cell)
    return {"id": d["id"], "attr_index": d["attr_index"], "male_word": d["male_word"],
            "female_word": d["female_word"], "target": d["target"], "start": d["start"]}


def assign_splits(targets: Sequence[str], shares: Sequence[float], seed: int,
                  together: Sequence[Sequence[str]] = ()) -> dict[str, str]:
    """Target word -> train / dev / test. The words, with each group of ``together`` (related words such
    as *sew* / *sewing*) as one unit, are shuffled (seeded) and filled into the splits in turn until each
    holds its rounded cumulative share of the words."""
    words = sorted(dict.fromkeys(targets))
    unit = {t: (t,) for t in words}
    for group in together:
        unknown = [w for w in group if w not in unit]
        if unknown:
            raise ValueError(f"split_together: {unknown} not among the target words")
        merged = tuple(sorted({w for g in group for w in unit[g]}))
        unit.update({w: merged for w in merged})
    units = sorted(set(unit.values()))
    random.Random(seed).shuffle(units)
    total, acc, cuts = sum(shares), 0.0, []
    for share in shares:
        acc += share
        cuts.append(round(acc / total * len(words)))
    out: dict[str, str] = {}
    for u in units:
        s = next(i for i, cut in enumerate(cuts) if len(out) < cut)
        out.update({w: SPLITS[s] for w in u})
    return out
