"""Coverage@k: the share of the catalog that reaches at least one user's top k."""

from __future__ import annotations

import numpy as np

from recwidgets.evaluation.metrics._ranks import top_items


def exposure_counts(topk: np.ndarray, n_items: int, k: int) -> np.ndarray:
    """Count how many users have each item in their top k; shape (n_items + 1,), index 0 is 0.

    Padding entries (id 0) of ``topk`` are not counted.
    """
    items = top_items(topk, k).ravel()
    counts = np.bincount(items, minlength=n_items + 1)[: n_items + 1].astype(np.float64)
    counts[0] = 0.0
    return counts


def coverage_from_counts(counts: np.ndarray) -> np.ndarray:
    """Return the share of items with a positive exposure count over the last axis.

    ``counts`` has shape (..., n_items) and covers the real items only (no padding column).
    """
    return (counts > 0).sum(axis=-1) / counts.shape[-1]


def catalog_coverage(topk: np.ndarray, n_items: int, k: int) -> tuple[float, int]:
    """Compute Coverage@k over all users as (share of the catalog, number of items).

    Coverage@k = |union over users u of top_k(u)| / n_items, the catalog (aggregate)
    coverage of Ge, Delgado-Battenfeld and Jannach, "Beyond accuracy: evaluating recommender
    systems by coverage and serendipity", RecSys 2010.

    It is a global metric, not a per-user mean. Users without target items are not ranked
    by ``evaluate``, so their lists never count; a ``topk`` row of only padding adds nothing.
    """
    counts = exposure_counts(topk, n_items, k)[1:]
    count = int((counts > 0).sum())
    return count / n_items, count
