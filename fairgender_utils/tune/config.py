"""Configuration of the tune stage (``params/tune.yaml``, ``notebooks/03_tune_training.ipynb``, ``results/tune``).

The grid is the product of ``lr`` x ``lambda_r`` x ``lm_loss`` x ``theta``; each point is one training run of
``variant`` (``max_steps`` steps, every other parameter from ``train_params``) whose dev curve (every
``dev_every`` steps) gives every step count at once. The rule is fixed here, before any run: the lowest dev J
among the points whose dev perplexity is at most (1 + ``max_ppl_rise``) x the base model's. Nothing it reads
holds a benchmark; of the generated pairs only the train and dev splits are read.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from fairgender_utils.config import InputPath, ModelPath, StageConfig

TUNED_TRAIN_KEYS = ("lr", "lambda_r", "lm_loss", "max_steps")  # params/train.yaml keys set from chosen.json
# and params/causal.yaml's theta_control_reject (theta_mode control) or theta (quantile, absolute): chosen "theta"


class TuneConfig(StageConfig):
    """``params/tune.yaml``."""

    variant: str = Field(pattern=r"^[A-Za-z0-9_.-]+$")  # the variant tuned (its overrides apply)
    seed: int  # the training seed of every tuning run
    model_path: ModelPath  # set by dvc.yaml: params/models.yaml study_model
    ppl_dev_share: float = Field(gt=0, lt=1)  # set by dvc.yaml from params/evaluate.yaml
    ppl_split_seed: int
    train_params: InputPath  # params/train.yaml: every training parameter the grid does not vary
    causal_params: InputPath  # params/causal.yaml: theta_mode, the split rule and the neighbour index
    lr: list[float] = Field(min_length=1)
    lambda_r: list[float] = Field(min_length=1)
    lm_loss: list[Literal["own", "kl"]] = Field(min_length=1)
    theta: list[float] = Field(min_length=1)  # in params/causal.yaml's theta_mode (control: reject shares)
    max_steps: int = Field(gt=0)  # steps of every run (the longest step count considered)
    dev_every: int = Field(gt=0)  # steps between dev points (each a candidate step count)
    max_ppl_rise: float = Field(ge=0)  # the rule: dev perplexity at most (1 + this) x base
    cpu_threads: int = Field(ge=0)  # threads of each training run (0: accelerate's choice)
    work_dir: str  # training sets per theta and the runs' logs (models, checkpoints: none are kept)
    table_path: str
    chosen_path: str
    figures_dir: str
    plots_dir: str
    metrics_path: str
    config_path: str

    @model_validator(mode="after")
    def _distinct(self) -> TuneConfig:
        for key in ("lr", "lambda_r", "lm_loss", "theta"):
            values = getattr(self, key)
            if len(set(values)) != len(values):
                raise ValueError(f"{key}: a value is listed twice ({values})")
        if self.dev_every > self.max_steps:
            raise ValueError(f"dev_every: {self.dev_every} exceeds max_steps {self.max_steps}: no dev point to choose")
        return self
