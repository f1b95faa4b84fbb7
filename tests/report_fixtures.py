"""A synthetic results tree with seeds, in the schemas the report reads (evaluate, train, generate, causal),
for the report's tests and for running its notebook: :func:`build`."""

from __future__ import annotations

import json
import zlib
from pathlib import Path

import numpy as np
import pandas as pd

# Seeds per variant, and each variant's multiplier of the base model's per-pair J (its true effect).
SEEDS = {"fairgender": 3, "cda": 3, "autodebias": 3, "no_filter": 1, "no_knn": 1, "no_screen": 1}
EFFECT = {"base": 1.0, "fairgender": 0.55, "cda": 0.9, "autodebias": 0.8, "no_filter": 0.6, "no_knn": 0.58,
          "no_screen": 0.56}

GENERATE = {"cells": 1000, "step1_valid": 780, "pairs": 650, "pairs_llm": 260, "pairs_swap": 390,
            "pairs_split": {"train": 390, "dev": 130, "test": 130}}
CAUSAL = {"aligned": 300, "unaligned": 85, "auc_real_vs_all_controls": 0.93}


def _stereoset(rng: np.random.Generator, p_stereo: float) -> pd.DataFrame:
    n = 255
    return pd.DataFrame({"item_id": range(n), "bias_type": "gender", "target": [f"term{i % 10}" for i in range(n)],
                         "stereo": (rng.random(n) < p_stereo).astype(int), "related": rng.choice([1, 2], n, p=[.1, .9])})


def _summary(run: str, crows: pd.DataFrame, ss: pd.DataFrame, seat: pd.DataFrame, ppl: pd.DataFrame) -> pd.DataFrame:
    g = ss.groupby("target")
    ss_v, lms = 100 * g["stereo"].mean().mean(), 100 * (g["related"].mean() / 2).mean()
    icat = lms * min(ss_v, 100 - ss_v) / 50
    rows = []
    for subset, part in (("gender", crows[crows["bias_type"] == "gender"]), ("all", crows)):
        score = 100 * part["stereo"].mean()
        rows.append(("CrowS-Pairs", subset, "score", score, score - 6, score + 6))
    d = [abs((p.loc[p["set"] == "X", "s"].mean() - p.loc[p["set"] == "Y", "s"].mean()) / p["s"].std(ddof=1))
         for _, p in seat.groupby("test")]
    value = float(np.exp(ppl["nll"].sum() / ppl["n_tokens"].sum()))
    rows += [("SEAT", "gender", "mean |d|", np.mean(d), np.mean(d) - 0.1, np.mean(d) + 0.1),
             ("StereoSet", "gender", "SS", ss_v, ss_v - 5, ss_v + 5), ("StereoSet", "gender", "LMS", lms, lms - 3, lms + 3),
             ("StereoSet", "gender", "ICAT", icat, icat - 8, icat + 8),
             ("Held-out text", "test", "perplexity", value, value * 0.9, value * 1.1),
             ("GLUE", "sst2", "accuracy", 70.0, np.nan, np.nan)]
    return pd.DataFrame(rows, columns=["benchmark", "subset", "metric", "value", "ci_low", "ci_high"]).assign(variant=run)


