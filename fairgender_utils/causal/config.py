"""Configuration of the causal stage (``params/causal.yaml``, ``notebooks/02_causal_estimation.ipynb``,
``results/causal``): the frozen PLM, the reference corpus R, the alignment score, the corrupted controls,
the threshold θ and the neighbour index."""

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
    reference_size: int = Field(gt=1)
    reference_min_words: int = Field(ge=1)
    reference_loglik_size: int = Field(gt=1)  # the first sentences of R also scored by the LM head
    k_ref: int = Field(gt=0)
    knn_weight: float = Field(ge=0, le=1)  # a = w·z(kNN cosine) + (1 - w)·z(SLOR)
    control_words_path: InputPath
    controls_per_pair: int = Field(ge=1)  # controls of each kind built from every pair
    theta_mode: Literal["control", "quantile", "absolute"]
    theta: float  # quantile mode: a share in [0, 1]; absolute mode: a value of a; unused in control mode
    theta_control_reject: float = Field(gt=0, lt=1)  # control mode: share of shuffled controls below θ
    tau_min: float = Field(ge=0)
    k_c: int = Field(ge=0)
    sim_min_mode: Literal["quantile", "absolute"]
    sim_min: float = Field(ge=-1, le=1)  # quantile mode: a share in [0, 1]; absolute mode: a cosine
    batch_size: int = Field(gt=0)
    max_length: int = Field(gt=4)
    seed: int
    ranked_shown: int = Field(gt=0)  # sentences shown at each end of the ranking by a
    aligned_path: str
    unaligned_path: str
    neighbours_path: str
    dev_path: str
    effects_path: str
    embeddings_path: str
    index_path: str
    figures_dir: str
    plots_dir: str
    metrics_path: str
    config_path: str

    @model_validator(mode="after")
    def _ranges(self) -> CausalConfig:
        if self.theta_mode == "quantile" and not 0.0 <= self.theta <= 1.0:
            raise ValueError(f"theta: {self.theta} is outside [0, 1] for theta_mode 'quantile'")
        if self.sim_min_mode == "quantile" and not 0.0 <= self.sim_min <= 1.0:
            raise ValueError(f"sim_min: {self.sim_min} is outside [0, 1] for sim_min_mode 'quantile'")
        if self.reference_loglik_size > self.reference_size:
            raise ValueError(f"reference_loglik_size: {self.reference_loglik_size} is more than "
                             f"reference_size ({self.reference_size})")
        return self
