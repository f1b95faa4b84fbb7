"""The training set of a θ: X^C(θ) among the train-split pairs and its neighbour index, for tuning runs.

One call, :func:`training_sets`, gives a folder per θ that the training script reads as its ``causal_dir``
(aligned.jsonl, unaligned.jsonl, neighbours.jsonl). It applies the causal stage's own split and index code
(:func:`fairgender_utils.causal.alignment.build_view`, ``write_view``) to the stage's saved per-pair scores
(``effects_path``: alignment a_i, τ_i) restricted to the train split, with θ in params/causal.yaml's
``theta_mode`` and every other value of that file; the pair embeddings the neighbour index needs are
recomputed once for the train pairs (the causal stage does not save them). Only train pairs are read.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from fairgender_utils.config import load
from fairgender_utils.loaders.pairs import load_split
from fairgender_utils.paths import repo_path


def training_sets(thetas: Sequence[float], causal_params: str, model_path: str, out_dir: str) -> dict[float, Path]:
    """{θ: folder of its training set} under ``out_dir`` (``theta-<θ>``)."""
    from fairgender_utils.causal import alignment
    from fairgender_utils.lm.loading import load_model

    base = load(causal_params, {"model_path": model_path}, check_paths=False)
    pairs = load_split(repo_path(base.pairs_path), "train")
    by_id = {p["id"]: p for p in pairs}
    effects = pd.read_csv(repo_path(base.effects_path))
    table = effects[effects["id"].isin(by_id)].reset_index(drop=True)  # the train pairs stage 02 could score
    kept = [by_id[i] for i in table["id"]]
    model, tok, _ = load_model(model_path)
    emb_m = alignment.embed(model, tok, [p["s_m"] for p in kept], base.batch_size, base.max_length, "embed s_m")
    emb_f = alignment.embed(model, tok, [p["s_f"] for p in kept], base.batch_size, base.max_length, "embed s_f")
    pair_emb = alignment.pair_embeddings(emb_m, emb_f)
    toxic = table["toxic"].to_numpy(dtype=bool)
    pool = ~toxic if base.screen_toxic else np.ones_like(toxic)
    out = {}
    for theta in thetas:
        cfg = load(causal_params, {"model_path": model_path, "theta": theta}, check_paths=False)
        folder = repo_path(out_dir) / f"theta-{theta:g}"
        view = alignment.build_view(table, pair_emb, pool, cfg)
        alignment.write_view(view, kept, table, str(folder / "aligned.jsonl"), str(folder / "unaligned.jsonl"),
                             str(folder / "neighbours.jsonl"))
        out[theta] = folder
    return out
