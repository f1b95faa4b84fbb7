"""The alignment score a of a sentence (METHOD.md §4): how well the frozen model's knowledge covers it.

Two signals, each put on the scale of the reference corpus R (natural GLUE sentences) as a z-score:

- ``knn``: the mean cosine of the sentence's embedding (own tokens, no special ones) to its K nearest
  sentences of R; R's own scale is each R sentence's mean cosine to its K nearest other R sentences;
- ``slor``: the mean log-probability of the sentence's tokens under the model minus their log-probability
  under the model's marginal token distribution p̄ (averaged over the predictions it makes on R): the
  syntactic log-odds ratio of Pauls & Klein (2012) and Lau, Clark & Lappin (2017), a per-token likelihood
  that does not penalise a sentence for a rare word; R's scale from the first sentences of R.

a(s) = w·z_knn(s) + (1 − w)·z_slor(s) (w = ``knn_weight``), and a pair's a_i is the mean over s^m and s^f.
``loglik`` (the plain mean log-probability) and other poolings are kept for the comparison of variants.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import torch
from sklearn.metrics import roc_auc_score

from fairgender_utils.causal.alignment import knn
from fairgender_utils.lm.embed import SentenceFeatures, sentence_features

SIGNALS = ("knn", "loglik", "slor")


@dataclass(frozen=True)
class Reference:
    """R's embeddings (both poolings), and for its first sentences the log-likelihood and tokens."""

    emb: torch.Tensor
    emb_special: torch.Tensor
    loglik: torch.Tensor
    tokens: list[list[int]]
    log_marginal: torch.Tensor  # [V] log p̄: the mean of the model's predicted distributions on R


@dataclass(frozen=True)
class Variant:
    """One way of scoring: z-score weights per signal, the pooling, and centring on R's mean."""

    name: str
    weights: Mapping[str, float] = field(default_factory=dict)
    pooling: str = "own"  # own: the sentence's own tokens; special: every token, special ones included
    centre: bool = False


def build_reference(model, tokenizer, family: str, texts: Sequence[str], n_loglik: int, batch_size: int,
                    max_length: int) -> Reference:
    """Embed R; score its first ``n_loglik`` sentences with the LM head too (p̄ and the SLOR scale)."""
    head = sentence_features(model, tokenizer, texts[:n_loglik], family, batch_size, max_length, loglik=True,
                             desc="R: embed + log-likelihood")
    rest = sentence_features(model, tokenizer, texts[n_loglik:], family, batch_size, max_length,
                             desc="R: embed")
    marginal = (head.prob_sum / max(head.positions, 1)).clamp_min(1e-30).log().float()
    return Reference(torch.cat([head.emb, rest.emb]), torch.cat([head.emb_special, rest.emb_special]),
                     head.loglik, head.tokens, marginal)


def slor(loglik: torch.Tensor, tokens: Sequence[Sequence[int]], log_marginal: torch.Tensor) -> np.ndarray:
    """Mean over a sentence's tokens of log p(token | context) - log p̄(token)."""
    unigram = np.array([float(log_marginal[list(t)].mean()) if len(t) else np.nan for t in tokens])
    return loglik.double().numpy() - unigram


def _keys(ref: Reference, variant: Variant) -> torch.Tensor:
    keys = ref.emb if variant.pooling == "own" else ref.emb_special
    return torch.nn.functional.normalize(keys - keys.mean(0), dim=-1) if variant.centre else keys


def signals(feats: SentenceFeatures, ref: Reference, k: int, variant: Variant = Variant("default")) -> dict:
    """Per sentence: ``knn`` (mean cosine to the k nearest R sentences), ``loglik``, ``slor``."""
    emb = feats.emb if variant.pooling == "own" else feats.emb_special
    if variant.centre:
        raw = ref.emb if variant.pooling == "own" else ref.emb_special
        emb = torch.nn.functional.normalize(emb - raw.mean(0), dim=-1)
    out = {"knn": knn(emb, _keys(ref, variant), k)[0].mean(1).double().numpy()}
    if feats.loglik is not None:
        out["loglik"] = feats.loglik.double().numpy()
        out["slor"] = slor(feats.loglik, feats.tokens, ref.log_marginal)
    return out


