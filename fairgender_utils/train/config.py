"""Configuration of stage 03 (training) and the command that launches it. Pure pydantic: importing this
module starts nothing (no torch, no accelerate).

``params/train.yaml`` holds the base values and the ``variants`` mapping of per-variant overrides
(METHOD.md §6), the one list of trained variants (dvc.yaml reads it through ``vars``); dvc.yaml passes
``variant`` and the model under study. Loading the config applies the variant's overrides and fills
``{variant}`` in the output paths once; the resolved config is what the training script reads.
"""

from __future__ import annotations

import sys
from typing import Any, Literal

from pydantic import Field, model_validator

from fairgender_utils.config import InputPath, ModelPath, StageConfig


class TrainingError(RuntimeError):
    """Training cannot go on (no data, a non-finite loss, an unusable checkpoint)."""


class TrainConfig(StageConfig):
    """``params/train.yaml``."""

    variant: str = Field(pattern=r"^[A-Za-z0-9_.-]+$")  # the entry of `variants` this run trains
    variants: dict[str, dict[str, Any]] = Field(min_length=1)  # name -> overrides of the keys below
    model_path: ModelPath  # set by dvc.yaml: params/models.yaml study_model
    family: Literal["", "masked", "causal"]  # "": read from the model folder's fairgender_source.json
    objective: Literal["fairgender", "autodebias"]  # autodebias: slot JSD, attribute pairs x prompts (autodebias.py)
    prompts_path: str  # autodebias: the prompts stage's prompts.jsonl
    data_dir: str  # autodebias: the word lists (attribute pairs) through fairgender_utils.loaders
    cos_weight: float = Field(ge=0)  # autodebias: weight of 1 - cos of the two probes' pooled embeddings
    causal_dir: InputPath  # aligned.jsonl, unaligned.jsonl, neighbours.jsonl of stage 02
    data: Literal["aligned", "all"]  # X^C, or X^C ∪ X^NC
    max_pairs: int = Field(ge=0)  # 0: every pair; else the first N (file order)
    bias_loss: bool  # False: L_r only (cda)
    w0: float = Field(ge=0, le=1)
    neighbour_sample: int = Field(ge=0)  # neighbours of N(i) drawn per step; 0: all of them
    context_weight: float = Field(ge=0)  # causal LMs: weight of the shared-position JSD in J
    lambda_r: float = Field(ge=0)
    lm_loss: Literal["own", "kl"]  # own: MLM / next-token loss; kl: KL(p_frozen || p)
    mlm_probability: float = Field(gt=0, lt=1)
    batch_size: int = Field(gt=0)  # pairs per optimizer step, all processes together
    micro_batch_size: int = Field(gt=0)  # pairs per forward pass and process
    epochs: int = Field(gt=0)
    max_steps: int = Field(ge=0)  # 0: epochs decide; else stop after this many steps
    lr: float = Field(gt=0)
    weight_decay: float = Field(ge=0)
    lr_scheduler: Literal["linear", "cosine", "constant", "constant_with_warmup"]
    warmup_ratio: float = Field(ge=0, lt=1)
    max_grad_norm: float = Field(gt=0)
    freeze_embeddings: bool  # input (and tied output) embeddings
    dropout: bool  # False: every dropout probability set to 0 (deterministic runs)
    max_length: int = Field(gt=4)
    seed: int
    checkpoint_every: int = Field(gt=0)
    keep_checkpoints: int = Field(gt=0)
    resume: bool  # resume from the newest complete checkpoint in checkpoint_dir
    fresh_if_unusable: bool  # a corrupt checkpoint: False stops with an error, True starts afresh
    count_flops: bool  # count the FLOPs of each step (torch.utils.flop_counter)
    accelerate_profile: Literal["cpu", "single-gpu", "multi-gpu"]
    cpu_threads: int = Field(ge=0)  # threads per CPU process; 0: accelerate's choice (physical cores / processes)
    output_dir: str
    checkpoint_dir: str
    figures_dir: str
    plots_dir: str
    metrics_path: str
    config_path: str

    @model_validator(mode="before")
    @classmethod
    def _apply_variant(cls, values: Any) -> Any:
        """Apply the overrides of ``variants[variant]`` and fill ``{variant}``: done once, when the config
        loads (applying them again to the resolved values changes nothing)."""
        if not isinstance(values, dict) or not isinstance(values.get("variants"), dict):
            return values
        name = values.get("variant")
        if name not in values["variants"]:
            raise ValueError(f"variant '{name}' is not a key of 'variants' ({', '.join(values['variants'])})")
        for other, over in values["variants"].items():
            if not isinstance(over, dict):
                raise ValueError(f"variants.{other}: expected a mapping of overrides")
            bad = [k for k in over if k not in cls.model_fields or k in ("variant", "variants")]
            if bad:
                raise ValueError(f"variants.{other}: '{bad[0]}' is not a training parameter")
        values = {**values, **values["variants"][name]}
        return {k: v.replace("{variant}", name) if isinstance(v, str) else v for k, v in values.items()}

    @model_validator(mode="after")
    def _autodebias_loss(self) -> TrainConfig:
        if self.objective == "autodebias" and (not self.bias_loss or self.w0 != 1.0 or self.lambda_r != 0.0):
            raise ValueError("objective: autodebias is the slot JSD alone (bias_loss true, w0 1.0, lambda_r 0.0) "
                             "plus cos_weight x (1 - cos)")
        return self


def launch_command(cfg: TrainConfig, python: str | None = None) -> list[str]:
    """``accelerate launch --config_file params/accelerate/<profile>.yaml [--num_cpu_threads_per_process N]
    -m fairgender_utils.train --config <resolved config>``, run with this interpreter."""
    threads = ["--num_cpu_threads_per_process", str(cfg.cpu_threads)] if cfg.cpu_threads else []
    return [python or sys.executable, "-m", "accelerate.commands.launch", "--config_file",
            f"params/accelerate/{cfg.accelerate_profile}.yaml", *threads, "-m", "fairgender_utils.train",
            "--config", cfg.config_path]
