"""The training set of a θ: X^C(θ) among the train pairs and its neighbour index, for tuning runs.

One call, :func:`training_sets`, gives a folder per θ that the training script reads as its ``causal_dir``
(aligned.jsonl, unaligned.jsonl, neighbours.jsonl, as the causal stage writes them). No forward pass: it
splits the causal stage's saved scores again (:func:`fairgender_utils.causal.views.load_saved` - the
effects table of the train and dev pairs, their embeddings, the stage's K_c, sim_min, tau_min and
screen - and :func:`~fairgender_utils.causal.views.split_and_neighbours`).

θ is given in params/causal.yaml's ``theta_mode``: ``control``, the share of the shuffled controls that the
threshold rejects (``theta_control_reject``; the controls' scores are the causal stage's ``controls`` plot
table); ``quantile``, a quantile of the train pool's a; ``absolute``, a value of a (both ``theta``).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from fairgender_utils.config import load
from fairgender_utils.paths import repo_path


def theta_key(theta_mode: str) -> str:
    """The params/causal.yaml key that a tuned θ sets."""
    return "theta_control_reject" if theta_mode == "control" else "theta"


def training_sets(thetas: Sequence[float], causal_params: str, model_path: str,
                  out_dir: str) -> dict[float, tuple[Path, float]]:
    """{θ: (folder of its training set, the threshold on a it stands for)}, folders ``out_dir/theta-<θ>``."""
    from fairgender_utils.causal import alignment, views

    cfg = load(causal_params, {"model_path": model_path}, check_paths=False)
    table, emb, index = views.load_saved(cfg.effects_path, cfg.embeddings_path, cfg.index_path)
    a = table["alignment"].to_numpy()[views.train_pool(table, index["screen_toxic"])]
    shuffled = None
    if cfg.theta_mode == "control":
        controls = pd.read_csv(repo_path(cfg.plots_dir) / "controls.csv")
        shuffled = controls.loc[controls["kind"] == "shuffled", "alignment"].to_numpy()
    out = {}
    for theta in thetas:
        thr = alignment.threshold(a, cfg.theta_mode, theta, shuffled, theta)
        view = views.split_and_neighbours(table, emb, thr, index["tau_min"], index["k_c"], index["sim_min"],
                                          index["screen_toxic"])
        folder = repo_path(out_dir) / f"theta-{theta:g}"
        views.write_view(view, table, folder)
        out[theta] = (folder, thr)
    return out
