"""The synthetic log generator: determinism, shape of the data, and learnable structure."""

from __future__ import annotations

import numpy as np
import pytest

from recwidgets.data.split import leave_last_out, temporal
from recwidgets.errors import ConfigError
from recwidgets.synthetic import synthetic_arrays, synthetic_log


def test_same_seed_same_log():
    first = synthetic_arrays(300, 200, seed=7)
    second = synthetic_arrays(300, 200, seed=7)
    for key in ("user", "item", "timestamp", "item_cluster", "successor"):
        np.testing.assert_array_equal(first[key], second[key])


def test_other_seed_other_log():
    first = synthetic_arrays(300, 200, seed=7)
    second = synthetic_arrays(300, 200, seed=8)
    assert len(first["item"]) != len(second["item"]) or not np.array_equal(first["item"], second["item"])


def test_arrays_sorted_and_typed():
    arrays = synthetic_arrays(500, 300, seed=0)
    users, items, times = arrays["user"], arrays["item"], arrays["timestamp"]
    assert users.dtype == np.int64
    assert items.dtype == np.int64
    assert times.dtype == np.int64
    assert users.min() == 1
    assert users.max() == 500
    assert items.min() >= 1
    assert items.max() <= 300
    assert np.all(np.diff(users) >= 0)
    same_user = users[1:] == users[:-1]
    assert np.all(np.diff(times)[same_user] > 0), "timestamps must increase strictly within a user"


def test_no_repeats_by_default():
    arrays = synthetic_arrays(500, 300, seed=0)
    keys = arrays["user"] * 301 + arrays["item"]
    assert len(np.unique(keys)) == len(keys)


def test_repeats_allowed_when_asked():
    arrays = synthetic_arrays(300, 50, 30, seed=0, repeats=True)
    keys = arrays["user"] * 51 + arrays["item"]
    assert len(np.unique(keys)) < len(keys)


def test_mean_length_close_to_request():
    arrays = synthetic_arrays(2000, 1000, 20, seed=0)
    lengths = np.bincount(arrays["user"])[1:]
    assert lengths.min() >= 5
    assert 16 <= lengths.mean() <= 22


def test_activity_heavy_tailed():
    arrays = synthetic_arrays(2000, 1000, 20, seed=0)
    lengths = np.bincount(arrays["user"])[1:]
    assert lengths.max() > 8 * np.median(lengths)


def test_popularity_skewed():
    arrays = synthetic_arrays(2000, 1000, 20, seed=0)
    counts = np.sort(np.bincount(arrays["item"], minlength=1001)[1:])[::-1]
    top_tenth = counts[:100].sum() / counts.sum()
    assert top_tenth > 0.35, f"the top 10% of items hold only {top_tenth:.0%} of events"


def test_successor_structure_learnable():
    arrays = synthetic_arrays(1000, 500, 20, seed=0, follow_prob=0.3)
    users, items, successor = arrays["user"], arrays["item"], arrays["successor"]
    same_user = users[1:] == users[:-1]
    followed = (successor[items[:-1]] == items[1:])[same_user].mean()
    assert 0.15 < followed < 0.45

    without = synthetic_arrays(1000, 500, 20, seed=0, follow_prob=0.0)
    same_user = without["user"][1:] == without["user"][:-1]
    chance = (without["successor"][without["item"][:-1]] == without["item"][1:])[same_user].mean()
    assert chance < 0.1


def test_log_has_metadata():
    log = synthetic_log(200, 100, seed=1)
    assert log.items is not None
    assert set(log.items.columns) >= {"title", "genres", "cluster"}
    first = log.items.iloc[0]
    assert first["genres"] == (f"topic-{first['cluster']:02d}",)
    assert log.item_titles()[1].startswith("Item ")


def test_log_splits_both_ways():
    log = synthetic_log(500, 300, seed=0)
    split = temporal(log)
    assert split.card.n_test_users >= 50
    leave_last_out(log)


def test_large_arrays_vectorised():
    arrays = synthetic_arrays(100_000, 50_000, 10, seed=3)
    assert arrays["user"].max() == 100_000
    assert len(arrays["item"]) > 800_000


@pytest.mark.parametrize(
    "options",
    [
        {"n_users": 0, "n_items": 10},
        {"n_users": 10, "n_items": 1},
        {"n_users": 10, "n_items": 10, "mean_length": 2},
        {"n_users": 10, "n_items": 10, "follow_prob": 1.5},
        {"n_users": 10, "n_items": 10, "stay_prob": 0.8, "drift_prob": 0.5},
    ],
)
def test_invalid_options_raise(options):
    with pytest.raises(ConfigError):
        synthetic_arrays(**options)
