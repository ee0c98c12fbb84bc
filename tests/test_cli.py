"""The ``recwidgets report`` command: outputs on real data and errors on bad input."""

from __future__ import annotations

import json
import subprocess
import sys

import pandas as pd
import pytest

from recwidgets.cli import main

METRIC_NAMES = ("HR", "Precision", "Recall", "NDCG", "MRR", "MAP", "Coverage", "Gini", "Novelty", "ARP")


def run_cli(*args: str) -> int:
    return main(["report", *args])


def test_metrics_json_has_every_label(demo_report):
    payload = json.loads((demo_report / "metrics.json").read_text())

    assert set(payload) == {"protocol", "models"}
    assert set(payload["models"]) == {"sasrec", "popularity", "ease"}
    for name, metrics in payload["models"].items():
        for metric in METRIC_NAMES:
            for k in (5, 10, 20):
                label = f"{metric}@{k}"
                assert label in metrics, f"{label} missing for {name}"
                low, high = metrics[label]["ci"]
                if metric in ("Coverage", "Gini"):
                    # Catalog-level values get no bootstrap interval by default.
                    assert low is None
                    assert high is None
                    continue
                assert low <= high, f"{name} {label} has an inverted CI"
    assert payload["protocol"]["split"] == "leave-last-out"
    assert payload["protocol"]["ranking"] == "full"
    assert payload["protocol"]["exclude_seen"] is True
    assert payload["protocol"]["ties"] == "pessimistic"


def test_findings_json_rows(demo_report):
    rows = json.loads((demo_report / "findings.json").read_text())

    assert isinstance(rows, list)
    for row in rows:
        assert set(row) == {"id", "severity", "title", "evidence", "fix"}
    ids = {row["id"] for row in rows}
    assert "leakage.global_timeline" in ids


def test_report_html_is_self_contained(demo_report):
    html = (demo_report / "report.html").read_text(encoding="utf-8")

    assert "<script src=" not in html
    assert "cdn.jsdelivr" not in html
    assert "unpkg.com" not in html
    assert "Protocol" in html or "protocol" in html


def test_module_entry_point_prints_help():
    completed = subprocess.run(
        [sys.executable, "-m", "recwidgets", "report", "--help"], capture_output=True, text=True, timeout=120
    )

    assert completed.returncode == 0
    assert "--metrics-json" in completed.stdout


@pytest.fixture
def out(tmp_path):
    return str(tmp_path / "report.html")


def test_unknown_dataset_names_value(out, capsys):
    code = run_cli("--data", "ml-1b", "--model", "popularity", "--out", out)

    assert code == 2
    error = capsys.readouterr().err
    assert "ml-1b" in error
    assert "ml-100k" in error


def test_missing_column_names_mapping_flag(tmp_path, out, capsys):
    log = tmp_path / "log.csv"
    pd.DataFrame({"uid": [1, 1, 1], "sku": [1, 2, 3], "ts": [1, 2, 3]}).to_csv(log, index=False)

    code = run_cli("--data", str(log), "--model", "popularity", "--out", out)

    assert code == 2
    error = capsys.readouterr().err
    assert "user_id" in error
    assert "--user-col" in error


def test_non_numeric_timestamps_named(tmp_path, out, capsys):
    log = tmp_path / "log.csv"
    pd.DataFrame({"user_id": [1, 1, 1], "item_id": [1, 2, 3], "timestamp": ["soon", "later", "never"]}).to_csv(
        log, index=False
    )

    code = run_cli("--data", str(log), "--model", "popularity", "--out", out)

    assert code == 2
    assert "soon" in capsys.readouterr().err


def test_empty_file_rejected(tmp_path, out, capsys):
    log = tmp_path / "empty.csv"
    log.write_text("")

    code = run_cli("--data", str(log), "--model", "popularity", "--out", out)

    assert code == 2
    assert "empty" in capsys.readouterr().err


def test_single_interaction_user_under_leave_last_out(tmp_path, out, capsys):
    log = tmp_path / "log.csv"
    pd.DataFrame(
        {"user_id": [1, 1, 1, 2], "item_id": [1, 2, 3, 1], "timestamp": [1, 2, 3, 4]}
    ).to_csv(log, index=False)

    code = run_cli("--data", str(log), "--model", "popularity", "--k", "2", "--out", out)

    assert code == 2
    error = capsys.readouterr().err
    assert "fewer than 3" in error
    assert "--short-users drop" in error
    assert "user 2 " in error


def test_short_users_drop_flag_runs(tmp_path, out):
    log = tmp_path / "log.csv"
    pd.DataFrame(
        {"user_id": [1, 1, 1, 1, 2], "item_id": [1, 2, 3, 4, 1], "timestamp": [1, 2, 3, 4, 5]}
    ).to_csv(log, index=False)

    code = run_cli(
        "--data", str(log), "--model", "popularity", "--k", "2", "--bootstrap", "0", "--short-users", "drop", "--out", out
    )

    assert code == 0


