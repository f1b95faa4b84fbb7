"""Stage 04 evaluate: SEAT, StereoSet, CrowS-Pairs, held-out perplexity and GLUE for one variant (METHOD.md §7).

Two profiles (``profile``): ``quick`` scores the gender subsets of StereoSet and CrowS-Pairs, SEAT and
the held-out perplexity (cheap enough for every seed and variant); ``full`` adds every StereoSet domain,
every CrowS-Pairs bias type and GLUE (``glue_mode``).

The notebook ``notebooks/04_evaluate.ipynb`` builds :class:`EvaluateConfig` from its parameters and
calls the ``run_*`` functions below in turn; each returns tables and per-item scores, and
:func:`fairgender_utils.io.write_tables` writes them under ``out_dir`` (``items/*.csv`` feed the paired tests of the
report stage, :func:`fairgender_utils.report.paired.compare_to_base`). Each benchmark is scored once:
in the full profile the gender subsets are slices of the all-domain runs.
"""

from __future__ import annotations

import math
import time
from contextlib import contextmanager
from typing import Literal

import pandas as pd
import torch

from fairgender_utils.evaluate.config import EvaluateConfig
from fairgender_utils.loaders import (GLUE_TASKS, SEAT_GENDER_TESTS, load_crows, load_glue, load_seat,
                                     load_stereoset)
from fairgender_utils.evaluate import crows, glue, perplexity, seat, stereoset
from fairgender_utils.evaluate.scoring import Scorer
from fairgender_utils.lm.loading import load_model
from fairgender_utils.lm.objective import pair_objective
from fairgender_utils.loaders.pairs import load_split
from fairgender_utils.paths import repo_path
from fairgender_utils.runtime import configure_torch
from fairgender_utils.stats import bootstrap_reps, percentile_ci


@contextmanager
def timed(timing: dict[str, dict[str, float]], name: str):
    """Record wall-clock and process CPU seconds of a block (CPU time: what a dedicated core would take)."""
    wall, cpu = time.perf_counter(), time.process_time()
    yield
    timing[name] = {"wall": time.perf_counter() - wall, "cpu": time.process_time() - cpu}


def setup(cfg: EvaluateConfig):
    """Threads, seed, model on its device; returns (model, tokenizer, family, scorer)."""
    device = configure_torch(cfg.device, cfg.cpu_threads, cfg.seed)
    model, tok, family = load_model(cfg.model, family=cfg.family or None)
    model.to(device)
    return model, tok, family, Scorer(model, tok, family, batch_tokens=cfg.batch_tokens)


def run_seat(cfg: EvaluateConfig, model, tokenizer) -> seat.SeatResult:
    """SEAT effect sizes, permutation p-values and bootstrap CIs for ``cfg.seat_tests``."""
    tests = [load_seat(repo_path(cfg.data_dir), name) for name in cfg.seat_tests]
    texts = [x for t in tests for x in (*t.targ1, *t.targ2, *t.attr1, *t.attr2)]
    vectors = seat.encode(model, tokenizer, texts, desc="SEAT encode")
    return seat.evaluate(tests, vectors, cfg.seat_n_samples, cfg.seat_exact_max, cfg.n_boot, cfg.seed,
                         cfg.ci_level)


def run_stereoset(cfg: EvaluateConfig, scorer: Scorer) -> tuple[stereoset.StereoSetResult, pd.DataFrame]:
    """Score StereoSet intrasentence once; summaries for gender, all domains and each domain."""
    every = load_stereoset(repo_path(cfg.data_dir), "intrasentence")
    chosen = [(i, it) for i, it in enumerate(every) if cfg.profile == "full" or it.bias_type == "gender"]
    res = stereoset.score_items(scorer, [it for _, it in chosen], [i for i, _ in chosen], desc="StereoSet")
    return res, _subsets(res.items, res.skipped, lambda items, skipped, name: stereoset.summarise(
        items, skipped, name, cfg.n_boot, cfg.seed, cfg.ci_level))


def run_crows(cfg: EvaluateConfig, scorer: Scorer) -> tuple[crows.CrowsResult, pd.DataFrame]:
    """Score CrowS-Pairs once; summaries for gender, all and each bias type."""
    pairs = load_crows(repo_path(cfg.data_dir), None if cfg.profile == "full" else "gender")
    res = crows.score_pairs(scorer, pairs, desc="CrowS-Pairs")
    return res, _subsets(res.items, res.skipped, lambda items, skipped, name: crows.summarise(
        items, skipped, name, cfg.ci_level))


