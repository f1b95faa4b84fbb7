"""SEAT: s(w, A, B), effect size and exact p by hand, skipped tests, encoding = mean-pooled last layer."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from fairgender_utils.lm.embed import mean_pooled
from fairgender_utils.loaders import SeatTest
from fairgender_utils.evaluate import seat
from tests.metrics_fixtures import one_thread, tiny  # noqa: F401  (fixtures)


def test_s_values_by_hand():
    a, b = np.array([[1.0, 0.0]]), np.array([[0.0, 1.0]])
    w = np.array([[2.0, 0.0], [1.0, 1.0], [0.0, 3.0]])
    assert seat.s_values(w, a, b) == pytest.approx([1.0, 0.0, -1.0])


def _test(name="t", **sets):
    base = {"targ1": ("x1", "x2"), "targ2": ("y1", "y2"), "attr1": ("a",), "attr2": ("b",)}
    return SeatTest(name=name, categories=("X", "Y", "A", "B"), **{**base, **sets})


VECTORS = {"a": np.array([1.0, 0.0]), "b": np.array([0.0, 1.0]), "x1": np.array([1.0, 0.0]),
           "x2": np.array([1.0, 1.0]), "y1": np.array([0.0, 1.0]), "y2": np.array([2.0, 2.0])}


def test_effect_size_and_exact_p_by_hand():
    res = seat.evaluate([_test()], VECTORS, n_boot=200)
    row = res.table.iloc[0]
    # s_X = [1, 0], s_Y = [-1, 0]: d = (0.5 + 0.5) / sd([1, 0, -1, 0], ddof=1)
    assert row["d"] == pytest.approx(1 / math.sqrt(2 / 3))
    # T = sum s_X = 1; the 6 splits of {1, 0, -1, 0} have sums 1, 0, 1, -1, 0, -1: two are >= 1
    assert row["p"] == pytest.approx(1 / 3) and row["p_exact"] and row["n_partitions"] == 6
    assert res.summary["mean_abs_d"] == pytest.approx(row["abs_d"])
    assert list(res.items["s"]) == pytest.approx([1.0, 0.0, -1.0, 0.0])
    assert list(res.items["set"]) == ["X", "X", "Y", "Y"]


def test_sampled_path_and_bootstrap(tiny):
    rng = np.random.default_rng(0)
    vec = {f"w{i}": rng.normal(size=4) for i in range(40)} | {"a": np.ones(4), "b": -np.ones(4)}
    t = _test(targ1=tuple(f"w{i}" for i in range(20)), targ2=tuple(f"w{i}" for i in range(20, 40)))
    exact = seat.evaluate([t], vec, n_boot=200).table.iloc[0]  # C(40, 20) > 100,000: sampled
    assert not exact["p_exact"] and exact["n_partitions"] == 100_000
    assert exact["d_ci_low"] < exact["d"] < exact["d_ci_high"]
    again = seat.evaluate([t], vec, n_samples=5000, n_boot=200, seed=1).table.iloc[0]
    assert again["n_partitions"] == 5000 and again["p"] == pytest.approx(exact["p"], abs=0.03)


def test_empty_set_is_skipped_with_reason():
    res = seat.evaluate([_test("bad", attr2=()), _test("ok")], VECTORS, n_boot=100)
    assert list(res.table["test"]) == ["ok"]
    assert res.skipped.to_dict("records") == [{"test": "bad", "reason": "empty set: attr2"}]
    flat = {k: np.ones(2) for k in VECTORS}  # every s is 0: d undefined
    assert seat.evaluate([_test("flat")], flat, n_boot=100).skipped.iloc[0]["reason"].startswith("s has zero")


@pytest.mark.parametrize("kind", ["bert", "llama"])
def test_encoding_is_mean_pooled_last_hidden_state(tiny, kind):
    model, tok, _ = tiny[kind]
    texts = ["This is a test.", "The nurse is here, and so is the doctor."]
    got = seat.encode(model, tok, texts)
    with torch.inference_mode():  # through the full model (with its LM head): the same hidden states
        ref = mean_pooled(model, tok, texts, normalize=False)
    for i, t in enumerate(texts):
        assert np.abs(got[t] - ref[i].numpy()).max() < 1e-5
