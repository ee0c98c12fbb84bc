"""Leakage checks: the global timeline on ML-100K, planted overlaps, and the target in its history."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pandas as pd
import pytest

from recwidgets.data.loaders import load_ml100k
from recwidgets.data.split import EvalSet, leave_last_out, temporal
from recwidgets.diagnose.faults import PeekingModel
from recwidgets.diagnose.leakage_checks import (
    check_global_timeline,
    check_implausible_metrics,
    check_target_in_history,
    check_train_test_overlap,
)
from recwidgets.errors import ProtocolWarning
from recwidgets.evaluation import evaluate
from recwidgets.models import Popularity
from recwidgets.synthetic import synthetic_log


@pytest.fixture(scope="module")
def ml100k(ml100k_dir):
    return load_ml100k(ml100k_dir)


@pytest.fixture(scope="module")
def synthetic_split():
    return temporal(synthetic_log(400, 200, seed=0))


def test_leave_last_out_leaks_timeline(ml100k):
    findings = check_global_timeline(leave_last_out(ml100k))
    assert [finding.id for finding in findings] == ["leakage.global_timeline"]
    assert findings[0].severity == "warning"
    fraction = findings[0].evidence["fraction_before_latest_training_event"]
    assert fraction > 0.9
    assert findings[0].evidence["n_targets"] == 943
    assert "Ji" in findings[0].reference


def test_temporal_split_has_no_timeline_leak(ml100k):
    assert check_global_timeline(temporal(ml100k)) == []


def test_shifted_target_counted(synthetic_split):
    split = synthetic_split
    latest = int(split.train["timestamp"].max())
    user, item = int(split.test.users[0]), int(split.test.targets[0][0])
    frame = split.log.interactions.copy()
    frame.loc[(frame["user"] == user) & (frame["item"] == item), "timestamp"] = latest - 10
    shifted = replace(split, log=replace(split.log, interactions=frame))
    findings = check_global_timeline(shifted)
    assert findings[0].evidence["n_targets_before"] == 1
    # One target of a few hundred is below the 1% tolerance: reported, but only as info.
    assert findings[0].severity == "info"


def test_copied_pairs_overlap(synthetic_split):
    split = synthetic_split
    frame = split.log.interactions
    first_users = split.test.users[:40]
    keys = set(zip(first_users.tolist(), [int(target[0]) for target in split.test.targets[:40]]))
    copied = frame[[pair in keys for pair in zip(frame["user"], frame["item"])]]
    train = pd.concat([split.train, copied]).sort_values(["user", "timestamp"], kind="stable")
    findings = check_train_test_overlap(replace(split, train=train))
    assert findings[0].id == "leakage.train_test_overlap"
    assert findings[0].severity == "warning"
    assert findings[0].evidence["n_overlapping"] == 40
    assert findings[0].evidence["exact_event_fraction"] == pytest.approx(40 / len(split.test), abs=1e-3)


def test_clean_split_has_no_overlap(synthetic_split):
    assert check_train_test_overlap(synthetic_split) == []


def test_target_appended_to_history(synthetic_split):
    split = synthetic_split
    histories = [np.concatenate([history, target]) for history, target in zip(split.test.histories, split.test.targets)]
    leaky = replace(split, test=EvalSet(split.test.users, histories, split.test.targets))
    findings = check_target_in_history(leaky)
    assert findings[0].severity == "error"
    assert findings[0].evidence["last_item_is_target_fraction"] == 1.0
    assert check_target_in_history(split) == []


def test_repeat_heavy_log_not_flagged():
    # Every user repeats each item right away, so a target equal to the last item is normal.
    rows = []
    for user in range(1, 41):
        for step in range(6):
            rows.append((user, 1 + (user + step // 2) % 7, 1000 * step + user))
    from recwidgets.data.log import InteractionLog

    log = InteractionLog.from_frame(pd.DataFrame(rows, columns=["user", "item", "timestamp"]))
    findings = check_target_in_history(leave_last_out(log))
    assert all(finding.severity == "info" for finding in findings)


def test_implausible_metrics_flag_peeking(synthetic_split):
    split = synthetic_split
    popularity = Popularity().fit(split)
    honest = evaluate(popularity, split, n_bootstrap=0)
    assert check_implausible_metrics({"popularity": honest}, split) == []

    peeking = evaluate(PeekingModel(popularity, split), split, n_bootstrap=0)
    findings = check_implausible_metrics({"peeking": peeking}, split)
    assert [finding.id for finding in findings] == ["leakage.implausible_metrics"]
    assert findings[0].evidence["NDCG@10"] > 0.95


def test_sampled_results_not_judged(synthetic_split):
    split = synthetic_split
    popularity = Popularity().fit(split)
    with pytest.warns(ProtocolWarning):
        sampled = evaluate(PeekingModel(popularity, split), split, n_bootstrap=0, sampled=50)
    assert check_implausible_metrics({"peeking": sampled}, split) == []
