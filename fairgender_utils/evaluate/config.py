"""Configuration of the evaluate stage (``params/evaluate.yaml``, ``notebooks/04_evaluate.ipynb``,
``results/evaluate/<variant>``): which benchmarks, how they are scored, and the statistics' settings."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, model_validator

from fairgender_utils.config import InputPath, ModelPath, StageConfig
from fairgender_utils.loaders import GlueTask


class EvaluateConfig(StageConfig):
    """``params/evaluate.yaml`` (one variant per run; dvc.yaml sets variant, model and the paths)."""

    variant: str = Field(min_length=1, pattern=r"^[A-Za-z0-9_.-]+$")
    model: ModelPath  # set by dvc.yaml: the study model, or models/trained/<variant>
    family: Literal["", "masked", "causal"]
    data_dir: InputPath
    out_dir: str
    device: Literal["auto", "cpu", "cuda"]
    cpu_threads: int = Field(ge=0)  # torch threads on a CPU; 0: torch's default (all cores)
    batch_tokens: int = Field(ge=64)
    seed: int
    ci_level: float = Field(gt=0, lt=1)
    n_boot: int = Field(ge=100)
    seat_tests: list[str] = Field(min_length=1)
    seat_n_samples: int = Field(ge=1000)
    seat_exact_max: int = Field(ge=1)
    profile: Literal["quick", "full"]  # quick: gender subsets, SEAT, perplexity; full: + all domains, GLUE
    full_profile_models: list[str]  # variants evaluated with the full profile
    pairs_path: InputPath  # the generated pairs: the primary endpoint reads split `primary_split`
    primary_split: Literal["test", "dev"]  # test: the pre-registered endpoint (METHOD.md §9)
    primary_batch_size: int = Field(ge=1)  # pairs per forward pass
    primary_context_weight: float = Field(ge=0)  # set by dvc.yaml: params/train.yaml context_weight (J of §5)
    primary_max_length: int = Field(gt=4)  # set by dvc.yaml: params/train.yaml max_length
    ppl_part: Literal["dev", "test"]  # held-out questions scored: dev (tuning) or test (evaluation)
    ppl_n: int = Field(ge=0)  # 0: all of the part
    ppl_dev_share: float = Field(gt=0, lt=1)
    ppl_split_seed: int
    glue_mode: Literal["probe", "finetune", "off"]
    glue_tasks: list[GlueTask]
    glue_train_n: int = Field(ge=0)
    glue_dev_n: int = Field(ge=0)
    glue_max_length: int = Field(ge=8)
    glue_batch_size: int = Field(ge=1)
    glue_c: float = Field(gt=0)
    glue_ridge_alpha: float = Field(gt=0)
    glue_lr: float = Field(gt=0)
    glue_epochs: int = Field(ge=1)
    glue_seeds: list[int] = Field(min_length=1)
    metrics_path: str
    config_path: str

    @model_validator(mode="before")
    @classmethod
    def _full_profile_for(cls, values: Any) -> Any:
        """A model named in ``full_profile_models`` gets the full profile (the resolved config records it)."""
        if isinstance(values, dict) and values.get("variant") in (values.get("full_profile_models") or []):
            values = {**values, "profile": "full"}
        return values
