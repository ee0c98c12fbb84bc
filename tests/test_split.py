"""Leave-last-out and temporal splits: targets, histories, short users and protocol cards."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from recwidgets.data.loaders import load_ml100k
from recwidgets.data.log import InteractionLog
from recwidgets.data.split import leave_last_out, split, temporal
from recwidgets.errors import ConfigError, DataError


@pytest.fixture(scope="module")
def ml100k(ml100k_dir):
    return load_ml100k(ml100k_dir)


def make_log(rows):
    """Build a log from (user, item, timestamp) tuples with raw ids."""
    return InteractionLog.from_frame(pd.DataFrame(rows, columns=["user", "item", "timestamp"]), name="toy")


def raw_items(log, internal):
    return [log.item_ids[i] for i in internal]


def user_events(log):
    """Return {internal user: (items, timestamps)} in log order."""
    frame = log.interactions
    return {
        int(user): (group["item"].to_numpy(), group["timestamp"].to_numpy())
        for user, group in frame.groupby("user", sort=True)
    }


# ---------------------------------------------------------------------------------------------
# Leave-last-out


def test_leave_last_out_toy():
    log = make_log([("a", 1, 10), ("a", 2, 20), ("a", 3, 30), ("a", 4, 40), ("b", 2, 5), ("b", 4, 6), ("b", 1, 7)])
    result = leave_last_out(log)

    assert list(result.test.users) == [1, 2]
    assert raw_items(log, result.test.targets[0]) == [4]
    assert raw_items(log, result.test.histories[0]) == [1, 2, 3]
    assert raw_items(log, result.validation.targets[0]) == [3]
    assert raw_items(log, result.validation.histories[0]) == [1, 2]
    assert raw_items(log, result.test.targets[1]) == [1]
    assert raw_items(log, result.validation.histories[1]) == [2]
    assert raw_items(log, result.train_sequences()[1]) == [1, 2]
    assert raw_items(log, result.train_sequences()[2]) == [2]
    assert len(result.train) == 3


def test_leave_last_out_ml100k(ml100k):
    result = leave_last_out(ml100k)
    sequences = ml100k.sequences()

    assert len(result.train) == 100_000 - 2 * 943
    assert len(result.test) == 943
    for position, user in enumerate(result.test.users):
        sequence = sequences[user]
        np.testing.assert_array_equal(result.test.targets[position], sequence[-1:])
        np.testing.assert_array_equal(result.test.histories[position], sequence[:-1])
        np.testing.assert_array_equal(result.validation.targets[position], sequence[-2:-1])
        np.testing.assert_array_equal(result.validation.histories[position], sequence[:-2])
    train_sequences = result.train_sequences()
    np.testing.assert_array_equal(train_sequences[1], sequences[1][:-2])


def test_leave_last_out_card(ml100k):
    card = leave_last_out(ml100k).card
    assert card.split == "leave-last-out"
    assert card.dataset == "ml-100k"
    assert card.n_users == 943
    assert card.n_items == 1_682
    assert card.n_interactions == 100_000
    assert card.n_train_interactions == 100_000 - 2 * 943
    assert card.n_test_users == 943
    assert card.users_without_test == 0
    json.dumps(card.to_dict())


def test_leave_last_out_single_interaction_raises():
    log = make_log([("a", 1, 1), ("a", 2, 2), ("a", 3, 3), ("b", 1, 1)])
    with pytest.raises(DataError) as caught:
        leave_last_out(log)
    message = str(caught.value)
    assert "1 user(s) have fewer than 3 interactions" in message
    assert "kcore=3" in message
    assert "short_users='drop'" in message
    assert "short_users='train'" in message


def test_leave_last_out_short_users_train():
    log = make_log([("a", 1, 1), ("a", 2, 2), ("a", 3, 3), ("b", 1, 1), ("c", 2, 1), ("c", 3, 2)])
    result = leave_last_out(log, short_users="train")

    assert list(result.test.users) == [1, 2, 3]
    assert list(result.test.has_target()) == [True, False, False]
    assert result.card.users_without_test == 2
    assert result.card.n_test_users == 1
    assert result.card.short_users == "train"
    # Short users keep every event for training.
    assert raw_items(log, result.train_sequences()[2]) == [1]
    assert raw_items(log, result.train_sequences()[3]) == [2, 3]
    assert len(result.train) == 1 + 1 + 2
    assert ("Users without a test item (left out of means)", "2") in result.card.rows()


def test_leave_last_out_short_users_drop():
    log = make_log([("a", 1, 1), ("a", 2, 2), ("a", 3, 3), ("b", 1, 1)])
    result = leave_last_out(log, short_users="drop")
    assert list(result.test.users) == [1]
    assert result.card.users_dropped == 1
    assert len(result.train) == 1
    assert len(result.train_sequences()[2]) == 0


def test_leave_last_out_invalid_policy():
    log = make_log([("a", 1, 1), ("a", 2, 2), ("a", 3, 3)])
    with pytest.raises(ConfigError, match="short_users='skip'"):
        leave_last_out(log, short_users="skip")


# ---------------------------------------------------------------------------------------------
# Tie-break order


def test_equal_timestamps_keep_file_order():
    rows = [("a", 5, 10), ("a", 3, 10), ("a", 4, 10), ("a", 9, 1)]
    log = make_log(rows)
    assert raw_items(log, log.sequences()[1]) == [9, 5, 3, 4]
    result = leave_last_out(log)
    assert raw_items(log, result.test.targets[0]) == [4]
    assert raw_items(log, result.validation.targets[0]) == [3]


def test_equal_timestamps_reversed_file_order():
    rows = [("a", 4, 10), ("a", 3, 10), ("a", 5, 10), ("a", 9, 1)]
    log = make_log(rows)
    assert raw_items(log, log.sequences()[1]) == [9, 4, 3, 5]
    assert raw_items(log, leave_last_out(log).test.targets[0]) == [5]


def test_tie_break_stable_on_ml100k(ml100k_dir, ml100k):
    # Reloading gives the same order, including the many same-second ratings in ML-100K.
    again = load_ml100k(ml100k_dir)
    pd.testing.assert_frame_equal(again.interactions, ml100k.interactions)
    frame = ml100k.interactions
    ties = frame.duplicated(["user", "timestamp"], keep=False)
    assert ties.sum() > 0


# ---------------------------------------------------------------------------------------------
# Temporal


def test_temporal_ml100k(ml100k):
    result = temporal(ml100k, cutoff=0.8)
    cut = result.card.cutoff_time
    validation_cut = result.card.validation_cutoff_time
    events = user_events(ml100k)
    timestamps = ml100k.interactions["timestamp"].to_numpy()

    assert cut == int(np.quantile(timestamps, 0.8))
    assert validation_cut == int(np.quantile(timestamps, 0.7))
    assert len(result.test) > 0
    for position, user in enumerate(result.test.users):
        items, times = events[int(user)]
        # No test history event happens at or after the cutoff, and the target is the first one after it.
        np.testing.assert_array_equal(result.test.histories[position], items[times < cut])
        np.testing.assert_array_equal(result.test.targets[position], items[times >= cut][:1])
    for position, user in enumerate(result.validation.users):
        items, times = events[int(user)]
        window = (times >= validation_cut) & (times < cut)
        np.testing.assert_array_equal(result.validation.histories[position], items[times < validation_cut])
        np.testing.assert_array_equal(result.validation.targets[position], items[window][:1])
    assert result.train["timestamp"].max() < validation_cut
    assert len(result.train) == int((timestamps < validation_cut).sum())


def test_temporal_test_users_span_cutoff(ml100k):
    result = temporal(ml100k, cutoff=0.8)
    cut = result.card.cutoff_time
    events = user_events(ml100k)
    spanning = [user for user, (_, times) in events.items() if times.min() < cut <= times.max()]
    assert list(result.test.users) == spanning


def test_temporal_all_targets(ml100k):
    result = temporal(ml100k, cutoff=0.8, targets="all")
    cut = result.card.cutoff_time
    events = user_events(ml100k)
    for position, user in enumerate(result.test.users[:50]):
        items, times = events[int(user)]
        np.testing.assert_array_equal(result.test.targets[position], np.unique(items[times >= cut]))
    assert result.card.targets == "all items after the cutoff"


def test_temporal_absolute_cutoff_default_validation(ml100k):
    # An early absolute cutoff must not put the default validation cutoff after it.
    timestamps = ml100k.interactions["timestamp"].to_numpy()
    cutoff = int(np.quantile(timestamps, 0.4))
    result = temporal(ml100k, cutoff=cutoff)
    assert result.card.cutoff_time == cutoff
    assert result.card.validation_cutoff_time < cutoff
    assert result.train["timestamp"].max() < result.card.validation_cutoff_time


def test_temporal_toy_cutoffs():
    rows = [("a", 1, 10), ("a", 2, 20), ("a", 3, 30), ("b", 1, 15), ("b", 3, 35), ("c", 2, 40)]
    result = temporal(make_log(rows), cutoff=30, validation_cutoff=20)
    log = result.log
    assert list(result.test.users) == [1, 2]
    assert raw_items(log, result.test.histories[0]) == [1, 2]
    assert raw_items(log, result.test.targets[0]) == [3]
    assert raw_items(log, result.test.targets[1]) == [3]
    assert list(result.validation.users) == [1]
    assert raw_items(log, result.validation.targets[0]) == [2]
    assert sorted(result.train["timestamp"]) == [10, 15]


@pytest.mark.parametrize("cutoff", [0.0, 1.0, 1.5, "0.8", True])
def test_temporal_invalid_cutoff(ml100k, cutoff):
    with pytest.raises(ConfigError, match="cutoff="):
        temporal(ml100k, cutoff=cutoff)


def test_temporal_validation_after_cutoff(ml100k):
    with pytest.raises(ConfigError, match="validation_cutoff"):
        temporal(ml100k, cutoff=0.5, validation_cutoff=0.7)


def test_split_by_name(ml100k):
    assert split(ml100k, "loo").card.split == "leave-last-out"
    assert split(ml100k, "temporal", cutoff=0.9).card.split == "temporal"
    with pytest.raises(ConfigError, match="'random'"):
        split(ml100k, "random")


def test_split_of_a_dataframe_rejected(ml100k_dir):
    frame = load_ml100k(ml100k_dir).interactions

    with pytest.raises(ConfigError, match="leave_last_out needs an InteractionLog, got DataFrame"):
        leave_last_out(frame)
    with pytest.raises(ConfigError, match="temporal needs an InteractionLog"):
        temporal(frame)


def test_fit_on_a_log_rejected(ml100k_dir):
    from recwidgets.models import EASE, Popularity, SASRec

    log = load_ml100k(ml100k_dir)

    for model in (SASRec(epochs=1), Popularity(), EASE()):
        with pytest.raises(ConfigError, match=r"\.fit needs a Split .* got InteractionLog\. Split it first"):
            model.fit(log)
