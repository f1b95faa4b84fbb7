"""Configuration of the prompts stage (``params/prompts.yaml``, ``notebooks/02_search_prompts.ipynb``,
``results/prompts``): Auto-Debias's beam search for the prompts on which the model's predictions differ
most between male and female words (METHOD.md §6)."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, model_validator

from fairgender_utils.config import InputPath, ModelPath, StageConfig

Word = Annotated[str, Field(pattern=r"^\S+$")]


class PromptsConfig(StageConfig):
    """``params/prompts.yaml``."""

    model_path: ModelPath  # set by dvc.yaml: params/models.yaml study_model
    family: Literal["", "masked", "causal"]  # "": read from the model folder's fairgender_source.json
    data_dir: InputPath  # word lists (gender words, stereotype words) through fairgender_utils.loaders
    vocab_file: InputPath  # frequency-ordered word list; the first column of each line is the word
    vocab_size: int = Field(gt=0)  # V: prompt words, the first V after the exclusions
    prompt_length: int = Field(gt=0)  # PL: longest prompt, in words
    beam: int = Field(gt=0)  # K: prompts kept per length
    search_pairs: list[Annotated[list[Word], Field(min_length=2, max_length=2)]] = Field(min_length=1)
    multi_subtoken: Literal["first", "drop"]  # a stereotype word of several tokens: its first piece, or left out
    reuse_prefix: bool  # causal LMs: a prefix shared by several probes runs once (KV cache)
    batch_size: int = Field(gt=0)  # probe texts per forward pass
    max_length: int = Field(gt=4)  # tokens per probe text
    device: Literal["auto", "cpu", "cuda"]
    cpu_threads: int = Field(ge=0)  # torch threads on a CPU; 0: torch's default (all cores)
    prompts_path: str
    figures_dir: str
    plots_dir: str
    metrics_path: str
    config_path: str

    @model_validator(mode="after")
    def _distinct_pairs(self) -> PromptsConfig:
        seen = [tuple(p) for p in self.search_pairs]
        twice = next((p for n, p in enumerate(seen) if p in seen[:n]), None)
        if twice:
            raise ValueError(f"search_pairs: the pair {list(twice)} is listed twice")
        same = next((p for p in seen if p[0] == p[1]), None)
        if same:
            raise ValueError(f"search_pairs: the pair {list(same)} has the same word on both sides")
        return self
