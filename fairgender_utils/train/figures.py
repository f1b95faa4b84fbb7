"""Seaborn figures of the train stage."""

from __future__ import annotations

import matplotlib.pyplot as plt
import pandas as pd
import seaborn as sns

LOSS_COLUMNS = ["step", "loss", "bias_loss", "lm_loss", "lr", "grad_norm", "grad_norm_bias", "grad_norm_lm",
                "grad_cos"]
DEV_COLUMNS = ["step", "dev_J", "dev_abs_delta", "dev_ppl"]


def loss_curves(log: pd.DataFrame, lambda_r: float) -> plt.Figure:
    """Per optimizer step: L and L_r, L_b, the learning rate applied, and the gradient norms of L_b and
    λ·L_r (before clipping; only on the steps where they were measured)."""
    long = log.melt(id_vars=["step"], value_vars=["loss", "bias_loss", "lm_loss"], var_name="part",
                    value_name="value")
    fig, axes = plt.subplots(1, 4, figsize=(17, 3.4))
    for ax, part in zip(axes[:2], (["loss", "lm_loss"], ["bias_loss"])):
        sns.lineplot(long[long["part"].isin(part)], x="step", y="value", hue="part", marker="o", ax=ax)
    axes[0].set(title="L and L_r")
    axes[1].set(title="L_b (bias)")
    sns.lineplot(log, x="step", y="lr", marker="o", ax=axes[2])
    axes[2].set(title="learning rate applied", ylim=(0, None))
    norms = pd.DataFrame({"step": log["step"], "|grad L_b|": log["grad_norm_bias"],
                          "lambda |grad L_r|": lambda_r * log["grad_norm_lm"], "|grad L| (total)": log["grad_norm"]})
    norms = norms.melt(id_vars="step", var_name="gradient", value_name="norm").dropna()
    if len(norms):
        sns.lineplot(norms, x="step", y="norm", hue="gradient", marker="o", ax=axes[3])
        axes[3].set_yscale("log")
    axes[3].set(title="gradient norms (before clipping)")
    fig.tight_layout()
    return fig


def dev_curve(dev: pd.DataFrame) -> plt.Figure:
    """Dev J, dev mean |delta| and dev perplexity against optimizer steps (step 0: the base model)."""
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.4))
    for ax, (col, title) in zip(axes, (("dev_J", "dev J (mean over dev pairs)"),
                                       ("dev_abs_delta", "dev mean |delta|"),
                                       ("dev_ppl", "dev perplexity (QNLI dev part)"))):
        sns.lineplot(dev, x="step", y=col, marker="o", ax=ax)
        ax.axhline(dev[col].iloc[0], color="grey", ls="--", lw=1)  # the base model
        ax.set(title=title)
    fig.tight_layout()
    return fig
