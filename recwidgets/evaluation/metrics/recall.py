"""Recall@k: the share of a user's target items that reach the top k."""

from __future__ import annotations

import numpy as np

from recwidgets.evaluation.metrics._ranks import check_cutoff, mask_users_without_targets, n_hits, n_relevant


def recall(ranks: np.ndarray, k: int) -> np.ndarray:
    """Compute Recall@k per user from a (U, T) rank matrix padded with inf.

    Recall@k(u) = |{t in R_u : rank(t) <= k}| / |R_u|.

    The denominator is |R_u| even when it exceeds k, so a user with more targets than k
    cannot reach 1. Users without target items get NaN and are left out of means.
    Reference: Manning, Raghavan and Schuetze, "Introduction to Information Retrieval",
    Cambridge University Press 2008, section 8.4.
    """
    k = check_cutoff(k)
    relevant = n_relevant(ranks)
    with np.errstate(divide="ignore", invalid="ignore"):
        values = n_hits(ranks, k) / relevant
    return mask_users_without_targets(values.astype(np.float64), ranks)
