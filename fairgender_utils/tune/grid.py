"""The tuning grid: one short training run per point, its dev curve as the table, and the selection rule.

Every run trains ``variant`` with ``max_steps`` steps and a constant learning rate after the warm-up (the
training stage's schedule: a run's first s steps are exactly a run of s steps with the same seed), so the dev
points of one run, every ``dev_every`` steps, stand for every step count. Runs keep only their logs (no model,
no checkpoint) and skip the gradient-norm measurement. Step 0 is the base model, the same in every run: the
first run evaluates it and the table repeats its row for the others. The rule, fixed in params/tune.yaml: among the dev points after step 0 whose dev perplexity
is at most (1 + ``max_ppl_rise``) x the base model's (step 0 of the same run), the lowest dev J; ties go to
fewer steps. No point qualifies: an error (lower the learning rates or raise λ), never a silent default.
"""

from __future__ import annotations

import itertools
import shutil
import subprocess
import time
from pathlib import Path

import pandas as pd

from fairgender_utils.config import ConfigError, read_params
from fairgender_utils.io import read_jsonl
from fairgender_utils.paths import REPO_ROOT, repo_path
from fairgender_utils.train.config import TrainConfig, launch_command
from fairgender_utils.tune.config import TUNED_TRAIN_KEYS, TuneConfig

COLUMNS = ["run", "theta", "theta_threshold", "lr", "lambda_r", "lm_loss", "train_pairs", "step", "dev_J",
           "dev_abs_delta", "dev_ppl", "ppl_rise", "eligible", "chosen", "seconds_per_step", "dev_eval_seconds"]


class TuneError(RuntimeError):
    """The grid cannot give a choice under the rule."""


def grid_points(cfg: TuneConfig) -> list[dict]:
    """Every point of the grid, with a readable run name."""
    points = []
    for theta, lr, lam, loss in itertools.product(cfg.theta, cfg.lr, cfg.lambda_r, cfg.lm_loss):
        name = f"theta{theta:g}-lr{lr:g}-lambda{lam:g}-{loss}"
        points.append({"run": name, "theta": theta, "lr": lr, "lambda_r": lam, "lm_loss": loss})
    return points


def run_config(cfg: TuneConfig, point: dict, causal_dir: Path, first: bool = True) -> TrainConfig:
    """The training config of one grid point: params/train.yaml with the point's values, ``max_steps``,
    the dev curve every ``dev_every`` steps (step 0 in the ``first`` run only), no model or checkpoint kept."""
    values = read_params(cfg.train_params)
    over = values.get("variants", {}).get(cfg.variant, {})
    clash = [k for k in over if k in TUNED_TRAIN_KEYS]
    if clash:
        raise ConfigError(f"{cfg.train_params}: variants.{cfg.variant} overrides '{clash[0]}', which the tune "
                          "stage chooses")
    if values.get("lr_scheduler") != "constant":
        raise ConfigError(f"{cfg.train_params}: key 'lr_scheduler' is {values.get('lr_scheduler')!r}; the tune "
                          "stage reads every step count off one run, which needs 'constant'")
    work = f"{cfg.work_dir.rstrip('/')}/{point['run']}"
    values.update({k: point[k] for k in ("lr", "lambda_r", "lm_loss")})
    values.update({"variant": cfg.variant, "seed": cfg.seed, "model_path": cfg.model_path,
                   "ppl_dev_share": cfg.ppl_dev_share, "ppl_split_seed": cfg.ppl_split_seed,
                   "causal_dir": str(causal_dir), "max_steps": cfg.max_steps, "epochs": cfg.max_steps,
                   "dev_every": cfg.dev_every, "dev_at_start": first, "grad_parts_every": 0,
                   "save_final": False, "resume": False,
                   "checkpoint_every": cfg.max_steps + 1, "cpu_threads": cfg.cpu_threads,
                   "output_dir": f"{work}/out", "checkpoint_dir": f"{work}/checkpoints",
                   "figures_dir": f"{work}/figures", "plots_dir": f"{work}/plots",
                   "metrics_path": f"{work}/metrics.json", "config_path": f"{work}/config.json"})
    return TrainConfig.from_params(values, cfg.train_params)


