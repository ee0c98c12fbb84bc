"""The diagnose entry point: inputs, skipping, output formats, and the report's call."""

from __future__ import annotations

import json
import sys

import pytest

from recwidgets.data.loaders import load_ml100k
from recwidgets.data.split import leave_last_out, temporal
from recwidgets.diagnose import CATALOG, Diagnosis, Finding, diagnose
from recwidgets.diagnose.faults import clean_setup
from recwidgets.errors import ConfigError
from recwidgets.synthetic import synthetic_log


@pytest.fixture(scope="module")
def clean():
    log = synthetic_log(400, 200, seed=0)
    return clean_setup(log, temporal(log), seed=0, epochs=6)


def test_report_call_on_clean_setup(clean):
    # The report CLI calls diagnose(split=..., models=..., results=...) exactly like this.
    findings = diagnose(split=clean.split, models=clean.models, results=clean.results)
    assert isinstance(findings, Diagnosis)
    assert all(isinstance(finding, Finding) for finding in findings)
    assert findings.serious == [], repr(findings)


def test_findings_sorted_by_severity():
    diagnosis = Diagnosis(
        [
            Finding("data.duplicates", "info", "a"),
            Finding("data.unordered", "error", "b"),
            Finding("data.timestamp_ties", "warning", "c"),
        ]
    )
    assert [finding.severity for finding in diagnosis] == ["error", "warning", "info"]
    assert diagnosis.ids("warning") == {"data.unordered", "data.timestamp_ties"}


def test_json_and_frame(clean):
    findings = diagnose(split=clean.split, models=clean.models, results=clean.results)
    payload = json.loads(findings.to_json())
    assert set(payload) == {"findings", "skipped", "measurements"}
    measured = {entry["id"] for entry in payload["measurements"]}
    assert {"leakage.global_timeline", "bias.popularity", "embedding.collapse", "fit.underfitting"} <= measured
    frame = findings.frame()
    assert list(frame.columns) == ["id", "severity", "title", "model", "widget", "fix", "reference"]
    assert len(frame) == len(findings)


def test_skips_are_recorded(clean):
    findings = diagnose(split=clean.split, models=clean.models, results=clean.results)
    skipped = dict(findings.skipped)
    assert "fit.history (ease)" in skipped
    assert "embedding (popularity)" in skipped


def test_nothing_given_runs_nothing():
    findings = diagnose()
    assert list(findings) == []
    assert ("data", "no log or split given") in findings.skipped


def test_check_groups_select(clean):
    findings = diagnose(split=clean.split, models=clean.models, results=clean.results, checks=["data"])
    assert {entry["id"].split(".")[0] for entry in findings.measurements} == {"data"}


def test_unknown_group_raises():
    with pytest.raises(ConfigError, match="unknown check group"):
        diagnose(checks=["nope"])


def test_broken_result_does_not_hide_others(clean):
    findings = diagnose(split=clean.split, models={}, results={"bad": object()})
    assert any("failed" in reason for _, reason in findings.skipped)
    assert any(entry["id"] == "leakage.global_timeline" for entry in findings.measurements)


def test_missing_attention_module_skipped(clean, monkeypatch):
    monkeypatch.setitem(sys.modules, "recwidgets.diagnose.attention_checks", None)
    findings = diagnose(split=clean.split, models={"sasrec": clean.models["sasrec"]}, checks=["attention"])
    assert findings.skipped[0][0] == "attention"


def test_models_as_list(clean):
    findings = diagnose(split=clean.split, models=[clean.models["sasrec"]], checks=["embedding"])
    assert {entry["model"] for entry in findings.measurements} == {"sasrec"}


def test_catalog_covers_emitted_ids(clean):
    findings = diagnose(split=clean.split, models=clean.models, results=clean.results)
    for finding in findings:
        assert finding.id in CATALOG or finding.id.startswith("attention.")
        assert finding.view.get("widget")


def test_ml100k_leave_last_out_leaks(ml100k_dir):
    log = load_ml100k(ml100k_dir)
    leaky = diagnose(split=leave_last_out(log))
    timeline = [finding for finding in leaky if finding.id == "leakage.global_timeline"]
    assert timeline and timeline[0].severity == "warning"
    assert timeline[0].evidence["fraction_before_latest_training_event"] > 0.9

    honest = diagnose(split=temporal(log))
    assert "leakage.global_timeline" not in honest.ids("info")
    assert honest.serious == []


def test_catalog_lists_required_ids():
    required = {
        "fit.overfitting", "fit.underfitting", "fit.divergence",
        "leakage.global_timeline", "leakage.train_test_overlap", "leakage.target_in_history",
        "leakage.implausible_metrics", "protocol.sampled_metrics", "protocol.seen_items", "protocol.ties",
        "protocol.empty_test_users", "bias.popularity", "coldstart.users", "coldstart.items",
        "embedding.collapse", "embedding.norm_popularity", "embedding.padding_row", "attention.causal",
        "data.duplicates", "data.timestamp_ties", "data.unordered", "data.single_interaction",
    }  # fmt: skip
    assert required <= set(CATALOG)
    for entry in CATALOG.values():
        assert entry.meaning.endswith(".")
        assert entry.widget
