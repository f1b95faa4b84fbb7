"""Training checkpoints: ``accelerator.save_state`` folders ``step_NNNNNNN`` with a completeness marker.

A checkpoint is complete when ``complete.json`` lists every file of the folder with its size: a save
interrupted by a kill has no marker, a damaged one has a missing or resized file. Resuming takes the
newest checkpoint only if it is intact; otherwise it stops with an error unless asked to start afresh.

The marker also records the run's *fingerprint* (the parameters that shape training and a hash of the
training data). A checkpoint of another run - the parameters or the data of stage 02 changed since,
and ``dvc repro`` reruns the stage - is stale, not damaged: training starts afresh and says so.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import warnings
from pathlib import Path
from typing import TYPE_CHECKING

from fairgender_utils.io import read_jsonl, write_json, write_jsonl
from fairgender_utils.paths import repo_path
from fairgender_utils.train.config import TrainConfig, TrainingError

if TYPE_CHECKING:
    from accelerate import Accelerator


# Parameters that do not change what is trained (how it is run, logged or stored).
OPERATIONAL = {"variant", "variants", "checkpoint_every", "keep_checkpoints", "resume", "fresh_if_unusable",
               "count_flops", "accelerate_profile", "cpu_threads", "output_dir", "checkpoint_dir",
               "figures_dir", "plots_dir", "metrics_path", "config_path"}


def fingerprint(cfg: TrainConfig, data_files: list[Path]) -> dict:
    """What makes two runs the same run: the training parameters and the sha256 of the data files."""
    h = hashlib.sha256()
    for f in data_files:
        h.update(f.read_bytes())
    params = {k: v for k, v in cfg.model_dump(mode="json").items() if k not in OPERATIONAL}
    return {"params": params, "data_sha256": h.hexdigest()}


def _differences(old: dict, new: dict) -> list[str]:
    a, b = old["params"], new["params"]
    keys = sorted(k for k in set(a) | set(b) if a.get(k) != b.get(k))
    return [f"{k}: {a.get(k)!r} -> {b.get(k)!r}" for k in keys] + (
        ["the training data"] if old["data_sha256"] != new["data_sha256"] else [])


def checkpoint_problem(path: Path) -> str | None:
    """Why a checkpoint folder cannot be resumed from (None: complete and intact)."""
    marker = path / "complete.json"
    if not marker.exists():
        return "no complete.json (the save was interrupted)"
    try:
        files = json.loads(marker.read_text())["files"]
    except (ValueError, KeyError) as err:
        return f"complete.json unreadable ({err})"
    for name, size in files.items():
        f = path / name
        if not f.exists():
            return f"{name} missing"
        if f.stat().st_size != size:
            return f"{name} has {f.stat().st_size} bytes, {size} expected"
    return None


def find_checkpoint(cfg: TrainConfig, run: dict) -> Path | None:
    """The newest intact checkpoint of this run (fingerprint ``run``); None when there is none or it
    belongs to another run. An unusable newest checkpoint is an error unless ``fresh_if_unusable``."""
    base = repo_path(cfg.checkpoint_dir)
    for path in sorted(base.glob("step_*"), reverse=True):
        problem = checkpoint_problem(path)
        if problem is None:
            old = json.loads((path / "complete.json").read_text()).get("run")
            if old != run:
                changed = _differences(old, run) if old else ["no fingerprint recorded"]
                warnings.warn(f"checkpoint {path} belongs to another run ({'; '.join(changed)}); "
                              f"starting afresh", stacklevel=2)
                return None
            return path
        if not cfg.fresh_if_unusable:
            raise TrainingError(f"checkpoint {path} is unusable: {problem}. Delete it to resume from an "
                                f"older one, or set fresh_if_unusable: true to start afresh")
        warnings.warn(f"checkpoint {path} is unusable ({problem}); starting afresh as asked", stacklevel=2)
        return None
    return None


def save_checkpoint(accelerator: Accelerator, cfg: TrainConfig, step: int, run: dict) -> None:
    """save_state + a marker listing every file with its size; keep the newest ``keep_checkpoints``."""
    path = repo_path(cfg.checkpoint_dir) / f"step_{step:07d}"
    accelerator.save_state(str(path))
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        files = {str(f.relative_to(path)): f.stat().st_size for f in path.rglob("*") if f.is_file()}
        write_json(path / "complete.json", {"step": step, "files": files, "run": run})
        for old in sorted(path.parent.glob("step_*"))[:-cfg.keep_checkpoints]:
            shutil.rmtree(old)
    accelerator.wait_for_everyone()


def start_or_resume(accelerator: Accelerator, cfg: TrainConfig, total: int,
                    run: dict) -> tuple[int, str | None, Path]:
    """Load the newest intact checkpoint (resume) or clear old ones (fresh start); trim the training log
    to the steps that the restored state includes. Returns (step, checkpoint used, log path)."""
    ckpt_dir = repo_path(cfg.checkpoint_dir)
    log_path = ckpt_dir / "training_log.jsonl"
    ckpt = find_checkpoint(cfg, run) if cfg.resume else None
    step = 0
    if ckpt is not None:
        accelerator.load_state(str(ckpt))
        step = json.loads((ckpt / "complete.json").read_text())["step"]
        accelerator.print(f"resumed from {ckpt} (step {step} of {total})")
    accelerator.wait_for_everyone()  # every process has decided and loaded before anything is deleted
    if accelerator.is_main_process:
        if ckpt is None and ckpt_dir.exists():
            shutil.rmtree(ckpt_dir)  # a fresh start: stale checkpoints must not be resumed later
        kept = list(read_jsonl(log_path)) if log_path.exists() else []
        write_jsonl(log_path, [r for r in kept if r["step"] <= step])
    accelerator.wait_for_everyone()
    return step, (str(ckpt) if ckpt is not None else None), log_path
