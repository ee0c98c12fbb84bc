"""Precision@k: the share of the top k that are target items."""

from __future__ import annotations

import numpy as np

from recwidgets.evaluation.metrics._ranks import check_cutoff, mask_users_without_targets, n_hits


def precision(ranks: np.ndarray, k: int) -> np.ndarray:
    """Compute Precision@k per user from a (U, T) rank matrix padded with inf.

    Precision@k(u) = |{t in R_u : rank(t) <= k}| / k, with R_u the user's target items.

    The denominator is always k, also when a user has fewer than k candidate items or
    fewer than k targets, so a single-target user scores at most 1/k. Users without target
    items get NaN and are left out of means. Reference: Manning, Raghavan and Schuetze,
    "Introduction to Information Retrieval", Cambridge University Press 2008, section 8.4.
    """
    k = check_cutoff(k)
    values = n_hits(ranks, k) / k
    return mask_users_without_targets(values.astype(np.float64), ranks)
