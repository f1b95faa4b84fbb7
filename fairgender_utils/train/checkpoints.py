"""Training checkpoints: ``accelerator.save_state`` folders ``step_NNNNNNN`` with a completeness marker.

A checkpoint is complete when ``complete.json`` lists every file of the folder with its size and
sha256: a save interrupted by a kill has no marker, a damaged one has a missing, resized or changed file
(bytes flipped in place keep the size, not the hash), a malformed marker is named as such. Resuming takes
the newest checkpoint only if it is intact; otherwise it stops with an error unless asked to start afresh.
A marker of an older version (sizes only) is still resumed from, with a warning that it is unverified.

The marker also records the run's *fingerprint* (the parameters that shape training and a hash of the
training data). A checkpoint of another run - the parameters or the data of stage 02 changed since,
and ``dvc repro`` reruns the stage - is stale, not damaged: training starts afresh and says so.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import warnings
from pathlib import Path
from typing import TYPE_CHECKING

from fairgender_utils.io import numbered_jsonl, write_json, write_jsonl
from fairgender_utils.paths import REPO_ROOT, repo_path
from fairgender_utils.train.config import TrainConfig, TrainingError

if TYPE_CHECKING:
    from accelerate import Accelerator


# Parameters that do not change what is trained (how it is run, logged or stored).
OPERATIONAL = {"variant", "variants", "groups", "seeds", "checkpoint_every", "keep_checkpoints", "resume",
               "fresh_if_unusable", "count_flops", "save_final", "accelerate_profile", "cpu_threads", "output_dir",
               "checkpoint_dir", "figures_dir", "plots_dir", "metrics_path", "config_path", "pairs_path",
               "dev_every", "dev_at_start", "dev_ppl_n", "dev_batch_size", "ppl_dev_share", "ppl_split_seed", "grad_parts_every"}


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


def sha256_file(path: Path) -> str:
    with path.open("rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def _manifest_problem(m: object) -> str | None:
    """Why a parsed ``complete.json`` is malformed (None: well-formed)."""
    if not isinstance(m, dict):
        return f"complete.json holds a JSON {type(m).__name__}, not an object"
    step, files, run = m.get("step"), m.get("files"), m.get("run")
    if not isinstance(step, int) or isinstance(step, bool) or step < 0:
        return f"complete.json: 'step' is {json.dumps(step)[:40]}, not a step number"
    if not isinstance(files, dict) or not files:
        return f"complete.json: 'files' is {json.dumps(files)[:40]}, not a list of files"
    if run is not None and not isinstance(run, dict):
        return f"complete.json: 'run' is {json.dumps(run)[:40]}, not an object"
    for name, entry in files.items():
        if Path(name).is_absolute() or ".." in Path(name).parts:
            return f"complete.json: file name {name!r} points outside the checkpoint"
        legacy = isinstance(entry, int) and not isinstance(entry, bool)
        ok = isinstance(entry, dict) and isinstance(entry.get("bytes"), int) and isinstance(
            entry.get("sha256"), str) and len(entry["sha256"]) == 64
        if not (legacy or ok):
            return f"complete.json: the entry of {name} is {json.dumps(entry)[:60]}, not its size and sha256"
    return None


def read_manifest(path: Path) -> tuple[dict | None, str | None]:
    """(manifest, None) when ``complete.json`` of ``path`` is there and well-formed, else (None, why)."""
    marker = path / "complete.json"
    if not marker.exists():
        return None, "no complete.json (the save was interrupted)"
    try:
        manifest = json.loads(marker.read_bytes().decode("utf-8"))
    except ValueError as err:  # also UnicodeDecodeError
        return None, f"complete.json unreadable ({err})"
    problem = _manifest_problem(manifest)
    return (None, problem) if problem else (manifest, None)


def checkpoint_problem(path: Path) -> str | None:
    """Why a checkpoint folder cannot be resumed from (None: complete and intact)."""
    manifest, problem = read_manifest(path)
    if manifest is None:
        return problem
    for name, entry in manifest["files"].items():
        f = path / name
        size = entry if isinstance(entry, int) else entry["bytes"]
        if not f.is_file():
            return f"{name} missing"
        if f.stat().st_size != size:
            return f"{name} has {f.stat().st_size} bytes, {size} expected"
        if isinstance(entry, dict) and sha256_file(f) != entry["sha256"]:
            return f"{name} has changed since it was saved (sha256 {sha256_file(f)[:12]}…, " \
                   f"{entry['sha256'][:12]}… expected)"
    return None


def shown(path: Path) -> str:
    """A path as messages and metrics show it: relative to the repository, never the machine's own."""
    return os.path.relpath(path, REPO_ROOT)


