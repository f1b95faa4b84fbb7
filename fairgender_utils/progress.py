"""Progress bars: a notebook widget where ipywidgets is installed, else a plain text bar on stderr.

``tqdm.auto`` picks the widget inside a Jupyter kernel and, without ipywidgets, warns "IProgress not
found" into every rendered notebook before it falls back to text; this picks the text bar directly.
"""

from __future__ import annotations

import importlib.util
from functools import cache
from typing import Any


@cache
def bar_class() -> type:
    """``tqdm.auto.tqdm`` when ipywidgets can be imported, else ``tqdm.std.tqdm``."""
    if importlib.util.find_spec("ipywidgets") is not None:
        from tqdm.auto import tqdm
    else:
        from tqdm.std import tqdm
    return tqdm


def tqdm(*args: Any, **kwargs: Any) -> Any:
    """A progress bar (the arguments of ``tqdm.tqdm``)."""
    return bar_class()(*args, **kwargs)
