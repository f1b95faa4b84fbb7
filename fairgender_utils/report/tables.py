"""Stage 05 report: the benchmark tables of this run, runs grouped by variant, significance against the base.

Reads what the evaluate stage wrote for every run (``tables/summary.csv``, ``tables/seat.csv``,
``items/*.csv``; runs named ``<variant>-s<seed>``, :mod:`fairgender_utils.report.inputs`). A variant's
number is the mean over its seeds ± their sd, with the mean of its runs' 95% CIs; its paired tests against
the base model use item outcomes averaged over its seeds, Holm-corrected across every test of every variant.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from fairgender_utils.paths import repo_path
from fairgender_utils.report.config import ReportConfig
from fairgender_utils.report.inputs import find_runs, train_facts
from fairgender_utils.report.paired import compare_to_base
from fairgender_utils.stats import holm

# What each variant is (METHOD.md §6).
ABLATIONS = pd.DataFrame([
    ("base", "none", "the original model"),
    ("fairgender", "X^C (causally aligned)", "L_b + λ·L_r"),
    ("cda", "all valid pairs, both versions", "L_r only (counterfactual data augmentation)"),
    ("autodebias", "searched prompts × attribute pairs", "JSD at the slot + embedding term (Auto-Debias)"),
    ("no_filter", "X^C ∪ X^NC", "L_b + λ·L_r"),
    ("no_knn", "X^C", "L_b with W0 = 1 (no neighbour term) + λ·L_r"),
    ("no_screen", "X^C with the toxicity screen off", "L_b + λ·L_r"),
], columns=["variant", "data", "loss"])

# Published numbers for bert-base-uncased (CCPA, ACL 2023, Table 1; bias-bench-style scoring, StereoSet
# *test* split). Another model and another data split: shown for scale, never compared directly.
YARDSTICKS = pd.DataFrame([
    ("BERT", 0.621, 84.17, 60.28, 66.86, 57.86),
    ("+CDA", 0.477, 85.47, 58.69, 70.63, 55.35),
    ("+Auto-Debias", 0.671, 81.76, 57.33, 69.78, 52.83),
    ("+MABEL", 0.499, 84.80, 56.92, 73.07, 50.76),
], columns=["model (bert-base-uncased)", "SEAT mean |d|", "StereoSet LMS", "SS", "ICAT", "CrowS"])


def runs(cfg: ReportConfig) -> pd.DataFrame:
    """Rows (run, variant, seed) of every evaluated run, base first (:func:`inputs.find_runs`)."""
    return find_runs(cfg.evaluate_dir, cfg.base_variant)


def variants(cfg: ReportConfig) -> list[str]:
    """The evaluated variants, base first, then the method, its baselines, the ablations, others by name."""
    return list(dict.fromkeys(runs(cfg)["variant"]))


def _read(cfg: ReportConfig, name: str) -> pd.DataFrame:
    frames = []
    for run, variant, seed in runs(cfg).itertuples(index=False):
        path = repo_path(cfg.evaluate_dir) / run / "tables" / f"{name}.csv"
        if not path.exists():
            raise FileNotFoundError(f"{path}: missing; run the evaluate stage for '{run}'")
        frames.append(pd.read_csv(path).drop(columns="variant", errors="ignore").assign(
            variant=variant, run=run, seed=seed))
    return pd.concat(frames, ignore_index=True)


def load_summary(cfg: ReportConfig) -> pd.DataFrame:
    """Tidy rows (variant, run, seed, benchmark, subset, metric, value, ci_low, ci_high) of every run."""
    return _read(cfg, "summary")


def load_seat(cfg: ReportConfig) -> pd.DataFrame:
    """Per-test SEAT rows (test, d, p, ...) of every run."""
    return _read(cfg, "seat")


def by_variant(summary: pd.DataFrame) -> pd.DataFrame:
    """Rows (variant, benchmark, subset, metric, seeds, value, sd, ci_low, ci_high): the mean over a variant's
    runs, their sd (ddof 1; empty for one run) and the mean of their CI bounds."""
    keys = ["variant", "benchmark", "subset", "metric"]
    return summary.groupby(keys, sort=False, dropna=False).agg(
        seeds=("value", "size"), value=("value", "mean"), sd=("value", "std"), ci_low=("ci_low", "mean"),
        ci_high=("ci_high", "mean")).reset_index()


def significance(cfg: ReportConfig) -> pd.DataFrame:
    """Paired tests of each variant (items averaged over its seeds) against the base, Holm-corrected across
    every row of every variant; the two models' statistics are ``value_base`` and ``value_variant``."""
    table = runs(cfg)
    root = repo_path(cfg.evaluate_dir)
    frames = [compare_to_base(root / cfg.base_variant / "items",
                              [root / r / "items" for r in table.loc[table["variant"] == v, "run"]],
                              cfg.alpha, cfg.n_perm, cfg.seed, cfg.n_boot).rename(
                  columns={"base": "value_base", "variant": "value_variant"}).assign(variant=v)
              for v in variants(cfg)[1:]]
    out = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=["variant", "comparison", "p"])
    if len(out):
        reject, adjusted = holm(out["p"].to_numpy(), cfg.alpha)
        out["p_holm_all"], out["significant"] = adjusted, reject
    return out[["variant", *[c for c in out.columns if c != "variant"]]]


