"""Shared fixtures: tiny models of every family, and the data folder (mirror beside the checkout)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from tests import tiny_models  # noqa: E402


@pytest.fixture(scope="session")
def tiny_model_dirs(tmp_path_factory) -> dict[str, Path]:
    """{'bert'|'roberta'|'albert'|'llama': folder} of tiny randomly initialised models."""
    base = tmp_path_factory.mktemp("tiny_models")
    return {kind: tiny_models.build(kind, base / kind) for kind in tiny_models.FAMILIES}


@pytest.fixture(scope="session")
def data_dir(tmp_path_factory) -> Path:
    """A data folder materialised by the data stage's own code (from the mirror beside the checkout)."""
    from fairgender_utils.data.fetch import materialise
    from tests.params import stage_config

    out = tmp_path_factory.mktemp("data")
    materialise(stage_config("data", data_dir=str(out), try_network=False))
    return out
