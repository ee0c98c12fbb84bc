"""Ranking metrics, one module per metric, all computed from arrays.

Accuracy metrics (HR, Precision, Recall, NDCG, MRR, MAP) take a (U, T) rank matrix of
1-based target ranks padded with ``np.inf`` and return one value per user, NaN for users
without target items. Beyond-accuracy metrics take the (U, K) top-k matrix: Novelty and
ARP return one value per user, Coverage and Gini one value for all users.
"""

from __future__ import annotations

from recwidgets.evaluation.metrics._ranks import (
    count_users_without_targets,
    mean_over_listed,
    rank_matrix,
)
from recwidgets.evaluation.metrics.arp import average_popularity
from recwidgets.evaluation.metrics.average_precision import average_precision
from recwidgets.evaluation.metrics.coverage import catalog_coverage, coverage_from_counts, exposure_counts
from recwidgets.evaluation.metrics.gini import gini_from_counts, gini_index
from recwidgets.evaluation.metrics.hit_ratio import hit_ratio
from recwidgets.evaluation.metrics.mrr import reciprocal_rank
from recwidgets.evaluation.metrics.ndcg import ndcg
from recwidgets.evaluation.metrics.novelty import novelty, self_information
from recwidgets.evaluation.metrics.precision import precision
from recwidgets.evaluation.metrics.recall import recall

#: Per-user accuracy metrics by label prefix, each ``f(ranks, k) -> (U,)``.
ACCURACY_METRICS = {
    "HR": hit_ratio,
    "Precision": precision,
    "Recall": recall,
    "NDCG": ndcg,
    "MRR": reciprocal_rank,
    "MAP": average_precision,
}

#: Per-user beyond-accuracy metrics by label prefix, each ``f(topk, train_popularity, k) -> (U,)``.
LIST_METRICS = {
    "Novelty": novelty,
    "ARP": average_popularity,
}

#: Metrics computed once over all users' top-k lists, not averaged per user.
GLOBAL_METRICS = ("Coverage", "Gini")

#: Every label prefix in display order.
METRIC_ORDER = ("HR", "Precision", "Recall", "NDCG", "MRR", "MAP", "Coverage", "Gini", "Novelty", "ARP")

__all__ = [
    "ACCURACY_METRICS",
    "GLOBAL_METRICS",
    "LIST_METRICS",
    "METRIC_ORDER",
    "average_popularity",
    "average_precision",
    "catalog_coverage",
    "count_users_without_targets",
    "coverage_from_counts",
    "exposure_counts",
    "gini_from_counts",
    "gini_index",
    "hit_ratio",
    "mean_over_listed",
    "ndcg",
    "novelty",
    "precision",
    "rank_matrix",
    "recall",
    "reciprocal_rank",
    "self_information",
]
