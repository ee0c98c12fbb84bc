"""Recommenders behind one model protocol: SASRec, baselines, and an adapter for any torch module."""

from recwidgets.models.base import Recommender, TorchModuleRecommender, pad_histories
from recwidgets.models.baselines import EASE, Popularity
from recwidgets.models.sasrec import DEMO_OVERRIDES, SASRec, SASRecConfig, SASRecModule

#: Model classes by their ``name``, for command lines and configuration files.
MODELS = {"sasrec": SASRec, "popularity": Popularity, "ease": EASE}

__all__ = [
    "DEMO_OVERRIDES",
    "EASE",
    "MODELS",
    "Popularity",
    "Recommender",
    "SASRec",
    "SASRecConfig",
    "SASRecModule",
    "TorchModuleRecommender",
    "pad_histories",
]