def run_perplexity(cfg: EvaluateConfig, scorer: Scorer) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Per-token (pseudo-)perplexity of the ``ppl_part`` part of the held-out QNLI questions."""
    texts = perplexity.heldout_texts(repo_path(cfg.data_dir), cfg.ppl_part, cfg.ppl_n, cfg.ppl_dev_share,
                                     cfg.ppl_split_seed)
    items = perplexity.score_texts(scorer, texts, desc="perplexity")
    summary = perplexity.summarise(items, scorer.family, cfg.ppl_part, cfg.n_boot, cfg.seed, cfg.ci_level)
    return items, pd.DataFrame([summary])


def run_primary(cfg: EvaluateConfig, model, tokenizer, family: str) -> pd.DataFrame:
    """The primary endpoint's items (METHOD.md §9): J and delta of every pair of ``primary_split``
    (columns id, target, J, delta; ``attrs['unscorable']``: pairs that cannot be scored, with the reason)."""
    pairs = load_split(repo_path(cfg.pairs_path), cfg.primary_split)
    return pair_objective(model, tokenizer, family, pairs, cfg.primary_batch_size, cfg.primary_max_length,
                          cfg.primary_context_weight)


def primary_summary(items: pd.DataFrame, n_boot: int, seed: int, level: float) -> dict:
    """Top-level metrics of the primary endpoint: mean J and mean |delta| with bootstrap CIs over pairs."""
    out = {"primary_n_pairs": len(items), "primary_unscorable": len(items.attrs.get("unscorable", {}))}
    for name, values in (("J", items["J"].to_numpy(float)), ("abs_delta", items["delta"].abs().to_numpy(float))):
        out[f"primary_mean_{name}"] = float(values.mean()) if len(values) else float("nan")
        if len(values):
            reps = bootstrap_reps(lambda i, v=values: float(v[i].mean()), (len(values),), n_boot, seed)
            out[f"primary_mean_{name}_ci_low"], out[f"primary_mean_{name}_ci_high"] = percentile_ci(reps, level)
    return out


def _subsets(items: pd.DataFrame, skipped: pd.DataFrame, summarise) -> pd.DataFrame:
    """One summary row for gender, for all (when more than gender was scored) and for each bias type."""
    rows = []
    types = sorted(items["bias_type"].unique())
    for name in ["gender", "all", *[t for t in types if t != "gender"]] if len(types) > 1 else ["gender"]:
        pick = (lambda df: df) if name == "all" else (lambda df, n=name: df[df["bias_type"] == n])
        rows.append(summarise(pick(items), pick(skipped), name))
    return pd.DataFrame(rows)


def run_glue(cfg: EvaluateConfig, model, tokenizer) -> tuple[pd.DataFrame, dict[str, dict[str, int]]]:
    """GLUE in ``cfg.glue_mode``: one row per task (per seed in finetune mode), and skipped rows per task."""
    rows, skipped = [], {}
    if cfg.glue_mode == "off" or cfg.profile == "quick":
        return pd.DataFrame(rows), skipped
    for task in cfg.glue_tasks:
        train, s_tr = load_glue(repo_path(cfg.data_dir), task, "train")
        dev, s_dev = load_glue(repo_path(cfg.data_dir), task, "dev")
        if s_tr or s_dev:
            skipped[task] = dict(s_tr + s_dev)
        train = glue.subsample(train, cfg.glue_train_n, cfg.seed)
        dev = glue.subsample(dev, cfg.glue_dev_n, cfg.seed)
        t0 = time.perf_counter()
        if cfg.glue_mode == "probe":
            res = [glue.probe_task(task, model, tokenizer, train, dev, cfg.glue_c, cfg.glue_ridge_alpha,
                                   cfg.seed, cfg.glue_batch_size, cfg.glue_max_length)]
        else:
            res = [glue.finetune_task(cfg.model, task, train, dev, cfg.glue_lr, cfg.glue_batch_size,
                                      cfg.glue_epochs, s, cfg.glue_max_length) for s in cfg.glue_seeds]
        for r in res:
            rows.append({"task": task, "mode": cfg.glue_mode, "main_metric": glue.main_metric(task),
                         "main": r[glue.main_metric(task)], **r, "seconds": time.perf_counter() - t0})
    return pd.DataFrame(rows), skipped


def glue_summary(table: pd.DataFrame) -> pd.DataFrame:
    """Mean and sd over seeds of each task's main metric (sd is nan for a single run)."""
    if not len(table):
        return pd.DataFrame(columns=["task", "metric", "mean", "sd", "runs"])
    g = table.groupby("task", sort=False)
    return pd.DataFrame({"metric": g["main_metric"].first(), "mean": g["main"].mean(), "sd": g["main"].std(),
                         "runs": g.size()}).reset_index()


CROWS_VARIANTS = {"bb_score": "score (bias-bench)", "lmeval_pct_stereotype": "pct_stereotype (lm-eval)",
                  "lmeval_likelihood_diff": "likelihood_diff (lm-eval)"}


