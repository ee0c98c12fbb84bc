"""User segments: activity quartiles and head / mid / tail popularity buckets."""

from __future__ import annotations

import numpy as np

from recwidgets.evaluation.segments import activity_segments, popularity_buckets, segment_table


def test_activity_quartile_labels():
    labels = activity_segments(np.array([1, 2, 3, 4, 5, 6, 7, 8]))
    assert labels.tolist() == [
        "Q1 (1-2)", "Q1 (1-2)", "Q2 (3-4)", "Q2 (3-4)", "Q3 (5-6)", "Q3 (5-6)", "Q4 (7-8)", "Q4 (7-8)"
    ]


def test_activity_ties_leave_quartiles_empty():
    labels = activity_segments(np.array([3, 3, 3, 3, 3, 9]))
    assert set(labels) == {"Q1 (3-3)", "Q4 (9-9)"}


def test_popularity_buckets_by_interaction_share():
    # 100 interactions: item 1 alone holds 50% (head); item 2 brings the prefix to 80%
    # (mid); items 3-6 hold the last 20% and item 7 has none (tail).
    counts = np.array([0, 50, 30, 10, 5, 3, 2, 0])
    assert popularity_buckets(counts).tolist() == ["", "head", "mid", "tail", "tail", "tail", "tail", "tail"]


def test_popularity_buckets_ties_go_up():
    counts = np.array([0, 10, 10, 10, 10, 10])
    assert popularity_buckets(counts).tolist() == ["", "head", "head", "head", "head", "head"]


def test_popularity_buckets_without_training_data():
    assert popularity_buckets(np.zeros(4)).tolist() == ["", "tail", "tail", "tail"]


def test_segment_table_uses_first_target():
    counts = np.array([0, 50, 30, 10, 5, 3, 2, 0])
    table = segment_table(
        np.array([4, 9]), np.array([2, 10]), [np.array([1, 7]), np.array([7, 1])], counts
    )
    assert table["user"].tolist() == [4, 9]
    assert table["target_popularity"].tolist() == ["head", "tail"]
    assert table["activity"].tolist() == ["Q1 (2-2)", "Q4 (10-10)"]
