"""The X^C / X^NC views of stage 02 and their neighbour index, written for training, and re-split later.

A *view* is the split of one pool of **train** pairs at a threshold θ, with the neighbour index N(i)
among its aligned pairs (``neighbours``) and among the whole pool (``neighbours_all``). The screened pool
(toxic pairs dropped) gives the stage's main outputs; the unscreened pool (every train pair) goes to
``unscreened_dir`` for the ``no_screen`` ablation. Dev pairs never enter a view: they are written to
``dev_path`` with their effects, a and whether they pass θ (diagnostics, and tuning reads them).

Everything a later step needs to split again at another θ without a forward pass is saved:
``effects_path`` (every train and dev pair, its fields, effects and a), ``embeddings_path`` (the pair
embeddings, rows in the same order) and ``index_path`` (θ, sim_min as a cosine, K_c, tau_min, screen).
:func:`load_saved` reads them back and :func:`split_and_neighbours` is the split, a pure function.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from safetensors.torch import load_file, save_file

from fairgender_utils.causal.alignment import PAIR_KEYS, neighbour_index, split
from fairgender_utils.io import write_json, write_jsonl
from fairgender_utils.paths import repo_path

EFFECT_COLUMNS = ("rule", "tau", "effect", "delta", "omega", "context_jsd", "alignment")


def train_pool(table: pd.DataFrame, screen_toxic: bool) -> np.ndarray:
    """Boolean mask of the rows a view splits: train pairs (not flagged toxic when screening)."""
    pool = (table["split"] == "train").to_numpy()
    return pool & ~table["toxic"].to_numpy(dtype=bool) if screen_toxic else pool


def split_and_neighbours(table: pd.DataFrame, pair_emb: torch.Tensor, threshold: float, tau_min: float,
                         k_c: int, sim_min: float, screen_toxic: bool) -> dict[str, Any]:
    """The view of the train pool at ``threshold``: rows of X^C and X^NC (indices into ``table``) and the
    neighbour records (ids). No forward pass: ``table`` and ``pair_emb`` come from :func:`load_saved`."""
    rows = np.flatnonzero(train_pool(table, screen_toxic))
    keep = split(table["alignment"].to_numpy()[rows], table["tau"].to_numpy()[rows], threshold, tau_min)
    aligned, ids = rows[keep], table["id"].to_numpy()
    nb_c = neighbour_index(pair_emb[aligned], k_c, sim_min)
    nb_all = neighbour_index(pair_emb[rows], k_c, sim_min)
    in_c = dict(zip(aligned.tolist(), nb_c))
    records = []
    for r, (nb, sims) in zip(rows.tolist(), nb_all):
        own = in_c.get(r, ([], []))
        records.append({"id": ids[r], "aligned": r in in_c,
                        "neighbours": [ids[aligned[j]] for j in own[0]], "sims": own[1],
                        "neighbours_all": [ids[rows[j]] for j in nb], "sims_all": sims})
    return {"aligned_rows": aligned, "unaligned_rows": rows[~keep], "threshold": float(threshold),
            "sim_min": float(sim_min), "neighbours": records}


def pair_records(table: pd.DataFrame, rows: np.ndarray) -> list[dict[str, Any]]:
    """Pair fields (the pairs.jsonl schema) and effect columns of ``rows``, as training reads them."""
    out = []
    for r in rows.tolist():
        row = table.iloc[r]
        rec = {k: typ(row[k]) for k, typ in PAIR_KEYS.items()}
        rec["rule"] = str(row["rule"])
        rec.update({c: (None if pd.isna(row[c]) else float(row[c])) for c in EFFECT_COLUMNS[1:]})
        out.append(rec)
    return out


def write_view(view: dict[str, Any], table: pd.DataFrame, folder: str | Path | None = None,
               aligned_path: str | None = None, unaligned_path: str | None = None,
               neighbours_path: str | None = None) -> None:
    """aligned.jsonl, unaligned.jsonl, neighbours.jsonl of a view (into ``folder``, or the paths given)."""
    paths = [p or f"{folder}/{name}" for p, name in ((aligned_path, "aligned.jsonl"),
                                                      (unaligned_path, "unaligned.jsonl"),
                                                      (neighbours_path, "neighbours.jsonl"))]
    write_jsonl(paths[0], pair_records(table, view["aligned_rows"]))
    write_jsonl(paths[1], pair_records(table, view["unaligned_rows"]))
    write_jsonl(paths[2], view["neighbours"])


def passes(table: pd.DataFrame, threshold: float, tau_min: float, screen_toxic: bool) -> np.ndarray:
    """Rows (any split) that would be in X^C: a >= θ, tau >= tau_min, and not toxic when screening."""
    ok = (table["alignment"] >= threshold).to_numpy() & (table["tau"] >= tau_min).to_numpy()
    return ok & ~table["toxic"].to_numpy(dtype=bool) if screen_toxic else ok


def write_outputs(cfg, table: pd.DataFrame, pair_emb: torch.Tensor, threshold: float,
                  sim_min: float) -> dict[str, dict[str, Any]]:
    """Build and write the screened view (main outputs) and the unscreened one, the dev pairs, the effects
    table with the membership of every row, the pair embeddings and the index values. Returns the views."""
    views = {"screened": split_and_neighbours(table, pair_emb, threshold, cfg.tau_min, cfg.k_c, sim_min,
                                              cfg.screen_toxic)}
    write_view(views["screened"], table, aligned_path=cfg.aligned_path, unaligned_path=cfg.unaligned_path,
               neighbours_path=cfg.neighbours_path)
    if cfg.unscreened_dir:
        views["unscreened"] = split_and_neighbours(table, pair_emb, threshold, cfg.tau_min, cfg.k_c, sim_min,
                                                   False)
        write_view(views["unscreened"], table, cfg.unscreened_dir.rstrip("/"))
    table["aligned"] = passes(table, threshold, cfg.tau_min, cfg.screen_toxic)
    for name, view in views.items():
        if name == "unscreened":
            table["aligned_unscreened"] = passes(table, threshold, cfg.tau_min, False)
        table[f"in_pool_{name}"] = False
        table.loc[np.concatenate([view["aligned_rows"], view["unaligned_rows"]]), f"in_pool_{name}"] = True
    dev = np.flatnonzero((table["split"] == "dev").to_numpy())
    write_jsonl(cfg.dev_path, [{**rec, "aligned": bool(table["aligned"].iloc[r])}
                               for r, rec in zip(dev.tolist(), pair_records(table, dev))])
    out = repo_path(cfg.effects_path)
    out.parent.mkdir(parents=True, exist_ok=True)
    table.to_csv(out, index=False)
    emb_out = repo_path(cfg.embeddings_path)
    emb_out.parent.mkdir(parents=True, exist_ok=True)
    save_file({"pair_embeddings": pair_emb.contiguous()}, str(emb_out),
              metadata={"ids": json.dumps(table["id"].tolist())})
    write_json(cfg.index_path, {"threshold": threshold, "theta_mode": cfg.theta_mode, "sim_min": sim_min,
                                "k_c": cfg.k_c, "tau_min": cfg.tau_min, "screen_toxic": cfg.screen_toxic})
    return views


def load_saved(effects_path: str, embeddings_path: str,
               index_path: str) -> tuple[pd.DataFrame, torch.Tensor, dict[str, Any]]:
    """The effects table, the pair embeddings (rows checked against the table's ids) and the index values
    the stage wrote: what :func:`split_and_neighbours` needs to split at another θ."""
    table = pd.read_csv(repo_path(effects_path), keep_default_na=False, na_values=[""])
    from safetensors import safe_open

    with safe_open(str(repo_path(embeddings_path)), "pt") as f:
        ids = json.loads(f.metadata()["ids"])
    if ids != table["id"].astype(str).tolist():
        raise ValueError(f"{embeddings_path}: its rows are not the pairs of {effects_path} in order "
                         "(rerun the causal stage)")
    emb = load_file(str(repo_path(embeddings_path)))["pair_embeddings"]
    index = json.loads(repo_path(index_path).read_text())
    return table, emb, index
