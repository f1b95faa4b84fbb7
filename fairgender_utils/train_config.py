"""Configuration of stage 03 (training) and the command that launches it. Pure pydantic: importing this
module starts nothing (no torch, no accelerate).

``params/train.yaml`` holds the base values, the ``variant`` to run and a ``variants`` mapping of
per-variant overrides (METHOD.md §6). :meth:`TrainConfig.for_variant` applies the overrides of
``variant`` and fills ``{variant}`` in the output paths; the result is what the training script reads.
"""

from __future__ import annotations

import sys
from typing import Any, Literal

from pydantic import Field, model_validator

from fairgender_utils.config import ConfigError, StageConfig


class TrainingError(RuntimeError):
    """Training cannot go on (no data, a non-finite loss, an unusable checkpoint)."""


# METHOD.md §6: the variants that need training, as overrides of the base values.
VARIANTS: dict[str, dict[str, Any]] = {
    "cda": {"data": "all", "bias_loss": False},
    "fairgender": {},
    "no_filter": {"data": "all"},
    "no_knn": {"w0": 1.0},
    "no_screen": {"causal_dir": "data/causal/unscreened"},
}


class TrainConfig(StageConfig):
    """``params/train.yaml``."""

    variant: str = "fairgender"
    variants: dict[str, dict[str, Any]] = Field(
        default_factory=lambda: {name: {**over} for name, over in VARIANTS.items()})
    model_path: str = "models/base/gemma-3-270m"
    family: Literal["", "masked", "causal"] = ""  # "": read from the model folder's fairgender_source.json
    causal_dir: str = "data/causal"  # aligned.jsonl, unaligned.jsonl, neighbours.jsonl of stage 02
    data: Literal["aligned", "all"] = "aligned"  # X^C, or X^C ∪ X^NC
    max_pairs: int = Field(default=0, ge=0)  # 0: every pair; else the first N (file order)
    bias_loss: bool = True  # False: L_r only (cda)
    w0: float = Field(default=0.9, ge=0, le=1)
    neighbour_sample: int = Field(default=1, ge=0)  # neighbours of N(i) drawn per step; 0: all of them
    context_weight: float = Field(default=1.0, ge=0)  # causal LMs: weight of the shared-position JSD in J
    lambda_r: float = Field(default=1.0, ge=0)
    lm_loss: Literal["own", "kl"] = "own"  # own: MLM / next-token loss; kl: KL(p_frozen || p)
    mlm_probability: float = Field(default=0.15, gt=0, lt=1)
    batch_size: int = Field(default=16, gt=0)  # pairs per optimizer step, all processes together
    micro_batch_size: int = Field(default=4, gt=0)  # pairs per forward pass and process
    epochs: int = Field(default=3, gt=0)
    max_steps: int = Field(default=16, ge=0)  # 0: epochs decide; else stop after this many steps
    lr: float = Field(default=1e-5, gt=0)
    weight_decay: float = Field(default=0.01, ge=0)
    lr_scheduler: Literal["linear", "cosine", "constant", "constant_with_warmup"] = "linear"
    warmup_ratio: float = Field(default=0.1, ge=0, lt=1)
    max_grad_norm: float = Field(default=1.0, gt=0)
    freeze_embeddings: bool = True  # input (and tied output) embeddings
    dropout: bool = True  # False: every dropout probability set to 0 (deterministic runs)
    max_length: int = Field(default=64, gt=4)
    seed: int = 42
    checkpoint_every: int = Field(default=5, gt=0)
    keep_checkpoints: int = Field(default=1, gt=0)
    resume: bool = True  # resume from the newest complete checkpoint in checkpoint_dir
    fresh_if_unusable: bool = False  # a corrupt checkpoint: False stops with an error, True starts afresh
    count_flops: bool = True  # count the FLOPs of each step (torch.utils.flop_counter)
    accelerate_profile: Literal["cpu", "single-gpu", "multi-gpu"] = "cpu"
    cpu_threads: int = Field(default=0, ge=0)  # threads per CPU process; 0: accelerate's choice (physical cores / processes)
    output_dir: str = "models/trained/{variant}"
    checkpoint_dir: str = "models/checkpoints/{variant}"
    figures_dir: str = "results/train/{variant}/figures"
    plots_dir: str = "results/train/{variant}/plots"
    metrics_path: str = "results/train/{variant}/metrics.json"
    config_path: str = "results/train/{variant}/config.json"

    @model_validator(mode="after")
    def _known_variant(self) -> TrainConfig:
        if self.variants and self.variant not in self.variants:
            known = ", ".join(self.variants)
            raise ValueError(f"variant '{self.variant}' is not a key of 'variants' ({known})")
        for name, over in self.variants.items():
            bad = [k for k in over if k not in type(self).model_fields or k in ("variant", "variants")]
            if bad:
                raise ValueError(f"variants.{name}: '{bad[0]}' is not a training parameter")
        return self

    def for_variant(self, source: str = "params/train.yaml") -> TrainConfig:
        """The configuration of ``variant``: its overrides applied and ``{variant}`` filled in paths."""
        values = self.model_dump()
        values.update(self.variants.get(self.variant, {}))
        for key, value in values.items():
            if isinstance(value, str) and "{variant}" in value:
                values[key] = value.replace("{variant}", self.variant)
        return type(self).from_params(values, f"{source} (variant {self.variant})")


def launch_command(cfg: TrainConfig, python: str | None = None) -> list[str]:
    """``accelerate launch --config_file params/accelerate/<profile>.yaml [--num_cpu_threads_per_process N]
    -m fairgender_utils.train --config <resolved config>``, run with this interpreter."""
    if "{variant}" in cfg.config_path:
        raise ConfigError("launch_command needs the resolved config: call cfg.for_variant() first")
    threads = ["--num_cpu_threads_per_process", str(cfg.cpu_threads)] if cfg.cpu_threads else []
    return [python or sys.executable, "-m", "accelerate.commands.launch", "--config_file",
            f"params/accelerate/{cfg.accelerate_profile}.yaml", *threads, "-m", "fairgender_utils.train",
            "--config", cfg.config_path]
