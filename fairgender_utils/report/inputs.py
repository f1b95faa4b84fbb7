"""What the report reads from the other stages, in one place: the evaluated runs and their names, the
generate and causal counts behind the data funnel (:data:`INPUT_KEYS`, read by :func:`read_counts`), the
per-pair primary endpoint of every run and the training dev curves.

A run is named ``<variant>-s<seed>`` (``fairgender-s0``), or ``<variant>`` alone (the untrained ``base``,
a run without seeds); the report groups runs by variant.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pandas as pd

from fairgender_utils.paths import repo_path

RUN = re.compile(r"^(?P<variant>.+)-s(?P<seed>\d+)$")

# Order of the variants in every table: base, the method, its baselines, the ablations (METHOD.md §6).
ORDER = ["base", "fairgender", "cda", "autodebias", "no_filter", "no_knn", "no_screen"]

# Every count the report takes from the generate and causal stages: {name in the report: (stage, key)}, a
# nested key written with dots. The one place to change when a stage renames a key.
INPUT_KEYS: dict[str, tuple[str, str]] = {
    "grid cells": ("generate", "cells"),
    "step-1 valid": ("generate", "step1_valid"),
    "pairs": ("generate", "pairs"),
    "pairs, LLM both steps": ("generate", "pairs_llm"),
    "pairs, swap in step 2": ("generate", "pairs_swap"),
    "train pairs": ("generate", "pairs_split.train"),
    "dev pairs": ("generate", "pairs_split.dev"),
    "test pairs": ("generate", "pairs_split.test"),
    "train X^C": ("causal", "aligned"),
    "train X^NC": ("causal", "unaligned"),
    "controls AUC": ("causal", "auc_real_vs_all_controls"),
}

# What the report shows of each training run (results/train/<run>/metrics.json); absent keys stay empty.
TRAIN_FACTS = ["pairs", "steps"]

PRIMARY_COLUMNS = ["id", "target", "J", "delta"]
# The evaluate stage's own means of the primary endpoint (metrics.json), checked against its per-pair file
# where present.
PRIMARY_METRICS = {"J": "primary_mean_J", "abs_delta": "primary_mean_abs_delta"}
CURVE_COLUMNS = ["step", "dev_J", "dev_abs_delta", "dev_ppl"]


def parse_run(name: str) -> tuple[str, int | None]:
    """('fairgender', 0) for 'fairgender-s0'; ('base', None) for 'base'."""
    m = RUN.match(name)
    return (m["variant"], int(m["seed"])) if m else (name, None)


def variant_order(variants: list[str]) -> list[str]:
    """``variants`` in :data:`ORDER`, unknown ones after it by name."""
    rank = {v: n for n, v in enumerate(ORDER)}
    return sorted(dict.fromkeys(variants), key=lambda v: (rank.get(v, len(rank)), v))


def find_runs(evaluate_dir: str, base: str) -> pd.DataFrame:
    """Rows (run, variant, seed) of every folder of ``evaluate_dir`` holding ``tables/summary.csv``, the base
    model first, then by variant (:func:`variant_order`) and seed. The base run missing is an error."""
    root = repo_path(evaluate_dir)
    found = sorted(d.name for d in root.iterdir() if (d / "tables" / "summary.csv").exists())
    if base not in found:
        raise FileNotFoundError(f"{root / base / 'tables' / 'summary.csv'}: missing; run the evaluate stage of "
                                f"the base model")
    rows = pd.DataFrame([(r, *parse_run(r)) for r in found], columns=["run", "variant", "seed"])
    rows.loc[rows["run"] == base, "variant"] = base
    order = variant_order([base, *rows["variant"]])
    rows["rank"] = rows["variant"].map({v: n for n, v in enumerate(order)})
    rows = rows.sort_values(["rank", "seed"], na_position="first").drop(columns="rank")
    return rows.reset_index(drop=True).astype({"seed": "Int64"})


def _lookup(metrics: Mapping, key: str):
    value = metrics
    for part in key.split("."):
        if not isinstance(value, Mapping) or part not in value:
            raise KeyError(part)
        value = value[part]
    return value


def read_counts(generate_metrics: str, causal_metrics: str) -> dict[str, float]:
    """{name: value} of :data:`INPUT_KEYS` from the two metrics files; a missing key is an error naming the
    file, the key and where the mapping lives."""
    files = {"generate": repo_path(generate_metrics), "causal": repo_path(causal_metrics)}
    data = {stage: json.loads(path.read_text()) for stage, path in files.items()}
    out = {}
    for name, (stage, key) in INPUT_KEYS.items():
        try:
            value = _lookup(data[stage], key)
        except KeyError:
            raise KeyError(f"{files[stage]}: key '{key}' missing (the report's '{name}'; the mapping is "
                           f"INPUT_KEYS in fairgender_utils/report/inputs.py)") from None
        if not isinstance(value, (int, float)) or isinstance(value, bool):
            raise ValueError(f"{files[stage]}: key '{key}' is {value!r}, not a number")
        out[name] = value
    return out


def _csv(path: Path, columns: list[str], what: str) -> pd.DataFrame:
    if not path.exists():
        raise FileNotFoundError(f"{path}: missing; {what}")
    df = pd.read_csv(path)
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise ValueError(f"{path}: column(s) {missing} missing (has {list(df.columns)})")
    return df


def load_primary(evaluate_dir: str, runs: pd.DataFrame) -> pd.DataFrame:
    """Per-pair primary endpoint of every run, long: (run, variant, seed, id, target, J, abs_delta).

    Reads ``<evaluate_dir>/<run>/items/primary.csv`` (id, target, J, delta); |δ| is taken per run, before
    any averaging over seeds. A duplicated pair id, or a pair id given two target words by two runs, is an
    error (the primary endpoint's tests may take the target word as their unit).
    """
    frames = []
    for run, variant, seed in runs[["run", "variant", "seed"]].itertuples(index=False):
        path = repo_path(evaluate_dir) / run / "items" / "primary.csv"
        df = _csv(path, PRIMARY_COLUMNS, f"run the evaluate stage of '{run}'")
        if df["id"].duplicated().any():
            raise ValueError(f"{path}: pair id {df['id'][df['id'].duplicated()].iloc[0]!r} appears twice")
        frame = pd.DataFrame({"run": run, "variant": variant, "seed": seed, "id": df["id"], "target": df["target"],
                              "J": df["J"].astype(float), "abs_delta": df["delta"].astype(float).abs()})
        _check_means(path, frame)
        frames.append(frame)
    out = pd.concat(frames, ignore_index=True)
    seen = out.drop_duplicates(["id", "target"])
    if seen["id"].duplicated().any():
        clash = seen[seen["id"] == seen["id"][seen["id"].duplicated()].iloc[0]].iloc[:2]
        (id_, t1, r1), (_, t2, r2) = clash[["id", "target", "run"]].itertuples(index=False)
        raise ValueError(f"{repo_path(evaluate_dir)}: pair id {id_!r} has target {t1!r} in {r1}/items/primary.csv "
                         f"but {t2!r} in {r2}/items/primary.csv")
    return out


def _check_means(path: Path, frame: pd.DataFrame) -> None:
    """The run's metrics.json means of the endpoint (:data:`PRIMARY_METRICS`, where present) must equal the
    means of its per-pair file: the report and the evaluate stage then read the same endpoint."""
    metrics_path = path.parents[1] / "metrics.json"
    metrics = json.loads(metrics_path.read_text()) if metrics_path.exists() else {}
    for column, key in PRIMARY_METRICS.items():
        if key in metrics and not np.isclose(metrics[key], frame[column].mean(), rtol=1e-6, atol=1e-9):
            raise ValueError(f"{metrics_path}: {key} = {metrics[key]} but the mean of {path.name} is "
                             f"{frame[column].mean()}")


def load_curves(train_dir: str, runs: pd.DataFrame, base: str) -> pd.DataFrame:
    """Dev curves of every trained run, long: (run, variant, seed, step, dev_J, dev_abs_delta, dev_ppl), from
    ``<train_dir>/<run>/plots/dev_curve.csv`` (step 0 = the untrained model)."""
    frames = []
    for run, variant, seed in runs[runs["run"] != base][["run", "variant", "seed"]].itertuples(index=False):
        path = repo_path(train_dir) / run / "plots" / "dev_curve.csv"
        df = _csv(path, CURVE_COLUMNS, f"run the train stage of '{run}'")[CURVE_COLUMNS]
        frames.append(df.assign(run=run, variant=variant, seed=seed))
    cols = ["run", "variant", "seed", *CURVE_COLUMNS]
    return pd.concat(frames, ignore_index=True)[cols] if frames else pd.DataFrame(columns=cols)


def train_facts(train_dir: str, runs: pd.DataFrame, base: str) -> pd.DataFrame:
    """Per variant: its seeds and the mean over its runs of :data:`TRAIN_FACTS` (``metrics.json`` of each
    training run; a run without the file is an error naming it)."""
    rows = []
    for run, variant in runs[runs["run"] != base][["run", "variant"]].itertuples(index=False):
        path = repo_path(train_dir) / run / "metrics.json"
        if not path.exists():
            raise FileNotFoundError(f"{path}: missing; run the train stage of '{run}'")
        metrics = json.loads(path.read_text())
        rows.append({"variant": variant, "run": run, **{k: metrics.get(k, np.nan) for k in TRAIN_FACTS}})
    df = pd.DataFrame(rows, columns=["variant", "run", *TRAIN_FACTS])
    out = df.groupby("variant", sort=False).agg(runs=("run", ", ".join),
                                                **{k: (k, lambda s: pd.to_numeric(s).mean()) for k in TRAIN_FACTS})
    return out
