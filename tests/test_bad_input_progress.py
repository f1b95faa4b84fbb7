"""Progress bars inside a Jupyter kernel without ipywidgets: text bars, no "IProgress not found" warning."""

from __future__ import annotations

import ast
import subprocess
import sys

from fairgender_utils.paths import REPO_ROOT

# A fresh interpreter that looks like a Jupyter kernel to tqdm.auto and has no ipywidgets.
KERNEL = r"""
import sys, types, warnings, importlib.util
import IPython
sys.modules["ipykernel.zmqshell"] = types.ModuleType("ipykernel.zmqshell")  # how tqdm spots a kernel
IPython.get_ipython = lambda: type("ZMQInteractiveShell", (), {"config": {"IPKernelApp": {}}})()
real_find_spec = importlib.util.find_spec
importlib.util.find_spec = lambda name, *a: None if name == "ipywidgets" else real_find_spec(name, *a)
sys.modules["ipywidgets"] = None  # import ipywidgets fails
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    {body}
print("warnings:", [str(w.message)[:40] for w in caught])
"""


def _run(body: str) -> str:
    proc = subprocess.run([sys.executable, "-c", KERNEL.replace("{body}", body)], cwd=REPO_ROOT,
                          capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return proc.stdout + proc.stderr


def test_package_bars_are_text_bars_without_the_ipywidgets_warning() -> None:
    out = _run("from fairgender_utils.progress import tqdm; list(tqdm(range(3), desc='bar'))")
    assert "warnings: []" in out and "bar: 100%" in out
    # the stand-in kernel is faithful: tqdm.auto itself warns there
    assert "IProgress not found" in _run("from tqdm.auto import tqdm")


def test_no_package_module_imports_tqdm_auto() -> None:
    offenders = []
    for path in (REPO_ROOT / "fairgender_utils").rglob("*.py"):
        if path.name == "progress.py":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            module = node.module if isinstance(node, ast.ImportFrom) else None
            if (module or "").startswith(("tqdm.auto", "tqdm.notebook", "tqdm.autonotebook")):
                offenders.append(f"{path.relative_to(REPO_ROOT)}:{node.lineno}")
    assert offenders == []
