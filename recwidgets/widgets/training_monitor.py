"""TrainingMonitor: live training-loss and validation curves, usable as a ``fit`` callback."""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd
import traitlets

from recwidgets.errors import ConfigError
from recwidgets.widgets.base import ArrayTrait, RecWidget, validator

logger = logging.getLogger(__name__)

# Keys of an epoch event that are bookkeeping, not curves.
_NON_SERIES = {"event"}

# Batch losses are averaged into at most this many points before they are sent, so a long
# run keeps a bounded message size (2 float32 columns: 16 KB).
MAX_BATCH_POINTS = 2000


class TrainingMonitor(RecWidget):
    """Training-loss and validation curves with the best epoch marked.

    Pass an instance as a ``fit`` callback to watch training live::

        monitor = TrainingMonitor()
        display(monitor)
        model.fit(split, callbacks=[monitor])

    or build one from a finished model with :meth:`from_history`. The widget understands
    the event dicts of :func:`recwidgets.training.trainer.fit_loop`: ``"batch"`` (``epoch``,
    ``batch``, ``n_batches``, ``loss``), ``"epoch"`` (one history row), ``"end"``
    (``best_epoch``, ``best_value``, ``stop_reason``, ``epochs_run``) and ``"error"``
    (``error``, sent when the fit raises), which marks the run failed. A dict without an
    ``"event"`` key counts as an epoch row.

    Updates reach the front end at most once per ``min_interval_s`` seconds. A timer
    thread sends a pending update when the interval is over, and the ``"end"`` and
    ``"error"`` events are sent at once.
    """

    _esm_name = "training_monitor"

    history = ArrayTrait(
        help="Per-epoch history, float64 array of shape (n_epochs, len(columns)); NaN where an epoch has no value "
        "(for example validation metrics on epochs that were not validated).",
    ).tag(sync=True)
    columns = traitlets.List(
        traitlets.Unicode(), help="Column names of `history`, such as epoch, train_loss, grad_norm, val_NDCG@10."
    ).tag(sync=True)
    batch_loss = ArrayTrait(
        help="Training loss per optimizer step, float32 array of shape (n_points, 2): column 0 is the position in "
        "epochs (epoch - 1 + batch / n_batches), column 1 the loss. Long runs are averaged down to "
        f"{MAX_BATCH_POINTS} points.",
    ).tag(sync=True)
    best_epoch = traitlets.Int(
        None, allow_none=True, help="Epoch whose parameters the model keeps (validation best); None before any."
    ).tag(sync=True)
    status = traitlets.Unicode(
        "waiting",
        help='Training state: "waiting" (no event yet), "training", "finished", or "failed" (the fit raised, and '
        "`summary` starts with the error).",
    ).tag(sync=True)
    progress = traitlets.Dict(
        help="Latest position: epoch, batch, n_batches (None when unknown) and loss of the last step."
    ).tag(sync=True)
    total_epochs = traitlets.Int(
        None, allow_none=True, help="Planned number of epochs, when known; shown as 'epoch 3 of 20'."
    ).tag(sync=True)
    summary = traitlets.Unicode("", help="One-line summary of the run, filled after the end event.").tag(sync=True)
    monitor_metric = traitlets.Unicode(
        "val_NDCG@10", help="Validation column highlighted in the summary and at the best-epoch marker."
    ).tag(sync=True)
    validation_columns = traitlets.List(
        traitlets.Unicode(),
        help="History columns drawn in the validation chart. Left empty, the view draws `monitor_metric` and the "
        "HR column at the same cutoff; the view's checkboxes change it.",
    ).tag(sync=True)
    smoothing = traitlets.Float(
        0.6,
        help="Exponential smoothing factor in [0, 0.99] applied to the per-step loss curve in the view "
        "(0 draws the raw steps).",
    ).tag(sync=True)

    def __init__(self, *, total_epochs: int | None = None, min_interval_s: float = 0.25, **kwargs: Any):
        if min_interval_s < 0 or not math.isfinite(min_interval_s):
            raise ConfigError(f"min_interval_s={min_interval_s!r} is invalid; pass a number of seconds >= 0.")
        super().__init__(total_epochs=total_epochs, **kwargs)
        self.min_interval_s = float(min_interval_s)
        self.stop_reason: str | None = None
        self.error: str | None = None
        self._rows: list[dict] = []
        self._batches: list[tuple[int, int, int | None, float]] = []
        self._lock = threading.RLock()
        self._last_sync = -math.inf
        self._timer: threading.Timer | None = None
        self._dirty = False
        self._best: int | None = None
        self._progress: dict | None = None
        # Count of messages sent, for tests of the rate limit.
        self.n_syncs = 0

    @validator("smoothing")
    def _check_smoothing(self, proposal: dict) -> float:
        value = float(proposal["value"])
        if not 0.0 <= value <= 0.99:
            raise ConfigError(f"smoothing={value!r} is invalid; pass a factor in [0, 0.99].")
        return value

    # -- construction from a finished run ------------------------------------------------

    @classmethod
    def from_history(
        cls,
        history: pd.DataFrame | list[Mapping[str, Any]],
        *,
        best_epoch: int | None = None,
        stop_reason: str | None = None,
        **kwargs: Any,
    ) -> "TrainingMonitor":
        """Build a static monitor from a finished run, such as ``model.history``.

        ``best_epoch`` defaults to the last value of the history's ``best_epoch`` column.
        """
        frame = pd.DataFrame(history) if not isinstance(history, pd.DataFrame) else history
        if frame.empty:
            raise ConfigError("The training history is empty; fit the model first or pass a non-empty history.")
        if "epoch" not in frame.columns:
            raise ConfigError(f"The training history has no 'epoch' column; its columns are {list(frame.columns)}.")
        kwargs.setdefault("min_interval_s", 0.0)
        monitor = cls(**kwargs)
        monitor._rows = [dict(row) for row in frame.to_dict("records")]
        if best_epoch is None and "best_epoch" in frame.columns and frame["best_epoch"].notna().any():
            best_epoch = int(frame["best_epoch"].dropna().iloc[-1])
        monitor.stop_reason = stop_reason
        with monitor.hold_sync():
            monitor.best_epoch = best_epoch
            monitor.status = "finished"
            monitor._send_history()
            monitor.summary = monitor._summary_text()
        return monitor

    # -- callback protocol ---------------------------------------------------------------

    def __call__(self, event: Mapping[str, Any]) -> None:
        """Record one training event (the ``fit`` callback protocol)."""
        kind = event.get("event", "epoch")
        with self._lock:
            if kind == "batch":
                self._batches.append(
                    (int(event["epoch"]), int(event["batch"]), event.get("n_batches"), float(event["loss"]))
                )
                loss = float(event["loss"])
                # JSON has no NaN, and a non-finite loss is exactly when the status line matters.
                self._progress = {
                    "epoch": int(event["epoch"]),
                    "batch": int(event["batch"]),
                    "n_batches": event.get("n_batches"),
                    "loss": loss if math.isfinite(loss) else None,
                }
            elif kind == "epoch":
                row = {key: value for key, value in event.items() if key not in _NON_SERIES}
                self._rows.append(row)
                if row.get("best_epoch") is not None:
                    self._best = int(row["best_epoch"])
            elif kind == "end":
                if event.get("best_epoch") is not None:
                    self._best = int(event["best_epoch"])
                self.stop_reason = event.get("stop_reason")
                self._finish()
                return
            elif kind == "error":
                self.error = str(event.get("error") or "unknown error")
                self._finish(status="failed")
                return
            else:
                logger.debug("TrainingMonitor ignores event %r", kind)
                return
            self._dirty = True
        self._sync_soon()

    def finish(self) -> None:
        """Send everything recorded and mark the run finished (the ``"end"`` event does this)."""
        with self._lock:
            self._finish()

    # -- data ----------------------------------------------------------------------------

    def training_data(self) -> pd.DataFrame:
        """Return the per-epoch history recorded so far (one row per epoch)."""
        with self._lock:
            return pd.DataFrame(self._rows)

    def data(self) -> pd.DataFrame:
        return self.training_data()

    def _fallback_title(self) -> str:
        return self.summary or f"TrainingMonitor ({self.status})"

    # -- syncing -------------------------------------------------------------------------

    def _sync_soon(self) -> None:
        """Send now, or schedule one send when the last one is younger than ``min_interval_s``."""
        with self._lock:
            wait = self._last_sync + self.min_interval_s - time.monotonic()
            if wait <= 0:
                self._sync()
            elif self._timer is None:
                self._timer = threading.Timer(wait, self._timer_sync)
                self._timer.daemon = True
                self._timer.start()

    def _timer_sync(self) -> None:
        with self._lock:
            self._timer = None
            if self._dirty:
                self._sync()

    def _finish(self, status: str = "finished") -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self.status = status
        self._sync(final=True)

    def _sync(self, *, final: bool = False) -> None:
        """Push the recorded events to the synced traits in one message."""
        with self._lock, self.hold_sync():
            self._send_history()
            self._send_batches()
            if self._best is not None:
                self.best_epoch = self._best
            if self._progress is not None:
                self.progress = dict(self._progress)
            if not final and self.status not in ("finished", "failed"):
                self.status = "training"
            if final:
                self.summary = self._summary_text()
            self._dirty = False
            self._last_sync = time.monotonic()
            self.n_syncs += 1

    def _send_history(self) -> None:
        frame = pd.DataFrame(self._rows)
        if frame.empty:
            return
        columns = [column for column in frame.columns if _is_numeric_column(frame[column])]
        values = frame[columns].apply(pd.to_numeric, errors="coerce").astype(np.float64).to_numpy()
        self.columns = [str(column) for column in columns]
        self.history = values

    def _send_batches(self) -> None:
        if not self._batches:
            return
        epochs = np.array([batch[0] for batch in self._batches], dtype=np.float64)
        steps = np.array([batch[1] for batch in self._batches], dtype=np.float64)
        losses = np.array([batch[3] for batch in self._batches], dtype=np.float64)
        per_epoch = _batches_per_epoch(self._batches)
        totals = np.array([per_epoch[int(epoch)] for epoch in epochs], dtype=np.float64)
        positions = epochs - 1.0 + steps / totals
        points = np.stack([positions, losses], axis=1)
        self.batch_loss = _average_down(points, MAX_BATCH_POINTS).astype(np.float32)

    def _summary_text(self) -> str:
        text = self._run_text()
        return text if self.error is None else f"Training failed: {self.error}. {text}"

    def _run_text(self) -> str:
        frame = pd.DataFrame(self._rows)
        if frame.empty:
            return "No epoch finished."
        parts = [f"{len(frame)} epoch{'s' if len(frame) != 1 else ''}"]
        if self.stop_reason:
            parts[0] += f" ({self.stop_reason})"
        best = self.best_epoch
        if best is not None and "epoch" in frame.columns and (frame["epoch"] == best).any():
            row = frame.loc[frame["epoch"] == best].iloc[-1]
            text = f"best epoch {best}"
            if self.monitor_metric in frame.columns and pd.notna(row.get(self.monitor_metric)):
                text += f": {self.monitor_metric} {float(row[self.monitor_metric]):.4f}"
            if "train_loss" in frame.columns and pd.notna(row.get("train_loss")):
                text += f", train loss {float(row['train_loss']):.4f}"
            parts.append(text)
        if "seconds" in frame.columns:
            parts.append(f"{float(frame['seconds'].sum()):.1f} s of training")
        return "; ".join(parts) + "."


def _is_numeric_column(column: pd.Series) -> bool:
    return pd.api.types.is_numeric_dtype(column) or pd.api.types.is_bool_dtype(column)


def _batches_per_epoch(batches: list[tuple[int, int, int | None, float]]) -> dict[int, float]:
    """Return the step count per epoch: the reported ``n_batches`` or the highest step seen."""
    counts: dict[int, float] = {}
    for epoch, step, n_batches, _ in batches:
        known = float(n_batches) if n_batches else float(step)
        counts[epoch] = max(counts.get(epoch, 1.0), known)
    return counts


def _average_down(points: np.ndarray, limit: int) -> np.ndarray:
    """Average consecutive rows of an (n, 2) array into at most ``limit`` rows."""
    if len(points) <= limit:
        return points
    edges = np.linspace(0, len(points), limit + 1).astype(int)
    return np.stack([points[start:stop].mean(axis=0) for start, stop in zip(edges[:-1], edges[1:]) if stop > start])
