"""The primary endpoint (METHOD.md §9): mean J and mean |δ| over the test pairs, model against model.

Per pair, a model's value is the mean over its seeds (J, and |δ| taken per run before averaging); two models
are compared over the pairs every run of both scored. Each comparison reports the % change of the mean
with a 95% paired-bootstrap CI, a paired test (Wilcoxon signed-rank or the paired bootstrap,
``primary_test``), Holm's correction over the whole family, and the sd over seeds of each run's mean.
Lower is better for both endpoints.

The unit of the test and of the CI (``primary_unit``): ``target``, the target word (the test pairs come from
a few dozen target words and pairs of one word are not independent; the split is by target word): Wilcoxon
on the per-target means of the per-pair differences, a cluster bootstrap that resamples target words and
takes all their pairs (the % change is of the pair means within each resample); or ``pair``, each pair on its
own (the same tests over single pairs).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy.stats import wilcoxon

from fairgender_utils.report.paired import two_sided_p
from fairgender_utils.stats import holm, percentile_ci

ENDPOINTS = {"mean J": "J", "mean |δ|": "abs_delta"}


def seed_matrix(long: pd.DataFrame, variant: str, column: str) -> pd.DataFrame:
    """Pairs x runs of ``column`` for one variant (NaN where a run did not score a pair)."""
    part = long[long["variant"] == variant]
    if not len(part):
        raise KeyError(f"no evaluated run of variant '{variant}'")
    return part.pivot(index="id", columns="run", values=column)


def wilcoxon_p(d: np.ndarray) -> tuple[float, float]:
    """(statistic, two-sided p) of Wilcoxon's signed-rank test of the paired differences ``d`` (scipy; zero
    differences dropped, exact for small samples without ties); (0, 1) when every difference is zero."""
    d = np.asarray(d, float)
    if not np.any(d != 0):
        return 0.0, 1.0
    res = wilcoxon(d)
    return float(res.statistic), float(res.pvalue)


def unit_codes(ids: pd.Index, targets: pd.Series, unit: str) -> np.ndarray:
    """Code of each pair's unit: its target word (``targets``: id -> target) or the pair itself."""
    if unit == "target":
        words = targets.loc[ids]
        if words.isna().any():
            raise ValueError(f"pair id {words.index[words.isna()][0]!r} has no target word (primary.csv); "
                             f"primary_unit: target needs one for every pair")
        return pd.factorize(words)[0]
    if unit == "pair":
        return np.arange(len(ids))
    raise ValueError(f"primary_unit: '{unit}' is neither 'target' nor 'pair'")


def resampled_means(codes: np.ndarray, values: list[np.ndarray], n_boot: int, seed: int) -> list[np.ndarray]:
    """Bootstrap replicates of the mean over pairs of each array in ``values``, the units (``codes``)
    resampled with replacement and each drawn unit bringing all its pairs (one pair per unit: the ordinary
    bootstrap over pairs); every array is resampled with the same draws."""
    k = int(codes.max()) + 1
    draws = np.random.default_rng(seed).integers(0, k, (n_boot, k))
    times = np.bincount((draws + k * np.arange(n_boot)[:, None]).ravel(), minlength=k * n_boot).reshape(n_boot, k)
    size = times @ np.bincount(codes, minlength=k)
    return [times @ np.bincount(codes, weights=v, minlength=k) / size for v in values]


def compare(a: pd.DataFrame, b: pd.DataFrame, targets: pd.Series, test: str, unit: str, n_boot: int,
            seed: int) -> dict:
    """Model A against model B on one endpoint; ``a``, ``b``: pairs x runs (:func:`seed_matrix`);
    ``targets``: each pair id's target word; ``unit``: ``target`` or ``pair`` (module docstring)."""
    every = a.index.union(b.index)
    a, b = a.dropna(), b.dropna()
    ids = a.index.intersection(b.index)
    if not len(ids):
        raise ValueError("no test pair scored by every run of both models")
    codes = unit_codes(ids, targets, unit)
    xa, xb = a.loc[ids], b.loc[ids]
    pa, pb = xa.mean(axis=1).to_numpy(), xb.mean(axis=1).to_numpy()
    mean_a, mean_b = float(pa.mean()), float(pb.mean())
    ma, mb = resampled_means(codes, [pa, pb], n_boot, seed)
    with np.errstate(divide="ignore", invalid="ignore"):
        lo, hi = percentile_ci(100 * (ma / mb - 1))
        change = 100 * (mean_a / mean_b - 1) if mean_b else float("nan")
    if test == "wilcoxon":
        stat, p = wilcoxon_p(pd.Series(pa - pb).groupby(codes).mean().to_numpy())  # per-unit mean differences
    elif test == "bootstrap":
        stat, p = mean_a - mean_b, two_sided_p(ma - mb)
    else:
        raise ValueError(f"primary_test: '{test}' is neither 'wilcoxon' nor 'bootstrap'")
    sd = lambda x: float(x.mean(axis=0).std(ddof=1)) if x.shape[1] > 1 else float("nan")  # noqa: E731
    return {"n_pairs": len(ids), "n_targets": targets.loc[ids].nunique(), "n_unpaired": len(every) - len(ids),
            "seeds_a": xa.shape[1], "seeds_b": xb.shape[1], "mean_a": mean_a, "mean_b": mean_b, "sd_seeds_a": sd(xa),
            "sd_seeds_b": sd(xb), "change_pct": change, "ci_low": lo, "ci_high": hi, "test": test, "unit": unit,
            "n_units": int(codes.max()) + 1, "statistic": stat, "p": p,
            "direction": "better" if mean_a < mean_b else "worse" if mean_a > mean_b else "same"}


