"""Figures of the evaluate stage, also called by the report across variants (seaborn).

Each function takes a tidy DataFrame (one variant or several, column ``variant``) and returns a
matplotlib Figure; :func:`fairgender_utils.plots.save_figure` writes the PNG and the plotted data.
"""

from __future__ import annotations


import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns

IDEAL = {("StereoSet", "SS"): 50.0, ("StereoSet", "LMS"): 100.0, ("StereoSet", "ICAT"): 100.0,
         ("CrowS-Pairs", "score"): 50.0, ("CrowS-Pairs", "score (bias-bench)"): 50.0,
         ("CrowS-Pairs", "pct_stereotype (lm-eval)"): 50.0, ("SEAT", "mean |d|"): 0.0}


def metric_bars(summary: pd.DataFrame, subset: str = "gender") -> plt.Figure:
    """Bias metrics of ``subset`` as bars with their 95% CIs, one bar per variant, dashed line = ideal.

    ``summary``: rows of :func:`evaluate.summary_table` (variant, benchmark, subset, metric, value,
    ci_low, ci_high), one or many variants.
    """
    df = summary[(summary["benchmark"] != "GLUE") & (summary["subset"] == subset)].copy()
    df["panel"] = df["benchmark"] + " " + df["metric"]
    panels = list(dict.fromkeys(df["panel"]))
    variants = list(dict.fromkeys(df["variant"]))
    colors = dict(zip(variants, sns.color_palette("colorblind", len(variants)), strict=True))
    fig, axes = plt.subplots(1, len(panels), figsize=(2.6 * len(panels) + 1, 3.4), squeeze=False)
    for ax, panel in zip(axes[0], panels, strict=True):
        part = df[df["panel"] == panel].set_index("variant").loc[variants].reset_index()
        x = np.arange(len(part))
        err = np.vstack([part["value"] - part["ci_low"], part["ci_high"] - part["value"]]).clip(min=0)
        ax.bar(x, part["value"], color=[colors[v] for v in part["variant"]], yerr=err, capsize=3)
        ideal = IDEAL.get(tuple(part[["benchmark", "metric"]].iloc[0]))
        if ideal is not None:
            ax.axhline(ideal, ls="--", c="grey", lw=1)
        ax.set_xticks(x, part["variant"], rotation=45, ha="right")
        ax.set_title(panel, fontsize=10)
    fig.suptitle(f"Bias metrics ({subset}), 95% CIs; dashed: ideal", fontsize=11)
    fig.tight_layout()
    return fig


def seat_heatmap(seat_tables: pd.DataFrame) -> plt.Figure:
    """SEAT effect sizes d: tests x variants, annotated; '*' marks p < 0.05 (permutation test)."""
    d = seat_tables.pivot(index="test", columns="variant", values="d")
    p = seat_tables.pivot(index="test", columns="variant", values="p").reindex_like(d)
    labels = d.map(lambda v: f"{v:.2f}") + p.map(lambda v: "*" if v < 0.05 else "")
    lim = max(0.5, float(np.nanmax(np.abs(d.to_numpy()))))
    fig, ax = plt.subplots(figsize=(1.2 * d.shape[1] + 2.5, 0.45 * d.shape[0] + 1.5))
    sns.heatmap(d, annot=labels, fmt="", cmap="vlag", center=0, vmin=-lim, vmax=lim, ax=ax,
                cbar_kws={"label": "effect size d"})
    ax.set_title("SEAT effect sizes (* p < 0.05)")
    ax.set_xlabel("")
    fig.tight_layout()
    return fig


def score_differences(diffs: pd.DataFrame) -> plt.Figure:
    """Distributions of per-item score differences (more - less stereotypical), one panel per benchmark.

    ``diffs``: columns variant, benchmark, diff (CrowS: log-likelihood of sent_more minus sent_less;
    StereoSet: stereotype minus anti-stereotype candidate score). Mass right of 0 = stereotypical preference.
    """
    benchmarks = list(dict.fromkeys(diffs["benchmark"]))
    fig, axes = plt.subplots(1, len(benchmarks), figsize=(4.8 * len(benchmarks), 3.4), squeeze=False)
    for ax, b in zip(axes[0], benchmarks, strict=True):
        part = diffs[diffs["benchmark"] == b]
        sns.histplot(part, x="diff", hue="variant", element="step", stat="density", common_norm=False, ax=ax,
                     bins=40)
        ax.axvline(0, c="k", lw=1)
        ax.set_title(b, fontsize=10)
        ax.set_xlabel("score(more stereotypical) - score(less)")
    fig.tight_layout()
    return fig
