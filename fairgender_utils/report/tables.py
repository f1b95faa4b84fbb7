"""Stage 05 report: the paper's tables for this run, significance against the base model, yardsticks.

Reads what the evaluate stage wrote for every variant (``tables/summary.csv``, ``tables/seat.csv``,
``items/*.csv``) and builds side-by-side tables, paired tests (Holm-corrected across every test of every
variant) and the bias-vs-language-quality trade-off figure.
"""

from __future__ import annotations

import json

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns
from pydantic import Field

from fairgender_utils.report.config import ReportConfig
from fairgender_utils.report.paired import compare_to_base
from fairgender_utils.stats import holm
from fairgender_utils.paths import repo_path


# What each variant is (METHOD.md §6).
ABLATIONS = pd.DataFrame([
    ("base", "none", "the original model"),
    ("cda", "all valid pairs, both versions", "L_r only (counterfactual data augmentation)"),
    ("autodebias", "attribute pairs × searched prompts", "slot JSD + 0.1·(1 − cos) of pooled embeddings"),
    ("fairgender", "X^C (causally aligned)", "L_b + λ·L_r"),
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


def variants(cfg: ReportConfig) -> list[str]:
    """The evaluated models: every folder of ``evaluate_dir`` with ``tables/summary.csv`` (dvc.yaml's
    evaluate stages, one per trained variant of params/train.yaml and the base model), base first, then in
    METHOD.md §6's order, then by name."""
    root = repo_path(cfg.evaluate_dir)
    found = sorted(d.name for d in root.iterdir() if (d / "tables" / "summary.csv").exists())
    if cfg.base_variant not in found:
        raise FileNotFoundError(f"{root / cfg.base_variant / 'tables' / 'summary.csv'}: missing; "
                                f"run the evaluate stage of the base model")
    order = {v: n for n, v in enumerate(ABLATIONS["variant"])}
    return [cfg.base_variant, *sorted((v for v in found if v != cfg.base_variant),
                                      key=lambda v: (order.get(v, len(order)), v))]


def _read(cfg: ReportConfig, name: str) -> pd.DataFrame:
    frames = []
    for v in variants(cfg):
        path = repo_path(cfg.evaluate_dir) / v / "tables" / f"{name}.csv"
        if not path.exists():
            raise FileNotFoundError(f"{path}: missing; run the evaluate stage for variant '{v}'")
        frames.append(pd.read_csv(path).assign(variant=v))
    return pd.concat(frames, ignore_index=True)


TRAIN_FACTS = ["pairs", "unscorable_pairs", "steps", "lm_loss_start", "lm_loss_end", "bias_loss_start",
               "bias_loss_end"]


def ablation_table(cfg: ReportConfig) -> pd.DataFrame:
    """ABLATIONS for the reported variants, with what stage 03 recorded for each (pairs, steps, losses).

    The base model was not trained: its training columns are empty. A trained variant without
    ``<train_dir>/<variant>/metrics.json`` is an error naming the file.
    """
    rows, names = [], variants(cfg)
    for v in names:
        if v == cfg.base_variant:
            continue
        path = repo_path(cfg.train_dir) / v / "metrics.json"
        if not path.exists():
            raise FileNotFoundError(f"{path}: missing; run the train stage for variant '{v}'")
        metrics = json.loads(path.read_text())
        rows.append({"variant": v, **{k: metrics.get(k) for k in TRAIN_FACTS}})
    facts = pd.DataFrame(rows, columns=["variant", *TRAIN_FACTS]).set_index("variant")
    return ABLATIONS.set_index("variant").reindex(names).join(facts)


def load_summary(cfg: ReportConfig) -> pd.DataFrame:
    """Tidy rows (variant, benchmark, subset, metric, value, ci_low, ci_high) of every variant."""
    return _read(cfg, "summary")


def load_seat(cfg: ReportConfig) -> pd.DataFrame:
    """Per-test SEAT rows (test, d, p, ...) of every variant."""
    return _read(cfg, "seat")


def significance(cfg: ReportConfig) -> pd.DataFrame:
    """Paired tests of each variant against the base, Holm-corrected across every row of every variant."""
    base = repo_path(cfg.evaluate_dir) / cfg.base_variant / "items"
    frames = [compare_to_base(base, repo_path(cfg.evaluate_dir) / v / "items", cfg.alpha, cfg.n_perm, cfg.seed,
                              cfg.n_boot).assign(variant=v) for v in variants(cfg)[1:]]
    out = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=["variant", "comparison", "p"])
    if len(out):
        reject, adjusted = holm(out["p"].to_numpy(), cfg.alpha)
        out["p_holm_all"], out["significant"] = adjusted, reject
    return out[["variant", *[c for c in out.columns if c != "variant"]]]


def _cell(value: float, lo: float, hi: float, digits: int) -> str:
    if np.isnan(value):
        return "–"
    ci = "" if np.isnan(lo) or np.isnan(hi) else f" [{lo:.{digits}f}, {hi:.{digits}f}]"
    return f"{value:.{digits}f}{ci}"


MARK = {"better": " [better]", "worse": " [worse]"}


def paper_table(summary: pd.DataFrame, sig: pd.DataFrame, subset: str = "gender") -> pd.DataFrame:
    """Rows = variants; SEAT mean |d|, StereoSet LMS/SS/ICAT, CrowS-Pairs of ``subset`` and held-out
    perplexity, each with its 95% CI.

    A cell is marked ``[better]`` or ``[worse]`` where its own paired test against the base survives Holm's
    correction over every paired test of every variant, by the way the metric moved: toward its ideal
    (SS and CrowS-Pairs 50, SEAT mean |d| 0, LMS and ICAT 100, perplexity lower) or away from it. Tests:
    SEAT mean |d|, paired permutation; SS (per-term, as shown), paired permutation of |SS - 50|; LMS and
    ICAT, paired bootstrap within terms; CrowS-Pairs, McNemar; perplexity, paired bootstrap.
    SEAT's CI resamples the target sentences with the attribute sets fixed.
    """
    cols = [("SEAT", "gender", "mean |d|", 3, "seat/mean |d|"),
            ("StereoSet", subset, "LMS", 2, f"stereoset/{subset}/LMS"),
            ("StereoSet", subset, "SS", 2, f"stereoset/{subset}/SS"),
            ("StereoSet", subset, "ICAT", 2, f"stereoset/{subset}/ICAT"),
            ("CrowS-Pairs", subset, "score", 2, f"crows_pairs/{subset}"),
            ("Held-out text", None, None, 1, "perplexity")]
    rows = []
    for v in dict.fromkeys(summary["variant"]):
        row = {"variant": v}
        for bench, sub, metric, digits, key in cols:
            pick = (summary["variant"] == v) & (summary["benchmark"] == bench)
            if sub is not None:
                pick &= (summary["subset"] == sub) & (summary["metric"] == metric)
            hit = summary[pick]
            if bench == "Held-out text" and not len(hit):
                continue
            text = _cell(*hit[["value", "ci_low", "ci_high"]].iloc[0].astype(float), digits) if len(hit) else "–"
            if len(sig) and "significant" in sig:
                s = sig[(sig["variant"] == v) & (sig["comparison"] == key) & sig["significant"].astype(bool)]
                text += MARK.get(s["direction"].iloc[0], "") if len(s) else ""
            name = {"CrowS-Pairs": "CrowS-Pairs", "Held-out text": "perplexity (held-out)"}.get(
                bench, f"{bench} {metric}")
            row[name] = text
        rows.append(row)
    return pd.DataFrame(rows)


def seat_table(seat: pd.DataFrame) -> pd.DataFrame:
    """SEAT effect size per test (rows) and variant (columns), '†' where the permutation p < 0.05."""
    d = seat.pivot(index="test", columns="variant", values="d")
    p = seat.pivot(index="test", columns="variant", values="p").reindex_like(d)
    cells = d.map(lambda x: f"{x:.3f}") + p.map(lambda x: " †" if x < 0.05 else "")
    cells.loc["mean |d|"] = d.abs().mean().map(lambda x: f"{x:.3f}")
    return cells[list(dict.fromkeys(seat["variant"]))]


def glue_table(summary: pd.DataFrame) -> pd.DataFrame:
    """GLUE main metric per task (columns) and variant (rows), plus their mean."""
    g = summary[summary["benchmark"] == "GLUE"].pivot(index="variant", columns="subset", values="value")
    g = g.reindex(list(dict.fromkeys(summary["variant"])))
    g["mean"] = g.mean(axis=1)
    return g


def tradeoff(summary: pd.DataFrame, subset: str = "gender") -> tuple[plt.Figure, pd.DataFrame]:
    """Bias (distance of StereoSet SS and CrowS-Pairs from 50) against language quality (LMS, GLUE mean)."""
    pick = lambda b, m: summary[(summary["benchmark"] == b) & (summary["subset"] == subset)  # noqa: E731
                                & (summary["metric"] == m)].set_index("variant")
    ss, lms, crows = pick("StereoSet", "SS"), pick("StereoSet", "LMS"), pick("CrowS-Pairs", "score")
    glue = glue_table(summary)["mean"] if (summary["benchmark"] == "GLUE").any() else None
    data = pd.DataFrame({"SS |SS-50|": (ss["value"] - 50).abs(), "CrowS |score-50|": (crows["value"] - 50).abs(),
                         "LMS": lms["value"]})
    if glue is not None:
        data["GLUE mean"] = glue
    data = data.reset_index()
    panels = [("LMS", "SS |SS-50|"), ("LMS", "CrowS |score-50|")] + (
        [("GLUE mean", "SS |SS-50|")] if glue is not None else [])
    fig, axes = plt.subplots(1, len(panels), figsize=(4.2 * len(panels), 3.6), squeeze=False)
    for ax, (x, y) in zip(axes[0], panels, strict=True):
        sns.scatterplot(data=data, x=x, y=y, hue="variant", s=70, ax=ax, legend=ax is axes[0][-1])
        for _, r in data.iterrows():
            ax.annotate(r["variant"], (r[x], r[y]), fontsize=8, xytext=(4, 3), textcoords="offset points")
        ax.set_xlabel(f"{x} (higher = better language quality)")
        ax.set_ylabel(f"{y} (lower = less biased)")
    if len(panels) and axes[0][-1].get_legend():
        sns.move_legend(axes[0][-1], "upper left", bbox_to_anchor=(1, 1))
    fig.suptitle(f"Bias vs language quality ({subset})", fontsize=11)
    fig.tight_layout()
    return fig, data


def headline(summary: pd.DataFrame, sig: pd.DataFrame, subset: str = "gender") -> dict:
    """metrics.json: the headline numbers per variant and the count of Holm-significant differences."""
    out: dict = {}
    for v, part in summary[summary["subset"].isin([subset])].groupby("variant", sort=False):
        out[v] = {f"{b} {m}": float(val) for b, m, val in part[["benchmark", "metric", "value"]].itertuples(False)}
    ppl = summary[summary["benchmark"] == "Held-out text"]
    for v, part in ppl.groupby("variant", sort=False):
        out.setdefault(v, {})[f"{part['metric'].iloc[0]} (held-out)"] = float(part["value"].iloc[0])
    seat = summary[(summary["benchmark"] == "SEAT")]
    for v, part in seat.groupby("variant", sort=False):
        out.setdefault(v, {})["SEAT mean |d|"] = float(part["value"].iloc[0])
    if len(sig) and "significant" in sig:
        for v, part in sig.groupby("variant", sort=False):
            out[v]["significant_vs_base"] = int(part["significant"].sum())
            for way in ("better", "worse"):
                out[v][f"significant_{way}"] = int((part["significant"].astype(bool) & (part["direction"] == way)).sum())
    return out
