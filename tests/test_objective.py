"""The per-pair objective (J of §5, delta of §4) and the neutral-text NLL, against brute force on tiny models
of both families; the primary endpoint of the evaluate stage."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from fairgender_utils.causal.effects import pair_effects
from fairgender_utils.evaluate import perplexity
from fairgender_utils.evaluate.scoring import Scorer
from fairgender_utils.lm.loading import load_model
from fairgender_utils.lm.losses import pair_j
from fairgender_utils.lm.objective import pair_objective, text_nll
from fairgender_utils.lm.slots import encode_pair
from tests import fixture_pairs
from tests.metrics_fixtures import one_thread  # noqa: F401  (fixture)


@pytest.fixture(scope="module")
def opinionated_models(tiny_model_dirs, tmp_path_factory):
    """Per kind: (model, tokenizer, family) with measurable gender effects."""
    out = {}
    for kind in ("llama", "bert", "roberta"):
        folder = fixture_pairs.opinionated(tiny_model_dirs[kind], tmp_path_factory.mktemp(kind) / "m")
        out[kind] = load_model(folder)
    return out


def _brute_force_j(model, tok, family: str, pair: dict, context_weight: float) -> float:
    """J of one pair from full forward passes of each sentence on its own (no batching, no padding)."""
    s = encode_pair(tok, pair, family)
    with torch.no_grad():
        if family == "causal":
            full = {side: torch.log_softmax(model(input_ids=torch.tensor([ids])).logits[0], -1)
                    for side, ids in (("m", s.ids_m), ("f", s.ids_f))}
            lp_m = lambda ks: full["m"][[k - 1 for k in ks]]  # noqa: E731
            lp_f = lambda ks: full["f"][[k - 1 for k in ks]]  # noqa: E731
        else:  # the target masked, read at its first subtoken
            rows = {}
            for side, ids, (t0, t1) in (("m", s.ids_m, s.target_m), ("f", s.ids_f, s.target_f)):
                masked = [*ids[:t0], *[tok.mask_token_id] * (t1 - t0), *ids[t1:]]
                rows[side] = torch.log_softmax(model(input_ids=torch.tensor([masked])).logits[0, t0], -1)
            lp_m = lambda ks: rows["m"].expand(len(ks), -1)  # noqa: E731
            lp_f = lambda ks: rows["f"].expand(len(ks), -1)  # noqa: E731
        return float(pair_j(s, family, lp_m, lp_f, context_weight))


@pytest.mark.parametrize("kind", ["llama", "bert", "roberta"])
def test_pair_objective_equals_per_pair_brute_force(kind, opinionated_models) -> None:
    model, tok, family = opinionated_models[kind]
    pairs = fixture_pairs.pairs()
    got = pair_objective(model, tok, family, pairs, batch_size=5, max_length=64, context_weight=0.5)
    assert list(got.columns) == ["id", "target", "J", "delta"]
    assert list(got["id"]) == [p["id"] for p in pairs if p["id"] in set(got["id"])]  # input order
    assert len(got) + len(got.attrs["unscorable"]) == len(pairs) and len(got) >= len(pairs) - 2
    by_id = {p["id"]: p for p in pairs}
    for _, row in got.iterrows():
        want = _brute_force_j(model, tok, family, by_id[row["id"]], 0.5)
        assert row["J"] == pytest.approx(want, rel=1e-4, abs=1e-7), row["id"]
        assert row["target"] == by_id[row["id"]]["target"]
    if family == "causal":  # some pairs read the bounded two-way JSD: never above ln 2 + the context term
        attr = [encode_pair(tok, by_id[i], family).rule == "attribute_logodds" for i in got["id"]]
        assert any(attr) and not all(attr)
    # delta: the stage-02 definition (whole-word chain rule), computed there by other code
    eff = pair_effects(model, tok, family, pairs, loglik=False)[0].set_index("id")
    assert got.set_index("id")["delta"].to_numpy() == pytest.approx(eff.loc[got["id"], "delta"].to_numpy(),
                                                                     rel=1e-4, abs=1e-6)
    assert model.training is False


def test_pair_objective_restores_training_mode(opinionated_models) -> None:
    model, tok, family = opinionated_models["llama"]
    model.train()
    pair_objective(model, tok, family, fixture_pairs.pairs()[:3], 2, 64, 1.0)
    assert model.training
    model.eval()


@pytest.mark.parametrize("kind", ["llama", "bert"])
def test_text_nll_equals_the_evaluate_stage_scorer(kind, opinionated_models, data_dir) -> None:
    model, tok, family = opinionated_models[kind]
    texts = perplexity.heldout_texts(data_dir, "dev", 6, 0.5, 0)
    got = text_nll(model, tok, family, texts, batch_size=4)
    want = perplexity.score_texts(Scorer(model, tok, family), texts, plain=True)
    assert got["n_tokens"].tolist() == want["n_tokens"].tolist()
    assert got["nll"].to_numpy() == pytest.approx(want["nll"].to_numpy(), rel=1e-4)
    nll, n = want["nll"].to_numpy(float), want["n_tokens"].to_numpy(float)
    from fairgender_utils.lm.objective import perplexity as ppl

    assert ppl(got) == pytest.approx(math.exp(np.sum(nll) / np.sum(n)), rel=1e-4)


def test_primary_endpoint_reads_the_test_split_only(opinionated_models, tmp_path) -> None:
    from fairgender_utils.evaluate import run as evaluate
    from fairgender_utils.io import write_jsonl
    from tests.params import stage_config

    model, tok, family = opinionated_models["llama"]
    write_jsonl(tmp_path / "pairs.jsonl", fixture_pairs.pairs())
    cfg = stage_config("evaluate", pairs_path=str(tmp_path / "pairs.jsonl"), primary_batch_size=3, n_boot=200)
    items = evaluate.run_primary(cfg, model, tok, family)
    test = [p for p in fixture_pairs.pairs() if p["split"] == "test"]
    assert set(items["target"]) == {"secretary"} and len(items) + len(items.attrs["unscorable"]) == len(test)
    summary = evaluate.primary_summary(items, 200, 0, 0.95)
    assert summary["primary_mean_J"] == pytest.approx(items["J"].mean())
    assert summary["primary_mean_abs_delta"] == pytest.approx(items["delta"].abs().mean())
    assert summary["primary_mean_J_ci_low"] <= summary["primary_mean_J"] <= summary["primary_mean_J_ci_high"]
    assert summary["primary_n_pairs"] == len(items)
