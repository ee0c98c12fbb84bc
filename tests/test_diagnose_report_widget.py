"""DiagnosisReport widget: state, selection, data frame, fallback and the offline export."""

from __future__ import annotations

import json

import pytest
from ipywidgets.widgets.widget import _remove_buffers

from recwidgets.data.split import temporal
from recwidgets.diagnose import Diagnosis, Finding
from recwidgets.diagnose.faults import ConstantModel, careless_evaluate
from recwidgets.errors import ConfigError
from recwidgets.synthetic import synthetic_log
from recwidgets.widgets.diagnosis_report import DiagnosisReport

INJECTION = '<img src=x onerror="alert(1)">'


def sample_findings() -> Diagnosis:
    return Diagnosis(
        [
            Finding("bias.popularity", "info", "sasrec: lists 1.8x as popular", {"model": "sasrec", "arp_ratio": 1.8}),
            Finding(
                "protocol.ties",
                "error",
                f"{INJECTION}: ties favour the target",
                {"model": INJECTION, "ties": "optimistic"},
                fix="Break ties pessimistically.",
                view={"widget": "MetricPanel", "model": INJECTION},
            ),
            Finding(
                "leakage.global_timeline",
                "warning",
                "99% of test targets happen before the latest training event",
                {"fraction_before_latest_training_event": 0.9989, "n_targets": 943},
                fix="Use a temporal split.",
                reference="Ji et al., ACM TOIS 2023.",
                view={"widget": "MetricPanel"},
            ),
        ],
        skipped=[("embedding (ease)", "the model has no item_embeddings()")],
    )


def test_findings_sorted_and_keyed():
    report = DiagnosisReport(sample_findings())
    assert [item["severity"] for item in report.findings] == ["error", "warning", "info"]
    assert report.finding_keys() == [f"protocol.ties:{INJECTION}", "leakage.global_timeline", "bias.popularity:sasrec"]
    assert report.skipped == [["embedding (ease)", "the model has no item_embeddings()"]]


def test_state_is_json():
    report = DiagnosisReport(sample_findings())
    state, paths, _ = _remove_buffers(report.get_state())
    assert paths == []
    json.dumps(state["findings"])


def test_selection_sets_view():
    report = DiagnosisReport(sample_findings())
    report.selected_finding = "leakage.global_timeline"
    assert report.selected_view == {"widget": "MetricPanel"}
    assert report.selected().id == "leakage.global_timeline"
    report.selected_finding = ""
    assert report.selected_view == {}
    assert report.selected() is None


def test_unknown_selection_reported():
    report = DiagnosisReport(sample_findings())
    with pytest.raises(ConfigError, match="not a finding"):
        report.selected_finding = "nope"
    assert "not a finding" in report.python_error


def test_min_severity_validated():
    with pytest.raises(ConfigError):
        DiagnosisReport(sample_findings(), min_severity="fatal")


def test_findings_data_frame():
    frame = DiagnosisReport(sample_findings()).findings_data()
    assert list(frame["id"]) == ["protocol.ties", "leakage.global_timeline", "bias.popularity"]
    assert json.loads(frame.loc[1, "evidence"])["n_targets"] == 943
    assert frame.loc[0, "model"] == INJECTION


def test_fallback_respects_min_severity():
    report = DiagnosisReport(sample_findings(), min_severity="warning")
    bundle, _ = report._repr_mimebundle_()
    assert "leakage.global_timeline" in bundle["text/plain"]
    assert "bias.popularity" not in bundle["text/plain"]
    assert INJECTION not in bundle["text/html"]


def test_runs_diagnose_itself():
    split = temporal(synthetic_log(300, 150, seed=0))
    model = ConstantModel(split.log.n_items)
    result = careless_evaluate(model, split, ties="optimistic")
    report = DiagnosisReport(split=split, models={"constant": model}, results={"constant": result})
    ids = {item["id"] for item in report.findings}
    assert {"protocol.ties", "leakage.implausible_metrics"} <= ids
    assert report.findings[0]["severity"] == "error"


def test_both_inputs_rejected():
    with pytest.raises(ConfigError, match="not both"):
        DiagnosisReport(sample_findings(), split=object())


def test_non_findings_rejected():
    with pytest.raises(ConfigError, match="Finding"):
        DiagnosisReport([{"id": "x"}])


def test_export_writes_file(tmp_path):
    path = tmp_path / "diagnosis.html"
    size = DiagnosisReport(sample_findings()).to_html(path)
    text = path.read_text()
    assert size == len(text.encode())
    assert "leakage.global_timeline" in text
    assert "Break ties pessimistically." in text
