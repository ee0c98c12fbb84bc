"""User segments for breaking metrics down: activity quartiles and target-popularity buckets."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

#: Display order of the target-popularity buckets.
POPULARITY_BUCKETS = ("head", "mid", "tail")


def activity_segments(history_lengths: np.ndarray) -> np.ndarray:
    """Label each user with the quartile of their history length, such as ``"Q1 (1-25)"``.

    With q1, q2, q3 the quartiles of the lengths, Q1 is length <= q1, Q2 is q1 < length
    <= q2, Q3 is q2 < length <= q3 and Q4 is length > q3. The range in brackets is the
    smallest and largest length inside the quartile. Many equal lengths can leave a
    quartile empty; its label then never occurs.
    """
    lengths = np.asarray(history_lengths, dtype=np.int64)
    labels = np.empty(len(lengths), dtype=object)
    if len(lengths) == 0:
        return labels
    edges = np.quantile(lengths, [0.25, 0.5, 0.75])
    quartile = np.searchsorted(edges, lengths, side="left")
    for index in range(4):
        members = quartile == index
        if members.any():
            labels[members] = f"Q{index + 1} ({lengths[members].min()}-{lengths[members].max()})"
    return labels


def popularity_buckets(train_popularity: np.ndarray, head_share: float = 0.2, tail_share: float = 0.2) -> np.ndarray:
    """Label every internal item id ``"head"``, ``"mid"`` or ``"tail"`` by its training popularity.

    Items are ordered by training count, most popular first. The head is the shortest
    prefix that accounts for at least ``head_share`` of the training interactions. The tail
    is every item after the prefix that accounts for at least 1 - ``tail_share``, so the tail
    accounts for at most ``tail_share`` of the interactions, plus every item with no training
    interaction. Mid is the rest. Items with equal counts share a bucket: ties at a
    boundary go to the more popular bucket. Index 0 (padding) is labelled ``""``.
    """
    counts = np.asarray(train_popularity, dtype=np.float64).copy()
    counts[0] = 0.0
    labels = np.full(len(counts), "tail", dtype=object)
    labels[0] = ""
    total = counts.sum()
    if total <= 0:
        return labels

    order = np.lexsort((np.arange(len(counts)), -counts))
    order = order[order != 0]
    ordered = counts[order]
    share_before = (np.cumsum(ordered) - ordered) / total

    head_min = ordered[share_before < head_share].min()
    is_head = (counts >= head_min) & (counts > 0)
    middle_prefix = (share_before < 1.0 - tail_share) & ~is_head[order]
    if middle_prefix.any():
        mid_min = ordered[middle_prefix].min()
        is_mid = ~is_head & (counts >= mid_min) & (counts > 0)
    else:
        is_mid = np.zeros(len(counts), dtype=bool)

    labels[is_head] = "head"
    labels[is_mid] = "mid"
    labels[0] = ""
    return labels


def segment_table(
    users: np.ndarray,
    history_lengths: np.ndarray,
    targets: Sequence[np.ndarray],
    train_popularity: np.ndarray,
) -> pd.DataFrame:
    """Return one row per user: ``user``, ``activity`` and ``target_popularity`` labels.

    ``activity`` comes from ``activity_segments`` over the full history lengths (not cut
    to the model's ``max_len``). ``target_popularity`` is the ``popularity_buckets`` label
    of the user's first target item. Every user needs at least one target.
    """
    buckets = popularity_buckets(train_popularity)
    first_targets = np.array([int(target[0]) for target in targets], dtype=np.int64)
    return pd.DataFrame(
        {
            "user": np.asarray(users, dtype=np.int64),
            "activity": pd.Series(activity_segments(history_lengths), dtype=object),
            "target_popularity": pd.Series(buckets[first_targets], dtype=object),
        }
    )
