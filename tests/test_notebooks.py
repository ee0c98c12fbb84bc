"""Execute every walkthrough notebook on the CPU, check the saved widget state and the offline HTML.

Each notebook in ``notebooks/`` runs in a fresh kernel of this interpreter (a temporary
kernelspec, one torch thread, MovieLens read from the shared datasets folder beside the
clone) with the notebook's own small default epoch counts. The executed notebook and its
offline HTML (:func:`recwidgets.export.notebook.notebook_to_html`) are written to
``test-artifacts/notebooks/`` for inspection.

Execution is cached per process, so ``tests/browser/test_notebooks_offline.py``, which opens
the same HTML files in Chromium, reuses these runs when both files are in one session.
"""

from __future__ import annotations

import atexit
import base64
import functools
import importlib.util
import json
import logging
import os
import re
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import nbformat
import pytest
from jupyter_client.kernelspec import KernelSpecManager
from jupyter_client.manager import KernelManager
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError

from recwidgets.export.html import STATE_MIME, VIEW_MIME
from recwidgets.export.notebook import notebook_to_html
from recwidgets.widgets.base import js_dir, load_esm

logger = logging.getLogger(__name__)

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS_DIR = ROOT / "notebooks"
SHARED_DATASETS = ROOT.parent / "shared" / "datasets"
ARTIFACTS_DIR = ROOT / "test-artifacts" / "notebooks"

# notebooks/build.py, loaded by path: "build" is also the name of a PyPI package.
_spec = importlib.util.spec_from_file_location("recwidgets_notebook_build", NOTEBOOKS_DIR / "build.py")
build = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(build)

KERNEL_NAME = "recwidgets-notebook-tests"

#: Ceiling per cell in seconds: it only bounds a hung kernel; the slowest cell takes well under a minute.
CELL_TIMEOUT_S = 900

#: The HTML of one executed notebook must stay below this many megabytes.
HTML_BUDGET_MB = 20.0

#: Widgets (ESM file names under js/) whose state each notebook must save.
EXPECTED_WIDGETS = {
    "01_quickstart": {"training_monitor", "metric_panel", "diagnosis_report", "dashboard"},
    "02_attention": {"attention_heatmap"},
    "03_shap": {"shap_explorer"},
    "04_online_updates": {"online_update_panel"},
    "05_cold_start": {"cold_start_curve"},
    "06_diagnosis": {"metric_panel", "training_monitor", "diagnosis_report"},
    "07_bring_your_own": {"metric_panel"},
}

NOTEBOOK_NAMES = [source.stem for source in build.sources()]

_ESM_NAME = re.compile(r"^// ---- (\w+)\.js ----$", re.MULTILINE)
_MODULES_SCRIPT = re.compile(r'<script[^>]*id="recwidgets-modules"[^>]*>(.*?)</script>', re.DOTALL)


@dataclass
class ExecutedNotebook:
    """One executed notebook: the node with outputs and widget state, where it was written, and its runtime."""

    name: str
    notebook: nbformat.NotebookNode
    ipynb_path: Path
    html_path: Path
    html: str
    seconds: float


_RUNS: dict[str, ExecutedNotebook | BaseException] = {}


@functools.lru_cache(maxsize=1)
def _session_dir() -> Path:
    """Return a temporary folder for the kernelspec and the IPython profile, removed at process exit."""
    folder = Path(tempfile.mkdtemp(prefix="recwidgets-notebook-tests-"))
    atexit.register(shutil.rmtree, folder, ignore_errors=True)
    return folder


def _kernel_spec_dir() -> Path:
    """Write a kernelspec that starts this interpreter (the project venv); return its parent folder."""
    folder = _session_dir() / "kernels"
    spec = folder / KERNEL_NAME
    spec.mkdir(parents=True, exist_ok=True)
    (spec / "kernel.json").write_text(
        json.dumps(
            {
                "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
                "display_name": "Python 3 (recwidgets notebook tests)",
                "language": "python",
            }
        )
    )
    return folder


