"""Configuration of the report stage (``params/report.yaml``, ``notebooks/05_report.ipynb``, ``results/report``)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from fairgender_utils.config import InputPath, StageConfig


class ReportConfig(StageConfig):
    """``params/report.yaml``."""

    base_variant: str
    method: str
    rivals: list[str]
    evaluate_dir: InputPath
    generate_metrics: InputPath
    causal_metrics: InputPath
    train_dir: InputPath
    alpha: float = Field(gt=0, lt=1)
    primary_test: Literal["wilcoxon", "bootstrap"]
    primary_unit: Literal["target", "pair"]
    n_perm: int = Field(ge=100)
    n_boot: int = Field(ge=100)  # bootstrap replicates (primary endpoint CIs; LMS, ICAT, perplexity tests)
    seed: int
    flat_tail: float = Field(gt=0, lt=1)
    flat_tol: float = Field(gt=0, lt=1)
    goal_j_drop_pct: float = Field(gt=0, le=100)
    goal_ppl_rise_pct: float = Field(ge=0)
    goal_lms_drop: float = Field(ge=0)
    out_dir: str
    metrics_path: str
    config_path: str
