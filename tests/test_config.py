"""Strict configs: a typo, a wrong type, an out-of-range value or a missing file is one clear line."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from fairgender_utils.config import CONFIG_CLASSES, ConfigError, InputPath, StageConfig, config_for, validate_file
from fairgender_utils.data import DataConfig
from fairgender_utils.paths import REPO_ROOT

PARAMS = sorted((REPO_ROOT / "params").glob("*.yaml"))


@pytest.mark.parametrize("path", PARAMS, ids=lambda p: p.name)
def test_committed_params_files_validate(path: Path) -> None:
    assert path.stem in CONFIG_CLASSES, f"{path.name} has no config class"
    cfg = validate_file(path.relative_to(REPO_ROOT), check_paths=False)  # inputs come from earlier stages
    assert isinstance(cfg, config_for(path.stem))


def test_unknown_key_names_file_and_key() -> None:
    with pytest.raises(ConfigError) as err:
        DataConfig.from_params({"data_dri": "data/raw"}, "params/data.yaml")
    assert str(err.value) == "params/data.yaml: key 'data_dri': unknown key (typo?)"


def test_wrong_type_and_range() -> None:
    with pytest.raises(ConfigError, match=r"params/data.yaml: key 'timeout_s': .*greater than 0.*-1"):
        DataConfig.from_params({"timeout_s": -1.0}, "params/data.yaml")
    with pytest.raises(ConfigError, match=r"key 'try_network': .*bool"):
        DataConfig.from_params({"try_network": "yes"}, "params/data.yaml")
    with pytest.raises(ConfigError, match=r"key 'groups.0': "):
        DataConfig.from_params({"groups": ["seats"]}, "params/data.yaml")


class _WithInput(StageConfig):
    source: InputPath


def test_missing_input_file(tmp_path: Path) -> None:
    missing = tmp_path / "nope.jsonl"
    with pytest.raises(ConfigError, match=rf"params/x.yaml: key 'source': .*not found: {missing}"):
        _WithInput.from_params({"source": str(missing)}, "params/x.yaml")
    (tmp_path / "ok.jsonl").write_text("{}\n")
    assert _WithInput.from_params({"source": str(tmp_path / "ok.jsonl")}, "x").source.endswith("ok.jsonl")


def test_resolved_config_is_written(tmp_path: Path) -> None:
    cfg = DataConfig.from_params({"timeout_s": 3.0}, "params/data.yaml")
    out = cfg.write(tmp_path / "config.json")
    assert yaml.safe_load(out.read_text())["timeout_s"] == 3.0


def test_cli_prints_one_line_and_fails(tmp_path: Path) -> None:
    bad = tmp_path / "data.yaml"
    values = yaml.safe_load((REPO_ROOT / "params" / "data.yaml").read_text())
    values["timout_s"] = values.pop("timeout_s")
    bad.write_text(yaml.safe_dump(values))
    proc = subprocess.run([sys.executable, "-m", "fairgender_utils.config", str(bad)],
                          capture_output=True, text=True, cwd=REPO_ROOT)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [f"error: {bad}: key 'timout_s': unknown key (typo?)"]


def test_cli_missing_params_file(tmp_path: Path) -> None:
    proc = subprocess.run([sys.executable, "-m", "fairgender_utils.config", str(tmp_path / "data.yaml")],
                          capture_output=True, text=True, cwd=REPO_ROOT)
    assert proc.returncode == 2 and "params file not found" in proc.stderr