def test_output_folder_as_file_rejected(ml100k_dir, tmp_path, capsys):
    code = run_cli("--data", str(ml100k_dir), "--model", "popularity", "--out", str(tmp_path))

    assert code == 2
    assert "is a folder" in capsys.readouterr().err


@pytest.mark.parametrize("cutoff", ["abc", "1.5", "-0.2"])
def test_invalid_cutoff_rejected(ml100k_dir, out, cutoff, capsys):
    with pytest.raises(SystemExit) as exit_info:
        run_cli("--data", str(ml100k_dir), "--split", "temporal", "--cutoff", cutoff, "--out", out)

    assert exit_info.value.code == 2
    assert cutoff in capsys.readouterr().err


@pytest.mark.parametrize("k", ["0", "-5"])
def test_non_positive_k_rejected(ml100k_dir, out, k, capsys):
    code = run_cli("--data", str(ml100k_dir), "--model", "popularity", "--k", k, "--out", out)

    assert code == 2
    assert k in capsys.readouterr().err


def test_k_above_catalog_rejected(ml100k_dir, out, capsys):
    code = run_cli("--data", str(ml100k_dir), "--model", "popularity", "--k", "5000", "--bootstrap", "0", "--out", out)

    assert code == 2
    error = capsys.readouterr().err
    assert "5000" in error
    assert "1682" in error


def test_missing_output_folder_rejected_before_training(ml100k_dir, tmp_path, capsys):
    target = tmp_path / "missing" / "report.html"

    code = run_cli("--data", str(ml100k_dir), "--model", "popularity", "--out", str(target))

    assert code == 2
    assert "missing" in capsys.readouterr().err


def write_small_log(path):
    pd.DataFrame(
        {"user_id": [1, 1, 1, 1, 2, 2, 2, 2], "item_id": [1, 2, 3, 4, 2, 3, 4, 5], "timestamp": range(8)}
    ).to_csv(path, index=False)


def test_report_over_its_input_rejected(tmp_path, capsys):
    log = tmp_path / "log.csv"
    write_small_log(log)
    before = log.read_bytes()

    code = run_cli("--data", str(log), "--model", "popularity", "--out", str(log))

    assert code == 2
    assert "--out" in capsys.readouterr().err
    assert log.read_bytes() == before


def test_two_outputs_on_one_path_rejected(tmp_path, out, capsys):
    log = tmp_path / "log.csv"
    write_small_log(log)

    code = run_cli("--data", str(log), "--model", "popularity", "--out", out, "--metrics-json", out)

    assert code == 2
    error = capsys.readouterr().err
    assert "--metrics-json" in error
    assert "same file as --out" in error


def test_cutoff_without_temporal_rejected(ml100k_dir, out, capsys):
    code = run_cli("--data", str(ml100k_dir), "--model", "popularity", "--cutoff", "0.5", "--out", out)

    assert code == 2
    assert "--split temporal" in capsys.readouterr().err


def test_empty_separator_rejected(tmp_path, out, capsys):
    log = tmp_path / "log.csv"
    write_small_log(log)

    code = run_cli("--data", str(log), "--model", "popularity", "--sep", "", "--out", out)

    assert code == 2
    assert "sep=''" in capsys.readouterr().err


def test_failed_write_keeps_trained_model(tmp_path, out, capsys, monkeypatch):
    import tempfile

    import numpy as np

    # Training validates NDCG@10, so the catalog needs more than 10 items.
    rng = np.random.default_rng(0)
    log = tmp_path / "log.csv"
    pd.DataFrame(
        {"user_id": np.repeat(np.arange(40), 12), "item_id": rng.integers(1, 30, 480), "timestamp": np.arange(480)}
    ).to_csv(log, index=False)
    full = tmp_path / "full.json"
    real_write_text = type(full).write_text

    def disk_full(self, *args, **kwargs):
        if self == full:
            raise OSError(28, "No space left on device")
        return real_write_text(self, *args, **kwargs)

    monkeypatch.setattr(type(full), "write_text", disk_full)
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))

    code = run_cli(
        "--data", str(log), "--model", "sasrec", "--epochs", "1", "--bootstrap", "0",
        "--no-progress", "--out", out, "--findings-json", str(full),
    )

    assert code == 2
    error = capsys.readouterr().err
    assert "No space left on device" in error
    assert f"The report is at {out}" in error
    saved = list(tmp_path.glob("recwidgets-sasrec-*.pt"))
    assert len(saved) == 1
    assert str(saved[0]) in error
