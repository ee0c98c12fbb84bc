"""The IPython extension: bare expressions of recwidgets objects display as widgets in a real shell.

A real ``InteractiveShell`` runs each expression as a cell. The display hook's format data, the
MIME bundle that a kernel would send to the front end, is captured and checked.
"""

from __future__ import annotations

import html
import re

import pytest
import torch
from IPython.core.interactiveshell import InteractiveShell
from ipywidgets.widgets.widget import _instances as live_widgets

import recwidgets as rw
import recwidgets.ipython as extension
from recwidgets.diagnose import Diagnosis, Finding
from recwidgets.synthetic import synthetic_log
from recwidgets.widgets import DiagnosisReport, MetricPanel, TrainingMonitor

VIEW_MIME = "application/vnd.jupyter.widget-view+json"


@pytest.fixture(scope="module")
def split():
    log = synthetic_log(120, 40, seed=0)
    return rw.leave_last_out(log, short_users="drop")


@pytest.fixture(scope="module")
def sasrec(split):
    return rw.SASRec(hidden=8, layers=1, heads=1, max_len=10, epochs=2, seed=0).fit(split, progress=False)


@pytest.fixture(scope="module")
def popularity_result(split):
    return rw.evaluate(rw.Popularity().fit(split), split, n_bootstrap=0)


@pytest.fixture
def shell():
    """A real IPython shell whose display hook records each cell's format data instead of printing it."""
    ip = InteractiveShell.instance()
    outputs = []
    original = ip.displayhook.write_format_data
    ip.displayhook.write_format_data = lambda format_dict, md_dict=None: outputs.append(format_dict)
    ip.recorded = outputs
    yield ip
    extension.unload_ipython_extension(ip)
    ip.displayhook.write_format_data = original
    for name in [name for name in ip.user_ns if name.startswith("rw_")]:
        del ip.user_ns[name]


def show(ip, value):
    """Run ``value`` as a bare expression in a cell and return the recorded bundle."""
    ip.user_ns["rw_value"] = value
    before = len(ip.recorded)
    result = ip.run_cell("rw_value")
    assert result.success
    assert len(ip.recorded) == before + 1
    return ip.recorded[-1]


def widget_of(bundle):
    # ipywidgets 8 keeps every open widget by model id in this (private) registry.
    return live_widgets[bundle[VIEW_MIME]["model_id"]]


def test_evaluation_result_shows_metric_panel(shell, popularity_result):
    extension.load_ipython_extension(shell)

    bundle = show(shell, popularity_result)

    panel = widget_of(bundle)
    assert isinstance(panel, MetricPanel)
    assert panel.model_names == ["popularity"]
    assert "text/html" in bundle


def test_fitted_sasrec_shows_training_monitor(shell, sasrec):
    extension.load_ipython_extension(shell)

    bundle = show(shell, sasrec)

    monitor = widget_of(bundle)
    assert isinstance(monitor, TrainingMonitor)
    assert monitor.history.shape[0] == len(sasrec.history)
    assert monitor.status == "finished"
    assert monitor.best_epoch == sasrec.best_epoch


def test_unfitted_sasrec_keeps_plain_repr(shell):
    extension.load_ipython_extension(shell)
    model = rw.SASRec(epochs=1)

    bundle = show(shell, model)

    assert VIEW_MIME not in bundle
    assert bundle["text/plain"] == repr(model)


def test_sasrec_without_history_shows_summary(shell, sasrec, tmp_path):
    extension.load_ipython_extension(shell)
    sasrec.save(tmp_path / "model.pt")
    loaded = rw.SASRec.load(tmp_path / "model.pt", device="cpu")
    loaded.history = loaded.history.iloc[0:0]

    bundle = show(shell, loaded)

    assert VIEW_MIME not in bundle
    assert "SASRec (no training history)" in bundle["text/html"]
    assert f"<td style='text-align:left'>{sasrec.n_items}</td>" in bundle["text/html"]


def test_baselines_show_summaries(shell, split):
    extension.load_ipython_extension(shell)
    popularity = rw.Popularity().fit(split)
    ease = rw.EASE(regularization=10.0).fit(split)

    popularity_bundle = show(shell, popularity)
    ease_bundle = show(shell, ease)

    assert "Popularity baseline" in popularity_bundle["text/html"]
    assert re.search(rf"training interactions +{len(split.train)}\n", popularity_bundle["text/plain"])
    assert re.search(r"regularization \(lambda\) +10\n", ease_bundle["text/plain"])
    assert VIEW_MIME not in popularity_bundle
    assert VIEW_MIME not in ease_bundle


def test_unfitted_baseline_keeps_plain_repr(shell):
    extension.load_ipython_extension(shell)

    bundle = show(shell, rw.EASE())

    assert set(bundle) == {"text/plain"}


def test_torch_module_summary_escapes_name(shell):
    extension.load_ipython_extension(shell)
    name = "<b>gru</b>"
    model = rw.TorchModuleRecommender(torch.nn.Linear(4, 5), n_items=4, name=name)

    bundle = show(shell, model)

    assert html.escape(name) in bundle["text/html"]
    assert name not in bundle["text/html"]
    assert re.search(r"parameters +25\n", bundle["text/plain"])


def test_diagnosis_shows_report(shell):
    extension.load_ipython_extension(shell)
    finding = Finding(id="protocol.ties", severity="warning", title="ties are optimistic", fix="use pessimistic ties")

    diagnosis_bundle = show(shell, Diagnosis([finding]))
    list_bundle = show(shell, [finding])

    for bundle in (diagnosis_bundle, list_bundle):
        report = widget_of(bundle)
        assert isinstance(report, DiagnosisReport)
        assert [item["id"] for item in report.findings] == ["protocol.ties"]


def test_other_lists_keep_plain_repr(shell):
    extension.load_ipython_extension(shell)

    assert show(shell, [1, 2]) == {"text/plain": "[1, 2]"}
    assert show(shell, []) == {"text/plain": "[]"}


def test_unload_restores_previous_printers(shell, popularity_result, split):
    formatter = shell.display_formatter.mimebundle_formatter
    earlier = lambda model: {"text/plain": "earlier printer"}  # noqa: E731 - a stand-in printer
    formatter.for_type(rw.EASE, earlier)
    ease = rw.EASE(regularization=10.0).fit(split)
    extension.load_ipython_extension(shell)

    extension.unload_ipython_extension(shell)

    assert VIEW_MIME not in show(shell, popularity_result)
    assert show(shell, ease) == {"text/plain": "earlier printer"}
    assert formatter.type_printers.get(rw.EASE) is earlier
    assert rw.evaluation.EvaluationResult not in formatter.type_printers
    formatter.pop(rw.EASE)


def test_load_twice_keeps_one_registration(shell, popularity_result):
    extension.load_ipython_extension(shell)
    extension.load_ipython_extension(shell)

    extension.unload_ipython_extension(shell)

    assert VIEW_MIME not in show(shell, popularity_result)


def test_load_ext_magic_finds_package(shell, popularity_result):
    shell.run_line_magic("load_ext", "recwidgets")

    bundle = show(shell, popularity_result)

    assert isinstance(widget_of(bundle), MetricPanel)
    shell.run_line_magic("unload_ext", "recwidgets")
    assert VIEW_MIME not in show(shell, popularity_result)
