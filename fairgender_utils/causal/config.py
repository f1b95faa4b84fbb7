"""Configuration of the causal stage (``params/causal.yaml``, ``notebooks/02_causal_estimation.ipynb``,
``results/causal``): the frozen PLM, the reference corpus R, the alignment threshold θ and the neighbour index."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from fairgender_utils.config import InputPath, ModelPath, StageConfig
from fairgender_utils.loaders import GlueTask


class CausalConfig(StageConfig):
    """``params/causal.yaml``."""

    pairs_path: InputPath
    data_dir: InputPath
    model_path: ModelPath  # set by dvc.yaml: params/models.yaml study_model
    family: Literal["", "masked", "causal"]  # "": read from the model folder's fairgender_source.json
    device: Literal["auto", "cpu", "cuda"]  # auto: cuda when available, else cpu
    cpu_threads: int = Field(ge=0)  # torch threads on a CPU; 0: torch's default (all cores)
    screen_toxic: bool
    unscreened_dir: str
    reference_tasks: list[GlueTask] = Field(min_length=1)
    reference_size: int = Field(gt=0)
    reference_min_words: int = Field(ge=1)
    k_ref: int = Field(gt=0)
    theta_mode: Literal["quantile", "absolute"]
    theta: float  # quantile mode: a share in [0, 1]; absolute mode: a cosine in [-1, 1]
    tau_min: float = Field(ge=0)
    k_c: int = Field(ge=0)
    sim_min: float = Field(ge=-1, le=1)
    batch_size: int = Field(gt=0)
    max_length: int = Field(gt=4)
    seed: int
    aligned_path: str
    unaligned_path: str
    neighbours_path: str
    effects_path: str
    figures_dir: str
    plots_dir: str
    metrics_path: str
    config_path: str

    @model_validator(mode="after")
    def _theta_range(self) -> CausalConfig:
        low, high = (0.0, 1.0) if self.theta_mode == "quantile" else (-1.0, 1.0)
        if not low <= self.theta <= high:
            raise ValueError(f"theta: {self.theta} is outside [{low:g}, {high:g}] for theta_mode '{self.theta_mode}'")
        return self
