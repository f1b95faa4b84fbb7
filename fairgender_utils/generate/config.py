"""Configuration of the generate stage (``params/generate.yaml``, ``notebooks/01_generate.ipynb``,
``results/generate``): word lists, generator LLMs, yield levers, decoding, endpoint behaviour, validation,
splits and prompt templates."""

from __future__ import annotations

import string
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator, model_validator

from fairgender_utils.config import InputPath, StageConfig
from fairgender_utils.generate.endpoint_url import has_credentials, public_url
from fairgender_utils.paths import repo_path


class GeneratorEntry(BaseModel):
    """One LLM: a local model folder (or, with a base URL, the name the endpoint serves) and its API."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)
    model: str = Field(min_length=1)
    api: Literal["chat", "completions"]


_PLACEHOLDERS = {"step1_completion_prompt": {"attribute", "target"},  # and optionally {examples} before the query
                 "step1_chat_prompt": {"attribute", "target"},
                 "step2_completion_prompt": {"sentence", "mapping"},
                 "step2_chat_prompt": {"sentence", "mapping"}}


class GenerateConfig(StageConfig):
    """``params/generate.yaml``. ``generators`` and the prompt templates have no default here: their
    values live only in the params file."""

    data_dir: InputPath
    word_curation: str
    generator: str
    generators: dict[str, GeneratorEntry] = Field(min_length=1)
    base_url: str
    api_key_env: str
    n_cells: int = Field(gt=0)
    seed: int
    candidates: int = Field(ge=1, le=16)
    step2_candidates: int = Field(ge=1, le=16)
    fewshot_k_step1: int = Field(ge=0)
    fewshot_k_step2: int = Field(ge=0)
    fewshot_rotate: bool
    step1_prefill: bool
    step2_prefill: bool
    inflect: bool
    stream: bool
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
    swap_fallback: bool
    toxicity_threshold: float = Field(ge=0.0, le=1.0)
    split_shares: list[float] = Field(min_length=3, max_length=3)
    split_seed: int
    split_together: list[list[str]]
    step1_completion_prompt: str
    step2_completion_prompt: str
    step1_examples: list[list[str]]
    step2_examples: list[list[str]]
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
    levers_path: str

    @field_validator("base_url")
    @classmethod
    def _no_credentials(cls, url: str) -> str:
        if has_credentials(url):
            raise ValueError(f"holds credentials ({public_url(url)}): params are committed and recorded; "
                             "put such a URL in $OPENAI_BASE_URL (or the key in api_key_env) instead")
        return url

    @field_validator("word_curation")
    @classmethod
    def _curation_exists(cls, path: str, info: ValidationInfo) -> str:
        if path and (info.context or {}).get("check_paths", True) and not repo_path(path).is_file():
            raise ValueError(f"file not found: {path} (empty: the raw word lists)")
        return path

    @field_validator("split_shares")
    @classmethod
    def _shares(cls, shares: list[float]) -> list[float]:
        if min(shares) <= 0 or abs(sum(shares) - 1.0) > 1e-9:
            raise ValueError(f"train, dev and test shares must be positive and sum to 1, got {shares}")
        return shares

    @field_validator("step1_examples", "step2_examples")
    @classmethod
    def _triples(cls, bank: list[list[str]]) -> list[list[str]]:
        for i, ex in enumerate(bank):
            if len(ex) != 3 or not all(ex):
                raise ValueError(f"example {i} is {ex!r}: give [attribute, target, sentence] (step 1) or "
                                 "[sentence, mapping, rewritten] (step 2)")
        return bank

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
            text = getattr(self, name)
            found = {f for _, f, _, _ in string.Formatter().parse(text) if f}
            if name.endswith("completion_prompt") and "examples" in found:
                found.discard("examples")
                query = {f for _, f, _, _ in string.Formatter().parse(text.split("{examples}", 1)[1]) if f}
                if query != needed:
                    raise ValueError(f"{name}: the query line after {{examples}} must hold {sorted(needed)}")
            if found != needed:
                raise ValueError(f"{name}: placeholders {sorted(found)}, expected {sorted(needed)}")
        for step in (1, 2):
            k, bank = getattr(self, f"fewshot_k_step{step}"), getattr(self, f"step{step}_examples")
            if k > len(bank):
                raise ValueError(f"fewshot_k_step{step}: {k} examples asked, step{step}_examples has {len(bank)}")
        return self
