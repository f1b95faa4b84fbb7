"""Runtime set-up shared by the stages: torch threads, seed and device in one place, and what the machine
gives (its fp32 matmul GFLOP/s, peak memory) for the speed reports."""

from __future__ import annotations

import contextlib
import os
import resource
import time
from collections.abc import Iterator

import torch


def matmul_gflops(n: int = 1024, seconds: float = 1.0) -> dict[str, float]:
    """This machine's fp32 matmul speed now, with this process's threads: GFLOP/s of n x n x n
    ``torch.matmul`` repeated for ``seconds`` - the best repeat (capability) and the median (what a
    shared machine gives)."""
    a, b = torch.randn(n, n), torch.randn(n, n)
    torch.matmul(a, b)
    times, t_end = [], time.perf_counter() + seconds
    while time.perf_counter() < t_end or len(times) < 3:
        t = time.perf_counter()
        torch.matmul(a, b)
        times.append(time.perf_counter() - t)
    times.sort()
    flop = 2 * n**3 / 1e9
    return {"best": flop / times[0], "median": flop / times[len(times) // 2],
            "threads": torch.get_num_threads()}


def peak_memory_mib() -> float:
    """Peak resident memory of this process (and of the GPU allocator where there is one)."""
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return rss + (torch.cuda.max_memory_allocated() / 2**20 if torch.cuda.is_available() else 0.0)


def configure_torch(device: str, threads: int, seed: int) -> torch.device:
    """Set torch's CPU threads (0: torch's default, all cores) and seed; return the device (``auto``: CUDA
    when available, else the CPU)."""
    if threads:
        torch.set_num_threads(threads)
    torch.manual_seed(seed)
    return torch.device(("cuda" if torch.cuda.is_available() else "cpu") if device == "auto" else device)


CUBLAS_WORKSPACE = ":4096:8"


@contextlib.contextmanager
def deterministic() -> Iterator[None]:
    """Deterministic algorithms inside the block; the previous setting is restored afterwards.

    Bit-identical reruns of training: torch's deterministic algorithms for the length of a run.

    On a CPU, a training step with the bias loss L_b is not reproducible from one process to the next
    without them (float32 differences of ~1e-7 relative after the first step, which grow to ~1e-5 over a
    run); with them, two runs with the same seed, parameters and thread count give the same weights, bit
    for bit. On a GPU the same switch selects deterministic kernels and needs cuBLAS's fixed workspace
    (``CUBLAS_WORKSPACE_CONFIG``), which takes effect only if set before CUDA starts: :func:`deterministic`
    sets it when it is unset. Operations without a deterministic implementation warn (``warn_only``)
    rather than stop the run, so the warning names whatever is left.
    """
    before = (torch.are_deterministic_algorithms_enabled(),
              torch.is_deterministic_algorithms_warn_only_enabled())
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", CUBLAS_WORKSPACE)
    torch.use_deterministic_algorithms(True, warn_only=True)
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(before[0], warn_only=before[1])
