"""The autodebias training variant: its configuration, its examples, its loss against a hand computation
from plain full forward passes, and a short training run, for masked and causal LMs."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from fairgender_utils.config import ConfigError
from fairgender_utils.io import read_jsonl, write_jsonl
from fairgender_utils.lm.loading import load_model
from fairgender_utils.loaders import load_gender_words
from fairgender_utils.train import autodebias
from fairgender_utils.train import batches as train_batches
from fairgender_utils.train.config import TrainConfig, TrainingError
from fairgender_utils.train.loop import train
from tests import fixture_pairs, tiny_models
from tests.params import stage_config, stage_params

PROMPTS = ["is very", "said the"]


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture(scope="module")
def opinionated(tiny_model_dirs, tmp_path_factory) -> dict[str, Path]:
    base = tmp_path_factory.mktemp("ad_models")
    return {kind: fixture_pairs.opinionated(tiny_model_dirs[kind], base / kind) for kind in tiny_models.FAMILIES}


def _cfg(model_dir: Path, data_dir: Path, out: Path, prompts: list[str] | None = None, **kw) -> TrainConfig:
    path = out / "prompts.jsonl"
    if prompts is not None:
        write_jsonl(path, [{"length": len(p.split()), "rank": 1, "prompt": p, "jsd": 0.1} for p in prompts])
    variants = {"autodebias": {"objective": "autodebias", "w0": 1.0, "lambda_r": 0.0}}  # the test sets the rest
    values = {"variant": "autodebias", "variants": variants, "groups": {"main": ["autodebias"]},
              "seeds": {"main": [0]}, "dev_every": 0, "pairs_path": str(out), "grad_parts_every": 0, "model_path": str(model_dir), "causal_dir": str(out),
              "data_dir": str(data_dir), "prompts_path": str(path), "max_pairs": 2, "batch_size": 4,
              "micro_batch_size": 2, "max_steps": 0,
              "dropout": False, "count_flops": False, "freeze_embeddings": False, "checkpoint_every": 100,
              "output_dir": str(out / "model"), "checkpoint_dir": str(out / "ckpt"),
              "config_path": str(out / "config.json"), "metrics_path": str(out / "metrics.json"),
              "figures_dir": str(out / "fig"), "plots_dir": str(out / "plots")}
    values.update(kw)
    return TrainConfig.from_params(stage_params("train", **values), "test")


def test_params_autodebias_variant() -> None:
    run = stage_config("train", variant="autodebias")
    assert (run.objective, run.lr, run.batch_size, run.epochs) == ("autodebias", 1e-5, 32, 1)  # the paper's
    assert (run.bias_loss, run.w0, run.lambda_r, run.cos_weight) == (True, 1.0, 0.0, 0.1)
    assert run.prompts_path == "data/prompts/prompts.jsonl" and run.output_dir == "models/trained/autodebias-s0"
    assert stage_config("train").objective == "fairgender"
    with pytest.raises(ConfigError, match=r"key 'objective': autodebias is the slot JSD alone"):
        stage_config("train", variant="autodebias", variants={"autodebias": {"objective": "autodebias"}},
                     groups={"main": ["autodebias"]}, seeds={"main": [0]})


def _hand_example(model, tok, family: str, m: str, f: str, prompt: str) -> tuple[float, float]:
    """(JSD of the full-vocabulary slot distributions, 1 - cos of the mean-pooled last hidden states) of
    one example, from two unpadded full forward passes, in float64."""
    dists, pooled = [], []
    for word in (m, f):
        text = f"{word} {prompt}" + (f" {tok.mask_token}" if family == "masked" else "")
        ids = tok(text)["input_ids"]
        if family == "causal" and ids[0] != tok.bos_token_id:
            ids = [tok.bos_token_id, *ids]
        read = ids.index(tok.mask_token_id) if family == "masked" else len(ids) - 1
        with torch.no_grad():
            out = model(input_ids=torch.tensor([ids]), output_hidden_states=True)
        z = out.logits[0, read].double().numpy()
        p = np.exp(z - z.max())
        dists.append(p / p.sum())
        pooled.append(out.hidden_states[-1][0].double().mean(0).numpy())
    p, q = dists
    mid = (p + q) / 2
    js = 0.5 * np.sum(p * np.log(p / mid)) + 0.5 * np.sum(q * np.log(q / mid))
    a, b = pooled
    return float(js), float(1 - a @ b / np.linalg.norm(a) / np.linalg.norm(b))


@pytest.mark.parametrize("kind", list(tiny_models.FAMILIES))
def test_loss_equals_a_hand_computation(kind, opinionated, data_dir, tmp_path) -> None:
    model_dir = opinionated[kind]
    model, tok, family = load_model(model_dir)
    cfg = _cfg(model_dir, data_dir, tmp_path, PROMPTS)
    examples, failed = autodebias.load_examples(cfg, tok, family)
    pairs = load_gender_words(data_dir).pairs[:2]
    assert not failed and [e.id for e in examples] == ["a000-p000", "a000-p001", "a001-p000", "a001-p001"]
    info = train_batches.TokenInfo(tok.pad_token_id, tok.mask_token_id, model.config.vocab_size,
                                   frozenset(tok.all_special_ids))
    b = train_batches.build_batch(examples, [3, 0, 2], [[] for _ in examples], family, info, epoch=0, seed=0,
                                  use_bias=True, use_lm=False, neighbour_sample=0, w0=1.0, mlm_probability=0.15,
                                  context_weight=1.0)
    rows, cols, sizes = b.head_positions()
    with torch.no_grad():
        logits, pooled = autodebias.SlotAndPooled(model)(b.input_ids, b.attention_mask, rows, cols)
        parts = train_batches.batch_loss(torch.split(logits, sizes), b, use_bias=True, use_lm=False, w0=1.0,
                                         lambda_r=0.0)
        parts = autodebias.add_embedding_term(parts, pooled, b.sides, 0.1)
    hand = [_hand_example(model, tok, family, *pairs[i // 2], PROMPTS[i % 2]) for i in (3, 0, 2)]
    js, cos = np.mean([h[0] for h in hand]), np.mean([h[1] for h in hand])
    assert js > 1e-3 and cos > 1e-4  # the terms are not trivially zero
    assert parts["bias"].item() == pytest.approx(js, rel=1e-4)
    assert parts["embedding"].item() == pytest.approx(cos, rel=1e-3, abs=1e-6)
    assert parts["loss"].item() == pytest.approx(js + 0.1 * cos, rel=1e-4)


@pytest.mark.parametrize("kind", ["bert", "llama"])
def test_training_lowers_the_slot_jsd(kind, opinionated, data_dir, tmp_path) -> None:
    model_dir = opinionated[kind]
    cfg = _cfg(model_dir, data_dir, tmp_path, PROMPTS, max_pairs=4, epochs=3, lr=3e-3)  # 8 examples, 2 steps/epoch
    model, tok, family = load_model(model_dir)
    pairs = load_gender_words(data_dir).pairs[:4]
    before = np.mean([_hand_example(model, tok, family, m, f, p)[0] for m, f in pairs for p in PROMPTS])
    out = train(cfg)
    trained = load_model(out)[0]
    after = np.mean([_hand_example(trained, tok, family, m, f, p)[0] for m, f in pairs for p in PROMPTS])
    assert after < 0.7 * before, (before, after)
    log = list(read_jsonl(out / "training_log.jsonl"))
    assert [r["step"] for r in log] == list(range(1, 7))
    assert all(r["lm_loss"] == 0.0 and r["loss"] > r["bias_loss"] > 0 for r in log)  # JSD + 0.1 (1 - cos)
    meta = json.loads((out / "fairgender_source.json").read_text())
    assert meta["variant"] == "autodebias" and meta["training"]["pairs"] == 8


def test_bad_prompts_file_is_named(opinionated, data_dir, tmp_path) -> None:
    model_dir = opinionated["llama"]
    with pytest.raises(TrainingError, match=r"prompts.jsonl: not found \(run the prompts stage first"):
        train(_cfg(model_dir, data_dir, tmp_path))
    (tmp_path / "prompts.jsonl").write_text('{"prompt": "is very"}\n{"prompt": " "}\n')
    with pytest.raises(TrainingError, match=r"prompts.jsonl: record 2 has no non-empty string 'prompt'"):
        train(_cfg(model_dir, data_dir, tmp_path))
    (tmp_path / "empty").mkdir()
    with pytest.raises(TrainingError, match=r"attribute pairs: .*male.txt"):
        train(_cfg(model_dir, tmp_path / "empty", tmp_path, PROMPTS))


def test_an_example_too_long_is_reported_not_trained(opinionated, data_dir, tmp_path) -> None:
    model, tok, family = load_model(opinionated["bert"])
    long = " ".join(["very"] * 70)
    examples, failed = autodebias.load_examples(_cfg(opinionated["bert"], data_dir, tmp_path, ["is", long]), tok,
                                                family)
    assert [e.id for e in examples] == ["a000-p000", "a001-p000"]
    assert set(failed) == {"a000-p001", "a001-p001"} and "more than max_length=64" in failed["a000-p001"]
