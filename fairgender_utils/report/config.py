"""Configuration of the report stage (``params/report.yaml``, ``notebooks/05_report.ipynb``, ``results/report``)."""

from __future__ import annotations

from pydantic import Field

from fairgender_utils.config import InputPath, StageConfig


class ReportConfig(StageConfig):
    """``params/report.yaml``."""

    base_variant: str
    evaluate_dir: InputPath
    generate_metrics: InputPath
    causal_metrics: InputPath
    train_dir: InputPath
    alpha: float = Field(gt=0, lt=1)
    n_perm: int = Field(ge=100)
    n_boot: int = Field(ge=100)  # paired bootstrap replicates (LMS, ICAT, perplexity)
    seed: int
    out_dir: str
    metrics_path: str
    config_path: str
