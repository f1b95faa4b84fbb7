"""Runtime set-up shared by the stages: torch threads, seed and device in one place, and what the machine
gives (its fp32 matmul GFLOP/s, peak memory) for the speed reports."""

from __future__ import annotations

import resource
import time

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
