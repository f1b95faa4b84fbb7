"""Speed and held-out summaries of a training run (``results/train/<run>/metrics.json``)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any


def speed_summary(log: Sequence[dict[str, Any]], matmul: Sequence[dict[str, float]],
                  skip_first: int = 1) -> dict[str, float]:
    """Tokens/s, s/step, achieved GFLOP/s and its share of the measured matmul GFLOP/s (median and best
    of the benchmarks run before and after training), peak memory.

    The first ``skip_first`` steps (allocation, first-call overheads) and the steps whose FLOPs were
    counted (``flops_counted``: the counter slows a step down) are left out when others remain; the other
    steps' FLOPs are the counted step's FLOPs per token (of a step of the same kind) times their tokens.
    """
    rows = [r for i, r in enumerate(log) if i >= skip_first and not r.get("flops_counted")] or list(log)
    secs = sum(r["seconds"] for r in rows)
    achieved = sum(r["flops"] for r in rows) / secs / 1e9 if secs else float("nan")
    median = sum(m["median"] for m in matmul) / len(matmul) if matmul else float("nan")
    best = max((m["best"] for m in matmul), default=float("nan"))
    return {"steps_measured": len(rows), "seconds_per_step": secs / len(rows) if rows else float("nan"),
            "tokens_per_second": sum(r["tokens"] for r in rows) / secs if secs else float("nan"),
            "achieved_gflops": achieved, "matmul_gflops_median": median, "matmul_gflops_best": best,
            "fraction_of_matmul_median": achieved / median, "fraction_of_matmul_best": achieved / best,
            "peak_memory_mib": max((r["peak_memory_mib"] for r in log), default=float("nan"))}


def training_metrics(log: Sequence[dict[str, Any]], source: dict[str, Any],
                     dev: Sequence[dict[str, Any]] = ()) -> dict[str, Any]:
    """The numbers of results/train/<run>/metrics.json: the held-out measures at the start (step 0, the
    base model) and at the end of training (``dev_J_start``, ``dev_J_end``, ``dev_abs_delta_*``,
    ``dev_ppl_*``, ``dev_steps``: steps of the last dev point), the mean gradient norms of L_b and L_r
    over the steps that measured them, the speed summary, and the run's facts from fairgender_source.json.
    (Training-batch losses are not summarised: the first and the last batches are different pairs.)"""
    t = source.get("training", {})
    nan = float("nan")
    first, last = (dev[0], dev[-1]) if dev else ({}, {})
    out: dict[str, Any] = {f"dev_{k}_{w}": rec.get(f"dev_{k}", nan) for k in ("J", "abs_delta", "ppl")
                           for w, rec in (("start", first), ("end", last))}
    out["dev_steps"] = last.get("step")
    out["dev_eval_seconds_mean"] = sum(r["seconds"] for r in dev) / len(dev) if dev else nan
    for key in ("grad_norm_bias", "grad_norm_lm", "grad_cos"):
        vals = [r[key] for r in log if r.get(key) is not None and r[key] == r[key]]
        out[f"{key}_mean"] = sum(vals) / len(vals) if vals else nan
    out.update({"run": source.get("run"), "variant": source.get("variant"), "seed": source.get("seed"),
                "steps": t.get("steps"), "pairs": t.get("pairs"),
                "unscorable_pairs": len(t.get("unscorable_pairs", {})),
                "num_processes": t.get("num_processes"),
                "device": t.get("device"),
                "mixed_precision": t.get("mixed_precision"), "resumed_from": t.get("resumed_from"),
                "speed": speed_summary(log, t.get("matmul_gflops", []))})
    return out
