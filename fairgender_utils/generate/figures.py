"""Seaborn figures of the generate stage; each returns (figure, the data it plots)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns

def comparison(rates: pd.DataFrame) -> tuple[plt.Figure, pd.DataFrame]:
    """Valid-pair rate per generator: LLM-written in both steps (bar, Wilson 95% CI) and with swapped
    pairs (dot)."""
    fig, ax = plt.subplots(figsize=(6, 0.9 + 0.7 * len(rates)))
    y = np.arange(len(rates))
    err = [rates.valid_rate_llm - rates.ci_low, rates.ci_high - rates.valid_rate_llm]
    ax.barh(y, rates.valid_rate_llm, xerr=err, capsize=4, color="tab:blue", label="LLM steps 1+2")
    ax.scatter(rates.valid_rate, y, color="tab:orange", zorder=3, label="with swapped pairs")
    ax.set_yticks(y, [f"{g}\n(n={n})" for g, n in zip(rates.generator, rates.cells, strict=True)])
    ax.set(xlim=(0, 1), xlabel="valid-pair rate", title="generators on the same grid cells")
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    return fig, rates


def reasons(outcomes: pd.DataFrame) -> tuple[plt.Figure, pd.DataFrame]:
    """Share of cells per outcome: a pair written by the LLM in both steps, a swapped pair (after the
    LLM rewrite failed for the reason shown), or the reject reason."""
    lab = outcomes.assign(outcome=np.where(outcomes.status == "rejected", outcomes.reason,
                                           np.where(outcomes.status == "swap",
                                                    "swap after " + outcomes.reason, "llm (both steps)")))
    data = lab.groupby(["generator", "outcome"], sort=False).size().rename("cells").reset_index()
    data["share"] = data.cells / data.groupby("generator").cells.transform("sum")
    order = data.groupby("outcome").share.sum().sort_values(ascending=False).index
    fig, ax = plt.subplots(figsize=(7, 0.8 + 0.32 * len(order)))
    sns.barplot(data, y="outcome", x="share", hue="generator", order=order, ax=ax)
    ax.set(title="outcome of each grid cell (reject reasons by step)", ylabel="", xlabel="share of cells")
    fig.tight_layout()
    return fig, data


def _ranges(edges: np.ndarray) -> list[str]:
    return [f"{int(lo)}-{int(hi) - 1}" for lo, hi in zip(edges[:-1], edges[1:], strict=True)]


def balance(outcomes: pd.DataFrame, n_attributes: int, targets: Sequence[str], attr_groups: int = 16,
            target_groups: int = 12) -> tuple[plt.Figure, pd.DataFrame]:
    """Sampled cells and kept pairs over the attribute x target grid, in blocks of neighbouring list entries.

    The grid is far larger than any sample, so cells are counted in ``attr_groups`` x ``target_groups``
    blocks: the first map shows how evenly the sample covers the grid, the others where pairs written by
    the LLM in both steps and swapped pairs came from.
    """
    t_index = {t: i for i, t in enumerate(targets)}
    a_edges = np.linspace(0, n_attributes, attr_groups + 1)
    t_edges = np.linspace(0, len(targets), target_groups + 1)
    data = outcomes.assign(target_index=outcomes.target.map(t_index), llm=outcomes.status == "llm",
                           swap=outcomes.status == "swap")
    data["attr_block"] = np.searchsorted(a_edges, data.attr_index, side="right") - 1
    data["target_block"] = np.searchsorted(t_edges, data.target_index, side="right") - 1
    fig, axes = plt.subplots(1, 3, figsize=(19, 5.2), sharey=True)
    panels = (("sampled cells", None), ("pairs written by the LLM", "llm"), ("swapped pairs", "swap"))
    for ax, (title, values) in zip(axes, panels, strict=True):
        grid = np.zeros((attr_groups, target_groups), dtype=int)
        sub = data if values is None else data[data[values]]
        np.add.at(grid, (sub.attr_block.to_numpy(), sub.target_block.to_numpy()), 1)
        sns.heatmap(grid, annot=grid.size <= 400, fmt="d", cmap="viridis", cbar=True, ax=ax,
                    xticklabels=_ranges(t_edges), yticklabels=_ranges(a_edges))
        ax.set(title=f"{title}: {len(sub)}", xlabel="target words (list index)")
        ax.tick_params(axis="x", labelrotation=90)
    axes[0].set(ylabel="attribute pairs j (list index)")
    fig.tight_layout()
    return fig, data[["generator", "id", "attr_index", "target", "start", "status", "reason", "attr_block",
                      "target_block"]]


def lengths(pairs: Sequence[dict[str, Any]],
            rejects: Sequence[dict[str, Any]]) -> tuple[plt.Figure, pd.DataFrame]:
    """Words per sentence of kept pairs (LLM-written and swapped apart) and of the rejects' step-1 sentence."""
    rows = [{"set": f"{p['step2']} pairs", "words": len(p["s_m" if p["start"] == "m" else "s_f"].split())}
            for p in pairs]
    rows += [{"set": "rejects (step 1)", "words": len((r["s_m"] if r["start"] == "m" else r["s_f"]).split())}
             for r in rejects]
    data = pd.DataFrame(rows, columns=["set", "words"])
    fig, ax = plt.subplots(figsize=(7, 3.2))
    if len(data):
        sns.histplot(data, x="words", hue="set", discrete=True, element="step", stat="count", ax=ax)
    ax.set(title="sentence length (words, the step-1 sentence)")
    fig.tight_layout()
    return fig, data


def splits(table: pd.DataFrame) -> tuple[plt.Figure, pd.DataFrame]:
    """Pairs per split, LLM-written and swapped stacked, with the number of target words."""
    fig, ax = plt.subplots(figsize=(6, 2.8))
    ax.barh(table.split, table.pairs_llm, color="tab:blue", label="llm (both steps)")
    ax.barh(table.split, table.pairs_swap, left=table.pairs_llm, color="tab:orange", label="swap")
    for y, (n, t) in enumerate(zip(table.pairs, table.target_words, strict=True)):
        ax.text(n, y, f" {n} pairs, {t} target words", va="center", fontsize=8)
    ax.set(xlabel="pairs", title="splits by target word", xlim=(0, 1.45 * max(table.pairs.max(), 1)))
    ax.invert_yaxis()
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    return fig, table
