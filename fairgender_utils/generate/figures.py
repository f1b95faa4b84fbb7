"""Seaborn figures of the generate stage; each returns (figure, the data it plots)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns

def comparison(rates: pd.DataFrame) -> tuple[plt.Figure, pd.DataFrame]:
    """Valid-pair rate per generator: LLM alone (bar, Wilson 95% CI) and with deterministic repairs (dot)."""
    fig, ax = plt.subplots(figsize=(6, 0.9 + 0.7 * len(rates)))
    y = np.arange(len(rates))
    err = [rates.valid_rate_llm - rates.ci_low, rates.ci_high - rates.valid_rate_llm]
    ax.barh(y, rates.valid_rate_llm, xerr=err, capsize=4, color="tab:blue", label="LLM steps 1+2")
    ax.scatter(rates.valid_rate_with_repair, y, color="tab:orange", zorder=3, label="with step-2 repair")
    ax.set_yticks(y, [f"{g}\n(n={n})" for g, n in zip(rates.generator, rates.cells, strict=True)])
    ax.set(xlim=(0, 1), xlabel="valid-pair rate", title="generators on the same grid cells")
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    return fig, rates


def reasons(outcomes: pd.DataFrame) -> tuple[plt.Figure, pd.DataFrame]:
    """Share of cells per outcome (valid, repaired after the step-2 failure, or the reject reason)."""
    lab = outcomes.assign(outcome=np.where(outcomes.status == "rejected", outcomes.reason,
                                           np.where(outcomes.status == "repaired",
                                                    "repaired after " + outcomes.reason, outcomes.status)))
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

    The grid (222 x 168) is far larger than any sample, so cells are counted in ``attr_groups`` x
    ``target_groups`` blocks: the left map shows how evenly the sample covers the grid, the right one
    where pairs survived validation.
    """
    t_index = {t: i for i, t in enumerate(targets)}
    a_edges = np.linspace(0, n_attributes, attr_groups + 1)
    t_edges = np.linspace(0, len(targets), target_groups + 1)
    data = outcomes.assign(target_index=outcomes.target.map(t_index),
                           kept=outcomes.status.isin(["valid", "repaired"]))
    data["attr_block"] = np.searchsorted(a_edges, data.attr_index, side="right") - 1
    data["target_block"] = np.searchsorted(t_edges, data.target_index, side="right") - 1
    fig, axes = plt.subplots(1, 2, figsize=(13, 5.2), sharey=True)
    for ax, (title, values) in zip(axes, (("sampled cells", None), ("kept pairs (valid + repaired)", "kept")),
                                   strict=True):
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
    """Words per sentence: s_m and s_f of kept pairs, and the step-1 sentence of rejects."""
    rows = [{"set": f"pairs {side}", "words": len(p[side].split())} for p in pairs for side in ("s_m", "s_f")]
    rows += [{"set": "rejects (step 1)", "words": len((r["s_m"] if r["start"] == "m" else r["s_f"]).split())}
             for r in rejects]
    data = pd.DataFrame(rows, columns=["set", "words"])
    fig, ax = plt.subplots(figsize=(7, 3.2))
    if len(data):
        sns.histplot(data, x="words", hue="set", discrete=True, element="step", stat="count", ax=ax)
    ax.set(title="sentence length (words)")
    fig.tight_layout()
    return fig, data