def comparisons(variants: list[str], base: str, method: str, rivals: list[str]) -> list[tuple[str, str]]:
    """The family: every model against the base model, then the method against each rival present."""
    pairs = [(v, base) for v in variants if v != base]
    return pairs + [(method, r) for r in rivals if method in variants and r in variants and r != method]


def pair_targets(long: pd.DataFrame) -> pd.Series:
    """The target word of each pair id (:func:`fairgender_utils.report.inputs.load_primary` checked that
    every run gives a pair the same one)."""
    return long.drop_duplicates("id").set_index("id")["target"]


def primary_table(long: pd.DataFrame, variants: list[str], base: str, method: str, rivals: list[str],
                  test: str, unit: str, n_boot: int, seed: int, alpha: float) -> pd.DataFrame:
    """One row per comparison and endpoint, Holm-corrected over all of them (``p_holm``, ``significant``)."""
    rows, targets = [], pair_targets(long)
    for endpoint, column in ENDPOINTS.items():
        for a, b in comparisons(variants, base, method, rivals):
            try:
                res = compare(seed_matrix(long, a, column), seed_matrix(long, b, column), targets, test, unit,
                              n_boot, seed)
            except ValueError as err:
                raise ValueError(f"primary endpoint, {a} vs {b}: {err}") from None
            rows.append({"endpoint": endpoint, "a": a, "b": b, **res})
    cols = ["endpoint", "a", "b", "n_pairs", "n_targets", "n_unpaired", "seeds_a", "seeds_b", "mean_a", "mean_b",
            "sd_seeds_a", "sd_seeds_b", "change_pct", "ci_low", "ci_high", "test", "unit", "n_units", "statistic",
            "p", "direction"]
    out = pd.DataFrame(rows, columns=cols)
    reject, adjusted = holm(out["p"].to_numpy(), alpha)
    return out.assign(p_holm=adjusted, significant=reject)


def by_model(long: pd.DataFrame, variants: list[str], unit: str, n_boot: int, seed: int) -> pd.DataFrame:
    """Per model and endpoint: seeds, pairs, target words, the mean of the seed-averaged per-pair values with a
    bootstrap 95% CI (``unit`` resampled, as in :func:`compare`), and the sd over seeds of each run's mean."""
    rows, targets = [], pair_targets(long)
    for endpoint, column in ENDPOINTS.items():
        for v in variants:
            x = seed_matrix(long, v, column).dropna()
            if not len(x):
                raise ValueError(f"primary endpoint: no test pair scored by every run of '{v}'")
            per_pair = x.mean(axis=1).to_numpy()
            lo, hi = percentile_ci(resampled_means(unit_codes(x.index, targets, unit), [per_pair], n_boot, seed)[0])
            rows.append({"endpoint": endpoint, "variant": v, "seeds": x.shape[1], "n_pairs": len(x),
                         "n_targets": targets.loc[x.index].nunique(), "mean": float(per_pair.mean()), "ci_low": lo,
                         "ci_high": hi, "unit": unit,
                         "sd_seeds": float(x.mean(axis=0).std(ddof=1)) if x.shape[1] > 1 else float("nan")})
    return pd.DataFrame(rows)


def unit_name(unit: str, n_units: int) -> str:
    """How the table and the statement name the unit of a comparison's test and CI: "3 target words"."""
    word = {"target": "target word", "pair": "pair"}[unit]
    return f"{n_units} {word}{'' if n_units == 1 else 's'}"


def _pm(mean: float, sd: float, digits: int) -> str:
    return f"{mean:.{digits}f}" + ("" if np.isnan(sd) else f" ± {sd:.{digits}f}")


def display(table: pd.DataFrame, digits: int = 4) -> pd.DataFrame:
    """The comparisons as a reader sees them: pairs, target words, the unit the test and the CI resample,
    means ± seed sd, % change [95% CI], p, Holm p, verdict."""
    verdict = {"better": "lower", "worse": "higher", "same": "equal"}
    return pd.DataFrame({
        "endpoint": table["endpoint"], "comparison": table["a"] + " vs " + table["b"],
        "pairs": table["n_pairs"], "target words": table["n_targets"],
        "unit (test, CI)": [unit_name(u, n) for u, n in table[["unit", "n_units"]].itertuples(False)],
        "seeds": table["seeds_a"].astype(str) + " / " + table["seeds_b"].astype(str),
        "A (± seed sd)": [_pm(m, s, digits) for m, s in table[["mean_a", "sd_seeds_a"]].itertuples(False)],
        "B (± seed sd)": [_pm(m, s, digits) for m, s in table[["mean_b", "sd_seeds_b"]].itertuples(False)],
        "change % [95% CI]": [f"{c:+.1f} [{lo:+.1f}, {hi:+.1f}]"
                              for c, lo, hi in table[["change_pct", "ci_low", "ci_high"]].itertuples(False)],
        "p": table["p"].map(lambda p: f"{p:.3g}"), "p (Holm)": table["p_holm"].map(lambda p: f"{p:.3g}"),
        "result": [f"A {verdict[d]}" + (" (significant)" if s else " (not significant)")
                   for d, s in table[["direction", "significant"]].itertuples(False)],
    })
