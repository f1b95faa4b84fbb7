"""The values a stage runs with by default, for tests: its params file plus what dvc.yaml passes to the
stage's default entry (``-p`` in its command). Tests build every config from these, so a value lives in
params/ alone."""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Any

from fairgender_utils.config import config_for, read_params

DEFAULT_ENTRY = {"train": "train@fairgender-0", "evaluate": "evaluate-base", "tune": "tune/dvc.yaml:tune"}


@cache
def _runs() -> dict[str, tuple[str, str, str, dict[str, Any]]]:
    from fairgender_utils.stage import dvc_runs

    return dvc_runs()


def dvc_overrides(stage: str) -> dict[str, Any]:
    """What dvc.yaml passes with ``-p`` to the default entry of ``stage``."""
    name = DEFAULT_ENTRY.get(stage, stage)
    return dict(_runs()[name][3])


def stage_params(stage: str, **overrides: Any) -> dict[str, Any]:
    """params/<stage>.yaml, the dvc.yaml values of its default entry, then ``overrides``."""
    return {**read_params(Path("params") / f"{stage}.yaml"), **dvc_overrides(stage), **overrides}


def stage_config(stage: str, check_paths: bool = False, **overrides: Any):
    """The stage's config built from :func:`stage_params` (input paths unchecked unless asked)."""
    return config_for(stage).from_params(stage_params(stage, **overrides), f"params/{stage}.yaml", check_paths)
