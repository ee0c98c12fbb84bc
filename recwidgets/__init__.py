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
from recwidgets.diagnose import Finding, diagnose
from recwidgets.evaluation import EvaluationResult, compare, evaluate
from recwidgets.export import save_html
from recwidgets.ipython import load_ipython_extension, unload_ipython_extension
from recwidgets.models import EASE, Popularity, SASRec, SASRecConfig, TorchModuleRecommender
from recwidgets.widgets import ColdStartCurve, DiagnosisReport, MetricPanel, TrainingMonitor

__version__ = "0.1.0"

# Library convention: no output unless the application configures logging.
logging.getLogger(__name__).addHandler(logging.NullHandler())

__all__ = [
    "AttentionHeatmap",
    "ColdStartCurve",
    "Dashboard",
    "DiagnosisReport",
    "EASE",
    "EvaluationResult",
    "Finding",
    "InteractionLog",
    "MetricPanel",
    "OnlineUpdatePanel",
    "Popularity",
    "ProtocolCard",
    "SASRec",
    "SASRecConfig",
    "ShapExplorer",
    "Split",
    "TorchModuleRecommender",
    "TrainingMonitor",
    "compare",
    "datasets",
    "diagnose",
    "evaluate",
    "leave_last_out",
    "load_ipython_extension",
    "save_html",
    "split",
    "temporal",
    "unload_ipython_extension",
]


def __getattr__(name: str):
    # Widgets that pull in the explain and online packages load on first use.
    if name in ("AttentionHeatmap", "Dashboard", "OnlineUpdatePanel", "ShapExplorer"):
        from recwidgets import widgets

        return getattr(widgets, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