def _evaluate(root: Path, run: str, variant: str, seed: int, base_j: np.ndarray, base_delta: np.ndarray) -> None:
    rng = np.random.default_rng(zlib.crc32(f"{variant}/{seed}".encode()))
    items, tables = root / run / "items", root / run / "tables"
    items.mkdir(parents=True)
    tables.mkdir(parents=True)
    k = EFFECT[variant]
    j = base_j * k * rng.lognormal(0, 0.15, len(base_j))
    delta = base_delta * np.sqrt(k) * rng.lognormal(0, 0.15, len(base_j))
    primary = pd.DataFrame({"id": [f"p{i:04d}" for i in range(len(j))],
                            "target": [f"word{i % 25}" for i in range(len(j))], "J": j, "delta": delta})
    primary.to_csv(items / "primary.csv", index=False)
    n = 312
    p_crows = 0.5 + 0.1 * k
    crows = pd.DataFrame({"item_id": range(n), "bias_type": ["gender"] * 262 + ["race-color"] * 50,
                          "stereo": (rng.random(n) < p_crows).astype(int)})
    crows.to_csv(items / "crows_pairs.csv", index=False)
    ss = _stereoset(rng, 0.5 + 0.18 * k)
    ss.to_csv(items / "stereoset.csv", index=False)
    s = np.r_[rng.normal(0.05 * k, 0.05, 16), rng.normal(0.0, 0.05, 16)]
    seat = pd.DataFrame({"test": np.repeat(["sent-weat6", "sent-weat7"], 32), "set": (["X"] * 16 + ["Y"] * 16) * 2,
                         "index": list(range(16)) * 4, "text": "x", "s": np.r_[s, s[::-1]]})
    seat.to_csv(items / "seat.csv", index=False)
    tokens = rng.integers(8, 20, 100)
    ppl = pd.DataFrame({"item_id": range(100), "text": [f"q{i}" for i in range(100)], "n_tokens": tokens,
                        "nll": tokens * (np.log(40) + 0.02 * (1 - k) + rng.normal(0, 0.05, 100))})
    ppl.to_csv(items / "perplexity.csv", index=False)
    _summary(run, crows, ss, seat, ppl).to_csv(tables / "summary.csv", index=False)
    pd.DataFrame({"test": ["sent-weat6", "sent-weat7"], "d": [0.8 * k, -0.3], "p": [0.001, 0.9]}).to_csv(
        tables / "seat.csv", index=False)
    (root / run / "metrics.json").write_text(json.dumps({"primary_mean_J": float(j.mean()),
                                                         "primary_mean_abs_delta": float(np.abs(delta).mean())}))


def _train(root: Path, run: str, variant: str, seed: int, j0: float) -> None:
    rng = np.random.default_rng(seed + 100)
    steps = np.arange(0, 61, 10)
    k = EFFECT[variant]
    plots = root / run / "plots"
    plots.mkdir(parents=True)
    pd.DataFrame({"step": steps, "dev_J": j0 * (k + (1 - k) * np.exp(-steps / 12)) * rng.lognormal(0, 0.01, len(steps)),
                  "dev_abs_delta": 0.9 * (k + (1 - k) * np.exp(-steps / 12)),
                  "dev_ppl": 40 * (1 + 0.0008 * (1 - k) * steps) * rng.lognormal(0, 0.005, len(steps))}).assign(
        dev_J=lambda d: d["dev_J"].where(d["step"] > 0, j0), dev_ppl=lambda d: d["dev_ppl"].where(d["step"] > 0, 40.0)
    ).to_csv(plots / "dev_curve.csv", index=False)
    (root / run / "metrics.json").write_text(json.dumps({"pairs": 300, "steps": 60, "variant": variant}))


def build(root: Path, seeds: dict[str, int] | None = None, n_pairs: int = 130) -> dict[str, str]:
    """Write evaluate/, train/, generate_metrics.json and causal_metrics.json under ``root``; return the
    report params that point at them."""
    rng = np.random.default_rng(7)
    base_j = rng.lognormal(np.log(0.04), 0.8, n_pairs)
    base_delta = rng.normal(0.3, 1.0, n_pairs)
    _evaluate(root / "evaluate", "base", "base", 0, base_j, base_delta)
    for variant, n in (SEEDS if seeds is None else seeds).items():
        for s in range(n):
            _evaluate(root / "evaluate", f"{variant}-s{s}", variant, s, base_j, base_delta)
            _train(root / "train", f"{variant}-s{s}", variant, s, float(base_j.mean()))
    (root / "generate_metrics.json").write_text(json.dumps(GENERATE))
    (root / "causal_metrics.json").write_text(json.dumps(CAUSAL))
    return {"evaluate_dir": str(root / "evaluate"), "train_dir": str(root / "train"),
            "generate_metrics": str(root / "generate_metrics.json"), "causal_metrics": str(root / "causal_metrics.json")}