def reference_signals(ref: Reference, k: int, variant: Variant = Variant("default")) -> dict:
    """The same signals for R itself (each R sentence's neighbours exclude itself): the z-scales."""
    keys = _keys(ref, variant)
    return {"knn": knn(keys, keys, k, exclude_self=True)[0].mean(1).double().numpy(),
            "loglik": ref.loglik.double().numpy(), "slor": slor(ref.loglik, ref.tokens, ref.log_marginal)}


def combine(sig: Mapping[str, np.ndarray], ref_sig: Mapping[str, np.ndarray],
            weights: Mapping[str, float]) -> np.ndarray:
    """Σ_s weights[s] · (sig[s] - mean of R) / sd of R."""
    out = 0.0
    for name, w in weights.items():
        if w:
            r = ref_sig[name][~np.isnan(ref_sig[name])]
            out = out + w * (sig[name] - r.mean()) / r.std()
    return np.asarray(out, dtype=float)


def pair_mean(x: np.ndarray) -> np.ndarray:
    """Per pair, the mean of a per-sentence array laid out [s^m of every pair, s^f of every pair]."""
    n = len(x) // 2
    return 0.5 * (x[:n] + x[n:])


def default_variant(knn_weight: float) -> Variant:
    """The stage's a: kNN cosine and SLOR z-scores weighted by ``knn_weight``."""
    return Variant("kNN cosine + SLOR (the stage's a)", {"knn": knn_weight, "slor": 1.0 - knn_weight})


def pair_scores(feats: SentenceFeatures, ref: Reference, k: int, variant: Variant) -> pd.DataFrame:
    """Per pair (sentences laid out as in :func:`pair_mean`): a and the mean of each signal."""
    sig, ref_sig = signals(feats, ref, k, variant), reference_signals(ref, k, variant)
    out = {"alignment": pair_mean(combine(sig, ref_sig, variant.weights))}
    out.update({f"align_{s}": pair_mean(v) for s, v in sig.items()})
    return pd.DataFrame(out)


def comparison_variants(knn_weight: float) -> list[Variant]:
    """The scorings compared in the notebook, from the first definition to the stage's a."""
    return [Variant("kNN cosine, every token pooled (special ones included)", {"knn": 1.0},
                    pooling="special"),
            Variant("kNN cosine, own tokens pooled", {"knn": 1.0}),
            Variant("kNN cosine, own tokens, centred on R's mean", {"knn": 1.0}, centre=True),
            Variant("log-likelihood per token", {"loglik": 1.0}),
            Variant("SLOR per token", {"slor": 1.0}),
            Variant("kNN cosine + log-likelihood", {"knn": 0.5, "loglik": 0.5}),
            default_variant(knn_weight)]


def auc(real: np.ndarray, corrupted: np.ndarray) -> float:
    """ROC AUC of a for real (positive) against corrupted sentences or pairs."""
    y = np.r_[np.ones(len(real)), np.zeros(len(corrupted))]
    return float(roc_auc_score(y, np.r_[real, corrupted]))


def variant_aucs(real: SentenceFeatures, controls: Mapping[str, SentenceFeatures], ref: Reference, k: int,
                 variants: Sequence[Variant]) -> pd.DataFrame:
    """AUC of pair-level a, real against each control kind and against all of them, per variant."""
    rows = []
    for v in variants:
        a_real = pair_scores(real, ref, k, v)["alignment"].to_numpy()
        a_ctl = {kind: pair_scores(f, ref, k, v)["alignment"].to_numpy() for kind, f in controls.items()}
        row = {"variant": v.name, **{kind: auc(a_real, a) for kind, a in a_ctl.items()}}
        row["all controls"] = auc(a_real, np.concatenate(list(a_ctl.values())))
        rows.append(row)
    return pd.DataFrame(rows)
