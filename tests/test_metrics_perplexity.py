"""Held-out perplexity: the seeded dev/test split, per-token NLL in the scorer, the pooled ratio, its CI."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from fairgender_utils.evaluate import perplexity
from fairgender_utils.evaluate.scoring import Scorer
from tests.metrics_fixtures import one_thread, tiny  # noqa: F401  (fixtures)


def test_split_is_seeded_disjoint_and_independent_of_other_seeds():
    texts = [f"q{i}?" for i in range(10)]
    parts = perplexity.split_parts(texts, 0.3, split_seed=0)
    assert (len(parts["dev"]), len(parts["test"])) == (3, 7)
    assert not set(parts["dev"]) & set(parts["test"]) and set(parts["dev"]) | set(parts["test"]) == set(texts)
    assert perplexity.split_parts(texts, 0.3, split_seed=0) == parts
    assert perplexity.split_parts(texts, 0.3, split_seed=1) != parts


def test_questions_are_distinct_qnli_dev_questions(data_dir):
    questions = perplexity.load_questions(data_dir)
    assert questions and len(questions) == len(set(questions)) and all(q.strip() == q and q for q in questions)
    test = perplexity.heldout_texts(data_dir, "test", 5, 0.5, 0)
    assert test == perplexity.split_parts(questions, 0.5, 0)["test"][:5]


def test_pooled_per_token_perplexity_by_hand():
    # sentence NLLs 2 and 4 over 1 and 3 tokens: exp(6 / 4), not the mean of exp(2) and exp(4 / 3)
    assert perplexity.perplexity(np.array([2.0, 4.0]), np.array([1, 3])) == pytest.approx(math.exp(1.5))
    items = pd.DataFrame({"nll": [2.0, 4.0, 3.0], "n_tokens": [1, 3, 2]})
    s = perplexity.summarise(items, "causal", "test", n_boot=200, seed=0)
    assert s["ppl"] == pytest.approx(math.exp(9 / 6)) and s["kind"] == "perplexity" and s["n_tokens"] == 6
    assert s["ppl_ci_low"] <= s["ppl"] <= s["ppl_ci_high"]
    assert perplexity.summarise(items, "masked", "dev", n_boot=100)["kind"] == "pseudo-perplexity"


@pytest.mark.parametrize("kind", ["llama", "bert"])
def test_scored_tokens_and_nll_match_the_reference_scorer(tiny, kind):
    model, tok, family = tiny[kind]
    scorer = Scorer(model, tok, family)
    texts = ["Who wrote the first opera?", "What is the capital of Peru?"]
    fast = perplexity.score_texts(scorer, texts)
    plain = perplexity.score_texts(scorer, texts, plain=True)
    for t, n in zip(texts, fast["n_tokens"], strict=True):
        enc = scorer.encode(t)
        # causal: every token after BOS is predicted; masked: every content token (special tokens are not)
        expect = len(enc.ids) - 1 if family == "causal" else sum(enc.content)
        assert n == expect
    assert fast["nll"].to_numpy() == pytest.approx(plain["nll"].to_numpy(), abs=1e-4)
    assert (fast["nll"] > 0).all()
