"""Statistics for the bias metrics: confidence intervals, permutation and paired tests, Holm correction.

- Wilson intervals for shares (CrowS-Pairs score, StereoSet SS as a share of items), statsmodels.
- Percentile bootstrap over items (SEAT effect size, ICAT), stratified where the statistic needs it.
- SEAT's one-sided permutation p-value on sum_{x in X} s(x, A, B): exact over all equal-size
  partitions of X u Y when there are at most ``exact_max`` of them, else ``n_samples`` random
  partitions (seeded; p = (1 + #{T_i >= T}) / (1 + n_samples), which never returns 0).
- McNemar's exact test and SEAT's paired permutation test, the building blocks of the report's paired
  tests (:mod:`fairgender_utils.report.paired`); Holm correction (statsmodels ``multipletests``).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Sequence

import numpy as np
import pandas as pd
from statsmodels.stats.contingency_tables import mcnemar
from statsmodels.stats.multitest import multipletests
from statsmodels.stats.proportion import proportion_confint


def wilson(k: int, n: int, level: float = 0.95) -> tuple[float, float]:
    """Wilson interval for the share k/n, as fractions; (nan, nan) when n is 0. The interval holds k/n
    (rounding in 1 - level can put a bound 1e-16 on the wrong side of 0 or 1 otherwise)."""
    if n == 0:
        return float("nan"), float("nan")
    lo, hi = proportion_confint(k, n, alpha=1 - level, method="wilson")
    return min(float(lo), k / n), max(float(hi), k / n)


def bootstrap_reps(stat: Callable[..., float], sizes: Sequence[int], n_boot: int = 1000,
                   seed: int = 0) -> np.ndarray:
    """Bootstrap replicates of ``stat(*index_arrays)``: one resampled index array per stratum size.

    ``stat`` may return a scalar or a tuple (then one column per component).
    """
    rng = np.random.default_rng(seed)
    return np.array([stat(*(rng.integers(0, n, n) for n in sizes)) for _ in range(n_boot)], dtype=float)


def percentile_ci(reps: np.ndarray, level: float = 0.95) -> tuple[float, float]:
    """Percentile interval of bootstrap replicates (non-finite replicates ignored)."""
    reps = np.asarray(reps, dtype=float)
    reps = reps[np.isfinite(reps)]
    if not len(reps):
        return float("nan"), float("nan")
    a = (1 - level) / 2
    return float(np.quantile(reps, a)), float(np.quantile(reps, 1 - a))


def bootstrap_ci(stat: Callable[..., float], sizes: Sequence[int], n_boot: int = 1000, seed: int = 0,
                 level: float = 0.95) -> tuple[float, float]:
    """Percentile bootstrap CI of ``stat`` over items resampled within each stratum."""
    return percentile_ci(bootstrap_reps(stat, sizes, n_boot, seed), level)


def effect_size(s_x: np.ndarray, s_y: np.ndarray) -> float:
    """SEAT/WEAT effect size: (mean s_X - mean s_Y) / std of s over X u Y (ddof=1)."""
    sd = float(np.std(np.concatenate([s_x, s_y]), ddof=1))
    return float((np.mean(s_x) - np.mean(s_y)) / sd) if sd > 0 else float("nan")


def permutation_p(s: np.ndarray, n_x: int, n_samples: int = 100_000, exact_max: int = 100_000,
                  seed: int = 0, chunk: int = 10_000) -> tuple[float, bool, int]:
    """One-sided p of T = sum(s[:n_x]) over equal-size partitions; returns (p, exact, partitions used)."""
    s = np.asarray(s, dtype=np.float64)
    n = len(s)
    t_obs = s[:n_x].sum()
    tol = 1e-12 * max(1.0, abs(t_obs))
    total = math.comb(n, n_x)
    if total <= exact_max:
        hits = 0
        combos = itertools.combinations(range(n), n_x)
        while block := list(itertools.islice(combos, chunk)):
            hits += int((s[np.array(block)].sum(1) >= t_obs - tol).sum())
        return hits / total, True, total
    rng = np.random.default_rng(seed)
    hits, done = 0, 0
    while done < n_samples:
        m = min(chunk, n_samples - done)
        idx = np.argpartition(rng.random((m, n)), n_x - 1, axis=1)[:, :n_x]  # a uniform random subset
        hits += int((s[idx].sum(1) >= t_obs - tol).sum())
        done += m
    return (1 + hits) / (1 + n_samples), False, n_samples


def mcnemar_test(base: np.ndarray, variant: np.ndarray) -> dict[str, float]:
    """Exact McNemar test of paired binary outcomes (1 = prefers the stereotypical sentence)."""
    base, variant = np.asarray(base, dtype=bool), np.asarray(variant, dtype=bool)
    table = [[int((base & variant).sum()), int((base & ~variant).sum())],
             [int((~base & variant).sum()), int((~base & ~variant).sum())]]
    res = mcnemar(table, exact=True)
    return {"n": int(len(base)), "base": 100.0 * base.mean() if len(base) else float("nan"),
            "variant": 100.0 * variant.mean() if len(base) else float("nan"),
            "n_base_only": table[0][1], "n_variant_only": table[1][0],
            "statistic": float(res.statistic), "p": float(res.pvalue)}


def seat_paired_permutation(base: pd.DataFrame, variant: pd.DataFrame, n_perm: int = 10_000,
                            seed: int = 0) -> dict[str, float]:
    """Two-sided paired permutation test of |d_variant| - |d_base| for one SEAT test.

    ``base``/``variant``: per-sentence rows (set 'X' or 'Y', s) in the same order. Under H0 the two
    models' s values of each target sentence are exchangeable; each permutation swaps them at random.
    """
    is_x = (base["set"] == "X").to_numpy()
    sb, sv = base["s"].to_numpy(float), variant["s"].to_numpy(float)

    def abs_d(m: np.ndarray) -> np.ndarray:  # |effect size| of each row of s values
        return np.abs((m[:, is_x].mean(1) - m[:, ~is_x].mean(1)) / m.std(1, ddof=1))

    d_b, d_v = abs_d(sb[None])[0], abs_d(sv[None])[0]
    rng = np.random.default_rng(seed)
    swap = rng.random((n_perm, len(sb))) < 0.5
    perm = abs_d(np.where(swap, sb, sv)) - abs_d(np.where(swap, sv, sb))
    obs = d_v - d_b
    p = (1 + int((np.abs(perm) >= abs(obs) - 1e-12).sum())) / (1 + n_perm)
    return {"n": int(len(sb)), "base": float(d_b), "variant": float(d_v), "statistic": float(obs),
            "p": float(p)}


def holm(pvalues: Sequence[float], alpha: float = 0.05) -> tuple[np.ndarray, np.ndarray]:
    """Holm step-down correction: (reject, adjusted p)."""
    if not len(pvalues):
        return np.array([], dtype=bool), np.array([], dtype=float)
    reject, adjusted, _, _ = multipletests(list(pvalues), alpha=alpha, method="holm")
    return reject, adjusted
