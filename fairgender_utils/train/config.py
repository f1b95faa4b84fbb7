"""Configuration of stage 03 (training) and the command that launches it. Pure pydantic: importing this
module starts nothing (no torch, no accelerate).

``params/train.yaml`` holds the base values, the ``variants`` mapping of per-variant overrides (METHOD.md
§6), the ``groups`` of variants and the training ``seeds`` of each group (dvc.yaml reads them through
``vars`` and trains one run per variant and seed); dvc.yaml passes ``variant``, ``seed`` and the model under
study. Loading the config applies the variant's overrides and fills ``{variant}`` and ``{run}``
(``<variant>-s<seed>``) in the output paths once; the resolved config is what the training script reads.
"""

from __future__ import annotations

import sys
from typing import Any, Literal

from pydantic import Field, model_validator

from fairgender_utils.config import InputPath, ModelPath, StageConfig
from fairgender_utils.loaders.glue import GlueTask


class TrainingError(RuntimeError):
    """Training cannot go on (no data, a non-finite loss, an unusable checkpoint)."""


class TrainConfig(StageConfig):
    """``params/train.yaml``."""

    variant: str = Field(pattern=r"^[A-Za-z0-9_.-]+$")  # the entry of `variants` this run trains
    variants: dict[str, dict[str, Any]] = Field(min_length=1)  # name -> overrides of the keys below
    groups: dict[str, list[str]] = Field(min_length=1)  # group -> its variants (each variant in one group)
    seeds: dict[str, list[int]] = Field(min_length=1)  # group -> the training seeds of its variants
    model_path: ModelPath  # set by dvc.yaml: params/models.yaml study_model
    family: Literal["", "masked", "causal"]  # "": read from the model folder's fairgender_source.json
    objective: Literal["fairgender", "autodebias"]  # autodebias: slot JSD, attribute pairs x prompts (autodebias.py)
    prompts_path: str  # autodebias: the prompts stage's prompts.jsonl
    cos_weight: float = Field(ge=0)  # autodebias: weight of 1 - cos of the two probes' pooled embeddings
    causal_dir: InputPath  # aligned.jsonl, unaligned.jsonl, neighbours.jsonl of stage 02 (split train read)
    pairs_path: InputPath  # the generated pairs: the dev split is scored for the dev curve
    data_dir: InputPath  # GLUE: QNLI dev questions (dev perplexity), train sets (KL reference); autodebias: word lists
    data: Literal["aligned", "all"]  # X^C, or X^C ∪ X^NC
    max_pairs: int = Field(ge=0)  # 0: every pair; else the first N (file order)
    bias_loss: bool  # False: L_r only (cda)
    w0: float = Field(ge=0, le=1)
    knn_mode: Literal["weights", "forward"]  # KNN term as per-pair weights, or neighbours in the forward pass
    neighbour_sample: int = Field(ge=0)  # neighbours of N(i) drawn per step; 0: all of them
    context_weight: float = Field(ge=0)  # causal LMs: weight of the shared-position JSD in J
    lambda_r: float = Field(ge=0)
    lm_loss: Literal["own", "kl"]  # own: MLM / next-token loss; kl: KL(p_frozen || p) on reference text
    kl_reference_tasks: list[GlueTask] = Field(min_length=1)
    kl_reference_size: int = Field(ge=2)
    kl_reference_min_words: int = Field(ge=1)
    kl_top_k: int = Field(ge=1)
    kl_sentences_per_pair: int = Field(ge=1)  # reference sentences each training pair brings to its batch
    mlm_probability: float = Field(gt=0, lt=1)
    batch_size: int = Field(gt=0)  # pairs per optimizer step, all processes together
    micro_batch_size: int = Field(gt=0)  # pairs per forward pass and process
    epochs: int = Field(gt=0)
    max_steps: int = Field(ge=0)  # 0: epochs decide; else stop after this many steps
    lr: float = Field(gt=0)
    weight_decay: float = Field(ge=0)
    lr_scheduler: Literal["linear", "cosine", "constant"]  # after the warm-up
    warmup_steps: int = Field(ge=0)  # linear warm-up from lr/warmup_steps (never 0) to lr
    max_grad_norm: float = Field(gt=0)
    freeze_embeddings: bool  # input (and tied output) embeddings
    dropout: bool  # False: every dropout probability set to 0 (deterministic runs)
    max_length: int = Field(gt=4)
    seed: int  # set by dvc.yaml: one of seeds[group of variant]
    dev_every: int = Field(ge=0)  # dev J and perplexity at step 0, every N steps and at the end; 0: never
    dev_at_start: bool  # the dev point of step 0 (the base model); false: tuning runs after the first
    dev_ppl_n: int = Field(ge=0)  # dev-part QNLI questions scored (0: all)
    dev_batch_size: int = Field(gt=0)  # pairs or sentences per forward pass of the dev evaluation
    ppl_dev_share: float = Field(gt=0, lt=1)  # set by dvc.yaml from params/evaluate.yaml (one split)
    ppl_split_seed: int
    grad_parts_every: int = Field(ge=0)  # log |grad L_b| and |grad L_r| every N steps (one extra backward)
    checkpoint_every: int = Field(gt=0)
    keep_checkpoints: int = Field(gt=0)
    resume: bool  # resume from the newest complete checkpoint in checkpoint_dir
    fresh_if_unusable: bool  # a corrupt checkpoint: False stops with an error, True starts afresh
    count_flops: bool  # count the FLOPs of each step (torch.utils.flop_counter)
    save_final: bool  # save the model at the end (false: logs only, for tuning runs)
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
        """Apply the overrides of ``variants[variant]`` and fill ``{variant}`` and ``{run}``: done once, when
        the config loads (applying them again to the resolved values changes nothing)."""
        if not isinstance(values, dict) or not isinstance(values.get("variants"), dict):
            return values
        name = values.get("variant")
        if name not in values["variants"]:
            raise ValueError(f"variant '{name}' is not a key of 'variants' ({', '.join(values['variants'])})")
        for other, over in values["variants"].items():
            if not isinstance(over, dict):
                raise ValueError(f"variants.{other}: expected a mapping of overrides")
            bad = [k for k in over if k not in cls.model_fields or k in ("variant", "variants", "groups", "seeds")]
            if bad:
                raise ValueError(f"variants.{other}: '{bad[0]}' is not a training parameter")
        values = {**values, **values["variants"][name]}
        run = f"{name}-s{values.get('seed')}"
        return {k: v.replace("{variant}", name).replace("{run}", run) if isinstance(v, str) else v
                for k, v in values.items()}

    @model_validator(mode="after")
    def _groups_cover_variants(self) -> TrainConfig:
        grouped = [v for vs in self.groups.values() for v in vs]
        for v in grouped:
            if v not in self.variants:
                raise ValueError(f"groups: '{v}' is not a key of 'variants'")
        for v in self.variants:
            if grouped.count(v) != 1:
                raise ValueError(f"groups: variant '{v}' must be in exactly one group (it is in {grouped.count(v)})")
        if set(self.seeds) != set(self.groups):
            raise ValueError(f"seeds: one seed list per group ({', '.join(self.groups)}), got {', '.join(self.seeds)}")
        return self

    @property
    def run(self) -> str:
        """The run's name: ``<variant>-s<seed>``."""
        return f"{self.variant}-s{self.seed}"

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
