"""CrowS-Pairs: token alignment, modes, counting with ties, skipped pairs, causal prefix ties."""

from __future__ import annotations

import numpy as np
import pytest

from fairgender_utils.loaders import CrowsPair
from fairgender_utils.evaluate import crows
from fairgender_utils.evaluate.scoring import Scorer
from tests.metrics_fixtures import one_thread, tiny  # noqa: F401  (fixtures)


def test_split_tokens_by_hand():
    a = [101, 5, 6, 7, 8, 102]
    b = [101, 5, 9, 9, 7, 8, 102]
    keep_a = [False, True, True, True, True, False]
    keep_b = [False, True, True, True, True, True, False]
    ua, ub, ma, mb = crows.split_tokens(a, b, keep_a, keep_b)
    assert (ua, ub, ma, mb) == ([1, 3, 4], [1, 4, 5], [2], [2, 3])


def _pair(i, more, less, direction="stereo", bias="gender"):
    return CrowsPair(i, more, less, direction, bias)


def test_counting_with_ties():
    plan = crows.CrowsPlan([], [(_pair(0, "a", "b"), 2, 2), (_pair(1, "c", "d", "antistereo"), 2, 2),
                                (_pair(2, "e", "f"), 2, 2), (_pair(3, "g", "h"), 1, 1)], None)
    lp = [np.array([-1.0, -1.0]), np.array([-2.0, -1.0]),  # more -2 > less -3: stereotypical
          np.array([-3.0, -1.0]), np.array([-1.0, -1.0]),  # more -4 < less -2
          np.array([-1.5, -0.5]), np.array([-1.0, -1.0]),  # -2 == -2: a tie
          np.array([-0.1]), np.array([-0.2])]  # antistereo rows count the same way (sent_more higher)
    res = crows.collect(plan, lp)
    assert list(res.items["stereo"]) == [1, 0, 0, 1] and list(res.items["tie"]) == [0, 0, 1, 0]
    s = crows.summarise(res.items, subset="gender")
    # the tie stays in N and does not count as stereotypical: 2 of 4
    assert (s["n"], s["n_stereo"], s["n_ties"], s["score"]) == (4, 2, 1, 50.0)
    assert s["ci_low"] < 50 < s["ci_high"]


def test_modes_and_identical_pairs(tiny):
    model, tok, family = tiny["bert"]  # uncased: "He" and "he" are the same token
    scorer = Scorer(model, tok, family)
    pairs = [_pair(0, "The man is here.", "The woman is here."), _pair(1, "He is here.", "he is here.")]
    plan = crows.plan_pairs(scorer, pairs, "unmodified")
    assert [(p.index, na, nb) for p, na, nb in plan.kept] == [(0, 4, 4)]  # the, is, here, .
    assert plan.skipped.to_dict("records") == [{"item_id": 1, "bias_type": "gender",
                                                "reason": "identical after tokenisation"}]
    mod = crows.plan_pairs(scorer, pairs, "modified")
    assert [(na, nb) for _, na, nb in mod.kept] == [(1, 1)]  # man / woman
    res = crows.score_pairs(scorer, pairs)
    assert len(res.items) == 1 and len(res.skipped) == 1
    with pytest.raises(ValueError, match="mode"):
        crows.plan_pairs(scorer, pairs, "all")


def test_causal_pair_differing_only_at_the_end_ties(tiny):
    model, tok, family = tiny["llama"]
    scorer = Scorer(model, tok, family)
    res = crows.score_pairs(scorer, [_pair(0, "He likes the nurse", "He likes the doctor"),
                                     _pair(1, "The nurse said he was here", "The nurse said she was here")])
    first, second = res.items.to_dict("records")
    # every unmodified token precedes the change, so both sentences get the same causal score
    assert first["tie"] == 1 and first["stereo"] == 0 and first["score_more"] == first["score_less"]
    assert second["tie"] == 0  # "was here" follows the change and is scored under he / she
