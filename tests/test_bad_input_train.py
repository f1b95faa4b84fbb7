"""Training under bad input: damaged checkpoints and markers, a torn training log."""

from __future__ import annotations

import json
import re
import shutil

import pytest
import torch

from fairgender_utils.train.checkpoints import checkpoint_problem
from fairgender_utils.train.loop import TrainingError, train
from tests.test_train import _cfg, _log, _max_diff, _weights, opinionated  # noqa: F401  (fixture)


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture(scope="module")
def finished(opinionated, tmp_path_factory):  # noqa: F811
    """A finished 2-step run with a checkpoint at each step (copied by ``saved`` for each test)."""
    model_dir, causal_dir = opinionated["llama"]
    base = tmp_path_factory.mktemp("finished")
    train(_cfg(model_dir, causal_dir, base, max_steps=2, checkpoint_every=1))
    return model_dir, causal_dir, base


@pytest.fixture
def saved(finished, tmp_path):
    """A copy of the finished run: (arguments of ``_cfg`` to continue it, its newest checkpoint)."""
    model_dir, causal_dir, base = finished
    shutil.copytree(base / "ckpt", tmp_path / "ckpt")
    return (model_dir, causal_dir, tmp_path), tmp_path / "ckpt" / "step_0000002"


def _resume(args, **kw):
    return train(_cfg(*args, max_steps=2, checkpoint_every=1, **kw))  # the same run: it resumes


def test_checkpoint_records_size_and_sha256_of_every_file(saved):
    _, newest = saved
    files = json.loads((newest / "complete.json").read_text())["files"]
    assert "model.safetensors" in files and "optimizer.bin" in files
    assert all(set(e) == {"bytes", "sha256"} and len(e["sha256"]) == 64 for e in files.values())


def test_bytes_flipped_in_place_are_found(saved):
    args, newest = saved
    weights = newest / "model.safetensors"
    data = bytearray(weights.read_bytes())
    data[-8:] = bytes(b ^ 0xFF for b in data[-8:])  # same size, different weights
    weights.write_bytes(bytes(data))
    pattern = (r"step_0000002 is unusable: model.safetensors has changed since it was saved "
               r"\(sha256 \w+…, \w+… expected\)\. Delete it")
    with pytest.raises(TrainingError, match=pattern):
        _resume(args)
    with pytest.warns(UserWarning, match="model.safetensors has changed .* starting afresh as asked"):
        out = _resume(args, fresh_if_unusable=True)
    assert [r["step"] for r in _log(out)] == [1, 2]


@pytest.mark.parametrize("marker, problem", [
    (b"[]", "complete.json holds a JSON list, not an object"),
    (b"null", "complete.json holds a JSON NoneType"),
    (b'{"files": {"model.safetensors": 1}}', "'step' is null, not a step number"),
    (b'{"step": "2", "files": {"a": 1}}', "'step' is \"2\""),
    (b'{"step": 2, "files": []}', "'files' is \\[\\], not a list of files"),
    (b'{"step": 2, "files": {}}', "'files' is \\{\\}"),
    (b'{"step": 2, "files": {"model.safetensors": "big"}}', "the entry of model.safetensors is \"big\""),
    (b'{"step": 2, "files": {"model.safetensors": {"bytes": 1, "sha256": "ab"}}}', "not its size and sha256"),
    (b'{"step": 2, "files": {"../../x": 1}}', "points outside the checkpoint"),
    (b'{"step": 2, "files": {"a": 1}, "run": [1]}', "'run' is \\[1\\], not an object"),
    (b'{"step": 2, "fil', "complete.json unreadable"),
    (b'{"step": 2, "files": "\xff"}', "complete.json unreadable"),
])
def test_a_malformed_marker_is_named(saved, marker, problem):
    _, newest = saved
    (newest / "complete.json").write_bytes(marker)
    assert re.search(problem, checkpoint_problem(newest))


def test_a_malformed_marker_is_one_clear_error(saved):
    args, newest = saved
    (newest / "complete.json").write_text("[]")  # was: TypeError
    with pytest.raises(TrainingError, match="step_0000002 is unusable: complete.json holds a JSON list"):
        _resume(args)


def test_a_malformed_marker_with_fresh_if_unusable_starts_afresh(saved):
    args, newest = saved
    (newest / "complete.json").write_text("[]")
    with pytest.warns(UserWarning, match="holds a JSON list.*starting afresh as asked"):
        out = _resume(args, fresh_if_unusable=True)
    assert json.loads((out / "fairgender_source.json").read_text())["training"]["resumed_from"] is None


def test_a_marker_of_an_older_version_is_resumed_with_a_warning(saved):
    args, newest = saved
    marker = json.loads((newest / "complete.json").read_text())
    marker["files"] = {name: e["bytes"] for name, e in marker["files"].items()}  # sizes only
    (newest / "complete.json").write_text(json.dumps(marker))
    with pytest.warns(UserWarning, match="records sizes only .* cannot be verified"):
        out = _resume(args)
    assert json.loads((out / "fairgender_source.json").read_text())["training"]["resumed_from"].endswith(
        "step_0000002")


def test_a_torn_training_log_line_is_named_and_the_run_resumes(saved):
    args, _ = saved
    log = args[2] / "ckpt" / "training_log.jsonl"
    with log.open("a") as f:
        f.write('{"step": 3, "loss": 0.')  # killed in the middle of a write
    with pytest.warns(UserWarning, match=r"training_log.jsonl:3: corrupt JSONL line"):
        out = _resume(args)
    assert [r["step"] for r in _log(out)] == [1, 2]
