"""Seaborn figures of the causal stage: a and τ per split, real against corrupted controls, X^C against
X^NC, mean effects, survivors."""

from __future__ import annotations

from collections.abc import Sequence

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns
from sklearn.metrics import roc_curve


def alignment_and_effects(table: pd.DataFrame, threshold: float) -> plt.Figure:
    """Histograms of a_i per split (θ dashed) and of τ_i per rule (log scale; at most ln 2)."""
    fig, axes = plt.subplots(1, 2, figsize=(11, 3.6))
    sns.histplot(table, x="alignment", hue="split", bins=30, ax=axes[0])
    axes[0].axvline(threshold, ls="--", c="k")
    axes[0].set(title="alignment a_i (dashed: θ)", xlabel="a_i")
    tau = table.assign(log10_tau=np.log10(table["tau"].clip(lower=1e-12)))
    sns.histplot(tau, x="log10_tau", hue="rule", bins=30, ax=axes[1])
    axes[1].axvline(np.log10(np.log(2)), ls=":", c="grey")
    axes[1].set(title="effect τ_i by rule (dotted: ln 2)", xlabel="log10 τ_i")
    fig.tight_layout()
    return fig


def controls(scores: pd.DataFrame, threshold: float) -> plt.Figure:
    """a of real pairs and of each kind of corrupted control (θ dashed), and the ROC curve of each kind.
    ``scores``: columns kind ('real' or a control kind) and alignment."""
    fig, axes = plt.subplots(1, 2, figsize=(11, 3.8))
    kinds = list(dict.fromkeys(scores["kind"]))
    colours = dict(zip(kinds, sns.color_palette(n_colors=len(kinds))))
    sns.histplot(scores, x="alignment", hue="kind", hue_order=kinds, palette=colours, bins=30, element="step",
                 stat="density", common_norm=False, ax=axes[0])
    axes[0].axvline(threshold, ls="--", c="k")
    axes[0].set(title="a: real pairs and corrupted controls (dashed: θ)", xlabel="a")
    real = scores.loc[scores["kind"] == "real", "alignment"].to_numpy()
    for kind in [k for k in kinds if k != "real"]:
        c = scores.loc[scores["kind"] == kind, "alignment"].to_numpy()
        fpr, tpr, _ = roc_curve(np.r_[np.ones(len(real)), np.zeros(len(c))], np.r_[real, c])
        axes[1].plot(fpr, tpr, label=kind, c=colours[kind])
    axes[1].plot([0, 1], [0, 1], c="grey", lw=0.8, ls=":")
    axes[1].set(title="ROC of a: real against corrupted", xlabel="false positive rate (controls kept)",
                ylabel="true positive rate (real kept)")
    axes[1].legend()
    fig.tight_layout()
    return fig


def split_comparison(table: pd.DataFrame,
                     columns: Sequence[str] = ("loglik", "words", "toxicity")) -> plt.Figure:
    """X^C vs X^NC per split: per-token log-likelihood under the PLM, length in words, toxicity score."""
    fig, axes = plt.subplots(1, len(columns), figsize=(4 * len(columns), 3.4))
    side = table["aligned"].map({True: "X^C", False: "X^NC"})
    for ax, col in zip(axes, columns):
        sns.boxplot(x=side, y=table[col], hue=table["split"], order=["X^C", "X^NC"], ax=ax)
        ax.set(xlabel="", title=col)
    fig.tight_layout()
    return fig


def mean_effects(ci: pd.DataFrame) -> plt.Figure:
    """Mean effect with its 95% CI per quantity, split and group (columns split, quantity, group, mean,
    ci_low, ci_high)."""
    quantities = list(dict.fromkeys(ci["quantity"]))
    fig, axes = plt.subplots(1, len(quantities), figsize=(5 * len(quantities), 0.35 * len(ci) / 2 + 1.5),
                             squeeze=False)
    for ax, q in zip(axes[0], quantities):
        d = ci[ci["quantity"] == q].reset_index(drop=True)
        ax.errorbar(d["mean"], range(len(d)), xerr=[d["mean"] - d["ci_low"], d["ci_high"] - d["mean"]],
                    fmt="o", capsize=4)
        ax.set_yticks(range(len(d)), d["split"] + ": " + d["group"])
        ax.axvline(0, c="grey", lw=0.8)
        ax.set(title=f"mean {q} (95% CI)", xlabel=q)
    fig.tight_layout()
    return fig


def survivors_bars(per_attr: pd.DataFrame, per_target: pd.DataFrame, top: int = 25) -> plt.Figure:
    """Pairs and aligned survivors per attribute word and per target word (the most frequent ``top``)."""
    rows = min(top, max(len(per_attr), len(per_target)))
    fig, axes = plt.subplots(1, 2, figsize=(12, 0.3 * rows + 1.5))
    for ax, df, key in ((axes[0], per_attr, "male_word"), (axes[1], per_target, "target")):
        d = df.head(top).melt(id_vars=[key], value_vars=["pairs", "aligned"], var_name="count",
                              value_name="n")
        sns.barplot(d, y=key, x="n", hue="count", ax=ax)
        ax.set(title=f"survivors per {'attribute' if key == 'male_word' else 'target'}", ylabel="")
    fig.tight_layout()
    return fig
