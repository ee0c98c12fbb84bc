"""HR@k, the hit ratio: whether any target item is in the top k."""

from __future__ import annotations

import numpy as np

from recwidgets.evaluation.metrics._ranks import check_cutoff, mask_users_without_targets, n_hits


def hit_ratio(ranks: np.ndarray, k: int) -> np.ndarray:
    """Compute HR@k per user from a (U, T) rank matrix padded with inf.

    HR@k(u) = 1 if min over targets t of rank(t) <= k, else 0.

    Users without target items get NaN and are left out of means. Used as the headline
    metric of SASRec (Kang and McAuley, "Self-Attentive Sequential Recommendation",
    ICDM 2018), where each user has one held-out item and HR@k equals Recall@k.
    """
    k = check_cutoff(k)
    values = (n_hits(ranks, k) > 0).astype(np.float64)
    return mask_users_without_targets(values, ranks)