def _cell(value: float, lo: float, hi: float, digits: int, sd: float = np.nan) -> str:
    if np.isnan(value):
        return "–"
    spread = "" if np.isnan(sd) else f" ± {sd:.{digits}f}"
    ci = "" if np.isnan(lo) or np.isnan(hi) else f" [{lo:.{digits}f}, {hi:.{digits}f}]"
    return f"{value:.{digits}f}{spread}{ci}"


MARK = {"better": " [better]", "worse": " [worse]"}


def paper_table(summary: pd.DataFrame, sig: pd.DataFrame, subset: str = "gender") -> pd.DataFrame:
    """Rows = variants; SEAT mean |d|, StereoSet LMS/SS/ICAT, CrowS-Pairs of ``subset`` and held-out
    perplexity: mean over seeds ± sd over seeds (when more than one) [mean of the runs' 95% CIs].

    ``summary``: :func:`by_variant` rows (run-level rows are read as one seed each). A cell is marked
    ``[better]`` or ``[worse]`` where its own paired test against the base survives Holm's correction over
    every paired test of every variant, by the way the metric moved: toward its ideal (SS and CrowS-Pairs
    50, SEAT mean |d| 0, LMS and ICAT 100, perplexity lower) or away from it. Tests: SEAT mean |d|, paired
    permutation; SS (per-term, as shown), paired permutation of |SS - 50|; LMS and ICAT, paired bootstrap
    within terms; CrowS-Pairs, McNemar (its permutation form on seed means); perplexity, paired bootstrap.
    SEAT's CI resamples the target sentences with the attribute sets fixed.
    """
    cols = [("SEAT", "gender", "mean |d|", 3, "seat/mean |d|"),
            ("StereoSet", subset, "LMS", 2, f"stereoset/{subset}/LMS"),
            ("StereoSet", subset, "SS", 2, f"stereoset/{subset}/SS"),
            ("StereoSet", subset, "ICAT", 2, f"stereoset/{subset}/ICAT"),
            ("CrowS-Pairs", subset, "score", 2, f"crows_pairs/{subset}"),
            ("Held-out text", None, None, 1, "perplexity")]
    summary = summary if "sd" in summary else summary.assign(sd=np.nan, seeds=1)
    rows = []
    for v in dict.fromkeys(summary["variant"]):
        row = {"variant": v, "seeds": int(summary.loc[summary["variant"] == v, "seeds"].max())}
        for bench, sub, metric, digits, key in cols:
            pick = (summary["variant"] == v) & (summary["benchmark"] == bench)
            if sub is not None:
                pick &= (summary["subset"] == sub) & (summary["metric"] == metric)
            hit = summary[pick]
            if bench == "Held-out text" and not len(hit):
                continue
            text = _cell(*hit[["value", "ci_low", "ci_high"]].iloc[0].astype(float), digits,
                         float(hit["sd"].iloc[0])) if len(hit) else "–"
            if len(sig) and "significant" in sig:
                s = sig[(sig["variant"] == v) & (sig["comparison"] == key) & sig["significant"].astype(bool)]
                text += MARK.get(s["direction"].iloc[0], "") if len(s) else ""
            name = {"CrowS-Pairs": "CrowS-Pairs", "Held-out text": "perplexity (held-out)"}.get(
                bench, f"{bench} {metric}")
            row[name] = text
        rows.append(row)
    return pd.DataFrame(rows)


