"""Jupyter widgets (anywidget) of recwidgets and the runtime they share."""

from recwidgets.widgets.base import ArrayTrait, RecWidget, array_from_json, array_to_json, load_esm
from recwidgets.widgets.cold_start_curve import ColdStartCurve
from recwidgets.widgets.diagnosis_report import DiagnosisReport
from recwidgets.widgets.metric_panel import MetricPanel
from recwidgets.widgets.training_monitor import TrainingMonitor

__all__ = [
    "ArrayTrait",
    "AttentionHeatmap",
    "ColdStartCurve",
    "DiagnosisReport",
    "MetricPanel",
    "RecWidget",
    "TrainingMonitor",
    "array_from_json",
    "array_to_json",
    "load_esm",
]


def __getattr__(name: str):
    # The attention widget pulls in the explain package, so it is imported on first use.
    if name == "AttentionHeatmap":
        from recwidgets.widgets.attention_heatmap import AttentionHeatmap

        return AttentionHeatmap
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
