"""Toxicity screen of generated pairs with an offline linear classifier (alt-profanity-check).

alt-profanity-check ships a linear SVM (calibrated to probabilities) over a bag of words, trained on
about 200k human-labelled toxic / offensive comments (Wikipedia talk pages and tweets). It runs offline,
deterministically and in milliseconds on a CPU. It detects profane and abusive wording, not subtle
stereotypes; for this screen that is the intended scope.
"""

from __future__ import annotations

from collections.abc import Sequence
from importlib.metadata import version

import numpy as np

SCREEN_NAME = "alt-profanity-check"


def screen_version() -> str:
    """The installed classifier package version (recorded in provenance)."""
    return f"{SCREEN_NAME}=={version(SCREEN_NAME)}"


def toxicity_scores(texts: Sequence[str]) -> np.ndarray:
    """Probability in [0, 1] that each text is toxic or offensive."""
    if not texts:
        return np.zeros(0)
    from profanity_check import predict_prob

    return np.asarray(predict_prob(list(texts)), dtype=float)


def screen_pairs(s_m: Sequence[str], s_f: Sequence[str], threshold: float) -> tuple[np.ndarray, np.ndarray]:
    """Pair score = the larger of its two sentences' scores; a pair is toxic when score >= threshold."""
    if len(s_m) != len(s_f):
        raise ValueError(f"{len(s_m)} male sentences but {len(s_f)} female sentences")
    scores = np.maximum(toxicity_scores(s_m), toxicity_scores(s_f)) if len(s_m) else np.zeros(0)
    return scores, scores >= threshold
