"""The package shows the pipeline: one subpackage per stage, small modules, and dvc.yaml deps that hold every
module a stage runs (its notebook's imports, followed through the package, lazy imports and ``-m`` launches
included), so that a change to any of them reruns the stage."""

from __future__ import annotations

import ast
from pathlib import Path

import nbformat
import pytest

from fairgender_utils.config import STAGES
from fairgender_utils.paths import REPO_ROOT
from fairgender_utils.stage import dvc_runs

PKG = REPO_ROOT / "fairgender_utils"
MAX_LINES = 300


def module_file(name: str) -> Path | None:
    """The file of module ``fairgender_utils.x.y`` (a module or a package's ``__init__``), None if none."""
    parts = name.split(".")[1:]
    base = PKG.joinpath(*parts)
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.exists():
            return candidate
    return None


def referenced_modules(source: str) -> set[str]:
    """Every ``fairgender_utils`` module a source imports (anywhere, functions included) or names in a
    string (``python -m fairgender_utils.train``: the package's ``__main__``)."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            names |= {f"{node.module}.{a.name}" for a in node.names}  # `from pkg import module`
        elif isinstance(node, ast.Constant) and isinstance(node.value, str):
            if node.value.startswith("fairgender_utils.") and " " not in node.value:
                names |= {node.value, f"{node.value}.__main__"}
    return {n for n in names if n == "fairgender_utils" or n.startswith("fairgender_utils.")}


def closure(names: set[str]) -> set[Path]:
    """The files of ``names`` and of everything they reference, parent packages' ``__init__`` included."""
    seen: set[Path] = set()
    todo = list(names)
    while todo:
        name = todo.pop()
        parts = name.split(".")
        for i in range(1, len(parts) + 1):
            path = module_file(".".join(parts[:i]))
            if path is None or path in seen:
                continue
            seen.add(path)
            todo += referenced_modules(path.read_text())
    return seen


def notebook_source(path: Path) -> str:
    nb = nbformat.read(path, as_version=4)
    code = "\n".join(c.source for c in nb.cells if c.cell_type == "code")
    return "\n".join(line for line in code.splitlines() if not line.lstrip().startswith(("%", "!")))


def _deps() -> dict[str, tuple[str, list[str]]]:
    from dvc.repo import Repo

    with Repo(str(REPO_ROOT)) as repo:
        stages = {s.addressing: [str(Path(d.def_path)) for d in s.deps] for s in repo.index.stages}
    return {name: (nb, stages[name]) for name, (nb, _, _, _) in dvc_runs().items()}


DEPS = _deps()


@pytest.mark.parametrize("stage", sorted(DEPS))
def test_every_module_a_stage_runs_is_a_declared_dep(stage: str) -> None:
    notebook, deps = DEPS[stage]
    assert notebook in deps, f"{stage}: its notebook is not a dep"
    files = closure(referenced_modules(notebook_source(REPO_ROOT / notebook)))
    assert files, f"{stage}: the notebook imports nothing from the package"
    missing = sorted(str(f.relative_to(REPO_ROOT)) for f in files
                     if not any(f.relative_to(REPO_ROOT).as_posix() == d or
                                f.relative_to(REPO_ROOT).as_posix().startswith(d.rstrip("/") + "/") for d in deps))
    assert not missing, f"{stage}: imports {missing}, which dvc.yaml does not list as deps"


def test_the_dep_check_can_fail() -> None:
    """The closure follows lazy imports and -m launches: train's notebook reaches the training loop."""
    files = closure(referenced_modules(notebook_source(REPO_ROOT / "notebooks" / "03_train.ipynb")))
    rel = {f.relative_to(PKG).as_posix() for f in files}
    assert {"train/__main__.py", "train/loop.py", "lm/heads.py", "train/checkpoints.py"} <= rel
    assert "generate/run.py" not in rel


def test_one_subpackage_per_stage_opening_with_its_config() -> None:
    for stage in STAGES:
        assert (PKG / stage / "__init__.py").exists(), f"fairgender_utils/{stage}/ is missing"
        assert (PKG / stage / "config.py").exists(), f"fairgender_utils/{stage}/config.py is missing"
        assert (REPO_ROOT / "params" / f"{stage}.yaml").exists()


@pytest.mark.parametrize("path", sorted(PKG.rglob("*.py")), ids=lambda p: p.relative_to(PKG).as_posix())
def test_modules_are_small_and_documented(path: Path) -> None:
    source = path.read_text()
    assert len(source.splitlines()) <= MAX_LINES, f"{path.name}: over {MAX_LINES} lines"
    assert ast.get_docstring(ast.parse(source)) or path.name == "__init__.py" and not source.strip(), \
        f"{path.relative_to(REPO_ROOT)}: no module docstring"