def kernel_env() -> dict[str, str]:
    """Return the kernel environment: one thread and the shared MovieLens folders, nothing downloaded."""
    env = dict(os.environ)
    env["OMP_NUM_THREADS"] = "1"
    env["MKL_NUM_THREADS"] = "1"
    env["RECWIDGETS_DATA_DIR"] = str(SHARED_DATASETS)
    # An empty cache folder makes a missing dataset fail instead of reading a stale copy.
    env["RECWIDGETS_CACHE"] = str(ARTIFACTS_DIR / "empty-cache")
    # A fresh IPython profile, so startup files and extensions from the user's home do not run.
    env["IPYTHONDIR"] = str(_session_dir() / "ipython")
    return env


def executed_notebook(name: str) -> ExecutedNotebook:
    """Execute ``notebooks/<name>.ipynb`` once per process and write it and its HTML to the artifacts folder.

    A failed run is cached too, so a second caller gets the same error without running the notebook again.
    """
    if name not in _RUNS:
        try:
            _RUNS[name] = _execute(name)
        except BaseException as error:  # noqa: BLE001 - re-raised below and for every later caller
            _RUNS[name] = error
    outcome = _RUNS[name]
    if isinstance(outcome, BaseException):
        raise outcome
    return outcome


def _execute(name: str) -> ExecutedNotebook:
    if not (SHARED_DATASETS / "ml-100k" / "u.data").exists():
        pytest.fail(f"ML-100K not found at {SHARED_DATASETS / 'ml-100k'}; the shared datasets folder must sit beside the clone.")
    notebook = nbformat.read(NOTEBOOKS_DIR / f"{name}.ipynb", as_version=4)
    work = ARTIFACTS_DIR / name
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)

    manager = KernelManager(kernel_name=KERNEL_NAME, kernel_spec_manager=KernelSpecManager(kernel_dirs=[str(_kernel_spec_dir())]))
    client = NotebookClient(
        notebook,
        km=manager,
        timeout=CELL_TIMEOUT_S,
        resources={"metadata": {"path": str(work)}},
    )
    ipynb_path = ARTIFACTS_DIR / f"{name}.ipynb"
    started = time.perf_counter()
    try:
        client.execute(env=kernel_env())
    except CellExecutionError:
        nbformat.write(notebook, ipynb_path)
        raise
    seconds = time.perf_counter() - started
    logger.info("executed %s in %.1f s", name, seconds)
    nbformat.write(notebook, ipynb_path)

    html = notebook_to_html(notebook, title=name)
    html_path = ARTIFACTS_DIR / f"{name}.html"
    html_path.write_text(html, encoding="utf-8")
    return ExecutedNotebook(name, notebook, ipynb_path, html_path, html, seconds)


def widget_states(notebook: nbformat.NotebookNode) -> dict:
    """Return the saved ``{model_id: entry}`` widget state of an executed notebook."""
    return notebook.metadata["widgets"][STATE_MIME]["state"]


class WidgetNames(dict):
    """``{esm source: widget file name}`` for every widget front end in js/.

    A lookup of ESM text that is not a current file (saved by an older checkout, for example)
    falls back to the ``// ---- <name>.js ----`` line that ``load_esm`` writes after the inlined
    runtime, and returns None without one.
    """

    def get(self, esm, default=None):
        if esm in self:
            return self[esm]
        match = _ESM_NAME.search(esm) if isinstance(esm, str) else None
        return match.group(1) if match else default


def widget_names() -> WidgetNames:
    """Return the :class:`WidgetNames` of the widget front ends in js/."""
    return WidgetNames({load_esm(path.stem): path.stem for path in js_dir().glob("*.js") if not path.stem.startswith("_")})


def view_model_ids(notebook: nbformat.NotebookNode) -> list[str]:
    """Return the model ids of every widget view in the outputs, in order."""
    ids = []
    for cell in notebook.cells:
        for output in cell.get("outputs", []):
            view = output.get("data", {}).get(VIEW_MIME)
            if view is not None:
                ids.append(view["model_id"])
    return ids


# ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", NOTEBOOK_NAMES)
def test_notebook_matches_source(name):
    source = build.SOURCE_DIR / f"{name}.py"

    committed = (NOTEBOOKS_DIR / f"{name}.ipynb").read_text(encoding="utf-8")

    assert committed == build.notebook_text(source), f"run python notebooks/build.py to rebuild {name}.ipynb"


def test_every_notebook_has_expected_widgets():
    assert set(NOTEBOOK_NAMES) <= set(EXPECTED_WIDGETS)


@pytest.mark.slow
@pytest.mark.parametrize("name", NOTEBOOK_NAMES)
def test_notebook_runs_cleanly(name):
    run = executed_notebook(name)

    code_cells = [cell for cell in run.notebook.cells if cell.cell_type == "code"]
    assert all(cell.execution_count is not None for cell in code_cells)
    errors = [output for cell in code_cells for output in cell.outputs if output.output_type == "error"]
    assert errors == []
    stderr = "".join(
        output.text for cell in code_cells for output in cell.outputs if output.output_type == "stream" and output.name == "stderr"
    )
    assert "Traceback" not in stderr


@pytest.mark.slow
def test_quickstart_extension_shows_widgets():
    run = executed_notebook("01_quickstart")
    cells = run.notebook.cells
    start = next(index for index, cell in enumerate(cells) if cell.source.strip() == "%load_ext recwidgets")

    # IPython prints this line, without raising, when the package has no load_ipython_extension.
    printed = "".join(output.get("text", "") for output in cells[start].outputs)
    assert "not an IPython extension" not in printed
    following = []
    for cell in cells[start + 1 :]:
        if cell.cell_type != "code":
            break
        following.append(cell)
    assert following
    for cell in following:
        results = [output for output in cell.outputs if output.output_type == "execute_result"]
        assert len(results) == 1
        assert VIEW_MIME in results[0].data, f"cell {cell.source!r} shows no widget"


@pytest.mark.slow
@pytest.mark.parametrize("name", NOTEBOOK_NAMES)
def test_notebook_saves_widget_state(name):
    run = executed_notebook(name)
    states = widget_states(run.notebook)
    names = widget_names()

    saved = {names.get(entry["state"].get("_esm")) for entry in states.values()}
    assert EXPECTED_WIDGETS[name] <= saved
    for entry in states.values():
        if names.get(entry["state"].get("_esm")) is not None:
            assert entry["model_module"] == "anywidget"
            assert entry["state"]["python_error"] == ""
    with_buffers = [entry for entry in states.values() if entry.get("buffers")]
    assert with_buffers, "no widget saved binary buffers"
    decoded = [base64.b64decode(buffer["data"], validate=True) for entry in with_buffers for buffer in entry["buffers"]]
    assert all(buffer["encoding"] == "base64" for entry in with_buffers for buffer in entry["buffers"])
    # Empty arrays (an empty selection, for example) give empty buffers; the rest carry data.
    assert any(len(data) > 0 for data in decoded)
    views = view_model_ids(run.notebook)
    assert views
    assert set(views) <= set(states)


@pytest.mark.slow
@pytest.mark.parametrize("name", NOTEBOOK_NAMES)
def test_notebook_html_is_offline(name):
    run = executed_notebook(name)
    states = widget_states(run.notebook)

    html = run.html
    assert 'id="recwidgets-modules"' in html
    assert "Content-Security-Policy" in html
    assert "<script src=" not in html
    assert "cdnjs.cloudflare.com" not in html
    assert "unpkg.com" not in html
    assert '"_esm"' not in html
    # Each distinct ESM is stored once, however many widgets use it.
    modules = json.loads(_MODULES_SCRIPT.search(html).group(1))
    distinct = {entry["state"]["_esm"] for entry in states.values() if "_esm" in entry["state"]}
    assert sorted(modules["esm"].values()) == sorted(distinct)
    assert run.html_path.stat().st_size < HTML_BUDGET_MB * 1e6