def seat_by_variant(seat: pd.DataFrame) -> pd.DataFrame:
    """Per variant and SEAT test: mean d over seeds, its sd, and the largest permutation p of its runs."""
    return seat.groupby(["variant", "test"], sort=False).agg(
        d=("d", "mean"), sd=("d", "std"), p=("p", "max"), seeds=("d", "size")).reset_index()


def seat_table(seat: pd.DataFrame) -> pd.DataFrame:
    """SEAT effect size per test (rows) and variant (columns): mean over seeds (± sd), '†' where every
    run's one-sided permutation p < 0.05; last row the mean |d| (of each run, averaged over seeds)."""
    grouped = seat_by_variant(seat)
    d = grouped.pivot(index="test", columns="variant", values="d")
    sd = grouped.pivot(index="test", columns="variant", values="sd").reindex_like(d)
    p = grouped.pivot(index="test", columns="variant", values="p").reindex_like(d)
    cells = d.map(lambda x: f"{x:.3f}") + sd.map(lambda x: "" if np.isnan(x) else f" ± {x:.3f}") \
        + p.map(lambda x: " †" if x < 0.05 else "")
    seat = seat.assign(abs_d=seat["d"].abs())
    cells.loc["mean |d|"] = seat.groupby(["variant", "run"])["abs_d"].mean().groupby("variant").mean().map(
        lambda x: f"{x:.3f}")
    return cells[list(dict.fromkeys(seat["variant"]))]


def glue_table(summary: pd.DataFrame) -> pd.DataFrame:
    """GLUE main metric per task (columns) and variant (rows), mean over seeds, plus their mean."""
    g = summary[summary["benchmark"] == "GLUE"].pivot_table(index="variant", columns="subset", values="value",
                                                            aggfunc="mean")
    g = g.reindex([v for v in dict.fromkeys(summary["variant"]) if v in g.index])
    g["mean"] = g.mean(axis=1)
    return g


def ablation_table(cfg: ReportConfig, primary: pd.DataFrame, bench: pd.DataFrame) -> pd.DataFrame:
    """Every variant with what it changes (METHOD.md §6), its training runs (seeds, pairs, steps), its
    primary endpoint against the base (% change, Holm p) and its gender benchmarks (seed means)."""
    names = variants(cfg)
    design = ABLATIONS.set_index("variant").reindex(names)
    facts = train_facts(cfg.train_dir, runs(cfg), cfg.base_variant).reindex(names)
    out = design.join(facts)
    for endpoint, part in primary[primary["b"] == cfg.base_variant].groupby("endpoint", sort=False):
        part = part.set_index("a")
        out[f"{endpoint} vs base (%)"] = part["change_pct"].map(lambda c: f"{c:+.1f}")
        out[f"{endpoint} Holm p"] = part["p_holm"].map(lambda p: f"{p:.3g}")
    pick = bench[(bench["subset"].isin(["gender", "test"]))]
    for bname, metric, label in (("CrowS-Pairs", "score", "CrowS-Pairs"), ("StereoSet", "SS", "StereoSet SS"),
                                 ("StereoSet", "LMS", "StereoSet LMS"), ("Held-out text", "perplexity",
                                                                        "perplexity")):
        hit = pick[(pick["benchmark"] == bname) & (pick["metric"] == metric)].set_index("variant")["value"]
        out[label] = hit.reindex(names).round(2)
    return out.reset_index().rename(columns={"index": "variant"})