def summary_table(variant: str, seat_res: seat.SeatResult, ss_table: pd.DataFrame, crows_table: pd.DataFrame,
                  glue_table: pd.DataFrame, ppl_table: pd.DataFrame | None = None) -> pd.DataFrame:
    """Tidy rows (variant, benchmark, subset, metric, value, ci_low, ci_high): the report's input.

    CrowS-Pairs ``score`` is Nangia et al.'s; the bias-bench and lm-eval variants follow, labelled.
    SEAT mean |d|'s CI resamples the target sentences; the attribute sets stay fixed (``seat.py``).
    """
    s = seat_res.summary
    rows = [("SEAT", "gender", "mean |d|", s["mean_abs_d"], s["mean_abs_d_ci_low"], s["mean_abs_d_ci_high"])]
    for _, r in (ppl_table if ppl_table is not None else pd.DataFrame()).iterrows():
        rows.append(("Held-out text", r["subset"], r["kind"], r["ppl"], r.get("ppl_ci_low"), r.get("ppl_ci_high")))
    for _, r in ss_table.iterrows():
        rows += [("StereoSet", r["subset"], m.upper(), r[m], r.get(f"{m}_ci_low"), r.get(f"{m}_ci_high"))
                 for m in ("ss", "lms", "icat") if m in r]
    for _, r in crows_table.iterrows():
        rows.append(("CrowS-Pairs", r["subset"], "score", r["score"], r["ci_low"], r["ci_high"]))
        rows += [("CrowS-Pairs", r["subset"], label, r[key], float("nan"), float("nan"))
                 for key, label in CROWS_VARIANTS.items() if key in r]
    for _, r in glue_summary(glue_table).iterrows():
        rows.append(("GLUE", r["task"], r["metric"], r["mean"], float("nan"), float("nan")))
    df = pd.DataFrame(rows, columns=["benchmark", "subset", "metric", "value", "ci_low", "ci_high"])
    return df.assign(variant=variant)[["variant", *df.columns]]


def skipped_items(seat_res: seat.SeatResult, ss_res: stereoset.StereoSetResult, crows_res: crows.CrowsResult,
                  glue_skipped: dict[str, dict[str, int]]) -> pd.DataFrame:
    """Everything that was skipped, with its reason: one row per item (GLUE: per task and reason, counted)."""
    parts = [seat_res.skipped.rename(columns={"test": "item_id"}).assign(benchmark="SEAT", count=1),
             ss_res.skipped.assign(benchmark="StereoSet", count=1),
             crows_res.skipped.assign(benchmark="CrowS-Pairs", count=1),
             pd.DataFrame([{"benchmark": "GLUE", "item_id": task, "reason": reason, "count": n}
                           for task, c in glue_skipped.items() for reason, n in c.items()])]
    cols = ["benchmark", "item_id", "bias_type", "reason", "count"]
    parts = [p.reindex(columns=cols) for p in parts if len(p)]
    return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=cols)


def metrics(cfg: EvaluateConfig, family: str, seat_res: seat.SeatResult, ss_table: pd.DataFrame,
            crows_table: pd.DataFrame, glue_table: pd.DataFrame, skipped: pd.DataFrame,
            timing_s: dict[str, dict[str, float]], ppl_table: pd.DataFrame | None = None,
            primary: dict | None = None) -> dict:
    """The stage's metrics.json: the primary endpoint (:func:`primary_summary`, top-level keys), headline
    numbers per benchmark, skipped counts and timings."""
    seat_tests = {r["test"]: {"d": r["d"], "p": r["p"], "d_ci": [r["d_ci_low"], r["d_ci_high"]]}
                  for _, r in seat_res.table.iterrows()}
    return _finite({
        "variant": cfg.variant, "model": cfg.model, "family": family, "profile": cfg.profile,
        **(primary or {}),
        "perplexity": {} if ppl_table is None or not len(ppl_table) else _clean(ppl_table.iloc[0]),
        "seat": {**seat_res.summary, "tests": seat_tests},
        "stereoset": _headline(ss_table),
        "crows_pairs": _headline(crows_table),
        "glue": {r["task"]: {"metric": r["metric"], "mean": r["mean"], "sd": r["sd"]}
                 for _, r in glue_summary(glue_table).iterrows()},
        "skipped": {b: int(g["count"].sum()) for b, g in skipped.groupby("benchmark")},
        "timing_s": {k: {kind: round(v, 1) for kind, v in t.items()}
                     for k, t in _with_total(timing_s).items()},
    })


def _with_total(timing: dict[str, dict[str, float]]) -> dict[str, dict[str, float]]:
    parts = {k: v for k, v in timing.items() if k != "total"}
    return {**parts, "total": {kind: sum(t[kind] for t in parts.values()) for kind in ("wall", "cpu")}}


def _finite(obj):
    """Plain JSON values: NaN becomes null, numpy scalars become Python numbers."""
    if isinstance(obj, dict):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_finite(v) for v in obj]
    if hasattr(obj, "item"):
        obj = obj.item()
    return None if isinstance(obj, float) and math.isnan(obj) else obj


def _headline(table: pd.DataFrame) -> dict:
    """The gender and all-domain rows of a summary table, without empty cells."""
    return {r["subset"]: _clean(r) for _, r in table.iterrows() if r["subset"] in ("gender", "all")}


def _clean(row: pd.Series) -> dict:
    return {k: v for k, v in row.items() if k != "subset" and not (isinstance(v, float) and pd.isna(v))}
