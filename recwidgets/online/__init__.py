"""Online updates: train a fitted model on the interactions after a cutoff, window by window.

``OnlineUpdater`` applies, measures, undoes and commits updates. ``online_logs`` renumbers a
log so that a model trained before the cutoff shares its ids with the stream after it.
"""

from recwidgets.online.markov import FirstOrderModel, FirstOrderModule
from recwidgets.online.optim import UpdateOptimizer
from recwidgets.online.stream import OnlineLogs, Window, WindowSpec, cutoff_time, online_logs, window_spec
from recwidgets.online.trainable import OnlineTrainable, SASRecTrainable, as_trainable, new_rows, resize_rows
from recwidgets.online.updater import (
    OnlineUpdater,
    OnlineWarning,
    Snapshot,
    TrainingBatch,
    UpdateRecord,
    UpdateSettings,
)

__all__ = [
    "FirstOrderModel",
    "FirstOrderModule",
    "OnlineLogs",
    "OnlineTrainable",
    "OnlineUpdater",
    "OnlineWarning",
    "SASRecTrainable",
    "Snapshot",
    "TrainingBatch",
    "UpdateOptimizer",
    "UpdateRecord",
    "UpdateSettings",
    "Window",
    "WindowSpec",
    "as_trainable",
    "cutoff_time",
    "new_rows",
    "online_logs",
    "resize_rows",
    "window_spec",
]
