"""Stage 03: the variant configuration, training of every family, the warm-up, the train split, the KNN
weights, the gradient parts and the dev curve against brute force, bad input, resume, and DDP equivalence."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml
from safetensors.torch import load_file

from fairgender_utils.train import batches as train_batches
from fairgender_utils.config import ConfigError
from fairgender_utils.io import read_jsonl, write_jsonl
from fairgender_utils.lm.loading import load_model
from fairgender_utils.paths import REPO_ROOT
from fairgender_utils.train.loop import TrainingError, train
from tests.params import stage_config, stage_params
from fairgender_utils.train.config import TrainConfig, launch_command
from tests import fixture_pairs, tiny_models


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)  # faster than 2 on a busy 2-core machine, and deterministic
    yield
    torch.set_num_threads(n)


DATA_DIR: list[Path] = []  # the session's data folder (GLUE for the dev perplexity and the KL reference)


def _cfg(model_dir: Path, causal_dir: Path, out: Path, **kw) -> TrainConfig:
    values = {"variant": "t", "variants": {"t": {}}, "groups": {"main": ["t"]}, "seeds": {"main": [0]},
              "model_path": str(model_dir), "causal_dir": str(causal_dir),
              "pairs_path": str(Path(causal_dir).parent / "pairs.jsonl"), "data_dir": str(DATA_DIR[0]),
              "batch_size": 4, "micro_batch_size": 2, "epochs": 1, "max_steps": 0, "lr": 1e-3, "lm_loss": "own",
              "warmup_steps": 0, "lr_scheduler": "constant", "dev_every": 0, "dev_ppl_n": 4,
              "grad_parts_every": 0, "kl_reference_size": 8, "knn_mode": "forward",
              "dropout": False, "count_flops": False, "freeze_embeddings": False, "neighbour_sample": 0,
              "checkpoint_every": 100, "output_dir": str(out / "model"), "checkpoint_dir": str(out / "ckpt"),
              "config_path": str(out / "config.json"), "metrics_path": str(out / "metrics.json"),
              "figures_dir": str(out / "fig"), "plots_dir": str(out / "plots")}
    values.update(kw)
    return TrainConfig.from_params(stage_params("train", **values), "test")


def _weights(folder: Path) -> dict[str, torch.Tensor]:
    return load_file(folder / "model.safetensors")


def _max_diff(a: dict, b: dict) -> float:
    return max((a[k] - b[k]).abs().max().item() for k in a)


def _log(folder: Path) -> list[dict]:
    return list(read_jsonl(folder / "training_log.jsonl"))


@pytest.fixture(scope="module")
def opinionated(tiny_model_dirs, tmp_path_factory, data_dir) -> dict[str, tuple[Path, Path]]:
    """Per family: a tiny model with measurable gender effects, and its stage-02 outputs (and, for
    :func:`_cfg`, the session's data folder)."""
    DATA_DIR[:] = [data_dir]
    out = {}
    for kind in tiny_models.FAMILIES:
        base = tmp_path_factory.mktemp(f"op_{kind}")
        model_dir = fixture_pairs.opinionated(tiny_model_dirs[kind], base / "model")
        out[kind] = (model_dir, fixture_pairs.build_causal_dir(model_dir, base))
    return out


# ------------------------------------------------------------------ configuration


def test_params_variants_resolve() -> None:
    cfg = stage_config("train")
    assert set(cfg.variants) == {"cda", "fairgender", "no_filter", "no_knn", "no_screen", "autodebias"}
    runs = {v: stage_config("train", variant=v) for v in cfg.variants}
    assert (runs["cda"].data, runs["cda"].bias_loss, runs["cda"].lm_loss) == ("all", False, "own")
    fg = runs["fairgender"]
    assert (fg.data, fg.bias_loss, fg.w0) == ("aligned", True, 0.9)
    assert runs["no_filter"].data == "all" and runs["no_knn"].w0 == 1.0
    assert runs["no_screen"].causal_dir == "data/causal/unscreened"
    assert runs["no_knn"].output_dir == "models/trained/no_knn-s0" and runs["no_knn"].run == "no_knn-s0"
    assert runs["no_knn"].config_path == "results/train/no_knn-s0/config.json"
    assert stage_config("train", variant="cda", seed=2).checkpoint_dir == "models/checkpoints/cda-s2"
    again = TrainConfig.from_params(runs["no_knn"].model_dump(), "resolved", check_paths=False)
    assert again == runs["no_knn"]  # idempotent: the training script validates the resolved config again


def test_variant_errors_name_the_key() -> None:
    with pytest.raises(ConfigError, match="variant 'cdaa' is not a key of 'variants'"):
        stage_config("train", variant="cdaa")
    with pytest.raises(ConfigError, match="key 'variants.cda': 'bias_los' is not a training parameter"):
        stage_config("train", variants={"cda": {"bias_los": False}}, variant="cda")
    with pytest.raises(ConfigError, match=r"params/train.yaml: key 'w0'"):
        stage_config("train", variants={"x": {"w0": "high"}}, groups={"main": ["x"]}, variant="x")
    with pytest.raises(ConfigError, match=r"key 'groups': variant 'no_knn' must be in exactly one group"):
        stage_config("train", groups={"main": ["cda", "fairgender"], "ablation": ["no_filter", "no_screen"]})
    with pytest.raises(ConfigError, match=r"key 'seeds': one seed list per group"):
        stage_config("train", seeds={"main": [0, 1, 2]})


def test_launch_command_and_profiles() -> None:
    from accelerate.commands.config.config_args import load_config_from_file

    run = stage_config("train")
    cmd = launch_command(run, python="python")
    assert cmd[:3] == ["python", "-m", "accelerate.commands.launch"]
    assert cmd[3:5] == ["--config_file", "params/accelerate/cpu.yaml"]
    assert cmd[-3:] == ["fairgender_utils.train", "--config", "results/train/fairgender-s0/config.json"]
    assert "--num_cpu_threads_per_process" not in cmd  # 0: accelerate's choice
    pinned = launch_command(stage_config("train", cpu_threads=1), python="python")
    assert pinned[pinned.index("--num_cpu_threads_per_process") + 1] == "1"
    kinds = {}
    for name in ("cpu", "single-gpu", "multi-gpu"):
        kinds[name] = load_config_from_file(str(REPO_ROOT / "params" / "accelerate" / f"{name}.yaml"))
    assert kinds["cpu"].use_cpu and kinds["multi-gpu"].distributed_type == "MULTI_GPU"
    assert kinds["single-gpu"].mixed_precision == "bf16"


# ------------------------------------------------------------------ training


@pytest.mark.parametrize("kind", list(tiny_models.FAMILIES))
def test_every_family_trains_and_its_bias_goes_down(kind, opinionated, tmp_path) -> None:
    from fairgender_utils.lm.objective import pair_objective

    model_dir, causal_dir = opinionated[kind]
    pairs = list(read_jsonl(causal_dir / "aligned.jsonl"))
    trained_on = [p for p in pairs if p["split"] == "train"]
    model, tok, family = load_model(model_dir)
    before = pair_objective(model, tok, family, trained_on, 8, 64, 1.0)["J"].mean()
    cfg = _cfg(model_dir, causal_dir, tmp_path, epochs=2, lr=3e-3, w0=0.9, neighbour_sample=1, lambda_r=0.1)
    out = train(cfg)
    trained, _, trained_family = load_model(out)  # family read from the saved fairgender_source.json
    after = pair_objective(trained, tok, trained_family, trained_on, 8, 64, 1.0)["J"].mean()
    assert trained_family == family
    assert after < 0.7 * before, (before, after)
    log = _log(out)
    n_train = sum(p["split"] == "train" for p in pairs)  # dev and test pairs are never trained on
    assert [r["step"] for r in log] == list(range(1, n_train // 4 * 2 + 1))
    assert all(r["bias_loss"] > 0 and r["lm_loss"] > 0 for r in log)
    assert (out / "tokenizer_config.json").exists()


def test_kl_regulariser_starts_at_zero_and_cda_has_no_bias_term(opinionated, tmp_path) -> None:
    model_dir, causal_dir = opinionated["bert"]
    kl = _log(train(_cfg(model_dir, causal_dir, tmp_path / "kl", lm_loss="kl", max_steps=2)))
    assert kl[0]["lm_loss"] == pytest.approx(0.0, abs=1e-5)  # the trained model starts as the frozen one
    cda = _log(train(_cfg(model_dir, causal_dir, tmp_path / "cda", data="all", bias_loss=False, max_steps=2)))
    assert all(r["bias_loss"] == 0.0 and r["loss"] == pytest.approx(r["lm_loss"]) for r in cda)


def test_no_knn_ignores_neighbours(opinionated, tmp_path, monkeypatch) -> None:
    import fairgender_utils.train.loop as train_module

    model_dir, causal_dir = opinionated["llama"]
    seen = []
    original = train_module.build_batch

    def spy(*args, **kwargs):
        b = original(*args, **kwargs)
        seen.append((len(b.union), len(b.neighbours)))
        return b

    monkeypatch.setattr(train_module, "build_batch", spy)
    train(_cfg(model_dir, causal_dir, tmp_path / "knn", w0=1.0, max_steps=1))
    no_knn, seen[:] = list(seen), []
    train(_cfg(model_dir, causal_dir, tmp_path / "mix", w0=0.5, max_steps=1))
    assert all(u == n for u, n in no_knn)  # w0 = 1: only the batch pairs are scored
    assert any(u > n for u, n in seen)  # otherwise neighbours join the forward pass


@pytest.mark.parametrize("kind", ["bert", "llama"])
def test_training_j_matches_the_per_pair_definition(kind, opinionated) -> None:
    from fairgender_utils.lm.losses import pair_j
    from fairgender_utils.lm.slots import encode_pairs
    from fairgender_utils.lm.heads import PositionLogits

    model_dir, causal_dir = opinionated[kind]
    model, tok, family = load_model(model_dir)
    slots, _ = encode_pairs(tok, list(read_jsonl(causal_dir / "aligned.jsonl")), family)
    info = train_batches.TokenInfo(tok.pad_token_id, tok.mask_token_id, model.config.vocab_size,
                                   frozenset(tok.all_special_ids))
    nb = [[(i + 1) % len(slots)] for i in range(len(slots))]
    b = train_batches.build_batch(slots, [0, 1, 2], nb, family, info, epoch=0, seed=0, use_bias=True,
                                  use_lm=True, neighbour_sample=0, w0=0.5, mlm_probability=0.15,
                                  context_weight=1.0)
    rows, cols, sizes = b.head_positions()
    with torch.no_grad():
        logits = torch.split(PositionLogits(model)(b.input_ids, b.attention_mask, rows, cols), sizes)
        parts = train_batches.batch_loss(logits, b, use_bias=True, use_lm=True, w0=0.5, lambda_r=0.0)
        # the definition, pair by pair, from full forward passes of the same rows
        full = torch.log_softmax(model(input_ids=b.input_ids, attention_mask=b.attention_mask).logits, -1)
        shift = 1 if family == "causal" else 0
        js = []
        for u, (rm, rf) in zip(b.union, b.sides, strict=True):
            js.append(pair_j(slots[u], family, lambda ks, r=rm: full[r, [k - shift for k in ks]],
                             lambda ks, r=rf: full[r, [k - shift for k in ks]]))
        lb = [0.5 * js[i] + 0.5 * torch.stack([js[k] for k in b.neighbours[i]]).mean() for i in range(3)]
        want = sum(lb) / 3
    assert parts["bias"].item() == pytest.approx(want.item(), rel=1e-4)
    assert len(b.union) > 3  # the neighbours joined the forward pass


# ------------------------------------------------------------------ bad input


def test_nan_loss_names_step_and_pairs(opinionated, tmp_path, monkeypatch) -> None:
    model_dir, causal_dir = opinionated["llama"]
    def nan_j(logp_m, *args):  # one NaN per pair; args[7] is attribute_rule (one entry per pair)
        return logp_m.sum() * 0 + torch.full((args[7].shape[0],), float("nan"))

    monkeypatch.setattr(train_batches, "batched_j", nan_j)
    pattern = r"non-finite loss \(nan\) at step 1; pairs in the batch: p\d{4}-\w+, p\d{4}"
    with pytest.raises(TrainingError, match=pattern):
        train(_cfg(model_dir, causal_dir, tmp_path))


def test_missing_or_empty_data(opinionated, tmp_path) -> None:
    model_dir, causal_dir = opinionated["llama"]
    with pytest.raises(ConfigError, match="key 'causal_dir': .*not found: .*nowhere"):
        _cfg(model_dir, tmp_path / "nowhere", tmp_path)
    empty = tmp_path / "empty"
    empty.mkdir()
    for name in ("aligned.jsonl", "unaligned.jsonl", "neighbours.jsonl"):
        write_jsonl(empty / name, [])
    with pytest.raises(TrainingError, match="no training pairs"):
        train(_cfg(model_dir, empty, tmp_path, pairs_path=str(causal_dir.parent / "pairs.jsonl")))
    with pytest.raises(TrainingError, match="fewer than batch_size=64"):
        train(_cfg(model_dir, causal_dir, tmp_path, batch_size=64, micro_batch_size=2))
    with pytest.raises(ConfigError, match="not a multiple of micro_batch_size=3"):
        train(_cfg(model_dir, causal_dir, tmp_path, batch_size=4, micro_batch_size=3))


def test_unusable_checkpoint_stops_unless_asked(opinionated, tmp_path) -> None:
    model_dir, causal_dir = opinionated["llama"]
    train(_cfg(model_dir, causal_dir, tmp_path, max_steps=2, checkpoint_every=1))
    newest = tmp_path / "ckpt" / "step_0000002"
    (newest / "optimizer.bin").write_bytes(b"truncated")
    with pytest.raises(TrainingError, match=r"step_0000002 is unusable: optimizer.bin has 9 bytes"):
        train(_cfg(model_dir, causal_dir, tmp_path, max_steps=3, checkpoint_every=1))
    (newest / "complete.json").unlink()  # as if a kill interrupted the save
    with pytest.raises(TrainingError, match="no complete.json"):
        train(_cfg(model_dir, causal_dir, tmp_path, max_steps=3, checkpoint_every=1))
    with pytest.warns(UserWarning, match="unusable .* starting afresh as asked"):
        out = train(_cfg(model_dir, causal_dir, tmp_path, max_steps=3, checkpoint_every=1,
                         fresh_if_unusable=True))
    assert [r["step"] for r in _log(out)] == [1, 2, 3]
    assert json.loads((out / "fairgender_source.json").read_text())["training"]["resumed_from"] is None


def _subprocess_env() -> dict[str, str]:
    env = dict(os.environ, OMP_NUM_THREADS="1", HF_HUB_OFFLINE="1", TOKENIZERS_PARALLELISM="false")
    env["PYTHONPATH"] = str(REPO_ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    return env


def test_killed_and_resumed_run_ends_with_the_same_weights(opinionated, tmp_path) -> None:
    model_dir, causal_dir = opinionated["bert"]  # masked LM: MLM masking and dropout randomness
    kw = {"epochs": 2, "max_steps": 8, "checkpoint_every": 2, "dropout": True, "warmup_steps": 2,
          "lr_scheduler": "linear", "neighbour_sample": 1, "w0": 0.9, "dev_every": 3}
    whole = train(_cfg(model_dir, causal_dir, tmp_path / "whole", **kw))
    cfg = _cfg(model_dir, causal_dir, tmp_path / "killed", **kw)
    cfg.write(cfg.config_path)
    # the training script, with its step log writer wrapped to SIGKILL the process after step 7
    kill = ("import os, signal, sys\n"
            "import fairgender_utils.train.loop as loop\n"
            "from fairgender_utils.train.__main__ import main\n"
            "write = loop.append_jsonl\n"
            "def write_then_kill(path, rec):\n"
            "    write(path, rec)\n"
            "    if rec['step'] == 7:\n"
            "        os.kill(os.getpid(), signal.SIGKILL)\n"
            "loop.append_jsonl = write_then_kill\n"
            "sys.exit(main(['--config', sys.argv[1]]))\n")
    cmd = [sys.executable, "-c", kill, cfg.config_path]
    proc = subprocess.run(cmd, cwd=REPO_ROOT, env=_subprocess_env(), capture_output=True, check=False)
    # SIGKILL after step 7; the last checkpoint is step 6
    assert proc.returncode == -9, proc.stderr.decode()[-2000:]
    assert len(_log(tmp_path / "killed" / "ckpt")) == 7
    resumed = train(cfg)
    meta = json.loads((resumed / "fairgender_source.json").read_text())
    assert meta["training"]["resumed_from"].endswith("step_0000006")
    assert [r["step"] for r in _log(resumed)] == list(range(1, 9))
    dev_whole, dev_resumed = (list(read_jsonl(d / "dev_log.jsonl")) for d in (whole, resumed))
    assert [r["step"] for r in dev_resumed] == [0, 3, 6, 8]  # the resumed run's dev log was trimmed to step 6
    assert [r["dev_J"] for r in dev_resumed] == pytest.approx([r["dev_J"] for r in dev_whole], rel=1e-5)
    assert _max_diff(_weights(whole), _weights(resumed)) < 1e-6
    assert _max_diff(_weights(whole), _weights(model_dir)) > 1e-3  # it did train


@pytest.mark.slow  # about 30 s on a busy 2-core machine: three interpreter starts
def test_two_processes_match_one(opinionated, tmp_path) -> None:
    model_dir, causal_dir = opinionated["llama"]
    kw = {"max_steps": 3, "grad_parts_every": 2, "dev_every": 2, "lambda_r": 0.5}
    one = train(_cfg(model_dir, causal_dir, tmp_path / "one", micro_batch_size=4, **kw))
    cfg = _cfg(model_dir, causal_dir, tmp_path / "two", micro_batch_size=2, **kw)
    cfg.write(cfg.config_path)
    env = dict(_subprocess_env(), ACCELERATE_USE_CPU="1")
    cmd = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
           "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no",
           "--main_process_port", "29517",
           "-m", "fairgender_utils.train", "--config", cfg.config_path]
    proc = subprocess.run(cmd, cwd=REPO_ROOT, env=env, capture_output=True, check=False)
    assert proc.returncode == 0, proc.stderr.decode()[-3000:]
    two = tmp_path / "two" / "model"
    assert json.loads((two / "fairgender_source.json").read_text())["training"]["num_processes"] == 2
    log1, log2 = _log(one), _log(two)
    assert [r["loss"] for r in log2] == pytest.approx([r["loss"] for r in log1], rel=1e-5)
    for key in ("grad_norm_bias", "grad_norm_lm", "grad_cos"):  # measured on steps 1 and 3
        assert [log2[i][key] for i in (0, 2)] == pytest.approx([log1[i][key] for i in (0, 2)], rel=1e-4), key
    dev1, dev2 = (list(read_jsonl(d / "dev_log.jsonl")) for d in (one, two))
    assert [r["dev_J"] for r in dev2] == pytest.approx([r["dev_J"] for r in dev1], rel=1e-4)
    assert _max_diff(_weights(one), _weights(two)) < 1e-4
    assert _max_diff(_weights(one), _weights(model_dir)) > 1e-3


def test_speed_summary_hand_values() -> None:
    from fairgender_utils.train.speed import speed_summary, training_metrics

    log = [{"step": 1, "seconds": 9.0, "tokens": 100, "flops": 4e9, "peak_memory_mib": 10.0, "loss": 3.0,
            "bias_loss": 1.0, "lm_loss": 2.0},
           {"step": 2, "seconds": 2.0, "tokens": 100, "flops": 2e9, "peak_memory_mib": 12.0, "loss": 2.0,
            "bias_loss": 0.5, "lm_loss": 1.5},
           {"step": 3, "seconds": 2.0, "tokens": 300, "flops": 6e9, "peak_memory_mib": 11.0, "loss": 1.0,
            "bias_loss": 0.25, "lm_loss": 0.75}]
    s = speed_summary(log, [{"best": 20.0, "median": 10.0}, {"best": 16.0, "median": 6.0}])
    # steps 2-3: 4 s, 400 tokens, 8 GFLOP -> 100 tokens/s, 2 s/step, 2 GFLOP/s; matmul median 8, best 20
    assert (s["tokens_per_second"], s["seconds_per_step"], s["achieved_gflops"]) == (100.0, 2.0, 2.0)
    assert (s["fraction_of_matmul_median"], s["fraction_of_matmul_best"]) == (0.25, 0.1)
    assert s["peak_memory_mib"] == 12.0
    log[1]["flops_counted"] = True  # a counted step is left out too: steps 3 only
    assert speed_summary(log, [{"best": 20.0, "median": 10.0}])["seconds_per_step"] == 2.0
    dev = [{"step": 0, "dev_J": 0.4, "dev_abs_delta": 1.0, "dev_ppl": 20.0, "seconds": 3.0},
           {"step": 3, "dev_J": 0.1, "dev_abs_delta": 0.5, "dev_ppl": 21.0, "seconds": 5.0}]
    log[0].update(grad_norm_bias=2.0, grad_norm_lm=4.0, grad_cos=0.5)
    log[2].update(grad_norm_bias=float("nan"), grad_norm_lm=float("nan"), grad_cos=float("nan"))
    m = training_metrics(log, {"training": {"steps": 3, "matmul_gflops": []}}, dev)
    assert (m["dev_J_start"], m["dev_J_end"], m["dev_ppl_start"], m["dev_ppl_end"]) == (0.4, 0.1, 20.0, 21.0)
    assert (m["dev_abs_delta_end"], m["dev_steps"], m["dev_eval_seconds_mean"], m["steps"]) == (0.5, 3, 4.0, 3)
    assert (m["grad_norm_bias_mean"], m["grad_norm_lm_mean"], m["grad_cos_mean"]) == (2.0, 4.0, 0.5)


def test_checkpoint_of_another_run_is_not_resumed(opinionated, tmp_path) -> None:
    model_dir, causal_dir = opinionated["llama"]
    train(_cfg(model_dir, causal_dir, tmp_path, max_steps=2, checkpoint_every=1))
    # parameters changed since (dvc repro reruns the stage): the old checkpoint is stale
    with pytest.warns(UserWarning, match=r"belongs to another run \(lr: 0.001 -> 0.002\); starting afresh"):
        out = train(_cfg(model_dir, causal_dir, tmp_path, max_steps=2, checkpoint_every=1, lr=2e-3))
    assert json.loads((out / "fairgender_source.json").read_text())["training"]["resumed_from"] is None
    # the same run again resumes from its last checkpoint (and has nothing left to do)
    again = train(_cfg(model_dir, causal_dir, tmp_path, max_steps=2, checkpoint_every=1, lr=2e-3))
    meta = json.loads((again / "fairgender_source.json").read_text())
    assert meta["training"]["resumed_from"].endswith("step_0000002")


# ------------------------------------------------------------------ schedule, split, KNN weights, gradient parts, dev


def test_warm_up_never_steps_at_zero(opinionated, tmp_path) -> None:
    from fairgender_utils.train.schedule import lr_factor

    # warm-up of 3 in 6 steps: 1/3, 2/3, 1, then linear decay 1, 2/3, 1/3 (never 0)
    assert [lr_factor(s, 3, 6, "linear") for s in range(6)] == pytest.approx([1 / 3, 2 / 3, 1, 1, 2 / 3, 1 / 3])
    assert [lr_factor(s, 2, 5, "constant") for s in range(5)] == [0.5, 1.0, 1.0, 1.0, 1.0]
    assert lr_factor(4, 0, 5, "cosine") == pytest.approx(0.5 * (1 + math.cos(math.pi * 4 / 5)))
    model_dir, causal_dir = opinionated["llama"]
    log = _log(train(_cfg(model_dir, causal_dir, tmp_path, max_steps=3, warmup_steps=2, lr=1e-3)))
    assert [r["lr"] for r in log] == pytest.approx([5e-4, 1e-3, 1e-3])  # the rate each step applied


def test_only_train_split_pairs_are_trained_on(opinionated, tmp_path, monkeypatch) -> None:
    import fairgender_utils.train.loop as train_module

    import shutil

    from fairgender_utils.io import write_jsonl

    model_dir, stage_dir = opinionated["llama"]
    causal_dir = shutil.copytree(stage_dir, tmp_path / "copy" / "causal")
    shutil.copy(stage_dir.parent / "pairs.jsonl", causal_dir.parent / "pairs.jsonl")
    # stage 02 keeps train pairs only in X^C; relabel two of them so that the training side's own filter is tested
    aligned = list(read_jsonl(causal_dir / "aligned.jsonl"))
    assert {p["split"] for p in aligned} == {"train"} and len(aligned) > 3
    aligned[0]["split"], aligned[1]["split"] = "dev", "test"
    write_jsonl(causal_dir / "aligned.jsonl", aligned)
    split = {p["id"]: p["split"] for p in aligned}
    split.update({p["id"]: p["split"] for p in read_jsonl(causal_dir / "unaligned.jsonl")})
    seen, original = [], train_module.build_batch

    def spy(slots, idx, *args, **kwargs):
        b = original(slots, idx, *args, **kwargs)
        seen.extend(slots[u].id for u in b.union)
        return b

    monkeypatch.setattr(train_module, "build_batch", spy)
    train(_cfg(model_dir, causal_dir, tmp_path, data="all", w0=0.5, neighbour_sample=0, epochs=2))
    assert seen and {split[i] for i in seen} == {"train"}  # neighbours included


def test_knn_weights_give_the_knn_objective_without_neighbour_rows(opinionated) -> None:
    from fairgender_utils.lm.heads import PositionLogits
    from fairgender_utils.lm.losses import knn_weights
    from fairgender_utils.lm.slots import encode_pairs

    model_dir, causal_dir = opinionated["llama"]
    model, tok, family = load_model(model_dir)
    slots, _ = encode_pairs(tok, [p for p in read_jsonl(causal_dir / "aligned.jsonl")], family)
    nb = [[(i + 1) % len(slots), (i + 3) % len(slots)] if i % 4 else [] for i in range(len(slots))]
    info = train_batches.TokenInfo(tok.pad_token_id, tok.mask_token_id, model.config.vocab_size,
                                   frozenset(tok.all_special_ids))
    w = knn_weights(nb, 0.7)
    kw = {"epoch": 0, "seed": 0, "use_bias": True, "use_lm": False, "neighbour_sample": 0, "w0": 0.7,
          "mlm_probability": 0.15, "context_weight": 1.0}
    total = {}
    with torch.no_grad():
        for mode, weights in (("forward", None), ("weights", w)):
            total[mode] = 0.0
            for start in range(0, len(slots), 3):  # an epoch: every pair once, in batches of (up to) 3
                idx = list(range(start, min(start + 3, len(slots))))
                b = train_batches.build_batch(slots, idx, nb, family, info, weights=weights, **kw)
                if weights is not None:
                    assert b.union == idx  # no neighbour rows
                rows, cols, sizes = b.head_positions()
                logits = torch.split(PositionLogits(model)(b.input_ids, b.attention_mask, rows, cols), sizes)
                parts = train_batches.batch_loss(logits, b, use_bias=True, use_lm=False, w0=0.7, lambda_r=0.0)
                total[mode] += parts["bias"].item() * len(idx)
    assert total["weights"] == pytest.approx(total["forward"], rel=1e-5)  # sum over the epoch of L_b(i)


def test_gradient_parts_equal_separate_backward_passes(opinionated, tmp_path) -> None:
    from fairgender_utils.lm.heads import PositionLogits
    from fairgender_utils.lm.slots import encode_pairs
    from fairgender_utils.train.data import EpochOrder, load_training_data, prepare_model

    model_dir, causal_dir = opinionated["llama"]
    cfg = _cfg(model_dir, causal_dir, tmp_path, max_steps=2, grad_parts_every=1, lambda_r=0.5, w0=1.0,
               max_grad_norm=1e-3)  # clipping binds: the norms are taken before it
    log = _log(train(cfg))
    assert all(r["grad_parts_measured"] for r in log)
    # brute force, step 1: the two micro-batches of the first global batch, each term's gradient on its own
    model, tok, family = load_model(model_dir)
    prepare_model(model, cfg)
    pairs, _ = load_training_data(cfg)
    slots, _ = encode_pairs(tok, pairs, family, cfg.max_length)
    info = train_batches.TokenInfo(tok.pad_token_id, tok.mask_token_id, model.config.vocab_size,
                                   frozenset(tok.all_special_ids))
    order = EpochOrder(len(slots), len(slots) // 4 * 4, cfg.seed)
    params = [p for p in model.parameters() if p.requires_grad]
    g = {"bias": [torch.zeros_like(p) for p in params], "lm": [torch.zeros_like(p) for p in params]}
    for micro in range(2):
        idx = [order[k] for k in range(2 * micro, 2 * micro + 2)]
        b = train_batches.build_batch(slots, idx, [[] for _ in slots], family, info, epoch=0, seed=cfg.seed,
                                      use_bias=True, use_lm=True, neighbour_sample=0, w0=1.0,
                                      mlm_probability=0.15, context_weight=1.0)
        rows, cols, sizes = b.head_positions()
        logits = torch.split(PositionLogits(model)(b.input_ids, b.attention_mask, rows, cols), sizes)
        parts = train_batches.batch_loss(logits, b, use_bias=True, use_lm=True, w0=1.0, lambda_r=0.5)
        for term in ("bias", "lm"):
            for acc, d in zip(g[term], torch.autograd.grad(parts[term] / 2, params, retain_graph=True,
                                                           allow_unused=True)):
                acc += 0 if d is None else d
    norm = {t: math.sqrt(sum(float(x.pow(2).sum()) for x in g[t])) for t in g}
    cos = sum(float((a * c).sum()) for a, c in zip(g["bias"], g["lm"])) / (norm["bias"] * norm["lm"])
    assert log[0]["grad_norm_bias"] == pytest.approx(norm["bias"], rel=1e-4)
    assert log[0]["grad_norm_lm"] == pytest.approx(norm["lm"], rel=1e-4)
    assert log[0]["grad_cos"] == pytest.approx(cos, abs=1e-4)
    total = math.sqrt(sum(float((a + 0.5 * c).pow(2).sum()) for a, c in zip(g["bias"], g["lm"])))
    assert log[0]["grad_norm"] == pytest.approx(total, rel=1e-4)


def test_single_term_runs_take_their_norm_from_the_total(opinionated, tmp_path) -> None:
    model_dir, causal_dir = opinionated["llama"]
    cda = _log(train(_cfg(model_dir, causal_dir, tmp_path, bias_loss=False, lambda_r=2.0, max_steps=2,
                          grad_parts_every=1)))
    assert all(r["grad_norm_bias"] == 0.0 and not r["grad_parts_measured"] for r in cda)
    assert [r["grad_norm_lm"] for r in cda] == pytest.approx([r["grad_norm"] / 2.0 for r in cda])


def test_dev_curve_starts_at_the_base_model(opinionated, tmp_path) -> None:
    from fairgender_utils.lm.objective import pair_objective

    model_dir, causal_dir = opinionated["llama"]
    out = train(_cfg(model_dir, causal_dir, tmp_path, epochs=2, max_steps=5, dev_every=2))
    dev = list(read_jsonl(out / "dev_log.jsonl"))
    assert [r["step"] for r in dev] == [0, 2, 4, 5]
    model, tok, family = load_model(model_dir)
    dev_pairs = [p for p in fixture_pairs.pairs() if p["split"] == "dev"]
    base = pair_objective(model, tok, family, dev_pairs, 4, 64, 1.0)
    assert dev[0]["dev_pairs"] == len(dev_pairs) == len(base)
    assert dev[0]["dev_J"] == pytest.approx(base["J"].mean(), rel=1e-5)
    assert dev[0]["dev_abs_delta"] == pytest.approx(base["delta"].abs().mean(), rel=1e-5)
    trained = pair_objective(load_model(out)[0], tok, family, dev_pairs, 4, 64, 1.0)
    assert dev[-1]["dev_J"] == pytest.approx(trained["J"].mean(), rel=1e-4)
    assert dev[0]["dev_ppl"] > 1 and dev[-1]["dev_ppl"] != dev[0]["dev_ppl"]


def test_kl_reference_is_the_frozen_models_top_k(opinionated, data_dir) -> None:
    from fairgender_utils.lm.losses import topk_kl
    from fairgender_utils.train.reference import build_reference

    model_dir, _ = opinionated["llama"]
    model, tok, family = load_model(model_dir)
    ref = build_reference(model, tok, family, str(data_dir), ["rte"], 6, 6, 5, 64, 0, 0.15, per_pair=2)
    full = torch.log_softmax(model(input_ids=torch.tensor([ref.rows[2]])).logits[0], -1)
    at = full[ref.cols[2]]
    top = at.topk(5, -1)
    lo, hi = ref.offset[2], ref.offset[2] + len(ref.cols[2])
    assert torch.equal(ref.top[lo:hi], top.indices) and torch.allclose(ref.top_logp[lo:hi], top.values, atol=1e-5)
    rest = torch.log1p(-top.values.exp().sum(-1))
    assert torch.allclose(ref.rest_logp[lo:hi], rest, atol=1e-4)
    sent = torch.zeros(hi - lo, dtype=torch.long)
    zero = topk_kl(at, ref.top[lo:hi], ref.top_logp[lo:hi], ref.rest_logp[lo:hi], sent, 1)
    assert zero.item() == pytest.approx(0.0, abs=1e-5)


def test_dvc_trains_and_evaluates_every_variant_with_its_groups_seeds() -> None:
    from fairgender_utils.stage import dvc_runs
    from fairgender_utils.train import figures

    cfg = stage_config("train")
    want = {f"{v}-s{s}" for g, vs in cfg.groups.items() for v in vs for s in cfg.seeds[g]}
    runs = dvc_runs()
    trained = {f"{o['variant']}-s{o['seed']}" for n, (nb, _, _, o) in runs.items() if nb.endswith("03_train.ipynb")}
    evaluated = {o["variant"] for n, (nb, _, _, o) in runs.items() if nb.endswith("04_evaluate.ipynb")}
    assert trained == want and evaluated == want | {"base"}
    for name, (nb, _, out_dir, o) in runs.items():
        if nb.endswith("03_train.ipynb"):
            assert out_dir == f"results/train/{o['variant']}-s{o['seed']}"
            assert stage_config("train", **o).metrics_path == f"{out_dir}/metrics.json"
        if nb.endswith("04_evaluate.ipynb") and o["variant"] != "base":
            assert o["model"] == f"models/trained/{o['variant']}"
            assert o["primary_context_weight"] == cfg.context_weight and o["primary_max_length"] == cfg.max_length
    full = stage_config("evaluate").full_profile_models
    assert "base" in full and set(full) <= want | {"base"}  # names a trained run or base, never a typo
    dvc = yaml.safe_load((REPO_ROOT / "dvc.yaml").read_text())
    for definition in dvc["plots"]:  # the train stage's plot tables have the columns dvc.yaml plots
        (_, props), = definition.items()
        for path, cols in props["y"].items():
            if path.startswith("results/train/"):
                have = figures.DEV_COLUMNS if path.endswith("dev_curve.csv") else figures.LOSS_COLUMNS
                assert {props["x"], *cols} <= set(have), path
