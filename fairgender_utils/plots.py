"""The one writer of a figure and its data: ``<figures_dir>/<name>.png`` for readers and
``<plots_dir>/<name>.csv`` for ``dvc plots show``. Returns nothing, so a notebook cell that ends with it
prints no path of the machine that ran it."""

from __future__ import annotations

import matplotlib.pyplot as plt
import pandas as pd

from fairgender_utils.paths import repo_path


def save_figure(fig: plt.Figure | None, data: pd.DataFrame, figures_dir: str, plots_dir: str, name: str) -> None:
    """Write the figure as PNG (unless ``fig`` is None: a plot table only) and the plotted data as CSV."""
    if fig is not None:
        png = repo_path(figures_dir) / f"{name}.png"
        png.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(png, dpi=120, bbox_inches="tight")
    csv = repo_path(plots_dir) / f"{name}.csv"
    csv.parent.mkdir(parents=True, exist_ok=True)
    data.to_csv(csv, index=False)
