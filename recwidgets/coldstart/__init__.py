"""Cold-start evaluation and adaptation: new users revealed ``n`` interactions at a time, and new items.

``coldstart_split(log)`` keeps a seeded share of users out of training. ``coldstart_curve``
evaluates the plain model, per-user fine-tuning, meta-learned adaptation and two
baselines on those users at each prefix length ``n``; the ``ColdStartCurve`` widget shows
the result, and ``coldstart_finding`` turns it into a diagnosis finding.
"""

from recwidgets.coldstart.adaptation import (
    AdaptationConfig,
    AdaptedRecommender,
    HiddenStateAdapter,
    MetaTrainingResult,
    adapt_parameters,
    meta_train,
    prefix_states,
)
from recwidgets.coldstart.baselines import GenrePopularity
from recwidgets.coldstart.evaluation import (
    CURVE_METRICS,
    ITEM_EDGES,
    STRATEGIES,
    ColdStartResult,
    build_strategies,
    coldstart_curve,
    coldstart_finding,
    coldstart_items_finding,
    item_bucket_labels,
    item_buckets,
    item_exposure,
)
from recwidgets.coldstart.split import DEFAULT_NS, ColdStartSplit, coldstart_split, user_attribute_segments

__all__ = [
    "AdaptationConfig",
    "AdaptedRecommender",
    "CURVE_METRICS",
    "ColdStartResult",
    "ColdStartSplit",
    "DEFAULT_NS",
    "GenrePopularity",
    "HiddenStateAdapter",
    "ITEM_EDGES",
    "MetaTrainingResult",
    "STRATEGIES",
    "adapt_parameters",
    "build_strategies",
    "coldstart_curve",
    "coldstart_finding",
    "coldstart_items_finding",
    "coldstart_split",
    "item_bucket_labels",
    "item_buckets",
    "item_exposure",
    "meta_train",
    "prefix_states",
    "user_attribute_segments",
]
