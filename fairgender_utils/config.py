"""Strict, typed stage configurations: the base class, the params reader and the check dvc.yaml relies on.

Parameters flow one way: ``params/<stage>.yaml`` -> ``dvc.yaml`` -> ``papermill -f`` -> the notebook's
``parameters`` cell -> the stage's config class (``fairgender_utils/<stage>/config.py``) -> functions.

The params file is the only place a value lives. A config class states types, ranges and cross-field
rules and holds no default of its own, so every key must be present: a typo, a duplicate key, a deleted
key, a wrong type or a value out of range stops the stage before any work, with one line that names the
file and the key. A class with a ``variant`` field fills ``{variant}`` in every string value when it
loads, so paths are resolved once.

``python -m fairgender_utils.config params/<stage>.yaml ...`` checks params files (exit status 2 on error).
"""

from __future__ import annotations

import difflib
import importlib
import json
import re
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any

import yaml
from pydantic import AfterValidator, BaseModel, ConfigDict, ValidationError, ValidationInfo, model_validator

from fairgender_utils.paths import repo_path

STAGES = ("data", "models", "generate", "causal", "prompts", "train", "tune", "evaluate", "report")


class ConfigError(ValueError):
    """A parameter is wrong; the message names the params file and the key."""


def _exists(value: str, info: ValidationInfo) -> str:
    if (info.context or {}).get("check_paths", True) and not repo_path(value).exists():
        raise ValueError(f"file or folder not found: {value}")
    return value


InputPath = Annotated[str, AfterValidator(_exists)]
"""A path (relative to the repo root) that must exist when the config is built."""


def _model_exists(value: str, info: ValidationInfo) -> str:
    if not value:
        raise ValueError("empty: give a model folder or a hub id")
    local = value.startswith(("models/", "./", "../", "/")) or repo_path(value).exists()
    if local and (info.context or {}).get("check_paths", True) and not (repo_path(value) / "config.json").exists():
        raise ValueError(f"model folder not found or incomplete (no config.json): {value} "
                         "(run the stage that makes it: dvc repro models, or train@<variant>)")
    return value


ModelPath = Annotated[str, AfterValidator(_model_exists)]
"""A model: a local folder (``models/...``, which must hold a saved model) or a Hugging Face hub id."""


class StageConfig(BaseModel):
    """Base class: strict types, no unknown keys, no defaults (every key comes from the params file)."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    @model_validator(mode="before")
    @classmethod
    def _fill_variant(cls, values: Any) -> Any:
        """Put the run's variant into ``{variant}`` placeholders (output paths of per-variant stages)."""
        if isinstance(values, dict) and isinstance(values.get("variant"), str) and "variant" in cls.model_fields:
            v = values["variant"]
            values = {k: x.replace("{variant}", v) if isinstance(x, str) else x for k, x in values.items()}
        return values

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
    errors = sorted(err.errors(), key=lambda e: e["type"] != "extra_forbidden")  # a typo explains a missing key
    first = errors[0]
    key = ".".join(str(p) for p in first["loc"]) or "<root>"
    msg = first["msg"]
    count = len(errors)
    if first["type"] == "extra_forbidden":
        missing = [str(e["loc"][-1]) for e in errors if e["type"] == "missing" and len(e["loc"]) == len(first["loc"])]
        close = difflib.get_close_matches(str(first["loc"][-1]), missing, n=1)
        msg = f"unknown key (typo of '{close[0]}'?)" if close else "unknown key (typo?)"
        count -= bool(close)
    elif first["type"] == "missing":
        msg = "missing (every key must be given; the params file holds the defaults)"
    elif not first["loc"]:  # a cross-field rule: its message starts with the key it is about
        rule = re.match(r"(?:Value error, )?([A-Za-z_][\w.]*): (.*)", msg, re.S)
        key, msg = (rule.group(1), rule.group(2)) if rule else (key, msg.removeprefix("Value error, "))
    elif "input" in first and first["type"] != "value_error":  # a rule's own message names what is wrong
        msg = f"{msg} (got {first['input']!r})"
    more = f" (+{count - 1} more)" if count > 1 else ""
    return f"{source}: key '{key}': {msg}{more}" if key != "<root>" else f"{source}: {msg}{more}"


class _UniqueKeyLoader(yaml.SafeLoader):
    """YAML SafeLoader that refuses a key written twice in one mapping (DVC refuses such files too)."""


def _unique_mapping(loader: _UniqueKeyLoader, node: yaml.MappingNode, deep: bool = False) -> dict:
    seen: dict[Any, int] = {}
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=deep)
        if key in seen:
            raise yaml.constructor.ConstructorError(
                None, None, f"key '{key}' appears twice (lines {seen[key]} and {key_node.start_mark.line + 1})",
                key_node.start_mark)
        seen[key] = key_node.start_mark.line + 1
    return loader.construct_mapping(node, deep=deep)


_UniqueKeyLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _unique_mapping)


def read_params(path: str | Path) -> dict[str, Any]:
    """The mapping of a params YAML: a missing file, invalid YAML, a duplicate key or an empty file is a
    :class:`ConfigError` naming the file (and the line)."""
    p = Path(path)
    try:
        values = yaml.load(repo_path(p).read_text(), Loader=_UniqueKeyLoader)  # noqa: S506 (a SafeLoader)
    except FileNotFoundError:
        raise ConfigError(f"{p}: params file not found") from None
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None) or getattr(err, "context_mark", None)
        where = f" (line {mark.line + 1})" if mark else ""
        problem = getattr(err, "problem", None) or str(err).splitlines()[0]
        raise ConfigError(f"{p}: not valid YAML{where}: {problem}") from None
    if not isinstance(values, dict) or not values:
        raise ConfigError(f"{p}: expected a mapping of keys to values (the file is empty or not a mapping)")
    return values


def config_for(stage: str) -> type[StageConfig]:
    """The config class of ``stage`` (``fairgender_utils/<stage>/config.py``), imported only when asked for."""
    if stage not in STAGES:
        raise ConfigError(f"no configuration is defined for stage '{stage}' (known: {', '.join(STAGES)})")
    module = importlib.import_module(f"fairgender_utils.{stage}.config")
    return getattr(module, f"{stage.capitalize()}Config")


def load(path: str | Path, overrides: Mapping[str, Any] | None = None, check_paths: bool = True) -> StageConfig:
    """Read a params file, apply ``overrides`` (dvc.yaml's ``-p KEY VALUE``), validate it with the config
    of the stage named by the file's stem."""
    values = {**read_params(path), **(overrides or {})}
    return config_for(Path(path).stem).from_params(values, str(path), check_paths)


def main(argv: list[str] | None = None) -> int:
    """CLI: validate params files as dvc.yaml runs them (with the values its commands pass, for every
    ``foreach`` entry); no argument: every stage. One line per error on stderr, exit status 2."""
    from fairgender_utils.stage import dvc_runs  # reads dvc.yaml: imported only for the CLI

    args = sys.argv[1:] if argv is None else argv
    runs = dvc_runs()
    checks = [(name, params, over) for name, (_, params, _, over) in runs.items()
              if not args or any(Path(params) == Path(a) for a in args)]
    checks += [(a, a, {}) for a in args if not any(Path(p) == Path(a) for _, p, _ in checks)]
    status = 0
    for name, params, over in checks:
        try:
            load(params, over)
        except ConfigError as err:
            where = f" (stage {name})" if name != params else ""
            print(f"error{where}: {err}", file=sys.stderr)
            status = 2
    return status


if __name__ == "__main__":  # run through the package module so ConfigError is one class
    from fairgender_utils.config import main as _main

    raise SystemExit(_main())
