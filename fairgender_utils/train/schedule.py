"""The learning-rate schedule: a linear warm-up that starts above zero, then linear, cosine or constant.

HF's warm-up multiplies the learning rate by step/warmup, so its first optimizer step runs at learning
rate 0 and does nothing. Here optimizer step s (0-based) of ``warmup`` warm-up steps runs at
lr·(s+1)/warmup: the first at lr/warmup, the last warm-up step at lr. After it, ``linear`` decays to
lr/(total-warmup) at the last step, ``cosine`` follows half a cosine period to the same kind of small
positive value, ``constant`` stays at lr. No step runs at 0. A constant schedule makes a run's first s
steps identical to a run of s steps: one run gives the dev curve of every shorter one (tuning reads it so).
"""

from __future__ import annotations

import math

import torch


def lr_factor(step: int, warmup: int, total: int, kind: str) -> float:
    """Multiplier of the peak learning rate at optimizer step ``step`` (0-based)."""
    if step < warmup:
        return (step + 1) / warmup
    if kind == "constant":
        return 1.0
    rest = max(1, total - warmup)
    done = min(step - warmup, rest - 1)  # 0 .. rest-1
    if kind == "linear":
        return (rest - done) / rest
    if kind == "cosine":
        return 0.5 * (1.0 + math.cos(math.pi * done / rest))
    raise ValueError(f"unknown lr_scheduler {kind!r}")


def scheduler(optimizer: torch.optim.Optimizer, warmup: int, total: int, kind: str,
              num_processes: int) -> torch.optim.lr_scheduler.LambdaLR:
    """A LambdaLR of :func:`lr_factor`. Accelerate steps a prepared scheduler once per process per optimizer
    step, so its count is divided by ``num_processes``."""
    return torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda count: lr_factor(count // num_processes, warmup, total, kind))
