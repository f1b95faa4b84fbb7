"""Held-out perplexity of neutral text (METHOD.md §7, LM quality), in the same batched scorer.

The text: the questions of GLUE's QNLI dev set (``glue/QNLI/dev.tsv``, fetched by the data stage):
natural, mostly gender-neutral English that neither the causal stage's reference corpus R nor the
GLUE probes read (both use SST-2, CoLA, MRPC, STS-B, RTE and WNLI only). Distinct questions are split,
seeded by ``split_seed`` alone, into a *dev* part (for tuning) and a *test* part (for evaluation), so
the evaluation seed never moves a question from one part to the other (``fairgender_utils.loaders.heldout``,
which the training stage's dev curve reads too).

Per-token perplexity = exp(total NLL / total predicted tokens), pooled over the sentences:

- causal LM: every token after the BOS token is predicted from its prefix (the first word from BOS
  alone); BOS itself is not predicted and not counted;
- masked LM: *pseudo*-perplexity (Salazar et al. 2020): every content token is masked one at a time and
  predicted from the rest of the sentence; special tokens are not predicted. Not comparable with a
  causal LM's perplexity.

The CI is a percentile bootstrap over sentences (the ratio of sums recomputed per replicate).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import pandas as pd

from fairgender_utils.evaluate.scoring import Request, Scorer
from fairgender_utils.loaders.heldout import QNLI_DEV, heldout_texts, load_questions, split_parts  # noqa: F401
from fairgender_utils.stats import bootstrap_reps, percentile_ci


def score_texts(scorer: Scorer, texts: Sequence[str], plain: bool = False, desc: str | None = None,
                ) -> pd.DataFrame:
    """One row per text: number of predicted tokens and their summed negative log-likelihood."""
    requests = []
    for t in texts:
        enc = scorer.encode(t)
        requests.append(Request(enc.ids, tuple(i for i, ok in enumerate(enc.scorable) if ok)))
    out = (scorer.logprobs_plain if plain else scorer.logprobs)(
        [r for r in requests if r.positions], desc=desc)
    it = iter(out)
    rows = []
    for k, (t, r) in enumerate(zip(texts, requests, strict=True)):
        lp = next(it) if r.positions else np.zeros(0)
        rows.append({"item_id": k, "text": t, "n_tokens": len(lp), "nll": -math.fsum(lp.tolist())})
    return pd.DataFrame(rows, columns=["item_id", "text", "n_tokens", "nll"])


def perplexity(nll: np.ndarray, n_tokens: np.ndarray) -> float:
    """exp(sum NLL / sum tokens)."""
    total = float(np.sum(n_tokens))
    return math.exp(float(np.sum(nll)) / total) if total else float("nan")


def summarise(items: pd.DataFrame, family: str, part: str, n_boot: int = 1000, seed: int = 0,
              level: float = 0.95) -> dict:
    """Per-token (pseudo-)perplexity with a bootstrap CI over sentences."""
    nll, n = items["nll"].to_numpy(float), items["n_tokens"].to_numpy(float)
    out = {"subset": part, "part": part, "kind": "pseudo-perplexity" if family == "masked" else "perplexity",
           "n_sentences": len(items), "n_tokens": int(n.sum()), "ppl": perplexity(nll, n)}
    if len(items):
        reps = bootstrap_reps(lambda i: perplexity(nll[i], n[i]), (len(items),), n_boot, seed)
        out["ppl_ci_low"], out["ppl_ci_high"] = percentile_ci(reps, level)
    return out
