"""Data checks on hand-made logs and on ML-100K."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from recwidgets.data.loaders import load_ml100k
from recwidgets.data.log import InteractionLog
from recwidgets.diagnose.data_checks import (
    check_data,
    check_duplicates,
    check_single_interaction,
    check_timestamp_ties,
    check_unordered,
    timestamp_resolution,
)


def _log(rows) -> InteractionLog:
    return InteractionLog.from_frame(pd.DataFrame(rows, columns=["user", "item", "timestamp"]))


def _ids(findings, severity=None):
    return [finding.id for finding in findings if severity is None or finding.severity == severity]


@pytest.fixture(scope="module")
def ml100k(ml100k_dir):
    return load_ml100k(ml100k_dir)


def test_duplicates_counted():
    log = _log([(1, 10, 100), (1, 10, 100), (1, 11, 200), (2, 10, 100)])
    findings = check_duplicates(log)
    assert _ids(findings, "warning") == ["data.duplicates"]
    assert findings[0].evidence["n_duplicates"] == 1
    assert findings[0].evidence["duplicate_fraction"] == 0.25


def test_repeat_at_other_time_is_no_duplicate():
    log = _log([(1, 10, 100), (1, 10, 300), (1, 11, 200)])
    assert check_duplicates(log) == []


def test_ties_hand_count():
    # User 1: 100, 100, 200 -> one tie in two pairs; user 2: 50, 50 -> one tie in one pair.
    log = _log([(1, 1, 100), (1, 2, 100), (1, 3, 200), (2, 1, 50), (2, 2, 50)])
    findings = check_timestamp_ties(log)
    assert findings[0].evidence["tie_fraction"] == pytest.approx(2 / 3, abs=1e-4)
    assert findings[0].severity == "info"


def test_day_resolution_ties_warn():
    day = 86_400
    rows = [(user, item, day * (user + item // 3)) for user in range(1, 6) for item in range(1, 10)]
    findings = check_timestamp_ties(_log(rows))
    assert findings[0].severity == "warning"
    assert findings[0].evidence["resolution"] == "day"


def test_resolution_detected():
    assert timestamp_resolution(np.array([86_400, 172_800])) == (86_400, "day")
    assert timestamp_resolution(np.array([3_600, 7_200, 86_400])) == (3_600, "hour")
    assert timestamp_resolution(np.array([60, 61])) == (1, "second")


def test_ml100k_ties_are_info(ml100k):
    findings = check_timestamp_ties(ml100k)
    assert _ids(findings) == ["data.timestamp_ties"]
    assert findings[0].severity == "info"
    assert findings[0].evidence["tie_fraction"] == pytest.approx(0.5104, abs=1e-3)


def test_unordered_rows_found():
    train = pd.DataFrame({"user": [1, 1, 1, 2, 2], "item": [1, 2, 3, 4, 5], "timestamp": [10, 30, 20, 5, 6]})
    findings = check_unordered(train)
    assert _ids(findings, "warning") == ["data.unordered"]
    assert findings[0].evidence["n_decreasing_steps"] == 1
    assert findings[0].evidence["example_user"] == 1


def test_interleaved_users_still_checked():
    train = pd.DataFrame({"user": [1, 2, 1, 2], "item": [1, 2, 3, 4], "timestamp": [10, 50, 20, 40]})
    findings = check_unordered(train)
    assert findings[0].evidence["n_users_unordered"] == 1


def test_single_interaction_share():
    rows = [(1, 1, 1), (1, 2, 2), (2, 1, 3), (3, 2, 4), (3, 1, 5)]
    findings = check_single_interaction(_log(rows))
    assert findings[0].severity == "warning"
    assert findings[0].evidence["n_single_users"] == 1


def test_ml100k_clean_at_warning(ml100k):
    findings = check_data(ml100k)
    assert [finding.id for finding in findings if finding.at_least_warning] == []
