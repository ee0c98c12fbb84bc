"""Novelty@k: mean self-information of the recommended items."""

from __future__ import annotations

import numpy as np

from recwidgets.evaluation.metrics._ranks import mean_over_listed, top_items


def self_information(train_popularity: np.ndarray) -> np.ndarray:
    """Return -log2(share of training interactions) per internal item id, shape (n_items + 1,).

    ``train_popularity`` contains training interaction counts per internal item id, index 0
    being padding. An item with zero training count gets the count 1, so it scores
    -log2(1 / N) with N the number of training interactions: as novel as the rarest seen
    item instead of infinitely novel. Index 0 is NaN.
    """
    counts = np.asarray(train_popularity, dtype=np.float64)
    total = counts[1:].sum()
    information = -np.log2(np.maximum(counts, 1.0) / max(total, 1.0))
    information[0] = np.nan
    return information


def novelty(topk: np.ndarray, train_popularity: np.ndarray, k: int) -> np.ndarray:
    """Compute Novelty@k per user: the mean self-information of the items in the top k.

    Novelty@k(u) = (1 / |L_u|) * sum over i in L_u of -log2(n_i / N), where L_u is the
    user's top-k list, n_i the item's training interaction count and N the number of
    training interactions. Zero-count items use n_i = 1 (see ``self_information``).
    Padding entries are skipped, so a list shorter than k averages over its items, and an
    empty list gives NaN. References: Zhou et al., "Solving the apparent diversity-accuracy
    dilemma of recommender systems", PNAS 107(10), 2010; Castells, Hurley and Vargas,
    "Novelty and Diversity in Recommender Systems", Recommender Systems Handbook 2015.

    Users without target items are not ranked by ``evaluate``, so they never enter the mean.
    """
    items = top_items(topk, k)
    return mean_over_listed(self_information(train_popularity)[items], items)
