"""Paired tests of an evaluated model against the base model over the same items, each testing the
statistic the report shows (:func:`compare_to_base` reads the evaluate stage's ``items/*.csv``; a model
trained with several seeds enters with each item's outcome averaged over its seeds, METHOD.md §9):

- CrowS-Pairs score: exact McNemar (statsmodels) on the pair outcomes; on seed-averaged outcomes (not 0/1)
  its permutation form, the two models' outcomes swapped pair by pair (on 0/1 outcomes this has
  McNemar's null distribution: only discordant pairs change the score);
- StereoSet SS (per term): a paired permutation test (the two models' outcomes swapped item by item) of
  |SS_v - 50| - |SS_b - 50|; LMS and ICAT: a paired bootstrap over items resampled within target terms;
- SEAT: paired permutation tests of |d| per test and of mean |d| over the tests;
- held-out perplexity: a paired bootstrap over sentences of log(ppl_v / ppl_b).

Every row says which way the variant moved: ``better`` = toward the metric's ideal (SS and CrowS 50,
SEAT |d| 0, LMS and ICAT up, perplexity down). The report applies Holm across every row of every variant.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from fairgender_utils.stats import holm, mcnemar_test, seat_paired_permutation


def two_sided_p(reps: np.ndarray) -> float:
    """Bootstrap p of H0: statistic = 0, from replicates of the statistic (2 x the smaller tail, +1 rule)."""
    reps = np.asarray(reps, float)
    tail = min(int((reps <= 0).sum()), int((reps >= 0).sum()))
    return min(1.0, 2 * (1 + tail) / (1 + len(reps)))


def _term_means(outcomes: np.ndarray, codes: np.ndarray) -> np.ndarray:
    """Mean over terms of the per-term means of each row of ``outcomes`` (rows x items)."""
    onehot = np.zeros((len(codes), codes.max() + 1))
    onehot[np.arange(len(codes)), codes] = 1.0
    return (outcomes @ onehot / onehot.sum(0)).mean(1)


def _icat(ss: np.ndarray, lms: np.ndarray) -> np.ndarray:
    return lms * np.minimum(ss, 100 - ss) / 50


def stereoset_paired(m: pd.DataFrame, n_perm: int = 10_000, n_boot: int = 2000, seed: int = 0,
                     chunk: int = 500) -> list[dict]:
    """Paired tests of per-term SS (permutation), LMS and ICAT (bootstrap within terms), variant vs base.

    ``m``: one row per shared item with target, stereo_b, stereo_v, related_b, related_v.
    """
    codes = pd.factorize(m["target"])[0]
    sb, sv = m["stereo_b"].to_numpy(float), m["stereo_v"].to_numpy(float)
    rb, rv = m["related_b"].to_numpy(float) / 2, m["related_v"].to_numpy(float) / 2
    ss_b, ss_v = 100 * _term_means(sb[None], codes)[0], 100 * _term_means(sv[None], codes)[0]
    lms_b, lms_v = 100 * _term_means(rb[None], codes)[0], 100 * _term_means(rv[None], codes)[0]
    obs = abs(ss_v - 50) - abs(ss_b - 50)
    rng = np.random.default_rng(seed)
    hits = 0
    for done in range(0, n_perm, chunk):
        swap = rng.random((min(chunk, n_perm - done), len(sb))) < 0.5
        perm = (np.abs(100 * _term_means(np.where(swap, sv, sb), codes) - 50)
                - np.abs(100 * _term_means(np.where(swap, sb, sv), codes) - 50))
        hits += int((np.abs(perm) >= abs(obs) - 1e-9).sum())
    order = np.argsort(codes, kind="stable")
    size = np.bincount(codes)
    start = np.r_[0, np.cumsum(size)[:-1]][codes[order]]
    d_lms, d_icat = [], []
    for done in range(0, n_boot, chunk):
        u = rng.random((min(chunk, n_boot - done), len(sb)))
        idx = order[start + (u * size[codes[order]]).astype(int)]  # each item resampled within its term
        c = codes[order]
        ssb, ssv = 100 * _term_means(sb[idx], c), 100 * _term_means(sv[idx], c)
        lb, lv = 100 * _term_means(rb[idx], c), 100 * _term_means(rv[idx], c)
        d_lms.append(lv - lb)
        d_icat.append(_icat(ssv, lv) - _icat(ssb, lb))
    d_lms, d_icat = np.concatenate(d_lms), np.concatenate(d_icat)
    icat_b, icat_v = float(_icat(ss_b, lms_b)), float(_icat(ss_v, lms_v))
    n = len(m)
    return [
        {"metric": "SS", "test": "paired permutation |SS-50|", "n": n, "base": ss_b, "variant": ss_v,
         "statistic": obs, "p": (1 + hits) / (1 + n_perm), "direction": _direction(-obs)},
        {"metric": "LMS", "test": "paired bootstrap within terms", "n": n, "base": lms_b, "variant": lms_v,
         "statistic": lms_v - lms_b, "p": two_sided_p(d_lms), "direction": _direction(lms_v - lms_b)},
        {"metric": "ICAT", "test": "paired bootstrap within terms", "n": n, "base": icat_b, "variant": icat_v,
         "statistic": icat_v - icat_b, "p": two_sided_p(d_icat), "direction": _direction(icat_v - icat_b)},
    ]


def seat_mean_abs_d_permutation(m: pd.DataFrame, n_perm: int = 10_000, seed: int = 0) -> dict:
    """Paired permutation test of mean |d| over the SEAT tests (s values swapped sentence by sentence).

    ``m``: rows (test, set, s_b, s_v), one per target sentence shared by the two models.
    """
    rng = np.random.default_rng(seed)
    obs_b, obs_v, perm = [], [], np.zeros(n_perm)
    for _, part in m.groupby("test", sort=True):
        is_x = (part["set"] == "X").to_numpy()
        sb, sv = part["s_b"].to_numpy(float), part["s_v"].to_numpy(float)

        def abs_d(x: np.ndarray, is_x=is_x) -> np.ndarray:
            return np.abs((x[:, is_x].mean(1) - x[:, ~is_x].mean(1)) / x.std(1, ddof=1))

        obs_b.append(abs_d(sb[None])[0])
        obs_v.append(abs_d(sv[None])[0])
        swap = rng.random((n_perm, len(sb))) < 0.5
        perm += (abs_d(np.where(swap, sv, sb)) - abs_d(np.where(swap, sb, sv))) / m["test"].nunique()
    base, variant = float(np.mean(obs_b)), float(np.mean(obs_v))
    obs = variant - base
    return {"metric": "mean |d|", "test": "paired permutation mean |d|", "n": len(m), "base": base,
            "variant": variant, "statistic": obs,
            "p": (1 + int((np.abs(perm) >= abs(obs) - 1e-12).sum())) / (1 + n_perm), "direction": _direction(-obs)}


def perplexity_paired(m: pd.DataFrame, n_boot: int = 2000, seed: int = 0) -> dict:
    """Paired bootstrap over sentences of log(ppl_v) - log(ppl_b); ``m``: nll_b, nll_v, n_tokens_b/_v."""
    nb, nv = m["nll_b"].to_numpy(float), m["nll_v"].to_numpy(float)
    tb, tv = m["n_tokens_b"].to_numpy(float), m["n_tokens_v"].to_numpy(float)
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, len(m), (n_boot, len(m)))
    reps = nv[idx].sum(1) / tv[idx].sum(1) - nb[idx].sum(1) / tb[idx].sum(1)
    obs = nv.sum() / tv.sum() - nb.sum() / tb.sum()
    return {"metric": "perplexity", "test": "paired bootstrap log ppl", "n": len(m),
            "base": float(np.exp(nb.sum() / tb.sum())), "variant": float(np.exp(nv.sum() / tv.sum())),
            "statistic": float(obs), "p": two_sided_p(reps), "direction": _direction(-obs)}


def crows_paired(b: np.ndarray, v: np.ndarray, n_perm: int = 10_000, seed: int = 0, chunk: int = 1000) -> dict:
    """Paired test of the CrowS-Pairs score (100 x mean outcome), base ``b`` vs variant ``v`` per pair: exact
    McNemar on 0/1 outcomes, else a paired permutation test of the mean difference (outcomes swapped)."""
    b, v = np.asarray(b, float), np.asarray(v, float)
    if np.isin(b, (0, 1)).all() and np.isin(v, (0, 1)).all():
        return {"test": "mcnemar", **mcnemar_test(b, v)}
    d, obs = v - b, float(np.mean(v - b))
    rng, hits = np.random.default_rng(seed), 0
    for done in range(0, n_perm, chunk):
        signs = np.where(rng.random((min(chunk, n_perm - done), len(d))) < 0.5, -1.0, 1.0)
        hits += int((np.abs((signs * d).mean(axis=1)) >= abs(obs) - 1e-12).sum())
    return {"test": "paired permutation (seed means)", "n": len(d), "base": 100 * b.mean(),
            "variant": 100 * v.mean(), "n_base_only": np.nan, "n_variant_only": np.nan, "statistic": 100 * obs,
            "p": (1 + hits) / (1 + n_perm)}


def _direction(toward_ideal: float) -> str:
    """'better' when the change moved the metric toward its ideal, 'worse' away, 'same' when unchanged."""
    return "better" if toward_ideal > 0 else "worse" if toward_ideal < 0 else "same"


def _subsets(m: pd.DataFrame, column: str) -> list[tuple[str, pd.DataFrame]]:
    """('gender', gender rows) and, when other bias types were scored, ('all', every row)."""
    out = [("gender", m[m[column] == "gender"])]
    return out + [("all", m)] if (m[column] != "gender").any() else out


# Per items file: the key of an item and the outcome columns averaged over a model's seeds.
SEED_MEAN = {"crows_pairs": (["item_id"], ["stereo"]), "stereoset": (["item_id"], ["stereo", "related"]),
             "seat": (["test", "set", "index"], ["s"]), "perplexity": (["item_id", "text"], ["nll", "n_tokens"])}


def seed_mean(frames: list[pd.DataFrame], name: str) -> pd.DataFrame:
    """One model's items file from its runs: per item, the mean over runs of the outcome columns
    (:data:`SEED_MEAN`), over the items every run scored; one run is returned as it is."""
    if len(frames) == 1:
        return frames[0]
    key, cols = SEED_MEAN[name]
    keep = [*key, *cols, *[c for c in ("bias_type", "target") if c in frames[0].columns]]
    g = pd.concat([f[keep] for f in frames]).groupby(key, sort=False)
    means = g[cols].mean()[g.size() == len(frames)]
    first = frames[0][keep].drop(columns=cols).set_index(key)
    return first.join(means, how="inner").reset_index()[keep]


def _pair_files(base_dir: Path, var_dirs: list[Path], name: str) -> tuple[pd.DataFrame, pd.DataFrame] | None:
    if (base_dir / f"{name}.csv").exists() and all((d / f"{name}.csv").exists() for d in var_dirs):
        runs = [pd.read_csv(d / f"{name}.csv") for d in var_dirs]
        return pd.read_csv(base_dir / f"{name}.csv"), seed_mean(runs, name)
    return None


def compare_to_base(base_items_dir: str | Path, variant_items_dir: str | Path | list[str | Path],
                    alpha: float = 0.05, n_perm: int = 10_000, seed: int = 0, n_boot: int = 2000) -> pd.DataFrame:
    """Paired tests of a variant against the base over shared items, Holm-corrected across all rows.

    Reads ``crows_pairs.csv``, ``stereoset.csv``, ``seat.csv`` and ``perplexity.csv`` from both sides
    (those present on both). ``variant_items_dir``: one folder, or one per seed of the variant (outcomes
    averaged per item over the seeds, :func:`seed_mean`). Subsets: gender, and all when more than gender
    was scored. Items missing from either side are left out and counted (``n_unpaired``).
    """
    base_dir = Path(base_items_dir)
    dirs = variant_items_dir if isinstance(variant_items_dir, list) else [variant_items_dir]
    var_dir = [Path(d) for d in dirs]
    rows: list[dict] = []
    if files := _pair_files(base_dir, var_dir, "crows_pairs"):
        b, v = files
        m = b.merge(v, on="item_id", suffixes=("_b", "_v"))
        for subset, part in _subsets(m, "bias_type_b"):
            res = crows_paired(part["stereo_b"].to_numpy(), part["stereo_v"].to_numpy(), n_perm, seed)
            rows.append({"comparison": f"crows_pairs/{subset}", "metric": "score", **res,
                         "direction": _direction(abs(res["base"] - 50) - abs(res["variant"] - 50)),
                         "n_unpaired": len(b) + len(v) - 2 * len(m)})
    if files := _pair_files(base_dir, var_dir, "stereoset"):
        b, v = files
        m = b.merge(v.drop(columns=["target", "bias_type"]), on="item_id", suffixes=("_b", "_v"))
        for subset, part in _subsets(m, "bias_type"):
            for res in stereoset_paired(part, n_perm, n_boot, seed):
                rows.append({"comparison": f"stereoset/{subset}/{res['metric']}", **res,
                             "n_unpaired": len(b) + len(v) - 2 * len(m)})
    if files := _pair_files(base_dir, var_dir, "seat"):
        b, v = files
        key = ["test", "set", "index"]
        m = b.merge(v, on=key, suffixes=("_b", "_v")).sort_values(key)
        rows.append({"comparison": "seat/mean |d|", **seat_mean_abs_d_permutation(m, n_perm, seed),
                     "n_unpaired": len(b) + len(v) - 2 * len(m)})
        for test, part in m.groupby("test", sort=True):
            res = seat_paired_permutation(part[["set"]].assign(s=part["s_b"]),
                                          part[["set"]].assign(s=part["s_v"]), n_perm=n_perm, seed=seed)
            n_all = int((b["test"] == test).sum() + (v["test"] == test).sum())
            rows.append({"comparison": f"seat/{test}", "metric": "|d|", "test": "paired permutation |d|", **res,
                         "direction": _direction(res["base"] - res["variant"]), "n_unpaired": n_all - 2 * len(part)})
    if files := _pair_files(base_dir, var_dir, "perplexity"):
        b, v = files
        m = b.merge(v, on=["item_id", "text"], suffixes=("_b", "_v"))
        rows.append({"comparison": "perplexity", **perplexity_paired(m, n_boot, seed),
                     "n_unpaired": len(b) + len(v) - 2 * len(m)})
    out = pd.DataFrame(rows)
    if len(out):
        reject, adjusted = holm(out["p"].to_numpy(), alpha)
        out["p_holm"], out["reject_holm"] = adjusted, reject
    return out
