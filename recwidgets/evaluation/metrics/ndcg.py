"""NDCG@k: normalised discounted cumulative gain with binary relevance."""

from __future__ import annotations

import numpy as np

from recwidgets.evaluation.metrics._ranks import check_cutoff, mask_users_without_targets, n_relevant


def ndcg(ranks: np.ndarray, k: int) -> np.ndarray:
    """Compute NDCG@k per user from a (U, T) rank matrix padded with inf.

    DCG@k(u) = sum over targets t with rank(t) <= k of 1 / log2(rank(t) + 1), and
    NDCG@k(u) = DCG@k(u) / IDCG@k(u), where the ideal IDCG@k(u) = sum for i = 1 to
    min(|R_u|, k) of 1 / log2(i + 1) puts every target first. A single target at rank 1,
    2 or 3 gives 1, 0.6309 or 0.5.

    Users without target items get NaN and are left out of means. Reference: Jaervelin and
    Kekaelaeinen, "Cumulated gain-based evaluation of IR techniques", ACM TOIS 20(4), 2002.
    """
    k = check_cutoff(k)
    with np.errstate(divide="ignore"):
        gains = np.where(ranks <= k, 1.0 / np.log2(ranks + 1.0), 0.0)
    dcg = gains.sum(axis=1)

    # ideal[i] is the DCG of i targets at the top, so ideal[min(|R|, k)] normalises.
    ideal = np.concatenate([[0.0], np.cumsum(1.0 / np.log2(np.arange(2, k + 2)))])
    depth = np.minimum(n_relevant(ranks), k)
    with np.errstate(divide="ignore", invalid="ignore"):
        values = dcg / ideal[depth]
    return mask_users_without_targets(values, ranks)
