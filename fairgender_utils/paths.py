"""The one place that knows where the repository root is."""

from __future__ import annotations

import os
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]


def repo_path(path: str | os.PathLike[str]) -> Path:
    """Resolve ``path`` against the repository root unless it is absolute."""
    p = Path(path).expanduser()
    return p if p.is_absolute() else REPO_ROOT / p


def default_mirror() -> Path | None:
    """The data mirror: ``$FAIRGENDER_DATA_MIRROR``, else ``../shared/data`` beside the checkout."""
    env = os.environ.get("FAIRGENDER_DATA_MIRROR")
    if env:
        return Path(env).expanduser()
    candidate = REPO_ROOT.parent / "shared" / "data"
    return candidate if candidate.is_dir() else None
