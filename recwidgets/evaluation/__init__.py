"""Evaluation: full or sampled ranking, ranking metrics, bootstrap intervals and segments.

``evaluate(model, split)`` returns an ``EvaluationResult``; ``compare`` puts several
results side by side. Metric functions over plain arrays live in
``recwidgets.evaluation.metrics``, one module per metric.
"""

from __future__ import annotations

from recwidgets.evaluation.evaluator import check_cutoffs, evaluate
from recwidgets.evaluation.ranking import Ranking, rank_users
from recwidgets.evaluation.result import EvaluationResult, compare, metric_label
from recwidgets.evaluation.sampling import sample_negatives
from recwidgets.evaluation.segments import activity_segments, popularity_buckets

__all__ = [
    "EvaluationResult",
    "Ranking",
    "activity_segments",
    "check_cutoffs",
    "compare",
    "evaluate",
    "metric_label",
    "popularity_buckets",
    "rank_users",
    "sample_negatives",
]
