"""Strict configs: a typo, a duplicate or missing key, a wrong type, an out-of-range value or a missing
file is one clear line, before any work, in the config check and the stage runner alike."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from fairgender_utils.config import STAGES, ConfigError, InputPath, StageConfig, config_for, load, read_params
from fairgender_utils.data.config import DataConfig
from fairgender_utils.paths import REPO_ROOT
from fairgender_utils.stage import dvc_runs
from tests.params import stage_config, stage_params

PARAMS = sorted((REPO_ROOT / "params").glob("*.yaml"))


def test_every_params_file_belongs_to_a_stage() -> None:
    assert sorted(p.stem for p in PARAMS) == sorted(STAGES)


@pytest.mark.parametrize("name", sorted(dvc_runs()))
def test_every_dvc_stage_validates_as_dvc_runs_it(name: str) -> None:
    notebook, params, out_dir, overrides = dvc_runs()[name]
    cfg = load(params, overrides, check_paths=False)  # inputs come from earlier stages
    assert isinstance(cfg, config_for(Path(params).stem))
    assert (REPO_ROOT / notebook).exists()


def test_config_classes_hold_no_defaults() -> None:
    """The params file is the one place of every default (nested entries may have optional fields)."""
    for stage in STAGES:
        with_default = [k for k, f in config_for(stage).model_fields.items() if not f.is_required()]
        assert not with_default, f"{stage}: {with_default} have defaults in the config class"


def test_unknown_key_names_file_and_key() -> None:
    with pytest.raises(ConfigError) as err:
        DataConfig.from_params(stage_params("data", data_dri="data/raw"), "params/data.yaml")
    assert str(err.value) == "params/data.yaml: key 'data_dri': unknown key (typo?)"


def test_wrong_type_and_range() -> None:
    with pytest.raises(ConfigError, match=r"params/data.yaml: key 'timeout_s': .*greater than 0.*-1"):
        DataConfig.from_params(stage_params("data", timeout_s=-1.0), "params/data.yaml")
    with pytest.raises(ConfigError, match=r"key 'try_network': .*bool"):
        DataConfig.from_params(stage_params("data", try_network="yes"), "params/data.yaml")
    with pytest.raises(ConfigError, match=r"key 'groups.0': "):
        DataConfig.from_params(stage_params("data", groups=["seats"]), "params/data.yaml")


def test_a_deleted_key_is_missing_not_defaulted() -> None:
    values = stage_params("train")
    del values["lr"]
    with pytest.raises(ConfigError, match=r"params/train.yaml: key 'lr': missing"):
        config_for("train").from_params(values, "params/train.yaml", check_paths=False)


@pytest.mark.parametrize("mode,theta,ok", [("quantile", 1.5, False), ("quantile", 0.3, True),
                                           ("quantile", -0.1, False), ("absolute", -1.2, True)])
def test_theta_range_depends_on_its_mode(mode: str, theta: float, ok: bool) -> None:
    if ok:
        assert stage_config("causal", theta_mode=mode, theta=theta).theta == theta
    else:
        with pytest.raises(ConfigError, match=rf"key 'theta'.*outside .* for theta_mode '{mode}'"):
            stage_config("causal", theta_mode=mode, theta=theta)


class _WithInput(StageConfig):
    source: InputPath


def test_missing_input_file(tmp_path: Path) -> None:
    missing = tmp_path / "nope.jsonl"
    with pytest.raises(ConfigError, match=rf"params/x.yaml: key 'source': .*not found: {missing}"):
        _WithInput.from_params({"source": str(missing)}, "params/x.yaml")
    (tmp_path / "ok.jsonl").write_text("{}\n")
    assert _WithInput.from_params({"source": str(tmp_path / "ok.jsonl")}, "x").source.endswith("ok.jsonl")


def test_missing_model_folder_is_named(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"key 'model_path': .*model folder not found.*models/base/nope"):
        stage_config("train", check_paths=True, model_path="models/base/nope", causal_dir=str(tmp_path))
    assert stage_config("train", model_path="google/gemma-3-270m").model_path == "google/gemma-3-270m"  # hub id


def test_resolved_config_is_written(tmp_path: Path) -> None:
    cfg = DataConfig.from_params(stage_params("data", timeout_s=3.0), "params/data.yaml")
    out = cfg.write(tmp_path / "config.json")
    assert yaml.safe_load(out.read_text())["timeout_s"] == 3.0


def test_duplicate_key_is_refused(tmp_path: Path) -> None:
    bad = tmp_path / "train.yaml"
    bad.write_text((REPO_ROOT / "params" / "train.yaml").read_text() + "lr: 1.0e-3\n")
    with pytest.raises(ConfigError, match=r"train.yaml: not valid YAML \(line \d+\): key 'lr' appears twice"):
        read_params(bad)


@pytest.mark.parametrize("text", ["", "# only a comment\n", "[1, 2]\n"])
def test_empty_or_non_mapping_file_is_refused(tmp_path: Path, text: str) -> None:
    bad = tmp_path / "data.yaml"
    bad.write_text(text)
    with pytest.raises(ConfigError, match="expected a mapping"):
        read_params(bad)


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "fairgender_utils.config", *args], capture_output=True,
                          text=True, cwd=REPO_ROOT)


def test_cli_prints_one_line_and_fails(tmp_path: Path) -> None:
    bad = tmp_path / "data.yaml"
    values = yaml.safe_load((REPO_ROOT / "params" / "data.yaml").read_text())
    values["timout_s"] = values.pop("timeout_s")
    bad.write_text(yaml.safe_dump(values))
    proc = _cli(str(bad))
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [f"error: {bad}: key 'timout_s': unknown key (typo of 'timeout_s'?)"]


def test_cli_missing_params_file(tmp_path: Path) -> None:
    proc = _cli(str(tmp_path / "data.yaml"))
    assert proc.returncode == 2 and "params file not found" in proc.stderr


def test_stage_runner_refuses_what_the_check_refuses(tmp_path: Path) -> None:
    """An empty params file or a bad value stops the runner with exit status 2 before the kernel starts."""
    empty = tmp_path / "data.yaml"
    empty.write_text("")
    out = tmp_path / "out"
    proc = subprocess.run([sys.executable, "-m", "fairgender_utils.stage", "notebooks/00_fetch_data.ipynb",
                           str(empty), str(out)], capture_output=True, text=True, cwd=REPO_ROOT)
    assert proc.returncode == 2 and "expected a mapping" in proc.stderr and not out.exists()
    proc = subprocess.run([sys.executable, "-m", "fairgender_utils.stage", "notebooks/00_fetch_data.ipynb",
                           "params/data.yaml", str(out), "-p", "timeout_s", "-3"], capture_output=True, text=True,
                          cwd=REPO_ROOT)
    assert proc.returncode == 2 and "key 'timeout_s'" in proc.stderr and not out.exists()
