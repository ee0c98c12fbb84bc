"""Gini@k: inequality of how often catalog items appear in the top-k lists."""

from __future__ import annotations

import numpy as np

from recwidgets.evaluation.metrics.coverage import exposure_counts


def gini_from_counts(counts: np.ndarray) -> np.ndarray:
    """Compute the Gini index of exposure counts over the last axis.

    ``counts`` has shape (..., n_items), one count per real catalog item, including the
    items with zero exposure. With the counts sorted ascending, c_1 <= ... <= c_n,
    G = sum for i = 1 to n of (2i - n - 1) c_i / (n * sum of c). Equal exposure gives 0,
    and all exposure on one item gives (n - 1) / n, the maximum for n items. Rows whose
    counts sum to 0 give NaN.
    """
    ordered = np.sort(counts, axis=-1)
    n = ordered.shape[-1]
    weights = 2.0 * np.arange(1, n + 1) - n - 1.0
    total = ordered.sum(axis=-1)
    with np.errstate(divide="ignore", invalid="ignore"):
        return (ordered * weights).sum(axis=-1) / (n * total)


def gini_index(topk: np.ndarray, n_items: int, k: int) -> float:
    """Compute Gini@k, the Gini index of top-k exposure over all catalog items.

    The exposure count of an item is the number of users who have it in their top k.
    Every catalog item counts, including items never recommended, so a model that
    recommends few items scores close to 1. The formula and the (n - 1) / n maximum are
    in ``gini_from_counts``. Reference: Castells, Hurley and Vargas, "Novelty and Diversity
    in Recommender Systems", Recommender Systems Handbook, 2nd ed., Springer 2015.

    It is a global metric, not a per-user mean; users without target items are not
    ranked by ``evaluate``, so their lists never count.
    """
    counts = exposure_counts(topk, n_items, k)[1:]
    return float(gini_from_counts(counts))
