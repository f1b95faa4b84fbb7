"""Neutral text that no debiasing data holds, from GLUE (METHOD.md §5 L_r, §7 LM quality).

- **Held-out questions**: the distinct questions of QNLI dev (``glue/QNLI/dev.tsv``), natural and mostly
  gender-neutral English that neither the causal stage's reference corpus nor the GLUE probes read. They
  are split, seeded by ``split_seed`` alone, into a *dev* part (tuning, the training stage's dev curve)
  and a *test* part (the evaluate stage), so that no other seed moves a question from one part to the other.
- **Reference sentences**: distinct natural sentences of GLUE train sets (at least ``min_words`` words), a
  seeded sample, as the causal stage's reference corpus R; the training stage's KL regulariser reads them.
"""

from __future__ import annotations

import csv
import random
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from fairgender_utils.loaders.glue import load_glue

QNLI_DEV = "glue/QNLI/dev.tsv"


def load_questions(data_dir: str | Path) -> list[str]:
    """The distinct, non-empty questions of QNLI dev, in file order."""
    path = Path(data_dir) / QNLI_DEV
    with path.open(encoding="utf-8", newline="") as f:
        rows = csv.DictReader(f, delimiter="\t", quoting=csv.QUOTE_NONE)
        questions = [(r.get("question") or "").strip() for r in rows]
    return list(dict.fromkeys(q for q in questions if q))


def split_parts(texts: Sequence[str], dev_share: float, split_seed: int) -> dict[str, list[str]]:
    """{'dev': [...], 'test': [...]}: a seeded shuffle, the first ``dev_share`` of it is dev."""
    order = np.random.default_rng(split_seed).permutation(len(texts))
    n_dev = int(round(dev_share * len(texts)))
    return {"dev": [texts[i] for i in order[:n_dev]], "test": [texts[i] for i in order[n_dev:]]}


def heldout_texts(data_dir: str | Path, part: str, n: int, dev_share: float, split_seed: int) -> list[str]:
    """The first ``n`` texts (0 = all) of one part; the part's order is already a seeded shuffle."""
    texts = split_parts(load_questions(data_dir), dev_share, split_seed)[part]
    return texts[:n] if n else texts


def reference_sentences(data_dir: str | Path, tasks: Sequence[str], size: int, min_words: int,
                        seed: int) -> list[str]:
    """Distinct sentences of at least ``min_words`` words from the GLUE train sets ``tasks`` (both texts
    of pair tasks), shuffled with ``seed``; the first ``size``."""
    seen: dict[str, None] = {}
    for task in tasks:
        for ex in load_glue(Path(data_dir), task, "train")[0]:
            for text in (ex.text_a, ex.text_b):
                if text and len(text.split()) >= min_words:
                    seen.setdefault(text, None)
    pool = list(seen)
    random.Random(seed).shuffle(pool)
    return pool[:size]
