"""Bit-identical reruns of training: torch's deterministic algorithms for the length of a run.

On a CPU, a training step with the bias loss L_b is not reproducible from one process to the next
without them (float32 differences of ~1e-7 relative after the first step, which grow to ~1e-5 over a
run); with them, two runs with the same seed, parameters and thread count give the same weights, bit
for bit. On a GPU the same switch selects deterministic kernels and needs cuBLAS's fixed workspace
(``CUBLAS_WORKSPACE_CONFIG``), which takes effect only if set before CUDA starts: :func:`deterministic`
sets it when it is unset. Operations without a deterministic implementation warn (``warn_only``)
rather than stop the run, so the warning names whatever is left.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator

import torch

CUBLAS_WORKSPACE = ":4096:8"


@contextlib.contextmanager
def deterministic() -> Iterator[None]:
    """Deterministic algorithms inside the block; the previous setting is restored afterwards."""
    before = (torch.are_deterministic_algorithms_enabled(),
              torch.is_deterministic_algorithms_warn_only_enabled())
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", CUBLAS_WORKSPACE)
    torch.use_deterministic_algorithms(True, warn_only=True)
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(before[0], warn_only=before[1])
