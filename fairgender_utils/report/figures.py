"""Figures of the report: dose-response (dev curves against training steps), the data funnel from grid cells
to trained-on pairs, and bias against language quality. Each returns (figure, the data it plots)."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns


def _colors(names: list[str]) -> dict[str, tuple]:
    return dict(zip(names, sns.color_palette("colorblind", max(len(names), 1)), strict=False))


def dose_response(curves: pd.DataFrame, crows: pd.DataFrame,
                  base_crows: float | None) -> tuple[plt.Figure, pd.DataFrame]:
    """Dev J and dev perplexity against optimiser steps, every run a thin line, the mean over a variant's
    seeds bold; third panel: CrowS-Pairs gender of each run's final model at its last step, the base
    model at step 0 (the evaluate stage scores final models only, so nothing lies between).

    ``curves``: (run, variant, seed, step, dev_J, dev_ppl, ...); ``crows``: (run, variant, score).
    """
    names = list(dict.fromkeys(curves["variant"]))
    colors = _colors(names)
    fig, axes = plt.subplots(1, 3, figsize=(14, 3.8))
    for ax, col, label in ((axes[0], "dev_J", "dev J (mean over dev pairs)"),
                           (axes[1], "dev_ppl", "dev perplexity (neutral text)")):
        for v in names:
            part = curves[curves["variant"] == v]
            for _, run in part.groupby("run", sort=False):
                ax.plot(run["step"], run[col], color=colors[v], lw=0.8, alpha=0.45)
            mean = part.groupby("step")[col].mean()
            ax.plot(mean.index, mean.to_numpy(), color=colors[v], lw=2.4, label=v)
        ax.set_xlabel("optimiser step")
        ax.set_ylabel(label)
    last = curves.groupby("run")["step"].max()
    ends = crows.assign(step=crows["run"].map(last))
    for v in names:
        part = ends[ends["variant"] == v]
        axes[2].scatter(part["step"], part["score"], color=colors[v], s=30)
        if base_crows is not None and len(part):
            axes[2].plot([0, part["step"].mean()], [base_crows, part["score"].mean()], color=colors[v], lw=1.5)
    if base_crows is not None:
        axes[2].scatter([0], [base_crows], color="black", s=40, marker="s", label="base")
        axes[2].legend(fontsize=8)
    axes[2].axhline(50, ls="--", c="grey", lw=1)
    axes[2].set_xlabel("optimiser step (final models only)")
    axes[2].set_ylabel("CrowS-Pairs gender (ideal 50)")
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="center left", bbox_to_anchor=(1.0, 0.5), fontsize=8, frameon=False)
    fig.suptitle("Dose-response: thin = one seed, bold = mean over seeds", fontsize=11)
    fig.tight_layout()
    data = curves.merge(ends[["run", "score"]].rename(columns={"score": "crows_final"}), on="run", how="left")
    return fig, data


# The funnel's bars, top to bottom, and the counts (names of inputs.INPUT_KEYS) stacked in each.
FUNNEL = [("grid cells", ["grid cells"]),
          ("LLM step 1 valid", ["step-1 valid"]),
          ("valid pairs", ["pairs, LLM both steps", "pairs, swap in step 2"]),
          ("split by target word", ["train pairs", "dev pairs", "test pairs"]),
          ("train split, causal filter", ["train X^C", "train X^NC"])]
LABELS = {"pairs, LLM both steps": "LLM both steps", "pairs, swap in step 2": "swap in step 2",
          "train pairs": "train", "dev pairs": "dev", "test pairs": "test",
          "train X^C": "X^C (trained on)", "train X^NC": "X^NC (filtered out)"}


def funnel(counts: dict[str, float]) -> tuple[plt.Figure, pd.DataFrame]:
    """The data's path from grid cells to the pairs fairgender trains on, as stacked bars with counts."""
    data = pd.DataFrame([(stage, LABELS.get(k, k), counts[k]) for stage, keys in FUNNEL for k in keys],
                        columns=["stage", "part", "count"])
    fig, ax = plt.subplots(figsize=(10, 3.6))
    palette = sns.color_palette("pastel", 8)
    width = max(float(data["count"].max()), 1.0)
    shown = lambda k: LABELS.get(k, k).replace("^C", "$^C$").replace("^NC", "$^{NC}$")  # noqa: E731
    for y, (stage, keys) in enumerate(FUNNEL):
        left, aside = 0.0, []
        for n, k in enumerate(keys):
            value = float(counts[k])
            ax.barh(y, value, left=left, color=palette[n if len(keys) > 1 else 7], edgecolor="white")
            if len(keys) == 1:
                ax.text(left + value / 2, y, f"{value:,.0f}", ha="center", va="center", fontsize=8)
            elif value >= 0.009 * len(LABELS.get(k, k)) * width:  # wide enough for its name
                ax.text(left + value / 2, y, f"{shown(k)}\n{value:,.0f}", ha="center", va="center", fontsize=8)
            else:
                ax.text(left + value / 2, y, f"{value:,.0f}", ha="center", va="center", fontsize=8)
                aside.append(f"{value:,.0f} = {shown(k)}")
            left += value
        if len(keys) > 1:
            note = f"total {left:,.0f}" + "".join(f"; {a}" for a in aside)
            ax.text(left + width * 0.01, y, note, va="center", fontsize=8)
    ax.set_yticks(range(len(FUNNEL)), [s for s, _ in FUNNEL])
    ax.invert_yaxis()
    ax.set_xlim(0, width * 1.1)
    ax.set_xlabel("count")
    ax.set_title("From grid cells to trained-on pairs", fontsize=11)
    fig.tight_layout()
    return fig, data


