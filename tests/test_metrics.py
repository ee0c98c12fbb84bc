"""Metric functions over plain arrays: hand-computed values and properties."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from recwidgets.errors import ConfigError
from recwidgets.evaluation.metrics import (
    ACCURACY_METRICS,
    average_popularity,
    average_precision,
    catalog_coverage,
    count_users_without_targets,
    gini_index,
    hit_ratio,
    ndcg,
    novelty,
    precision,
    rank_matrix,
    recall,
    reciprocal_rank,
    self_information,
)


def ranks_of(*users) -> np.ndarray:
    """Build a rank matrix from one tuple of target ranks per user."""
    return rank_matrix([np.asarray(user, dtype=np.float64) for user in users])


# One held-out item at rank 1, 2, 3 with k = 3.
SINGLE_TARGET = ranks_of((1,), (2,), (3,))


def test_single_target_ndcg():
    np.testing.assert_allclose(ndcg(SINGLE_TARGET, 3), [1.0, 0.6309297535714575, 0.5])


def test_single_target_hit_ratio():
    np.testing.assert_array_equal(hit_ratio(SINGLE_TARGET, 3), [1.0, 1.0, 1.0])
    np.testing.assert_array_equal(hit_ratio(SINGLE_TARGET, 2), [1.0, 1.0, 0.0])


def test_single_target_mrr_and_map():
    np.testing.assert_allclose(reciprocal_rank(SINGLE_TARGET, 3), [1.0, 0.5, 1 / 3])
    np.testing.assert_allclose(average_precision(SINGLE_TARGET, 3), [1.0, 0.5, 1 / 3])


def test_single_target_precision_and_recall():
    np.testing.assert_allclose(precision(SINGLE_TARGET, 3), [1 / 3, 1 / 3, 1 / 3])
    np.testing.assert_allclose(precision(SINGLE_TARGET, 10), [0.1, 0.1, 0.1])
    np.testing.assert_array_equal(recall(SINGLE_TARGET, 3), [1.0, 1.0, 1.0])


def test_target_beyond_k_scores_zero():
    beyond = ranks_of((11,))
    for name, metric in ACCURACY_METRICS.items():
        assert metric(beyond, 10)[0] == 0.0, name


def test_two_targets_at_ranks_one_and_three():
    ranks = ranks_of((3, 1))
    # DCG = 1/log2(2) + 1/log2(4) = 1.5; IDCG = 1 + 1/log2(3) = 1.6309.
    assert ndcg(ranks, 5)[0] == pytest.approx(1.5 / (1 + 1 / math.log2(3)))
    # Hits at ranks 1 and 3 have precision 1/1 and 2/3; min(|R|, k) = 2.
    assert average_precision(ranks, 5)[0] == pytest.approx((1 + 2 / 3) / 2)
    assert recall(ranks, 5)[0] == 1.0
    assert precision(ranks, 5)[0] == pytest.approx(2 / 5)
    assert hit_ratio(ranks, 5)[0] == 1.0
    assert reciprocal_rank(ranks, 5)[0] == 1.0


def test_two_targets_cut_at_k_two():
    ranks = ranks_of((1, 3))
    assert ndcg(ranks, 2)[0] == pytest.approx(1 / (1 + 1 / math.log2(3)))
    assert average_precision(ranks, 2)[0] == pytest.approx(0.5)
    assert recall(ranks, 2)[0] == pytest.approx(0.5)
    assert precision(ranks, 2)[0] == pytest.approx(0.5)


def test_two_targets_at_ranks_two_and_five():
    ranks = ranks_of((2, 5))
    # Only rank 2 is within k = 3: DCG = 1/log2(3), IDCG = 1 + 1/log2(3).
    assert ndcg(ranks, 3)[0] == pytest.approx((1 / math.log2(3)) / (1 + 1 / math.log2(3)))
    assert average_precision(ranks, 3)[0] == pytest.approx((1 / 2) / 2)
    assert recall(ranks, 3)[0] == pytest.approx(0.5)
    assert reciprocal_rank(ranks, 3)[0] == pytest.approx(0.5)


def test_more_targets_than_k_normalise_by_k():
    ranks = ranks_of((1, 2, 3))
    assert ndcg(ranks, 2)[0] == pytest.approx(1.0)
    assert average_precision(ranks, 2)[0] == pytest.approx(1.0)
    assert recall(ranks, 2)[0] == pytest.approx(2 / 3)
    assert precision(ranks, 2)[0] == pytest.approx(1.0)


def test_users_without_targets_are_nan():
    ranks = ranks_of((1,), (), (4,))
    assert count_users_without_targets(ranks) == 1
    for name, metric in ACCURACY_METRICS.items():
        values = metric(ranks, 5)
        assert np.isnan(values[1]), name
        assert not np.isnan(values[[0, 2]]).any(), name
    assert np.nanmean(hit_ratio(ranks, 5)) == 1.0


@pytest.mark.parametrize("bad_k", [0, -3, 2.5, "10", True])
def test_invalid_k_is_named(bad_k):
    with pytest.raises(ConfigError, match=f"k={bad_k!r}"):
        ndcg(SINGLE_TARGET, bad_k)


# Two users, catalog of 4 items: user A gets [1, 2], user B gets [1, 3]; item 4 never.
TOPK = np.array([[1, 2], [1, 3]])
POPULARITY = np.array([0, 5, 3, 2, 0])


def test_coverage_share_and_count():
    assert catalog_coverage(TOPK, 4, 2) == (0.75, 3)
    assert catalog_coverage(TOPK, 4, 1) == (0.25, 1)


def test_gini_hand_computed():
    # Exposure counts [2, 1, 1, 0] sorted [0, 1, 1, 2]; weights 2i - n - 1 = [-3, -1, 1, 3].
    assert gini_index(TOPK, 4, 2) == pytest.approx(6 / 16)


def test_gini_extremes():
    equal = np.array([[1], [2], [3], [4]])
    assert gini_index(equal, 4, 1) == pytest.approx(0.0)
    one_item = np.array([[1], [1], [1]])
    assert gini_index(one_item, 4, 1) == pytest.approx(3 / 4)


def test_novelty_hand_computed():
    # Shares of 10 training interactions: 0.5, 0.3, 0.2; item 4 has none and counts as 1.
    information = self_information(POPULARITY)
    np.testing.assert_allclose(information[1:], [1.0, -math.log2(0.3), -math.log2(0.2), -math.log2(0.1)])
    np.testing.assert_allclose(
        novelty(TOPK, POPULARITY, 2), [(1 - math.log2(0.3)) / 2, (1 - math.log2(0.2)) / 2]
    )


def test_arp_hand_computed():
    np.testing.assert_allclose(average_popularity(TOPK, POPULARITY, 2), [4.0, 3.5])
    np.testing.assert_allclose(average_popularity(TOPK, POPULARITY, 1), [5.0, 5.0])


def test_list_metrics_skip_padding():
    short = np.array([[1, 0], [0, 0]])
    np.testing.assert_allclose(average_popularity(short, POPULARITY, 2), [5.0, np.nan])
    np.testing.assert_allclose(novelty(short, POPULARITY, 2), [1.0, np.nan])
    assert catalog_coverage(short, 4, 2) == (0.25, 1)


def test_list_metric_rejects_narrow_topk():
    with pytest.raises(ConfigError, match="k=3"):
        novelty(TOPK, POPULARITY, 3)


@st.composite
def rank_lists(draw, max_targets=4):
    """Distinct 1-based target ranks for a handful of users, as the ranking step produces."""
    n_users = draw(st.integers(1, 6))
    users = []
    for _ in range(n_users):
        size = draw(st.integers(1, max_targets))
        users.append(draw(st.lists(st.integers(1, 40), min_size=size, max_size=size, unique=True)))
    return users


@settings(max_examples=150, deadline=None)
@given(rank_lists(), st.integers(1, 30))
def test_accuracy_metrics_in_unit_interval(users, k):
    ranks = ranks_of(*users)
    for name, metric in ACCURACY_METRICS.items():
        values = metric(ranks, k)
        assert ((values >= 0) & (values <= 1 + 1e-12)).all(), name


@settings(max_examples=150, deadline=None)
@given(rank_lists(), st.integers(1, 30))
def test_hit_ratio_bounds_precision_recall_mrr(users, k):
    ranks = ranks_of(*users)
    hit = hit_ratio(ranks, k)
    assert (hit >= precision(ranks, k)).all()
    assert (recall(ranks, k) <= hit).all()
    assert (reciprocal_rank(ranks, k) <= hit).all()


@settings(max_examples=150, deadline=None)
@given(rank_lists(max_targets=1), st.integers(1, 30))
def test_single_target_relations(users, k):
    ranks = ranks_of(*users)
    np.testing.assert_array_equal(recall(ranks, k), hit_ratio(ranks, k))
    np.testing.assert_allclose(average_precision(ranks, k), reciprocal_rank(ranks, k))
    assert (ndcg(ranks, k) >= reciprocal_rank(ranks, k) - 1e-12).all()


@settings(max_examples=150, deadline=None)
@given(rank_lists(max_targets=1), st.integers(1, 30))
def test_single_target_ndcg_monotone_in_k(users, k):
    # NOTE: with several targets NDCG@k can fall as k grows, because the ideal DCG grows too.
    ranks = ranks_of(*users)
    assert (ndcg(ranks, k + 1) >= ndcg(ranks, k)).all()


@settings(max_examples=150, deadline=None)
@given(rank_lists(), st.integers(1, 30))
def test_hit_ratio_and_recall_monotone_in_k(users, k):
    ranks = ranks_of(*users)
    assert (hit_ratio(ranks, k + 1) >= hit_ratio(ranks, k)).all()
    assert (recall(ranks, k + 1) >= recall(ranks, k)).all()


@settings(max_examples=100, deadline=None)
@given(st.lists(st.lists(st.integers(0, 8), min_size=3, max_size=3), min_size=1, max_size=8))
def test_global_metrics_bounded(rows):
    topk = np.array(rows)
    n_items = 8
    share, count = catalog_coverage(topk, n_items, 3)
    assert 0 <= share <= 1
    assert count == len(set(topk.ravel()) - {0})
    gini = gini_index(topk, n_items, 3)
    if count:
        assert -1e-12 <= gini <= (n_items - 1) / n_items + 1e-12
    else:
        assert np.isnan(gini)
