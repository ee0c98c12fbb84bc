"""MAP@k: average precision at k, normalised by min(|R|, k)."""

from __future__ import annotations

import numpy as np

from recwidgets.evaluation.metrics._ranks import check_cutoff, mask_users_without_targets, n_relevant


def average_precision(ranks: np.ndarray, k: int) -> np.ndarray:
    """Compute AP@k per user from a (U, T) rank matrix padded with inf; its mean is MAP@k.

    With the user's target ranks sorted ascending, r_1 < r_2 < ..., the j-th hit has
    precision j / r_j, and
    AP@k(u) = (1 / min(|R_u|, k)) * sum over j with r_j <= k of j / r_j.
    One target at rank r gives 1 / r within k; targets at ranks 1 and 3 give
    (1 + 2/3) / 2 = 0.8333.

    The ranks of one user must be distinct, as the ranking step guarantees. Users without
    target items get NaN and are left out of means. Reference: Manning, Raghavan and
    Schuetze, "Introduction to Information Retrieval", Cambridge University Press 2008,
    section 8.4.
    """
    k = check_cutoff(k)
    ordered = np.sort(ranks, axis=1)
    position = np.arange(1, ordered.shape[1] + 1)
    precision_at_hit = np.where(ordered <= k, position / ordered, 0.0)
    depth = np.minimum(n_relevant(ranks), k)
    with np.errstate(divide="ignore", invalid="ignore"):
        values = precision_at_hit.sum(axis=1) / depth
    return mask_users_without_targets(values, ranks)