def find_checkpoint(cfg: TrainConfig, run: dict) -> Path | None:
    """The newest intact checkpoint of this run (fingerprint ``run``); None when there is none or it
    belongs to another run. An unusable newest checkpoint is an error unless ``fresh_if_unusable``."""
    base = repo_path(cfg.checkpoint_dir)
    for path in sorted(base.glob("step_*"), reverse=True):
        problem = checkpoint_problem(path)
        if problem is None:
            manifest = read_manifest(path)[0]
            old = manifest.get("run")  # type: ignore[union-attr]
            if old != run:
                changed = _differences(old, run) if old else ["no fingerprint recorded"]
                warnings.warn(f"checkpoint {shown(path)} belongs to another run ({'; '.join(changed)}); "
                              f"starting afresh", stacklevel=2)
                return None
            if any(isinstance(e, int) for e in manifest["files"].values()):  # type: ignore[index]
                warnings.warn(f"checkpoint {shown(path)} records sizes only (an older version saved it): its "
                              f"contents cannot be verified", stacklevel=2)
            return path
        if not cfg.fresh_if_unusable:
            raise TrainingError(f"checkpoint {shown(path)} is unusable: {problem}. Delete it to resume from an "
                                f"older one, or set fresh_if_unusable: true to start afresh")
        warnings.warn(f"checkpoint {shown(path)} is unusable ({problem}); starting afresh as asked", stacklevel=2)
        return None
    return None


def save_checkpoint(accelerator: Accelerator, cfg: TrainConfig, step: int, run: dict) -> None:
    """save_state + a marker listing every file with its size and sha256; keep the newest
    ``keep_checkpoints``."""
    path = repo_path(cfg.checkpoint_dir) / f"step_{step:07d}"
    accelerator.save_state(str(path))
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        files = {str(f.relative_to(path)): {"bytes": f.stat().st_size, "sha256": sha256_file(f)}
                 for f in sorted(path.rglob("*")) if f.is_file()}
        write_json(path / "complete.json", {"step": step, "files": files, "run": run})
        for old in sorted(path.parent.glob("step_*"))[:-cfg.keep_checkpoints]:
            shutil.rmtree(old)
    accelerator.wait_for_everyone()


def start_or_resume(accelerator: Accelerator, cfg: TrainConfig, total: int,
                    run: dict) -> tuple[int, str | None, Path]:
    """Load the newest intact checkpoint (resume) or clear old ones (fresh start); trim the training log
    and the dev log (``dev_log.jsonl`` beside it, from step 0) to the steps that the restored state
    includes. Returns (step, checkpoint used, training log path)."""
    ckpt_dir = repo_path(cfg.checkpoint_dir)
    log_path = ckpt_dir / "training_log.jsonl"
    ckpt = find_checkpoint(cfg, run) if cfg.resume else None
    step = 0
    if ckpt is not None:
        accelerator.load_state(str(ckpt))
        step = json.loads((ckpt / "complete.json").read_text())["step"]
        accelerator.print(f"resumed from {shown(ckpt)} (step {step} of {total})")
    accelerator.wait_for_everyone()  # every process has decided and loaded before anything is deleted
    if accelerator.is_main_process:
        if ckpt is None and ckpt_dir.exists():
            shutil.rmtree(ckpt_dir)  # a fresh start: stale checkpoints must not be resumed later
        write_jsonl(log_path, _log_until(log_path, step))
        write_jsonl(ckpt_dir / "dev_log.jsonl", _log_until(ckpt_dir / "dev_log.jsonl", step, first=0))
    accelerator.wait_for_everyone()
    return step, (shown(ckpt) if ckpt is not None else None), log_path


def _log_until(log_path: Path, step: int, first: int = 1) -> list[dict]:
    """A log's records of steps ``first`` to ``step``; a torn or malformed line is named and left out."""
    kept = []
    for lineno, rec, problem in numbered_jsonl(log_path) if log_path.exists() else []:
        n = rec.get("step") if rec is not None else None
        if problem is None and not (isinstance(n, int) and n >= first):
            problem = f"no step number ({json.dumps(n)[:20]})"
        if problem is not None:
            warnings.warn(f"{log_path}:{lineno}: {problem}; left out of the training log", stacklevel=3)
        elif n <= step:
            kept.append(rec)
    return kept