def tradeoff(summary: pd.DataFrame, glue: pd.Series | None,
             subset: str = "gender") -> tuple[plt.Figure, pd.DataFrame]:
    """Bias (distance of StereoSet SS and CrowS-Pairs from 50) against language quality (LMS, GLUE mean),
    one point per variant (seed means); ``summary``: variant-level rows."""
    pick = lambda b, m: summary[(summary["benchmark"] == b) & (summary["subset"] == subset)  # noqa: E731
                                & (summary["metric"] == m)].set_index("variant")
    ss, lms, crows = pick("StereoSet", "SS"), pick("StereoSet", "LMS"), pick("CrowS-Pairs", "score")
    data = pd.DataFrame({"SS |SS-50|": (ss["value"] - 50).abs(), "CrowS |score-50|": (crows["value"] - 50).abs(),
                         "LMS": lms["value"]})
    if glue is not None and len(glue):
        data["GLUE mean"] = glue
    data = data.reset_index()
    panels = [("LMS", "SS |SS-50|"), ("LMS", "CrowS |score-50|")] + (
        [("GLUE mean", "SS |SS-50|")] if "GLUE mean" in data else [])
    fig, axes = plt.subplots(1, len(panels), figsize=(4.2 * len(panels), 3.6), squeeze=False)
    for ax, (x, y) in zip(axes[0], panels, strict=True):
        sns.scatterplot(data=data, x=x, y=y, hue="variant", s=70, ax=ax, legend=ax is axes[0][-1])
        for _, r in data.iterrows():
            if np.isfinite(r[x]) and np.isfinite(r[y]):
                ax.annotate(r["variant"], (r[x], r[y]), fontsize=8, xytext=(4, 3), textcoords="offset points")
        ax.set_xlabel(f"{x} (higher = better language quality)")
        ax.set_ylabel(f"{y} (lower = less biased)")
    if axes[0][-1].get_legend():
        sns.move_legend(axes[0][-1], "upper left", bbox_to_anchor=(1, 1))
    fig.suptitle(f"Bias vs language quality ({subset}, mean over seeds)", fontsize=11)
    fig.tight_layout()
    return fig, data
