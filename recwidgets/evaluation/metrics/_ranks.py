"""Shared input conventions of the accuracy and beyond-accuracy metric functions.

Accuracy metrics read a rank matrix: ``ranks`` has shape (U, T), one row per user, holding
the 1-based ranks of that user's target items (relevant items) in any order, padded with
``np.inf`` up to the longest target list. A row of only ``inf`` is a user without target
items: every per-user metric returns NaN for it, so ``np.nanmean`` leaves the user out of
the mean, and ``count_users_without_targets`` counts them.

Beyond-accuracy metrics read a top-k matrix: ``topk`` has shape (U, K), the recommended
item ids of each user in rank order, with 0 (the padding id) where a user had fewer than K
candidate items. Item ids run from 1 to ``n_items``.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import numpy as np

from recwidgets.errors import ConfigError


def rank_matrix(target_ranks: Sequence[np.ndarray]) -> np.ndarray:
    """Stack per-user target ranks into a (U, T) float64 matrix padded with ``np.inf``."""
    width = max((len(ranks) for ranks in target_ranks), default=0)
    matrix = np.full((len(target_ranks), max(width, 1)), np.inf)
    for row, ranks in enumerate(target_ranks):
        matrix[row, : len(ranks)] = ranks
    return matrix


def check_cutoff(k) -> int:
    """Return ``k`` as an int, raising ConfigError unless it is an integer of at least 1."""
    if isinstance(k, (bool, np.bool_)) or not isinstance(k, (int, np.integer)) or k < 1:
        raise ConfigError(f"k={k!r} is invalid; the list cutoff k must be an integer of at least 1, such as 10.")
    return int(k)


def n_relevant(ranks: np.ndarray) -> np.ndarray:
    """Return the number of target items per user, shape (U,)."""
    return np.isfinite(ranks).sum(axis=1)


def n_hits(ranks: np.ndarray, k: int) -> np.ndarray:
    """Return the number of target items ranked at or above ``k`` per user, shape (U,)."""
    return (ranks <= k).sum(axis=1)


def count_users_without_targets(ranks: np.ndarray) -> int:
    """Return how many rows of a rank matrix have no target item."""
    return int((n_relevant(ranks) == 0).sum())


def mask_users_without_targets(values: np.ndarray, ranks: np.ndarray) -> np.ndarray:
    """Set the per-user ``values`` of users without target items to NaN, in place, and return them."""
    values[n_relevant(ranks) == 0] = np.nan
    return values


def top_items(topk: np.ndarray, k: int) -> np.ndarray:
    """Return the first ``k`` columns of a top-k matrix, raising when it has fewer."""
    k = check_cutoff(k)
    if topk.ndim != 2 or topk.shape[1] < k:
        raise ConfigError(
            f"the top-k matrix has shape {topk.shape}, too narrow for k={k}; rank with a largest k of at least {k}."
        )
    return topk[:, :k]


def mean_over_listed(values: np.ndarray, items: np.ndarray) -> np.ndarray:
    """Average per-item ``values`` (U, k) over the non-padding entries of ``items`` (U, k).

    A row of only padding (a user without any candidate item) gives NaN.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return np.nanmean(np.where(items > 0, values, np.nan), axis=1)
