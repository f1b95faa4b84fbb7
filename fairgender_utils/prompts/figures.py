"""Seaborn figure of the prompts stage: the JSD of the prompts found, by prompt length."""

from __future__ import annotations

import matplotlib.pyplot as plt
import pandas as pd
import seaborn as sns


def jsd_by_length(prompts: pd.DataFrame, steps: pd.DataFrame, no_prompt: float) -> plt.Figure:
    """The top-K prompts' JSD per length (points), the mean JSD of every candidate scored at that length
    (line), and the JSD of the probe without a prompt (dashed)."""
    fig, ax = plt.subplots(figsize=(7, 3.8))
    sns.stripplot(prompts, x="length", y="jsd", native_scale=True, jitter=0.15, alpha=0.6, ax=ax,
                  label="top-K prompts")
    ax.plot(steps["length"], steps["jsd_mean"], "k-o", ms=4, label="mean of all candidates")
    ax.axhline(no_prompt, ls="--", c="grey", label="no prompt")
    handles, labels = ax.get_legend_handles_labels()
    keep = dict(zip(labels, handles))  # stripplot labels every point
    ax.legend(keep.values(), keep.keys(), fontsize=8)
    ax.set(xlabel="prompt length (words)", ylabel="mean JSD over the search pairs (nats)",
           xticks=sorted(prompts["length"].unique()), title="Auto-Debias prompt search")
    fig.tight_layout()
    return fig
