"""Bootstrap intervals: agreement with a plain loop, seeding, NaN handling and global metrics."""

from __future__ import annotations

import numpy as np
import pytest

from recwidgets.evaluation.bootstrap import bootstrap_intervals, resample_weights
from recwidgets.evaluation.metrics import catalog_coverage, gini_index


def naive_resamples(n_users, n_resamples, seed):
    """Draw the same user indices as ``resample_weights`` when one chunk holds every resample."""
    return np.random.default_rng(seed).integers(0, n_users, size=(n_resamples, n_users))


def test_weights_count_draws():
    chunks = list(resample_weights(50, 30, seed=1))
    weights = np.concatenate(chunks)
    assert weights.shape == (30, 50)
    assert (weights.sum(axis=1) == 50).all()
    drawn = naive_resamples(50, 30, seed=1)
    expected = np.stack([np.bincount(row, minlength=50) for row in drawn])
    np.testing.assert_array_equal(weights, expected)


def test_means_match_plain_loop():
    rng = np.random.default_rng(0)
    values = rng.random((60, 3))
    low, high, _ = bootstrap_intervals(values, n_resamples=200, confidence=0.9, seed=4)

    drawn = naive_resamples(60, 200, seed=4)
    means = np.stack([values[row].mean(axis=0) for row in drawn])
    np.testing.assert_allclose(low, np.percentile(means, 5, axis=0))
    np.testing.assert_allclose(high, np.percentile(means, 95, axis=0))


def test_nan_values_left_out_of_means():
    values = np.array([[1.0], [np.nan], [3.0], [np.nan]])
    low, high, _ = bootstrap_intervals(values, n_resamples=200, seed=0)
    # Any resample holding a finite value averages only 1s and 3s.
    assert 1.0 <= low[0] <= high[0] <= 3.0


def test_constant_values_give_point_interval():
    values = np.full((40, 2), 0.25)
    low, high, _ = bootstrap_intervals(values, n_resamples=100, seed=0)
    np.testing.assert_allclose(low, 0.25)
    np.testing.assert_allclose(high, 0.25)


def test_zero_resamples_give_nan():
    low, high, global_intervals = bootstrap_intervals(
        np.ones((5, 2)), topk=np.ones((5, 1), dtype=np.int64), n_items=3, ks=(1,), n_resamples=0
    )
    assert np.isnan(low).all()
    assert np.isnan(high).all()
    assert all(np.isnan(bound) for bounds in global_intervals.values() for bound in bounds)


def test_global_metrics_match_plain_loop():
    rng = np.random.default_rng(2)
    n_users, n_items = 40, 25
    topk = rng.integers(0, n_items + 1, size=(n_users, 4))
    _, _, intervals = bootstrap_intervals(
        np.zeros((n_users, 1)), topk=topk, n_items=n_items, ks=(2, 4), n_resamples=150, seed=9
    )

    drawn = naive_resamples(n_users, 150, seed=9)
    for k in (2, 4):
        coverage = [catalog_coverage(topk[row], n_items, k)[0] for row in drawn]
        gini = [gini_index(topk[row], n_items, k) for row in drawn]
        assert intervals[("Coverage", k)] == pytest.approx(tuple(np.percentile(coverage, [2.5, 97.5])))
        assert intervals[("Gini", k)] == pytest.approx(tuple(np.percentile(gini, [2.5, 97.5])))


def test_fewer_global_resamples_use_the_first_ones():
    rng = np.random.default_rng(3)
    topk = rng.integers(1, 30, size=(50, 3))
    _, _, intervals = bootstrap_intervals(
        np.zeros((50, 1)), topk=topk, n_items=30, ks=(3,), n_resamples=200, n_resamples_global=40, seed=1
    )
    drawn = naive_resamples(50, 200, seed=1)[:40]
    coverage = [catalog_coverage(topk[row], 30, 3)[0] for row in drawn]
    assert intervals[("Coverage", 3)] == pytest.approx(tuple(np.percentile(coverage, [2.5, 97.5])))


def test_same_seed_same_interval():
    values = np.random.default_rng(5).random((80, 2))
    first = bootstrap_intervals(values, n_resamples=100, seed=11)
    second = bootstrap_intervals(values, n_resamples=100, seed=11)
    other = bootstrap_intervals(values, n_resamples=100, seed=12)
    np.testing.assert_array_equal(first[0], second[0])
    np.testing.assert_array_equal(first[1], second[1])
    assert not np.array_equal(first[0], other[0])
