"""Speed and loss summaries of a training run (``results/train/<variant>/metrics.json``)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any


def speed_summary(log: Sequence[dict[str, Any]], matmul: Sequence[dict[str, float]],
                  skip_first: int = 1) -> dict[str, float]:
    """Tokens/s, s/step, achieved GFLOP/s and its share of the measured matmul GFLOP/s (median and best
    of the benchmarks run before and after training), peak memory.

    The first ``skip_first`` steps (allocation, first-call overheads, and the FLOP counting of the first
    step) are left out when there are more; later steps' FLOPs are the first step's FLOPs per token times
    their tokens.
    """
    rows = list(log)[skip_first:] if len(log) > skip_first else list(log)
    secs = sum(r["seconds"] for r in rows)
    achieved = sum(r["flops"] for r in rows) / secs / 1e9 if secs else float("nan")
    median = sum(m["median"] for m in matmul) / len(matmul) if matmul else float("nan")
    best = max((m["best"] for m in matmul), default=float("nan"))
    return {"steps_measured": len(rows), "seconds_per_step": secs / len(rows) if rows else float("nan"),
            "tokens_per_second": sum(r["tokens"] for r in rows) / secs if secs else float("nan"),
            "achieved_gflops": achieved, "matmul_gflops_median": median, "matmul_gflops_best": best,
            "fraction_of_matmul_median": achieved / median, "fraction_of_matmul_best": achieved / best,
            "peak_memory_mib": max((r["peak_memory_mib"] for r in log), default=float("nan"))}


def training_metrics(log: Sequence[dict[str, Any]], source: dict[str, Any], last: int = 5) -> dict[str, Any]:
    """The numbers of results/train/<variant>/metrics.json: losses at the start and end (mean of the first
    and last ``last`` steps, fewer in short runs), the speed summary, and the run's facts from
    fairgender_source.json."""
    k = max(1, min(last, len(log) // 2))  # start and end windows do not overlap
    first, end = list(log)[:k], list(log)[-k:]

    def mean(rows: list[dict[str, Any]], key: str) -> float:
        return sum(r[key] for r in rows) / len(rows) if rows else float("nan")

    t = source.get("training", {})
    out: dict[str, Any] = {f"{k}_{w}": mean(rows, k) for k in ("loss", "bias_loss", "lm_loss")
                           for w, rows in (("start", first), ("end", end))}
    out.update({"steps": t.get("steps"), "pairs": t.get("pairs"),
                "unscorable_pairs": len(t.get("unscorable_pairs", {})),
                "num_processes": t.get("num_processes"),
                "device": t.get("device"),
                "mixed_precision": t.get("mixed_precision"), "resumed_from": t.get("resumed_from"),
                "speed": speed_summary(log, t.get("matmul_gflops", []))})
    return out
