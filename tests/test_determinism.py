"""Training is bit-identical from one process to the next for the same seed, parameters and threads."""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch

import fairgender_utils.train.loop as train_module
from fairgender_utils.io import read_jsonl
from fairgender_utils.paths import REPO_ROOT
from fairgender_utils.train.loop import train
from tests.test_train import _cfg, _subprocess_env, opinionated  # noqa: F401  (fixture)


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)  # the subprocess below runs with OMP_NUM_THREADS=1 too
    yield
    torch.set_num_threads(n)


def test_training_runs_with_deterministic_algorithms_and_restores_them(opinionated, tmp_path,  # noqa: F811
                                                                      monkeypatch) -> None:
    model_dir, causal_dir = opinionated["llama"]
    seen, original = [], train_module.build_batch

    def spy(*args, **kwargs):
        seen.append((torch.are_deterministic_algorithms_enabled(),
                     torch.is_deterministic_algorithms_warn_only_enabled()))
        return original(*args, **kwargs)

    monkeypatch.setattr(train_module, "build_batch", spy)
    assert not torch.are_deterministic_algorithms_enabled()
    train(_cfg(model_dir, causal_dir, tmp_path, max_steps=1))
    assert seen and all(s == (True, True) for s in seen)
    assert not torch.are_deterministic_algorithms_enabled()  # restored for whatever runs next


@pytest.mark.parametrize("kind", ["llama", "bert"])
def test_a_run_with_the_bias_loss_is_bit_identical_in_another_process(kind, opinionated,  # noqa: F811
                                                                      tmp_path) -> None:
    model_dir, causal_dir = opinionated[kind]
    kw = {"max_steps": 3, "w0": 0.5, "neighbour_sample": 1, "epochs": 3, "dropout": True}
    here = train(_cfg(model_dir, causal_dir, tmp_path / "here", **kw))
    cfg = _cfg(model_dir, causal_dir, tmp_path / "there", **kw)
    cfg.write(cfg.config_path)
    proc = subprocess.run([sys.executable, "-m", "fairgender_utils.train", "--config", cfg.config_path],
                          cwd=REPO_ROOT, env=_subprocess_env(), capture_output=True, check=False)
    assert proc.returncode == 0, proc.stderr.decode()[-2000:]
    there = tmp_path / "there" / "model"
    assert (here / "model.safetensors").read_bytes() == (there / "model.safetensors").read_bytes()
    assert _losses(here) == _losses(there)


def _losses(folder) -> list[tuple[float, float, float]]:
    return [(r["loss"], r["bias_loss"], r["grad_norm"]) for r in read_jsonl(folder / "training_log.jsonl")]
