"""Stage 02: causal alignment of the generated pairs (METHOD.md §4) - configuration, KNN, split, index.

The per-pair effects come from :mod:`fairgender_utils.causal.effects`. Here: the reference corpus R (GLUE train
sentences), exact batched KNN in the frozen model's embedding space, the alignment score a_i, the
X^C / X^NC split by θ, and the neighbour index N(i) that the training loss L_b uses.

Toxicity screen. Effects, embeddings and a_i are computed once for every pair, toxic or not. A *view*
is the split and neighbour index of one pool of pairs: the screened pool (toxic pairs dropped) gives the
stage's main outputs; the unscreened pool (every pair) is written to ``unscreened_dir`` for the
``no_screen`` ablation. θ as a quantile is taken over the pool of each view.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from typing import Any, Literal

import numpy as np
import pandas as pd
import torch
from pydantic import Field

from fairgender_utils.causal.config import CausalConfig
from fairgender_utils.io import read_jsonl, write_jsonl
from fairgender_utils.loaders import GLUE_TASKS, load_glue
from fairgender_utils.paths import repo_path

PAIR_KEYS = {"id": str, "attr_index": int, "male_word": str, "female_word": str, "target": str, "start": str,
             "s_m": str, "s_f": str, "step2": str, "split": str, "toxicity": float, "toxic": bool}


class EmptyAlignedSet(ValueError):
    """No pair passed the alignment threshold."""


def load_pairs(path: str) -> list[dict[str, Any]]:
    """Read pairs.jsonl and check every record against the pair schema (the message names line and key)."""
    pairs, seen = [], set()
    for n, rec in enumerate(read_jsonl(path), 1):
        for key, typ in PAIR_KEYS.items():
            value = rec.get(key)
            number = typ is float and isinstance(value, int) and not isinstance(value, bool)
            if not (isinstance(value, typ) or number):
                raise ValueError(f"{path}: record {n}: key '{key}' missing or not {typ.__name__} "
                                 f"(got {value!r})")
        if rec["id"] in seen:
            raise ValueError(f"{path}: record {n}: duplicate id '{rec['id']}'")
        seen.add(rec["id"])
        pairs.append(rec)
    if not pairs:
        raise ValueError(f"{path}: no pairs")
    return pairs


def reference_corpus(data_dir: str, tasks: Sequence[str], size: int, min_words: int, seed: int) -> list[str]:
    """R: distinct natural sentences (>= ``min_words`` words) from GLUE train sets, a seeded sample."""
    seen: dict[str, None] = {}
    for task in tasks:
        examples, _ = load_glue(repo_path(data_dir), task, "train")
        for ex in examples:
            for text in (ex.text_a, ex.text_b):
                if text and len(text.split()) >= min_words:
                    seen.setdefault(text, None)
    pool = list(seen)
    random.Random(seed).shuffle(pool)
    return pool[:size]


def knn(queries: torch.Tensor, keys: torch.Tensor, k: int, chunk: int = 1024,
        exclude_self: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """Exact top-``k`` cosine neighbours (rows L2-normalised): (similarities, indices), each [n, k]."""
    k = min(k, keys.shape[0] - int(exclude_self))
    sims, idx = [], []
    for b in range(0, queries.shape[0], chunk):
        s = queries[b:b + chunk] @ keys.T
        if exclude_self:
            rows = torch.arange(s.shape[0])
            s[rows, rows + b] = -float("inf")
        v, i = s.topk(k, dim=1)
        sims.append(v)
        idx.append(i)
    return torch.cat(sims), torch.cat(idx)


def alignment(emb_m: torch.Tensor, emb_f: torch.Tensor, ref: torch.Tensor, k: int) -> torch.Tensor:
    """a_i: mean cosine to the ``k`` nearest reference sentences, averaged over s^m and s^f."""
    return 0.5 * (knn(emb_m, ref, k)[0].mean(1) + knn(emb_f, ref, k)[0].mean(1))


def split(a: np.ndarray, tau: np.ndarray, theta_mode: str, theta: float,
          tau_min: float = 0.0) -> tuple[np.ndarray, float]:
    """Boolean mask of X^C (a_i >= threshold and tau_i >= tau_min) and the threshold used."""
    if len(a) == 0:
        raise EmptyAlignedSet("the pool of pairs is empty: nothing to split")
    if theta_mode == "quantile" and not 0.0 <= theta <= 1.0:
        raise ValueError(f"theta={theta} must lie in [0, 1] when theta_mode is 'quantile'")
    thr = float(np.quantile(a, theta)) if theta_mode == "quantile" else float(theta)
    keep = (a >= thr) & (tau >= tau_min)
    if not keep.any():
        raise EmptyAlignedSet(
            f"X^C is empty: theta={theta} ({theta_mode}) gives the threshold a >= {thr:.4f}, but the "
            f"alignment scores seen range over [{a.min():.4f}, {a.max():.4f}] (tau_min={tau_min}; tau in "
            f"[{tau.min():.4g}, {tau.max():.4g}]); lower theta or tau_min")
    return keep, thr


def neighbour_index(emb: torch.Tensor, k_c: int, sim_min: float) -> list[tuple[list[int], list[float]]]:
    """For each row, up to ``k_c`` other rows with cosine >= ``sim_min``, most similar first."""
    if k_c == 0 or emb.shape[0] < 2:
        return [([], []) for _ in range(emb.shape[0])]
    sims, idx = knn(emb, emb, k_c, exclude_self=True)
    out = []
    for s, i in zip(sims.tolist(), idx.tolist()):
        keep = [(j, v) for j, v in zip(i, s) if v >= sim_min]
        out.append(([j for j, _ in keep], [round(v, 6) for _, v in keep]))
    return out


def pair_embeddings(emb_m: torch.Tensor, emb_f: torch.Tensor) -> torch.Tensor:
    """One unit vector per pair: the normalised mean of its two sentence embeddings."""
    return torch.nn.functional.normalize(emb_m + emb_f, dim=-1)


def build_view(table: pd.DataFrame, pair_emb: torch.Tensor, pool: np.ndarray,
               cfg: CausalConfig) -> dict[str, Any]:
    """Split one pool (boolean mask over ``table`` rows) and index neighbours among X^C and the pool."""
    rows = np.flatnonzero(pool)
    keep, thr = split(table["alignment"].to_numpy()[rows], table["tau"].to_numpy()[rows], cfg.theta_mode,
                      cfg.theta, cfg.tau_min)
    aligned, ids = rows[keep], table["id"].to_numpy()
    nb_c = neighbour_index(pair_emb[aligned], cfg.k_c, cfg.sim_min)
    nb_all = neighbour_index(pair_emb[rows], cfg.k_c, cfg.sim_min)
    in_c = dict(zip(aligned.tolist(), nb_c))
    records = []
    for r, (nb, sims) in zip(rows.tolist(), nb_all):
        own = in_c.get(r, ([], []))
        records.append({"id": ids[r], "aligned": r in in_c,
                        "neighbours": [ids[aligned[j]] for j in own[0]], "sims": own[1],
                        "neighbours_all": [ids[rows[j]] for j in nb], "sims_all": sims})
    return {"aligned_rows": aligned, "unaligned_rows": rows[~keep], "threshold": thr, "neighbours": records}


def write_view(view: dict[str, Any], pairs: Sequence[dict[str, Any]], table: pd.DataFrame,
               aligned_path: str, unaligned_path: str, neighbours_path: str) -> None:
    """Write aligned / unaligned pairs (pair fields + effect columns) and the neighbour index."""
    by_id = {p["id"]: p for p in pairs}
    cols = ["rule", "tau", "effect", "delta", "omega", "context_jsd", "alignment"]

    def records(rows: np.ndarray) -> list[dict[str, Any]]:
        out = []
        for r in rows.tolist():
            row = table.iloc[r]
            out.append({**by_id[row["id"]], "rule": row["rule"],
                        **{c: (None if pd.isna(row[c]) else float(row[c])) for c in cols[1:]}})
        return out

    write_jsonl(aligned_path, records(view["aligned_rows"]))
    write_jsonl(unaligned_path, records(view["unaligned_rows"]))
    write_jsonl(neighbours_path, view["neighbours"])


def embed(model, tokenizer, texts: Sequence[str], batch_size: int, max_length: int,
          desc: str | None = None) -> torch.Tensor:
    """L2-normalised mean-pooled last hidden states of the frozen model (its body only: no LM head)."""
    from fairgender_utils.lm.embed import mean_pooled

    return mean_pooled(model.base_model, tokenizer, texts, batch_size=batch_size, normalize=True,
                       max_length=max_length, desc=desc)


def score_pairs(model, tokenizer, family: str, pairs: Sequence[dict[str, Any]], ref_emb: torch.Tensor,
                cfg: CausalConfig) -> tuple[pd.DataFrame, torch.Tensor, dict[str, str]]:
    """Effects, alignment and metadata of every scorable pair (one table row each, in file order), the
    pair embeddings (same order) and {id: reason} for pairs that cannot be scored."""
    from fairgender_utils.causal.effects import pair_effects

    eff, failed = pair_effects(model, tokenizer, family, pairs, cfg.batch_size, cfg.max_length,
                               desc="effects")
    kept = [p for p in pairs if p["id"] not in failed]
    eff = eff.set_index("id").loc[[p["id"] for p in kept]].reset_index()
    emb_m = embed(model, tokenizer, [p["s_m"] for p in kept], cfg.batch_size, cfg.max_length, "embed s_m")
    emb_f = embed(model, tokenizer, [p["s_f"] for p in kept], cfg.batch_size, cfg.max_length, "embed s_f")
    meta = pd.DataFrame([{k: p[k] for k in ("attr_index", "male_word", "female_word", "target", "start",
                                             "step2", "split", "toxicity", "toxic")} for p in kept])
    meta["words_m"] = [len(p["s_m"].split()) for p in kept]
    meta["words_f"] = [len(p["s_f"].split()) for p in kept]
    table = pd.concat([eff, meta], axis=1)
    table["alignment"] = alignment(emb_m, emb_f, ref_emb, cfg.k_ref).double().numpy()
    table["loglik"] = 0.5 * (table["loglik_m"] + table["loglik_f"])
    table["words"] = 0.5 * (table["words_m"] + table["words_f"])
    return table, pair_embeddings(emb_m, emb_f), failed


def write_outputs(cfg: CausalConfig, pairs: Sequence[dict[str, Any]], table: pd.DataFrame,
                  pair_emb: torch.Tensor) -> dict[str, dict[str, Any]]:
    """Build and write the screened view (main outputs) and the unscreened one; write effects.csv with
    the membership of every pair in both. Returns the views by name."""
    toxic = table["toxic"].to_numpy(dtype=bool)
    pool = ~toxic if cfg.screen_toxic else np.ones_like(toxic)
    views = {"screened": build_view(table, pair_emb, pool, cfg)}
    write_view(views["screened"], pairs, table, cfg.aligned_path, cfg.unaligned_path, cfg.neighbours_path)
    if cfg.unscreened_dir:
        views["unscreened"] = build_view(table, pair_emb, np.ones_like(toxic), cfg)
        d = cfg.unscreened_dir.rstrip("/")
        write_view(views["unscreened"], pairs, table, f"{d}/aligned.jsonl", f"{d}/unaligned.jsonl",
                   f"{d}/neighbours.jsonl")
    for name, view in views.items():
        col = "aligned" if name == "screened" else "aligned_unscreened"
        table[col] = False
        table.loc[view["aligned_rows"], col] = True
        table[f"in_pool_{name}"] = False
        table.loc[np.concatenate([view["aligned_rows"], view["unaligned_rows"]]), f"in_pool_{name}"] = True
    out = repo_path(cfg.effects_path)
    out.parent.mkdir(parents=True, exist_ok=True)
    table.to_csv(out, index=False)
    return views
