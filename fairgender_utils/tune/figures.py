"""Seaborn figures of the tune stage."""

from __future__ import annotations

import matplotlib.pyplot as plt
import pandas as pd
import seaborn as sns


def dev_curves(table: pd.DataFrame, max_ppl_rise: float) -> plt.Figure:
    """Dev J and the dev perplexity's rise over the base model against steps, one line per grid point; the
    rule's bound dashed, the chosen point circled."""
    fig, axes = plt.subplots(1, 2, figsize=(14, 4.2))
    for ax, col, title in ((axes[0], "dev_J", "dev J (mean over dev pairs)"),
                           (axes[1], "ppl_rise", "dev perplexity rise over the base model")):
        sns.lineplot(table, x="step", y=col, hue="run", marker="o", ax=ax, legend=ax is axes[1])
        chosen = table[table["chosen"]]
        ax.scatter(chosen["step"], chosen[col], s=250, facecolors="none", edgecolors="black", lw=2, zorder=5)
        ax.set(title=title)
    axes[1].axhline(max_ppl_rise, color="grey", ls="--", lw=1)
    axes[1].yaxis.set_major_formatter(lambda v, _: f"{v:.0%}")
    axes[1].legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1))
    fig.tight_layout()
    return fig
