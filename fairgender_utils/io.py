"""Small file helpers shared by the stages: JSON metrics, JSONL records that survive a crash, CSV tables,
stable hashes."""

from __future__ import annotations

import hashlib
import json
import os
import warnings
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

from fairgender_utils.paths import repo_path


def write_json(path: str | Path, obj: Any) -> Path:
    """Write ``obj`` as indented JSON (atomic: a crash never leaves half a file)."""
    out = repo_path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(out.suffix + ".tmp")
    tmp.write_text(json.dumps(obj, indent=2, sort_keys=True, default=float) + "\n")
    os.replace(tmp, out)
    return out


def append_jsonl(path: str | Path, record: Mapping[str, Any]) -> None:
    """Append one record and flush it to disk at once (a journal line is never lost on a crash)."""
    out = repo_path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    with out.open("a", encoding="utf-8") as f:
        f.write(json.dumps(record, ensure_ascii=False) + "\n")
        f.flush()
        os.fsync(f.fileno())


def write_jsonl(path: str | Path, records: Iterable[Mapping[str, Any]]) -> Path:
    """Write records, one JSON object per line (atomic)."""
    out = repo_path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(out.suffix + ".tmp")
    with tmp.open("w", encoding="utf-8") as f:
        for r in records:
            f.write(json.dumps(r, ensure_ascii=False) + "\n")
    os.replace(tmp, out)
    return out


def numbered_jsonl(path: str | Path) -> Iterator[tuple[int, dict[str, Any] | None, str | None]]:
    """(line number, record, None) per usable line, (line number, None, problem) per unusable one.

    Blank lines are skipped; a line that is not UTF-8, not JSON or not a JSON object is a problem.
    """
    p = repo_path(path)
    with p.open("rb") as f:
        for lineno, raw in enumerate(f, 1):
            if not raw.strip():
                continue
            try:
                rec = json.loads(raw.decode("utf-8"))
            except UnicodeDecodeError:
                yield lineno, None, "corrupt JSONL line (not UTF-8)"
                continue
            except ValueError as err:
                yield lineno, None, f"corrupt JSONL line ({err})"
                continue
            if not isinstance(rec, dict):
                yield lineno, None, f"corrupt JSONL line (a JSON {type(rec).__name__}, not an object)"
                continue
            yield lineno, rec, None


def read_jsonl(path: str | Path, strict: bool = True) -> Iterator[dict[str, Any]]:
    """Yield records. A corrupt line raises (strict) or is reported with its line number and skipped."""
    p = repo_path(path)
    for lineno, rec, problem in numbered_jsonl(p):
        if problem is not None:
            msg = f"{p}:{lineno}: {problem}"
            if strict:
                raise ValueError(msg)
            warnings.warn(msg + "; skipped, the rest kept", stacklevel=2)
            continue
        yield rec  # type: ignore[misc]


def write_tables(out_dir: str | Path, folder: str, tables: Mapping[str, Any]) -> None:
    """Write each DataFrame of ``tables`` as ``out_dir/folder/<name>.csv`` (no index)."""
    base = repo_path(out_dir) / folder
    base.mkdir(parents=True, exist_ok=True)
    for name, df in tables.items():
        df.to_csv(base / f"{name}.csv", index=False)


def short_hash(obj: Any) -> str:
    """Short stable hash of a JSON-able object (generation settings -> journal keys)."""
    return hashlib.sha256(json.dumps(obj, sort_keys=True).encode()).hexdigest()[:12]