def run_point(cfg: TuneConfig, point: dict, causal_dir: Path, first: bool = True) -> pd.DataFrame:
    """Train one grid point; its dev curve (one row per dev point) with the point's values. Only the logs
    are kept (``work_dir/logs/<run>``)."""
    tcfg = run_config(cfg, point, causal_dir, first)
    tcfg.write(tcfg.config_path)
    subprocess.run(launch_command(tcfg), check=True, cwd=REPO_ROOT)
    out = repo_path(tcfg.output_dir)
    logs = repo_path(cfg.work_dir) / "logs" / point["run"]
    logs.mkdir(parents=True, exist_ok=True)
    for name in ("training_log.jsonl", "dev_log.jsonl", "fairgender_source.json"):
        shutil.copyfile(out / name, logs / name)
    shutil.rmtree(repo_path(tcfg.output_dir).parent)
    train_log = list(read_jsonl(logs / "training_log.jsonl"))
    dev = pd.DataFrame(list(read_jsonl(logs / "dev_log.jsonl")))
    pairs = sum(1 for _ in read_jsonl(causal_dir / "aligned.jsonl"))  # X^C(θ) (train split)
    secs = [r["seconds"] for r in train_log[1:]] or [r["seconds"] for r in train_log]
    return dev.assign(**point, train_pairs=pairs, seconds_per_step=sum(secs) / len(secs),
                      dev_eval_seconds=dev["seconds"])


def run_grid(cfg: TuneConfig, sets: dict[float, tuple[Path, float]]) -> pd.DataFrame:
    """Every grid point's dev curve in one table (COLUMNS), ``ppl_rise`` against the run's step 0 and
    ``eligible`` under the rule; ``chosen`` marks the point :func:`select` picks. ``sets``: {θ: (training
    set folder, threshold on a)} (:func:`fairgender_utils.tune.trainsets.training_sets`)."""
    parts = []
    for n, point in enumerate(grid_points(cfg)):
        t0 = time.perf_counter()
        folder, thr = sets[point["theta"]]
        part = run_point(cfg, point, folder, first=n == 0)
        parts.append(part.assign(theta_threshold=thr, run_seconds=time.perf_counter() - t0))
    base = parts[0][parts[0]["step"] == 0]  # step 0: the same base model in every run
    own = ["run", "theta", "theta_threshold", "lr", "lambda_r", "lm_loss", "train_pairs", "seconds_per_step",
           "run_seconds"]
    parts = [parts[0]] + [pd.concat([base.assign(**{c: p[c].iloc[0] for c in own}), p], ignore_index=True)
                          for p in parts[1:]]
    table = pd.concat(parts, ignore_index=True)
    return mark(table, cfg.max_ppl_rise)


def mark(table: pd.DataFrame, max_ppl_rise: float) -> pd.DataFrame:
    """Add ``ppl_rise`` (against step 0 of the same run), ``eligible`` and ``chosen`` (one row: the rule)."""
    base = table["run"].map(table[table["step"] == 0].set_index("run")["dev_ppl"])
    table = table.assign(ppl_rise=table["dev_ppl"] / base - 1.0)
    table["eligible"] = (table["step"] > 0) & (table["dev_ppl"] <= (1.0 + max_ppl_rise) * base)
    table["chosen"] = False
    ok = table[table["eligible"]]
    if len(ok):
        table.loc[ok.sort_values(["dev_J", "step"], kind="stable").index[0], "chosen"] = True
    return table[[c for c in COLUMNS if c in table.columns] + [c for c in table.columns if c not in COLUMNS]]


def select(table: pd.DataFrame, max_ppl_rise: float, theta_key: str = "theta") -> dict:
    """The chosen values (the keys params/train.yaml takes from it, and ``theta`` for params/causal.yaml's
    ``theta_key``) and the evidence."""
    chosen = table[table["chosen"]]
    if not len(chosen):
        raise TuneError(f"no dev point keeps the dev perplexity within {max_ppl_rise:.1%} of the base model's "
                        f"(lowest rise {table.loc[table['step'] > 0, 'ppl_rise'].min():.1%}): lower the learning "
                        "rates or raise lambda_r in params/tune.yaml")
    row = chosen.iloc[0]
    base = table[(table["run"] == row["run"]) & (table["step"] == 0)].iloc[0]
    return {"lr": float(row["lr"]), "lambda_r": float(row["lambda_r"]), "lm_loss": str(row["lm_loss"]),
            "max_steps": int(row["step"]), "theta": float(row["theta"]), "theta_key": theta_key,
            "theta_threshold": float(row.get("theta_threshold", float("nan"))), "run": str(row["run"]),
            "dev_J": float(row["dev_J"]), "dev_abs_delta": float(row["dev_abs_delta"]),
            "dev_ppl": float(row["dev_ppl"]), "ppl_rise": float(row["ppl_rise"]),
            "base_dev_J": float(base["dev_J"]), "base_dev_abs_delta": float(base["dev_abs_delta"]),
            "base_dev_ppl": float(base["dev_ppl"]),
            "rule": f"lowest dev J among dev points (step > 0) with dev perplexity at most "
                    f"{1 + max_ppl_rise:g} x the base model's; ties: fewer steps"}
