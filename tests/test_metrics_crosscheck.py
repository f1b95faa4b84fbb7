"""The scorer's sentence log-likelihoods against transformers' own loss (independent implementation)."""

from __future__ import annotations

import pytest

from fairgender_utils.evaluate import crosscheck
from fairgender_utils.paths import repo_path
from tests.metrics_fixtures import one_thread, tiny  # noqa: F401  (fixtures)

BASE = repo_path("models/base/gemma-3-270m")


def test_crosscheck_on_a_tiny_causal_model(tiny):
    model, tok, _ = tiny["llama"]
    df = crosscheck.crosscheck(model, tok, ["The nurse said that she was tired.", "He is a pilot."])
    assert df["same_ids"].all() and (df["n_tokens"] > 3).all()
    assert (df["scorer_mean"] - df["hf_mean"]).abs().max() <= 1e-5
    assert (df["scorer_sum"] - df["hf_sum"]).abs().max() <= 1e-4


@pytest.mark.slow  # about a minute on a 2-core CPU: the real base model, 80 sentences one by one
@pytest.mark.skipif(not BASE.exists(), reason="the base model is converted by the models stage")
def test_crosscheck_on_the_real_base_model(tmp_path):
    out = tmp_path / "crosscheck.json"
    assert crosscheck.main(["--model", str(BASE), "--n", "40", "--json", str(out)]) == 0
    import json

    res = json.loads(out.read_text())
    assert res["all_ids_equal"] and res["sentences"] >= 70
    assert res["max_abs_diff_mean_hf"] <= 1e-4
