"""Seaborn figures of the train stage."""

from __future__ import annotations

import matplotlib.pyplot as plt
import pandas as pd
import seaborn as sns


def loss_curves(log: pd.DataFrame) -> plt.Figure:
    """Training loss L and its parts L_b and L_r per optimizer step, and the learning rate."""
    long = log.melt(id_vars=["step"], value_vars=["loss", "bias_loss", "lm_loss"], var_name="part",
                    value_name="value")
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.4))
    for ax, part in zip(axes[:2], (["loss", "lm_loss"], ["bias_loss"])):
        sns.lineplot(long[long["part"].isin(part)], x="step", y="value", hue="part", marker="o", ax=ax)
    axes[0].set(title="L and L_r")
    axes[1].set(title="L_b (bias)")
    sns.lineplot(log, x="step", y="lr", ax=axes[2])
    axes[2].set(title="learning rate")
    fig.tight_layout()
    return fig
