"""Shared fixtures: one torch thread, seeded randomness and the real MovieLens folders."""

from __future__ import annotations

import os
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np
import pytest
import torch

torch.set_num_threads(1)

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATASETS = ROOT.parent / "shared" / "datasets"


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)
    np.random.seed(0)


@pytest.fixture(scope="session")
def ml100k_dir() -> Path:
    """The GroupLens ML-100K original folder beside the clone."""
    path = SHARED_DATASETS / "ml-100k"
    if not (path / "u.data").exists():
        pytest.fail(f"ML-100K not found at {path}; the shared datasets folder must sit beside the clone.")
    return path


@pytest.fixture(scope="session")
def ml_latest_small_dir() -> Path:
    """The GroupLens ml-latest-small folder beside the clone."""
    path = SHARED_DATASETS / "ml-latest-small"
    if not (path / "ratings.csv").exists():
        pytest.fail(f"ml-latest-small not found at {path}; the shared datasets folder must sit beside the clone.")
    return path


@pytest.fixture(scope="session")
def demo_report(tmp_path_factory):
    """Run ``recwidgets report`` once on ML-100K with all models and 1 SASRec epoch.

    Returns the output folder with ``report.html``, ``metrics.json`` and ``findings.json``.
    One epoch keeps the fixture cheap; the content checks do not depend on model quality.
    """
    from recwidgets.cli import main

    out = tmp_path_factory.mktemp("report")
    code = main(
        [
            "report",
            "--data", str(SHARED_DATASETS / "ml-100k"),
            "--model", "all",
            "--epochs", "1",
            "--bootstrap", "100",
            "--no-progress",
            "--out", str(out / "report.html"),
            "--metrics-json", str(out / "metrics.json"),
            "--findings-json", str(out / "findings.json"),
        ]
    )
    assert code == 0
    return out
