"""SEAT (May et al. 2019) on sentence encodings of a masked or causal LM.

Encoding (bias-bench's choice): the mean over all tokens, special tokens included, of the last hidden
state (:func:`fairgender_utils.lm.embed.mean_pooled`, not normalised). X, Y = targ1, targ2; A, B = attr1,
attr2; s(w, A, B) = mean_a cos(w, a) - mean_b cos(w, b); effect size d over s of X and Y (ddof=1); a
one-sided permutation p-value on sum_{x in X} s(x, A, B) (:func:`stats.permutation_p`); a bootstrap CI
of d resampling X and Y within themselves, and of mean |d| over the tests (same replicate index).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from fairgender_utils.lm.embed import mean_pooled
from fairgender_utils.loaders import SeatTest
from fairgender_utils.lm.heads import body_of
from fairgender_utils.stats import bootstrap_reps, effect_size, percentile_ci, permutation_p


@dataclass(frozen=True)
class SeatResult:
    table: pd.DataFrame  # one row per test: d, CI, p
    items: pd.DataFrame  # one row per target sentence: test, set, index, text, s
    skipped: pd.DataFrame  # test, reason
    summary: dict  # mean |d| with its bootstrap CI


def encode(model, tokenizer, texts: Sequence[str], batch_size: int = 32, max_length: int = 128,
           desc: str | None = None) -> dict[str, np.ndarray]:
    """Mean-pooled last hidden state of each distinct text (the encoder body only; no LM head)."""
    unique = list(dict.fromkeys(texts))
    emb = mean_pooled(body_of(model), tokenizer, unique, batch_size=batch_size, normalize=False,
                      max_length=max_length, desc=desc)
    return {t: emb[i].numpy().astype(np.float64) for i, t in enumerate(unique)}


def s_values(w: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """s(w, A, B) for each row of ``w``: mean cosine to A minus mean cosine to B."""
    unit = lambda m: m / np.linalg.norm(m, axis=1, keepdims=True)  # noqa: E731
    w, a, b = unit(w), unit(a), unit(b)
    return (w @ a.T).mean(1) - (w @ b.T).mean(1)


def evaluate(tests: Sequence[SeatTest], vectors: dict[str, np.ndarray], n_samples: int = 100_000,
             exact_max: int = 100_000, n_boot: int = 1000, seed: int = 0, level: float = 0.95) -> SeatResult:
    """Effect size, permutation p and bootstrap CI per test; unusable tests are skipped with a reason."""
    rows, items, skipped, reps = [], [], [], []
    for t in tests:
        sets = {"targ1": t.targ1, "targ2": t.targ2, "attr1": t.attr1, "attr2": t.attr2}
        empty = [k for k, v in sets.items() if not v]
        if empty:
            skipped.append({"test": t.name, "reason": f"empty set: {', '.join(empty)}"})
            continue
        mat = {k: np.stack([vectors[x] for x in v]) for k, v in sets.items()}
        s_x = s_values(mat["targ1"], mat["attr1"], mat["attr2"])
        s_y = s_values(mat["targ2"], mat["attr1"], mat["attr2"])
        d = effect_size(s_x, s_y)
        if not np.isfinite(d):
            skipped.append({"test": t.name, "reason": "s has zero variance over X and Y"})
            continue
        p, exact, n_parts = permutation_p(np.concatenate([s_x, s_y]), len(s_x), n_samples, exact_max, seed)
        r = bootstrap_reps(lambda i, j: effect_size(s_x[i], s_y[j]), (len(s_x), len(s_y)), n_boot, seed)
        reps.append(np.abs(r))
        lo, hi = percentile_ci(r, level)
        rows.append({"test": t.name, "X": t.categories[0], "Y": t.categories[1], "A": t.categories[2],
                     "B": t.categories[3], "n_x": len(s_x), "n_y": len(s_y), "n_a": len(t.attr1),
                     "n_b": len(t.attr2), "d": d, "abs_d": abs(d), "d_ci_low": lo, "d_ci_high": hi, "p": p,
                     "p_exact": exact, "n_partitions": n_parts})
        for name, texts, s in (("X", t.targ1, s_x), ("Y", t.targ2, s_y)):
            items += [{"test": t.name, "set": name, "index": i, "text": x, "s": float(v)}
                      for i, (x, v) in enumerate(zip(texts, s, strict=True))]
    table = pd.DataFrame(rows)
    summary = {"n_tests": len(rows), "mean_abs_d": float(table["abs_d"].mean()) if rows else float("nan")}
    summary["mean_abs_d_ci_low"], summary["mean_abs_d_ci_high"] = (
        percentile_ci(np.mean(reps, axis=0), level) if reps else (float("nan"), float("nan")))
    return SeatResult(table, pd.DataFrame(items, columns=["test", "set", "index", "text", "s"]),
                      pd.DataFrame(skipped, columns=["test", "reason"]), summary)
