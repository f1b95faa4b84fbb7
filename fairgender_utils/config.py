"""Strict, typed stage configurations.

Parameters flow one way: ``params/<stage>.yaml`` -> ``dvc.yaml`` -> ``papermill -f`` -> the notebook's
``parameters`` cell -> one of the config classes here -> functions. Every class forbids unknown keys and
checks types and ranges, so a typo, a negative learning rate or a missing input file stops the stage
with one line that names the file and the key.

``python -m fairgender_utils.config
params/<stage>.yaml`` validates a params file before the notebook starts (the check dvc.yaml runs).
"""

from __future__ import annotations

import importlib
import json
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, TypeVar

import yaml
from pydantic import AfterValidator, BaseModel, ConfigDict, ValidationError, ValidationInfo

from fairgender_utils.paths import repo_path


class ConfigError(ValueError):
    """A parameter is wrong; the message names the params file and the key."""


def _exists(value: str, info: ValidationInfo) -> str:
    if (info.context or {}).get("check_paths", True) and not repo_path(value).exists():
        raise ValueError(f"file or folder not found: {value}")
    return value


InputPath = Annotated[str, AfterValidator(_exists)]
"""A path (relative to the repo root) that must exist when the config is built."""


class StageConfig(BaseModel):
    """Base class: strict types, no unknown keys, immutable."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    @classmethod
    def from_params(cls, values: Mapping[str, Any], source: str, check_paths: bool = True) -> StageConfig:
        """Validate ``values`` (read from ``source``); raise :class:`ConfigError` naming file and key.

        ``check_paths=False`` skips the existence check of input paths (a params file checked before
        the stages that make its inputs have run).
        """
        try:
            return cls.model_validate(dict(values), context={"check_paths": check_paths})
        except ValidationError as err:
            raise ConfigError(_one_line(err, source)) from None

    @classmethod
    def from_namespace(cls, namespace: Mapping[str, Any], source: str) -> StageConfig:
        """Build the config from a notebook's globals (the names papermill injected)."""
        missing = [k for k in cls.model_fields if k not in namespace]
        if missing:
            raise ConfigError(f"{source}: key '{missing[0]}': missing in the notebook parameters")
        return cls.from_params({k: namespace[k] for k in cls.model_fields}, source)

    def write(self, path: str | Path) -> Path:
        """Write the resolved configuration as JSON (beside the stage's outputs)."""
        out = repo_path(path)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(self.model_dump(mode="json"), indent=2, sort_keys=True) + "\n")
        return out


def _one_line(err: ValidationError, source: str) -> str:
    first = err.errors()[0]
    key = ".".join(str(p) for p in first["loc"]) or "<root>"
    msg = first["msg"]
    if first["type"] == "extra_forbidden":
        msg = "unknown key (typo?)"
    elif "input" in first and first["type"] != "missing":
        msg = f"{msg} (got {first['input']!r})"
    more = f" (+{err.error_count() - 1} more)" if err.error_count() > 1 else ""
    return f"{source}: key '{key}': {msg}{more}"


# Where each stage's config class lives ("module:Class"), imported only when asked for.
CONFIG_CLASSES = {
    "data": "fairgender_utils.data:DataConfig",
    "models": "fairgender_utils.models:ModelsConfig",
    "generate": "fairgender_utils.generation:GenerateConfig",
    "causal": "fairgender_utils.causal:CausalConfig",
    "train": "fairgender_utils.train_config:TrainConfig",
    "evaluate": "fairgender_utils.metrics.evaluate:EvaluateConfig",
    "report": "fairgender_utils.report:ReportConfig",
}


def config_for(stage: str) -> type[StageConfig]:
    """The config class of ``stage``."""
    if stage not in CONFIG_CLASSES:
        raise ConfigError(f"no configuration is defined for stage '{stage}'")
    module, name = CONFIG_CLASSES[stage].split(":")
    return getattr(importlib.import_module(module), name)


def validate_file(path: str | Path, check_paths: bool = True) -> StageConfig:
    """Read a params YAML and validate it with the config of the stage named by its stem."""
    p = Path(path)
    try:
        values = yaml.safe_load(repo_path(p).read_text())
    except FileNotFoundError:
        raise ConfigError(f"{p}: params file not found") from None
    except yaml.YAMLError as err:
        raise ConfigError(f"{p}: not valid YAML: {str(err).splitlines()[0]}") from None
    if not isinstance(values, dict):
        raise ConfigError(f"{p}: expected a mapping of keys to values")
    return config_for(p.stem).from_params(values, str(p), check_paths)


def main(argv: list[str] | None = None) -> int:
    """CLI: validate params files; one line per error on stderr, exit status 2."""
    args = sys.argv[1:] if argv is None else argv
    status = 0
    for arg in args:
        try:
            validate_file(arg)
        except ConfigError as err:
            print(f"error: {err}", file=sys.stderr)
            status = 2
    return status


if __name__ == "__main__":  # run through the package module so ConfigError is one class
    from fairgender_utils.config import main as _main

    raise SystemExit(_main())
