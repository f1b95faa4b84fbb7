"""Notebook conventions: a parameters cell equal to the params file, committed without outputs."""

from __future__ import annotations

import ast
import re
import subprocess
from pathlib import Path

import nbformat
import pytest
import yaml

from fairgender_utils.paths import REPO_ROOT
from fairgender_utils.stage import dvc_runs
from tests.params import stage_params

NOTEBOOKS = sorted((REPO_ROOT / "notebooks").glob("*.ipynb"))
NETWORK_SCRIPT = re.compile(r"<script[^>]+src=\"https?://|import\(\"https?://")  # a script from a CDN


def _default_run(nb_name: str) -> dict:
    """The values dvc.yaml runs a notebook with in its default entry: the params file plus the command's -p."""
    runs = [(name, params, over) for name, (nb, params, _, over) in dvc_runs().items() if nb == f"notebooks/{nb_name}"]
    assert runs, f"notebooks/{nb_name} is not run by dvc.yaml"
    assert len({p for _, p, _ in runs}) == 1, f"notebooks/{nb_name} is run with several params files"
    stage = Path(runs[0][1]).stem
    return stage_params(stage)


def _parameters(nb) -> list[tuple[str, object]]:
    cells = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
    assert len(cells) == 1, "exactly one cell tagged 'parameters'"
    tree = ast.parse(cells[0].source)
    values = []
    for node in tree.body:
        assert isinstance(node, ast.Assign) and isinstance(node.targets[0], ast.Name), \
            f"parameters cell: only `name = literal` lines (line {node.lineno})"
        values.append((node.targets[0].id, ast.literal_eval(node.value)))  # a literal, no derived values
    return values


def test_every_notebook_is_a_stage() -> None:
    assert NOTEBOOKS
    for nb_path in NOTEBOOKS:
        _default_run(nb_path.name)


@pytest.mark.parametrize("nb_path", NOTEBOOKS, ids=lambda p: p.name)
def test_parameters_equal_params_file(nb_path) -> None:
    """The parameters cell mirrors what dvc.yaml runs by default: the same keys and the same values."""
    pairs = _parameters(nbformat.read(nb_path, as_version=4))
    names = [k for k, _ in pairs]
    assert len(names) == len(set(names))
    expected = _default_run(nb_path.name)
    assert sorted(names) == sorted(expected)
    different = {k: (v, expected[k]) for k, v in pairs if v != expected[k] or type(v) is not type(expected[k])}
    assert not different, f"parameters cell != params file (+ dvc.yaml -p): {different}"


def test_the_value_check_can_fail() -> None:
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("lr = 2e-05", metadata={"tags": ["parameters"]})])
    assert _parameters(nb) == [("lr", 2e-05)] and _parameters(nb)[0][1] != 1e-05


def _dirty(nb) -> bool:
    return any(c.cell_type == "code" and (c.get("outputs") or c.get("execution_count")) for c in nb.cells)


def test_committed_notebooks_are_clean() -> None:
    tracked = subprocess.run(["git", "ls-files", "notebooks/*.ipynb"], capture_output=True, text=True,
                             cwd=REPO_ROOT).stdout.split()
    dirty = [p for p in tracked if _dirty(nbformat.read(REPO_ROOT / p, as_version=4))]
    assert not dirty, f"notebooks committed with outputs or execution counts: {dirty}"


@pytest.mark.parametrize("nb_path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_hygiene(nb_path) -> None:
    nb = nbformat.read(nb_path, as_version=4)
    assert not _dirty(nb), "strip outputs and execution counts"
    assert nb.metadata["kernelspec"]["name"] == "fairgender"
    code = "\n".join(c.source for c in nb.cells if c.cell_type == "code")
    for banned in ("os.chdir", "!pip", "!dvc", "\nclass "):
        assert banned not in "\n" + code, f"{banned!r} in a notebook"


def test_the_check_can_fail(tmp_path) -> None:
    nb = nbformat.v4.new_notebook()
    cell = nbformat.v4.new_code_cell("x = 1")
    cell.outputs = [nbformat.v4.new_output("stream", text="1")]
    nb.cells.append(cell)
    assert _dirty(nb)


def test_rendered_html_needs_no_network(tmp_path: Path) -> None:
    import base64
    import io

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import nbformat

    from fairgender_utils.stage import render_html

    buf = io.BytesIO()
    plt.figure(figsize=(1, 1))
    plt.savefig(buf, format="png")
    plt.close("all")
    png = base64.b64encode(buf.getvalue()).decode()
    cell = nbformat.v4.new_code_cell("plot()", outputs=[nbformat.v4.new_output(
        "display_data", data={"image/png": png, "text/plain": "<Figure>"})])
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell("# Title"), cell])
    path = tmp_path / "x.ipynb"
    nbformat.write(nb, path)
    html = render_html(path).read_text()
    assert "<h1" in html and f"data:image/png;base64,{png[:40]}" in html
    assert not NETWORK_SCRIPT.search(html), "a script is fetched from the network"


def test_top_level_plots_name_committed_columns() -> None:
    """Every `dvc plots show` definition points at a stage's declared plot table (as dvc.yaml resolves its
    `foreach` and `matrix` entries) and, where that table is committed, at columns it has. (A run's tables
    are committed by the run that makes them: a newly named run has none yet.)"""
    import pandas as pd
    from dvc.repo import Repo

    dvc = yaml.safe_load((REPO_ROOT / "dvc.yaml").read_text())
    with Repo(str(REPO_ROOT)) as repo:
        declared = {str(Path(o.def_path)) for s in repo.index.stages for o in s.outs}
    checked = 0
    for definition in dvc["plots"]:
        (title, props), = definition.items()
        assert "'" not in title, f"{title}: an apostrophe breaks dvc's HTML template"
        for path, columns in props["y"].items():
            parent = path.rsplit("/", 1)[0]  # results/<stage>[/<run>]/plots
            assert parent in declared, f"{path}: not in a declared stage output"
            if not (REPO_ROOT / path).exists():
                continue
            header = pd.read_csv(REPO_ROOT / path, nrows=0).columns
            for col in [props["x"], *([columns] if isinstance(columns, str) else columns)]:
                assert col in header, f"dvc.yaml plot '{title}': column '{col}' not in {path}"
            checked += 1
    assert checked, "no plot table of dvc.yaml is committed"


def test_committed_html_needs_no_network() -> None:
    """The rendered notebooks in results/ load nothing from the network and embed their figures."""
    pages = sorted((REPO_ROOT / "results").rglob("*.html"))
    assert pages, "results/ holds no rendered notebook"
    for page in pages:
        html = page.read_text(encoding="utf-8")
        assert not NETWORK_SCRIPT.search(html), f"{page}: fetches a script"
        assert not re.search(r"<img[^>]+src=\"(?!data:)", html), f"{page}: an image that is not inline"


def test_committed_results_hold_no_machine_path_or_tool_warning() -> None:
    """Rendered notebooks and result files say nothing about the machine that ran them."""
    leaks = (str(REPO_ROOT), "PosixPath(", "IProgress not found", "/root/", "/home/")
    found = []
    for path in sorted((REPO_ROOT / "results").rglob("*")):
        if path.is_file() and path.suffix in {".html", ".ipynb", ".json", ".csv", ".jsonl"}:
            text = path.read_text(encoding="utf-8", errors="replace")
            found += [f"{path.relative_to(REPO_ROOT)}: {leak}" for leak in leaks if leak in text]
    assert not found, found[:10]
