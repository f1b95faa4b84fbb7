"""Stage 02: causal alignment of the generated pairs (METHOD.md §4) - pairs, reference corpus, KNN, threshold.

The per-pair effects come from :mod:`fairgender_utils.causal.effects`, the alignment score from
:mod:`fairgender_utils.causal.scores`, the corrupted controls from :mod:`fairgender_utils.causal.controls`
and the X^C / X^NC views with their neighbour index from :mod:`fairgender_utils.causal.views`. Here: the
pairs (the test split is dropped as it is read), the reference corpus R (natural GLUE train sentences),
exact batched KNN, the threshold θ, the X^C mask and the neighbour index N(i).
"""

from __future__ import annotations

import itertools
import random
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from fairgender_utils.io import read_jsonl
from fairgender_utils.loaders import load_glue
from fairgender_utils.paths import repo_path

PAIR_KEYS = {"id": str, "attr_index": int, "male_word": str, "female_word": str, "target": str, "start": str,
             "s_m": str, "s_f": str, "step2": str, "split": str, "toxicity": float, "toxic": bool}
PAIR_VALUES = {"step2": ("llm", "swap"), "split": ("train", "dev", "test")}
SPLITS = ("train", "dev")  # the splits this stage reads; test pairs are dropped as the file is read


class EmptyAlignedSet(ValueError):
    """No pair passed the alignment threshold."""


def load_pairs(path: str) -> tuple[list[dict[str, Any]], int]:
    """The train and dev pairs of pairs.jsonl, each checked against the pair schema (the message names
    line and key), and how many test pairs were dropped (only their ``split`` is looked at)."""
    pairs, seen, n_test = [], set(), 0
    for n, rec in enumerate(read_jsonl(path), 1):
        if rec.get("split") not in PAIR_VALUES["split"]:
            raise ValueError(f"{path}: record {n}: key 'split' is {rec.get('split')!r}, not one of "
                             f"{PAIR_VALUES['split']}")
        if rec["split"] == "test":  # counted, never looked at
            n_test += 1
            continue
        for key, typ in PAIR_KEYS.items():
            value = rec.get(key)
            number = typ is float and isinstance(value, int) and not isinstance(value, bool)
            if not (isinstance(value, typ) or number):
                raise ValueError(f"{path}: record {n}: key '{key}' missing or not {typ.__name__} "
                                 f"(got {value!r})")
        if rec["step2"] not in PAIR_VALUES["step2"]:
            raise ValueError(f"{path}: record {n}: key 'step2' is {rec['step2']!r}, not one of "
                             f"{PAIR_VALUES['step2']}")
        if rec["id"] in seen:
            raise ValueError(f"{path}: record {n}: duplicate id '{rec['id']}'")
        seen.add(rec["id"])
        pairs.append(rec)
    if not any(p["split"] == "train" for p in pairs):
        raise ValueError(f"{path}: no train pairs ({len(pairs)} dev, {n_test} test)")
    return pairs, n_test


def reference_corpus(data_dir: str, tasks: Sequence[str], size: int, min_words: int, seed: int) -> list[str]:
    """R: distinct natural sentences (>= ``min_words`` words) from GLUE train sets, an equal share from each
    task (a task that runs out leaves its share to the others), in a seeded random order. CoLA gives only
    its sentences labelled acceptable (the others are ungrammatical by design)."""
    rng, seen, per_task = random.Random(seed), set(), []
    for task in tasks:
        texts = []
        examples, _ = load_glue(repo_path(data_dir), task, "train")
        for ex in examples:
            if task == "cola" and ex.label != 1.0:
                continue
            for text in (ex.text_a, ex.text_b):
                if text and len(text.split()) >= min_words and text not in seen:
                    seen.add(text)
                    texts.append(text)
        rng.shuffle(texts)
        per_task.append(texts)
    out = [t for group in itertools.zip_longest(*per_task) for t in group if t is not None][:size]
    rng.shuffle(out)
    return out


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


def threshold(a: np.ndarray, theta_mode: str, theta: float, shuffled: np.ndarray | None = None,
              reject: float | None = None) -> float:
    """θ: a value of a (absolute), the ``theta``-quantile of the pool's a (quantile), or the value that
    rejects the share ``reject`` of the shuffled controls' a (control)."""
    if theta_mode == "absolute":
        return float(theta)
    if theta_mode == "quantile":
        if not 0.0 <= theta <= 1.0:
            raise ValueError(f"theta={theta} must lie in [0, 1] when theta_mode is 'quantile'")
        return float(np.quantile(a, theta))
    if shuffled is None or not len(shuffled) or reject is None:
        raise ValueError("theta_mode 'control' needs the shuffled controls' alignment and the reject share")
    return float(np.quantile(shuffled, reject))


def split(a: np.ndarray, tau: np.ndarray, thr: float, tau_min: float = 0.0) -> np.ndarray:
    """Boolean mask of X^C: a_i >= ``thr`` and tau_i >= ``tau_min``."""
    if len(a) == 0:
        raise EmptyAlignedSet("the pool of pairs is empty: nothing to split")
    keep = (a >= thr) & (tau >= tau_min)
    if not keep.any():
        raise EmptyAlignedSet(
            f"X^C is empty: the threshold is a >= {thr:.4f}, but the alignment scores seen range over "
            f"[{a.min():.4f}, {a.max():.4f}] (tau_min={tau_min}; tau in [{tau.min():.4g}, {tau.max():.4g}]); "
            "lower theta (or theta_control_reject) or tau_min")
    return keep


def pairwise_similarities(emb: torch.Tensor) -> np.ndarray:
    """Cosines of every unordered pair of distinct rows (rows L2-normalised)."""
    i, j = torch.triu_indices(len(emb), len(emb), offset=1)
    return (emb[i] * emb[j]).sum(-1).double().numpy()


def sim_threshold(emb: torch.Tensor, mode: str, value: float) -> float:
    """sim_min as a cosine: ``value`` itself (absolute), or the ``value``-quantile of the pairwise cosines
    among the rows of ``emb`` (quantile: a neighbour must be closer than that share of all pairs)."""
    if mode == "absolute":
        return float(value)
    sims = pairwise_similarities(emb)
    if not len(sims):
        raise ValueError("sim_min_mode 'quantile' needs at least two pairs to measure similarities")
    return float(np.quantile(sims, value))


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
