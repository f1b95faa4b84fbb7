"""What every loader shares: the error that names file and line, and readers of text and JSON."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


class DataFormatError(ValueError):
    """A data file is not in the expected format; the message names the file and the line."""


def _text(path: Path, encoding: str = "utf-8") -> str:
    """The file's text; bytes that are not ``encoding`` are an error naming the line."""
    data = path.read_bytes()
    try:
        return data.decode(encoding)
    except UnicodeDecodeError as err:
        line = data[:err.start].count(b"\n") + 1
        raise DataFormatError(f"{path}:{line}: not {encoding} text") from None


def _json(path: Path) -> Any:
    try:
        return json.loads(_text(path))
    except json.JSONDecodeError as err:
        raise DataFormatError(f"{path}:{err.lineno}: not valid JSON ({err.msg})") from None

# ---------------------------------------------------------------- word lists


def _lines(path: Path) -> list[str]:
    return [ln.strip() for ln in _text(path).splitlines() if ln.strip()]
