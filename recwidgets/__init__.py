"""recwidgets: Jupyter widgets to train, evaluate, diagnose and explain sequential recommenders.

The pipeline is plain Python objects that every widget reads::

    log = recwidgets.datasets.load("ml-100k")
    split = recwidgets.leave_last_out(log)
    model = recwidgets.SASRec().fit(split)
    result = recwidgets.evaluate(model, split)
    recwidgets.MetricPanel([result])
"""

from __future__ import annotations

import logging

from recwidgets import datasets
from recwidgets.data import InteractionLog, ProtocolCard, Split, leave_last_out, split, temporal
from recwidgets.evaluation import EvaluationResult, compare, evaluate
from recwidgets.export import save_html
from recwidgets.models import EASE, Popularity, SASRec, SASRecConfig, TorchModuleRecommender
from recwidgets.widgets import MetricPanel, TrainingMonitor

__version__ = "0.1.0"

# Library convention: no output unless the application configures logging.
logging.getLogger(__name__).addHandler(logging.NullHandler())

__all__ = [
    "EASE",
    "EvaluationResult",
    "InteractionLog",
    "MetricPanel",
    "Popularity",
    "ProtocolCard",
    "SASRec",
    "SASRecConfig",
    "Split",
    "TorchModuleRecommender",
    "TrainingMonitor",
    "compare",
    "datasets",
    "evaluate",
    "leave_last_out",
    "save_html",
    "split",
    "temporal",
]
