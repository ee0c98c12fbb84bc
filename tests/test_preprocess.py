"""Implicit-feedback thresholds and k-core filtering, on ML-100K and on random small logs."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from recwidgets.data.loaders import load_ml100k
from recwidgets.data.log import InteractionLog
from recwidgets.data.preprocess import check_order, duplicates, kcore, to_implicit
from recwidgets.errors import ConfigError, DataError


@pytest.fixture(scope="module")
def ml100k(ml100k_dir):
    return load_ml100k(ml100k_dir)


def make_log(rows, with_rating=True):
    """Build a log from (user, item, timestamp[, rating]) tuples."""
    columns = ["user", "item", "timestamp", "rating"] if with_rating else ["user", "item", "timestamp"]
    return InteractionLog.from_frame(pd.DataFrame(rows, columns=columns), name="toy")


def raw_pairs(log):
    return sorted(
        zip(
            log.user_ids[log.interactions["user"].to_numpy()].tolist(),
            log.item_ids[log.interactions["item"].to_numpy()].tolist(),
            log.interactions["timestamp"].tolist(),
        )
    )


# ---------------------------------------------------------------------------------------------
# Implicit feedback


def test_implicit_all_ratings(ml100k):
    log = to_implicit(ml100k)
    assert len(log) == 100_000
    assert log.variant["implicit"] == "all ratings"
    assert "implicit" not in ml100k.variant


def test_implicit_threshold_ml100k(ml100k, ml100k_dir):
    raw = pd.read_csv(ml100k_dir / "u.data", sep="\t", header=None, names=["user", "item", "rating", "timestamp"])
    expected = raw[raw["rating"] >= 4]
    log = to_implicit(ml100k, 4)
    assert len(log) == len(expected)
    assert log.n_users == expected["user"].nunique()
    assert log.n_items == expected["item"].nunique()
    assert log.interactions["rating"].min() == 4
    assert log.variant == {**ml100k.variant, "implicit": "rating >= 4"}


def test_implicit_threshold_fractional():
    log = make_log([(1, 1, 1, 3.5), (1, 2, 2, 4.0), (2, 1, 3, 3.0)])
    result = to_implicit(log, 3.5)
    assert raw_pairs(result) == [(1, 1, 1), (1, 2, 2)]
    assert result.variant["implicit"] == "rating >= 3.5"


def test_implicit_without_ratings_raises():
    log = make_log([(1, 1, 1), (1, 2, 2)], with_rating=False)
    with pytest.raises(DataError, match=r"'toy' has no ratings.*implicit_threshold=None"):
        to_implicit(log, 4)


def test_implicit_threshold_above_all_ratings():
    log = make_log([(1, 1, 1, 2.0), (1, 2, 2, 3.0)])
    with pytest.raises(DataError, match=r"rating >= 5.*from 2.0 to 3.0"):
        to_implicit(log, 5)


@pytest.mark.parametrize("threshold", ["4", True, float("nan")])
def test_implicit_invalid_threshold(threshold):
    log = make_log([(1, 1, 1, 2.0)])
    with pytest.raises(ConfigError, match="implicit threshold"):
        to_implicit(log, threshold)


# ---------------------------------------------------------------------------------------------
# k-core


def reference_kcore(rows, k, users=True, items=True):
    """Compute the k-core with plain Python sets, as an independent check."""
    alive = list(rows)
    while True:
        user_counts, item_counts = {}, {}
        for user, item, _ in alive:
            user_counts[user] = user_counts.get(user, 0) + 1
            item_counts[item] = item_counts.get(item, 0) + 1
        kept = [
            row
            for row in alive
            if (not users or user_counts[row[0]] >= k) and (not items or item_counts[row[1]] >= k)
        ]
        if len(kept) == len(alive):
            return sorted(kept)
        alive = kept


random_rows = st.lists(
    st.tuples(st.integers(1, 12), st.integers(1, 15), st.integers(0, 50)),
    min_size=1,
    max_size=80,
)


@settings(max_examples=60, deadline=None, derandomize=True, database=None)
@given(rows=random_rows, k=st.integers(1, 4))
def test_kcore_property(rows, k):
    log = make_log(rows, with_rating=False)
    expected = reference_kcore(rows, k)
    if not expected:
        with pytest.raises(DataError, match=f"{k}-core"):
            kcore(log, k)
        return
    result = kcore(log, k)

    # The core property: every surviving user and item keeps at least k interactions.
    assert np.bincount(result.interactions["user"])[1:].min() >= k
    assert result.item_popularity()[1:].min() >= k
    # Maximality: the result is the unique largest such subset, found by the reference.
    assert raw_pairs(result) == expected
    assert result.variant["kcore"] == k


@settings(max_examples=30, deadline=None, derandomize=True, database=None)
@given(rows=random_rows, k=st.integers(2, 4))
def test_kcore_users_only_property(rows, k):
    log = make_log(rows, with_rating=False)
    expected = reference_kcore(rows, k, items=False)
    if not expected:
        with pytest.raises(DataError):
            kcore(log, k, items=False)
        return
    result = kcore(log, k, items=False)
    assert np.bincount(result.interactions["user"])[1:].min() >= k
    assert raw_pairs(result) == expected
    assert result.variant["kcore_on"] == "users"


def test_kcore_needs_several_rounds():
    # Item 3 has one event, so user 2 drops to one event, which then drops item 2 to one event.
    rows = [(1, 1, 1), (1, 2, 2), (2, 2, 3), (2, 3, 4), (3, 1, 5), (3, 4, 6), (4, 1, 7), (4, 4, 8)]
    result = kcore(make_log(rows, with_rating=False), 2)
    assert raw_pairs(result) == [(3, 1, 5), (3, 4, 6), (4, 1, 7), (4, 4, 8)]
    assert list(result.user_ids[1:]) == [3, 4]


def test_kcore_ml100k(ml100k):
    # GroupLens kept only users with >= 20 ratings, so users fall below 20 only after rare
    # items are removed, which needs a second round.
    assert np.bincount(ml100k.interactions["user"])[1:].min() == 20
    result = kcore(ml100k, 20)
    assert np.bincount(result.interactions["user"])[1:].min() >= 20
    assert result.item_popularity()[1:].min() >= 20
    assert result.n_users < ml100k.n_users
    assert result.n_items < ml100k.n_items
    assert len(kcore(ml100k, 1)) == 100_000


def test_kcore_keeps_metadata(ml100k):
    result = kcore(ml100k, 10)
    titles = result.item_titles()
    assert "Toy Story (1995)" in titles
    item = titles.index("Toy Story (1995)")
    assert result.items.loc[item, "genres"] == ("Animation", "Children's", "Comedy")


@pytest.mark.parametrize("k", [0, -1, 2.5, "5", True])
def test_kcore_invalid_k(k):
    with pytest.raises(ConfigError, match="kcore k="):
        kcore(make_log([(1, 1, 1)], with_rating=False), k)


def test_kcore_no_side_raises():
    with pytest.raises(ConfigError, match="users=False and items=False"):
        kcore(make_log([(1, 1, 1)], with_rating=False), 2, users=False, items=False)


# ---------------------------------------------------------------------------------------------
# Helpers


def test_check_order_accepts_loaded_log(ml100k):
    check_order(ml100k)


def test_check_order_rejects_shuffled(ml100k):
    shuffled = ml100k.interactions.sample(frac=1.0, random_state=0).reset_index(drop=True)
    broken = InteractionLog(shuffled, ml100k.user_ids, ml100k.item_ids, name="shuffled")
    with pytest.raises(DataError, match="out of order"):
        check_order(broken)


def test_duplicates():
    log = make_log([(1, 1, 1), (1, 1, 2), (1, 1, 3), (2, 2, 1), (2, 2, 5), (2, 1, 6)], with_rating=False)
    repeated = duplicates(log)
    assert repeated.to_dict("records") == [{"user": 1, "item": 1, "count": 3}, {"user": 2, "item": 2, "count": 2}]
