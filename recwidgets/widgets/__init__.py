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
    "Dashboard",
    "DiagnosisReport",
    "MetricPanel",
    "OnlineUpdatePanel",
    "RecWidget",
    "ShapExplorer",
    "TrainingMonitor",
    "array_from_json",
    "array_to_json",
    "load_esm",
]


def __getattr__(name: str):
    # These widgets pull in the explain and online packages, so they are imported on first use.
    if name == "AttentionHeatmap":
        from recwidgets.widgets.attention_heatmap import AttentionHeatmap

        return AttentionHeatmap
    if name == "Dashboard":
        from recwidgets.widgets.dashboard import Dashboard

        return Dashboard
    if name == "ShapExplorer":
        from recwidgets.widgets.shap_explorer import ShapExplorer

        return ShapExplorer
    if name == "OnlineUpdatePanel":
        from recwidgets.widgets.online_update_panel import OnlineUpdatePanel

        return OnlineUpdatePanel
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
