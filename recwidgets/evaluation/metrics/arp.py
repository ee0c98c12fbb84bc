"""ARP@k: average training popularity of the recommended items."""

from __future__ import annotations

import numpy as np

from recwidgets.evaluation.metrics._ranks import mean_over_listed, top_items


def average_popularity(topk: np.ndarray, train_popularity: np.ndarray, k: int) -> np.ndarray:
    """Compute ARP@k per user: the mean training interaction count of the items in the top k.

    ARP@k(u) = (1 / |L_u|) * sum over i in L_u of n_i, with L_u the user's top-k list and
    n_i the item's number of training interactions (a count, not a share). Padding entries
    are skipped, so a list shorter than k averages over its items, and an empty list gives
    NaN. Reference: Abdollahpouri, Burke and Mobasher, "Managing Popularity Bias in
    Recommender Systems with Personalized Re-ranking", FLAIRS 2019.

    Users without target items are not ranked by ``evaluate``, so they never enter the mean.
    """
    items = top_items(topk, k)
    return mean_over_listed(np.asarray(train_popularity, dtype=np.float64)[items], items)
