"""MRR@k: the reciprocal rank of the first target item, 0 when none is in the top k."""

from __future__ import annotations

import numpy as np

from recwidgets.evaluation.metrics._ranks import check_cutoff, mask_users_without_targets


def reciprocal_rank(ranks: np.ndarray, k: int) -> np.ndarray:
    """Compute the reciprocal rank at k per user from a (U, T) rank matrix padded with inf.

    RR@k(u) = 1 / r_u if r_u <= k else 0, with r_u = min over targets t of rank(t); the
    mean over users is MRR@k.

    Users without target items get NaN and are left out of means. Reference: Voorhees,
    "The TREC-8 Question Answering Track Report", TREC 1999.
    """
    k = check_cutoff(k)
    first = ranks.min(axis=1)
    values = np.where(first <= k, 1.0 / first, 0.0)
    return mask_users_without_targets(values, ranks)
