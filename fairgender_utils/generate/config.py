"""Configuration of the generate stage (``params/generate.yaml``, ``notebooks/01_generate.ipynb``,
``results/generate``): the generator LLMs, decoding, endpoint behaviour, validation and prompt templates."""

from __future__ import annotations

import string
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from fairgender_utils.config import InputPath, StageConfig
from fairgender_utils.generate.endpoint_url import has_credentials, public_url


class GeneratorEntry(BaseModel):
    """One LLM: a local model folder (or, with a base URL, the name the endpoint serves) and its API."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)
    model: str = Field(min_length=1)
    api: Literal["chat", "completions"]


_PLACEHOLDERS = {"step1_completion_prompt": {"attribute", "target"},
                 "step1_chat_prompt": {"attribute", "target"},
                 "step2_completion_prompt": {"sentence", "mapping"},
                 "step2_chat_prompt": {"sentence", "mapping"}}


class GenerateConfig(StageConfig):
    """``params/generate.yaml``. ``generators`` and the prompt templates have no default here: their
    values live only in the params file."""

    data_dir: InputPath
    generator: str
    generators: dict[str, GeneratorEntry] = Field(min_length=1)
    base_url: str
    api_key_env: str
    n_cells: int = Field(gt=0)
    seed: int
    temperature: float = Field(ge=0.0, le=2.0)
    top_p: float = Field(gt=0.0, le=1.0)
    max_tokens_step1: int = Field(gt=0, le=512)
    max_tokens_step2: int = Field(gt=0, le=512)
    concurrency: int = Field(ge=1, le=256)
    throughput_cells: int = Field(ge=0)
    compare_generators: list[str]
    compare_cells: int = Field(ge=1)
    connect_timeout_s: float = Field(gt=0)
    read_timeout_s: float = Field(gt=0)
    max_retries: int = Field(ge=0)
    backoff_s: float = Field(gt=0)
    continuous_batching: bool
    cb_num_blocks: int = Field(ge=0)
    cb_max_batch_tokens: int = Field(ge=0)
    server_device: str
    server_threads: int = Field(ge=0)
    server_startup_timeout_s: float = Field(gt=0)
    min_words: int = Field(ge=1)
    max_words: int = Field(ge=1)
    require_end_mark: bool
    repair: bool
    toxicity_threshold: float = Field(ge=0.0, le=1.0)
    step1_completion_prompt: str
    step2_completion_prompt: str
    chat_system_prompt: str
    step1_chat_prompt: str
    step2_chat_prompt: str
    journal_path: str
    pairs_path: str
    rejects_path: str
    provenance_path: str
    figures_dir: str
    plots_dir: str
    metrics_path: str
    config_path: str

    @field_validator("base_url")
    @classmethod
    def _no_credentials(cls, url: str) -> str:
        if has_credentials(url):
            raise ValueError(f"holds credentials ({public_url(url)}): params are committed and recorded; "
                             "put such a URL in $OPENAI_BASE_URL (or the key in api_key_env) instead")
        return url

    @model_validator(mode="after")
    def _consistent(self) -> GenerateConfig:
        for key in [self.generator, *self.compare_generators]:
            if key not in self.generators:
                raise ValueError(f"generator '{key}' is not a key of 'generators'")
        if self.compare_cells > self.n_cells or self.throughput_cells > self.n_cells:
            raise ValueError("compare_cells and throughput_cells must not exceed n_cells")
        if self.min_words > self.max_words:
            raise ValueError("min_words must not exceed max_words")
        for name, needed in _PLACEHOLDERS.items():
            found = {f for _, f, _, _ in string.Formatter().parse(getattr(self, name)) if f}
            if found != needed:
                raise ValueError(f"{name}: placeholders {sorted(found)}, expected {sorted(needed)}")
        return self
