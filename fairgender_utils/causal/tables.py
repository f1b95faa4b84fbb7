"""Scoring of stage 02: one table row per real pair (effects, alignment, metadata) and one per control."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pandas as pd
import torch

from fairgender_utils.causal.alignment import PAIR_KEYS, pair_embeddings
from fairgender_utils.causal.config import CausalConfig
from fairgender_utils.causal.scores import Reference, default_variant, pair_scores
from fairgender_utils.lm.embed import SentenceFeatures, sentence_features


def pair_features(model, tokenizer, family: str, records: Sequence[dict[str, Any]], cfg: CausalConfig,
                  desc: str | None = None) -> SentenceFeatures:
    """Embeddings and log-likelihoods of [s^m of every record, then s^f of every record]."""
    texts = [r["s_m"] for r in records] + [r["s_f"] for r in records]
    return sentence_features(model, tokenizer, texts, family, cfg.batch_size, cfg.max_length, loglik=True,
                             desc=desc)


def score_pairs(model, tokenizer, family: str, pairs: Sequence[dict[str, Any]], ref: Reference,
                cfg: CausalConfig) -> tuple[pd.DataFrame, torch.Tensor, dict[str, str], SentenceFeatures]:
    """Effects, alignment and every pair field of each scorable pair (one row each, in file order), the
    pair embeddings (same order), {id: reason} for the pairs that cannot be scored, and the sentence
    features behind a (for the comparison of scorings)."""
    from fairgender_utils.causal.effects import pair_effects

    eff, failed = pair_effects(model, tokenizer, family, pairs, cfg.batch_size, cfg.max_length,
                               desc="effects")
    kept = [p for p in pairs if p["id"] not in failed]
    eff = eff.set_index("id").loc[[p["id"] for p in kept]].reset_index()
    feats = pair_features(model, tokenizer, family, kept, cfg, desc="embed pairs")
    meta = pd.DataFrame([{k: p[k] for k in ("attr_index", "male_word", "female_word", "target", "start",
                                             "step2", "split", "toxicity", "toxic")} for p in kept])
    meta["s_m"], meta["s_f"] = [p["s_m"] for p in kept], [p["s_f"] for p in kept]
    meta["words_m"] = [len(p["s_m"].split()) for p in kept]
    meta["words_f"] = [len(p["s_f"].split()) for p in kept]
    scores = pair_scores(feats, ref, cfg.k_ref, default_variant(cfg.knn_weight))
    table = pd.concat([eff, meta, scores], axis=1)
    table["loglik"] = 0.5 * (table["loglik_m"] + table["loglik_f"])
    table["words"] = 0.5 * (table["words_m"] + table["words_f"])
    first = ["id", "split", *[k for k in PAIR_KEYS if k not in ("id", "split")]]
    table = table[first + [c for c in table.columns if c not in first]]
    n = len(kept)
    return table, pair_embeddings(feats.emb[:n], feats.emb[n:]), failed, feats


def score_controls(model, tokenizer, family: str, controls: Sequence[dict[str, Any]], ref: Reference,
                   cfg: CausalConfig) -> tuple[pd.DataFrame, dict[str, SentenceFeatures]]:
    """a of every control, scored as the real pairs are (one row each), and the features per kind."""
    frames, feats = [], {}
    for kind in dict.fromkeys(c["kind"] for c in controls):
        recs = [c for c in controls if c["kind"] == kind]
        feats[kind] = pair_features(model, tokenizer, family, recs, cfg, desc=f"embed {kind} controls")
        scores = pair_scores(feats[kind], ref, cfg.k_ref, default_variant(cfg.knn_weight))
        frames.append(pd.concat([pd.DataFrame(recs), scores], axis=1))
    return pd.concat(frames, ignore_index=True), feats
