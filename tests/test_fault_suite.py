"""The planted-fault suite: every detector catches its fault, and clean setups raise nothing."""

from __future__ import annotations

import pytest

from recwidgets.diagnose.faults import FAULTS
from recwidgets.diagnose.suite import SuiteReport, main, run_suite

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def report(ml100k_dir) -> SuiteReport:
    return run_suite(ml100k=ml100k_dir, seed=0)


def test_every_fault_caught(report):
    missed = [(row.setup, row.expected) for row in report.faults if not row.hit]
    assert missed == []
    assert report.recall == 1.0
    assert len(report.faults) == len(FAULTS)


def test_clean_setups_raise_nothing(report):
    assert [row.setup for row in report.clean] == ["synthetic, temporal split", "ML-100K, temporal split"]
    assert report.false_alarms == []


def test_faults_raise_only_known_side_effects(report):
    assert report.unexpected == []


def test_leave_last_out_reference_leaks(report):
    (reference,) = [row for row in report.rows if row.kind == "reference"]
    assert reference.fired == ["leakage.global_timeline"]
    (timeline,) = reference.evidence["leakage.global_timeline"]
    assert timeline["fraction_before_latest_training_event"] > 0.9


def test_markdown_table(report):
    text = report.markdown()
    assert "Recall: 100%" in text
    assert text.count("| HIT |") + text.count(" HIT |") >= len(FAULTS)
    assert "MISS" not in text.split("## Evidence")[0].split("| setup |", 1)[1]


def test_command_line_writes_file(tmp_path, capsys):
    out = tmp_path / "suite.md"
    code = main(["--no-ml100k", "--fault", "duplicated events", "--fault", "sampled negatives", "--out", str(out)])
    assert code == 0
    assert "| duplicated events | fault |" in out.read_text()
    assert "Recall: 100% (2 of 2 faults)" in capsys.readouterr().out
