"""Run one pipeline stage: validate its params file, execute its notebook, render it to HTML.

``python -m fairgender_utils.stage notebooks/03_train.ipynb params/train.yaml results/train/cda -p variant cda``
is what each ``dvc.yaml`` command calls. It is ``papermill -k fairgender -f PARAMS [-p K V] NOTEBOOK OUT``
preceded by the strict config check (a typo'd key or a wrong value stops before the kernel starts, with one
line naming the file and the key) and followed by nbconvert to HTML (JupyterLab look, no CDN script).
"""

from __future__ import annotations

import argparse
import ast
import os
import sys
from pathlib import Path

import yaml

from fairgender_utils.config import ConfigError, load, read_params
from fairgender_utils.paths import REPO_ROOT, repo_path

KERNEL = "fairgender"
TEMPLATES = Path(__file__).parent / "templates"


def run(notebook: str, params: str, out_dir: str, overrides: dict[str, object]) -> Path:
    """Validate, execute and render; return the executed notebook's path."""
    import papermill

    values = {**read_params(params), **overrides}
    load(params, overrides)  # the same check as `python -m fairgender_utils.config`, before any work
    # transformers and accelerate import tqdm.auto, which warns in a kernel without ipywidgets: the bars
    # are plain text here, and the warning is noise in every rendered notebook
    warn = "ignore:IProgress not found"
    os.environ["PYTHONWARNINGS"] = ",".join(filter(None, [os.environ.get("PYTHONWARNINGS"), warn]))
    out = repo_path(out_dir) / Path(notebook).name
    out.parent.mkdir(parents=True, exist_ok=True)
    here = Path.cwd()  # papermill records these paths in the notebook: relative, not the machine's own
    papermill.execute_notebook(os.path.relpath(repo_path(notebook), here), os.path.relpath(out, here),
                               parameters=values, kernel_name=KERNEL, cwd=str(REPO_ROOT), progress_bar=True)
    render_html(out)
    return out


def _assignments(source: str) -> dict[str, ast.expr]:
    """{name: value node} of the ``name = value`` lines of a cell."""
    return {node.targets[0].id: node.value for node in ast.parse(source).body
            if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name)}


def _same(a: ast.expr, b: ast.expr) -> bool:
    """Whether two value nodes are the same literal (type included: True is not 1)."""
    try:
        x, y = ast.literal_eval(a), ast.literal_eval(b)
    except ValueError:
        return False
    return type(x) is type(y) and x == y


def merge_parameters(nb):
    """One parameters cell for the reader: papermill runs the notebook's ``parameters`` cell (the defaults,
    with their comments) and then its ``injected-parameters`` cell (the values of this run). Here the
    injected values replace the defaults in the parameters cell, comments kept (a changed value says so),
    values the cell lacks are appended, and the injected cell is dropped. A cell that does not parse is left
    as it is."""
    tagged = lambda tag: [c for c in nb.cells if tag in c.get("metadata", {}).get("tags", [])]  # noqa: E731
    params, injected = tagged("parameters"), tagged("injected-parameters")
    if len(params) != 1 or len(injected) != 1:
        return nb
    cell = params[0]
    try:
        defaults, values = _assignments(cell.source), _assignments(injected[0].source)
    except SyntaxError:
        return nb
    lines = cell.source.splitlines()
    for name, node in sorted(defaults.items(), key=lambda kv: -kv[1].lineno):  # bottom up: offsets stay valid
        new = values.get(name)
        if new is None or _same(new, node):
            continue
        text = ast.get_source_segment(injected[0].source, new)
        start = lines[node.lineno - 1].encode()[:node.col_offset].decode()  # ast offsets count UTF-8 bytes
        rest = lines[node.end_lineno - 1].encode()[node.end_col_offset:].decode()
        old = ast.get_source_segment(cell.source, node).replace("\n", " ")
        note = ("  " if "#" in rest else "  # ") + f"(this run; the notebook's default: {old})"
        lines[node.lineno - 1:node.end_lineno] = [start + text + rest + note]
    lines += [f"{name} = {ast.get_source_segment(injected[0].source, node)}  # (this run)"
              for name, node in values.items() if name not in defaults]
    cell.source = "\n".join(lines)
    nb.cells = [c for c in nb.cells if c is not injected[0]]
    return nb


def render_html(notebook: Path) -> Path:
    """Render an executed notebook to HTML beside it, with JupyterLab's look and no script fetched from a
    CDN (``templates/offline``): the page shows every table and inline figure without network, and one
    parameters cell holding the values the run used (:func:`merge_parameters`)."""
    import nbformat
    from nbconvert import HTMLExporter

    exporter = HTMLExporter(template_name="offline", extra_template_basedirs=[str(TEMPLATES)])
    html, _ = exporter.from_notebook_node(merge_parameters(nbformat.read(notebook, as_version=4)),
                                          resources={"metadata": {"name": notebook.stem}})
    path = notebook.with_suffix(".html")
    path.write_text(html, encoding="utf-8")
    return path


def _parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="python -m fairgender_utils.stage", description=__doc__.splitlines()[0])
    ap.add_argument("notebook")
    ap.add_argument("params")
    ap.add_argument("out_dir")
    ap.add_argument("-p", nargs=2, action="append", default=[], metavar=("KEY", "VALUE"),
                    help="override one parameter (the value is read as YAML)")
    return ap


def dvc_runs() -> dict[str, tuple[str, str, str, dict[str, object]]]:
    """Every stage of dvc.yaml that runs this module, as dvc.yaml resolves it (``vars``, ``foreach``):
    {stage name: (notebook, params file, out_dir, overrides)}."""
    import shlex

    from dvc.repo import Repo

    runs = {}
    with Repo(str(REPO_ROOT)) as repo:
        for stage in repo.index.stages:
            words = shlex.split(getattr(stage, "cmd", "") or "")
            if words[:3] != ["python", "-m", "fairgender_utils.stage"]:
                continue
            args = _parser().parse_args(words[3:])
            runs[stage.addressing] = (args.notebook, args.params, args.out_dir,
                                      {k: yaml.safe_load(v) for k, v in args.p})
    return runs


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    overrides = {k: yaml.safe_load(v) for k, v in args.p}
    try:
        run(args.notebook, args.params, args.out_dir, overrides)
    except ConfigError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
