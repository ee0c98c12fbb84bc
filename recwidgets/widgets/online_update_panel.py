"""OnlineUpdatePanel: apply, undo and commit online updates, and watch plasticity against forgetting."""

from __future__ import annotations

import logging
import math
import threading
import time
from typing import Any

import numpy as np
import pandas as pd
import traitlets

from recwidgets.errors import ConfigError
from recwidgets.online.stream import WINDOW_UNITS, Window, WindowSpec
from recwidgets.online.updater import OPTIMIZER_STATES, OnlineUpdater, UpdateRecord
from recwidgets.widgets.base import ArrayTrait, RecWidget, validator

logger = logging.getLogger(__name__)

#: Columns of the `history` array, in order. Times are unix seconds.
HISTORY_COLUMNS = (
    "window",
    "update",
    "start",
    "end",
    "n_interactions",
    "lr",
    "steps",
    "replay",
    "plasticity_before",
    "plasticity_after",
    "plasticity_original",
    "forgetting_before",
    "forgetting_after",
    "forgetting_original",
    "jaccard_affected",
    "jaccard_other",
    "drift_l2_in",
    "drift_l2_out",
    "seconds_update",
)

#: Default minimum time between two progress messages (seconds); the first and the last always go out.
PROGRESS_INTERVAL_S = 0.2

# Items of each top-k list shown in the movers table.
MOVER_ITEMS_SHOWN = 5


class OnlineUpdatePanel(RecWidget):
    """Controls and measurements of an :class:`~recwidgets.online.OnlineUpdater`.

    Sliders set the learning rate (log scale), the optimizer steps, the window size and the
    replay fraction of the next update, and the buttons apply, undo, commit or reset. An
    update runs in a background thread, so the kernel keeps handling messages while it
    trains. ``busy`` and ``progress`` report it, and the apply button is disabled meanwhile.
    An apply uses the control values at the moment it starts (recorded in ``running``), and
    later slider moves only affect the next apply.

    Clicking a row of the movers table sets ``selected_user`` (an internal user id), which
    other views can follow::

        panel = OnlineUpdatePanel(updater)
        panel.observe(lambda change: heatmap.show_user(change["new"]), names="selected_user")

    Python code can drive the panel too: ``panel.apply(wait=True)``, ``panel.undo()``,
    ``panel.commit()``, ``panel.reset()``. After changing the updater directly, call
    ``panel.refresh()``.
    """

    _esm_name = "online_update_panel"

    lr = traitlets.Float(help="Learning rate of the next update (Adam), >= 0.").tag(sync=True)
    lr_min = traitlets.Float(1e-5, help="Lower end of the log-scale learning-rate slider.").tag(sync=True)
    lr_max = traitlets.Float(1e-1, help="Upper end of the log-scale learning-rate slider.").tag(sync=True)
    steps = traitlets.Int(help="Optimizer steps of the next update, >= 0.").tag(sync=True)
    steps_max = traitlets.Int(100, help="Upper end of the steps slider.").tag(sync=True)
    window_size = traitlets.Int(help="Size of the next window, in `window_unit`.").tag(sync=True)
    window_unit = traitlets.Unicode(help="Unit of `window_size`: days, hours or interactions.").tag(sync=True)
    window_max = traitlets.Int(help="Upper end of the window-size slider.").tag(sync=True)
    replay = traitlets.Float(help="Fraction of each step's rows drawn from pre-cutoff sequences, in [0, 0.9].").tag(
        sync=True
    )
    optimizer_state = traitlets.Unicode(
        help='"fresh" (a new optimizer per window) or "carry" (one optimizer across windows).'
    ).tag(sync=True)
    sparse = traitlets.Bool(help="Whether only rows of items present in a step may change (read-only).").tag(sync=True)
    k = traitlets.Int(help="List cutoff of the metrics and the top-k lists (read-only).").tag(sync=True)

    busy = traitlets.Bool(False, help="True while an update runs in the background.").tag(sync=True)
    progress = traitlets.Float(0.0, help="Finished fraction of the running update, in [0, 1].").tag(sync=True)
    status = traitlets.Unicode("", help="One line on what the panel is doing or did last.").tag(sync=True)
    running = traitlets.Dict(
        help="Settings of the running update, or of the last one: update, lr, steps, window, replay, "
        "optimizer_state."
    ).tag(sync=True)
    next_window = traitlets.Unicode("", help="Description of the window the next apply trains on.").tag(sync=True)
    can_apply = traitlets.Bool(help="Whether the stream has a window left to apply.").tag(sync=True)
    n_pending = traitlets.Int(help="Updates that undo can revert.").tag(sync=True)
    depth = traitlets.Int(help="Number of updates in the model's current state (pending and committed).").tag(sync=True)

    cards = traitlets.List(
        traitlets.Dict(),
        help="Before/after cards of the latest pending or committed update: key, label, original, before, after "
        "(None where a value is missing).",
    ).tag(sync=True)
    history = ArrayTrait(help=f"float64 array (n_updates, {len(HISTORY_COLUMNS)}), columns as in `history_columns`.").tag(
        sync=True
    )
    history_columns = traitlets.List(traitlets.Unicode(), help="Column names of `history`.").tag(sync=True)
    history_status = traitlets.List(
        traitlets.Unicode(), help="Status of each row of `history`: pending, committed, undone or reset."
    ).tag(sync=True)
    history_settings = traitlets.List(
        traitlets.Unicode(), help="Window size and optimizer state of each row of `history`, as text."
    ).tag(sync=True)
    metric = traitlets.Unicode(help="Metric label drawn in the chart and the history table, such as NDCG@10.").tag(
        sync=True
    )
    movers = traitlets.List(
        traitlets.Dict(),
        help="Users whose top-k list moved most in the latest update: user, user_id, jaccard, in_window, before, "
        "after (item titles).",
    ).tag(sync=True)
    selected_user = traitlets.Int(
        None, allow_none=True, help="Internal id of the user picked in the movers table; None when none."
    ).tag(sync=True)

    def __init__(
        self,
        updater: OnlineUpdater,
        *,
        lr_range: tuple[float, float] = (1e-5, 1e-1),
        steps_max: int = 100,
        progress_interval_s: float = PROGRESS_INTERVAL_S,
    ):
        if not isinstance(updater, OnlineUpdater):
            raise ConfigError(f"OnlineUpdatePanel needs an OnlineUpdater; got {type(updater).__name__}.")
        low, high = (float(value) for value in lr_range)
        if not (0 < low < high and math.isfinite(high)):
            raise ConfigError(f"lr_range={lr_range!r} is invalid; pass (low, high) with 0 < low < high, such as (1e-5, 1e-1).")
        if not (isinstance(progress_interval_s, (int, float)) and progress_interval_s >= 0):
            raise ConfigError(f"progress_interval_s={progress_interval_s!r} is invalid; pass a number of seconds >= 0.")
        self.updater = updater
        self.progress_interval_s = float(progress_interval_s)
        self._titles = updater.log.item_titles()
        self._sync_lock = threading.RLock()
        self._thread: threading.Thread | None = None
        self._last_record: UpdateRecord | None = None
        self._error: BaseException | None = None
        self._last_progress = 0.0

        defaults = updater.defaults
        spec = defaults.window
        super().__init__()
        with self.hold_sync():
            self.lr_min, self.lr_max = low, high
            self.steps_max = max(int(steps_max), defaults.steps)
            self.lr = defaults.lr
            self.steps = defaults.steps
            self.window_unit = spec.unit
            self.window_size = max(1, int(round(spec.size)))
            self.window_max = _window_max(spec)
            self.replay = defaults.replay
            self.optimizer_state = defaults.optimizer_state
            self.sparse = updater.sparse
            self.k = updater.k
            self.metric = f"NDCG@{updater.k}"
            self.history_columns = list(HISTORY_COLUMNS)
            self._publish()
        self.on_msg(self.guard(self._on_message))
        self.observe_guarded(self._on_window_size, names=["window_size", "window_unit"])

    # -- validation ----------------------------------------------------------------------

    @validator("lr")
    def _check_lr(self, proposal: dict) -> float:
        value = float(proposal["value"])
        if not (math.isfinite(value) and value >= 0):
            raise ConfigError(f"lr={value!r} is invalid; pass a learning rate >= 0, such as 1e-3.")
        # The slider rounds to 3 significant digits, which can land up to 0.5% past either end.
        if self._from_front_end("lr") and not self.lr_min * 0.99 <= value <= self.lr_max * 1.01:
            raise ConfigError(f"lr={value!r} is outside the slider's range [{self.lr_min}, {self.lr_max}]; use the slider, or set "
                "panel.lr from Python to go past it.")
        return value

    @validator("steps")
    def _check_steps(self, proposal: dict) -> int:
        value = int(proposal["value"])
        if value < 0:
            raise ConfigError(f"steps={value!r} is invalid; pass an integer >= 0.")
        if self._from_front_end("steps") and value > self.steps_max:
            raise ConfigError(f"steps={value!r} is above the slider's maximum steps_max={self.steps_max}; use the slider, or set "
                "panel.steps from Python to go past it.")
        return value

    @validator("window_size")
    def _check_window_size(self, proposal: dict) -> int:
        value = int(proposal["value"])
        if value < 1:
            raise ConfigError(f"window_size={value!r} is invalid; pass a size of at least 1 {self.window_unit or 'unit'}.")
        if self._from_front_end("window_size") and self.window_max and value > self.window_max:
            raise ConfigError(f"window_size={value!r} is above the slider's maximum window_max={self.window_max}; use the slider, "
                "or set panel.window_size from Python to go past it.")
        return value

    @validator("window_unit")
    def _check_window_unit(self, proposal: dict) -> str:
        value = proposal["value"]
        if value not in WINDOW_UNITS:
            raise ConfigError(f"window_unit={value!r} is invalid; use one of {WINDOW_UNITS}.")
        return value

    @validator("replay")
    def _check_replay(self, proposal: dict) -> float:
        value = float(proposal["value"])
        if not 0.0 <= value <= 0.9:
            raise ConfigError(f"replay={value!r} is invalid; pass a fraction in [0, 0.9].")
        return value

    @validator("busy")
    def _check_busy(self, proposal: dict) -> bool:
        if self._from_front_end("busy"):
            raise ConfigError("busy is set by the kernel while an update runs; the front end cannot change it.")
        return proposal["value"]

    def _from_front_end(self, name: str) -> bool:
        """Return whether ``name`` is being set by a front-end message.

        Python callers may go past the sliders' ranges on purpose. A browser message that
        does so did not come from the sliders, so it is rejected.
        """
        return name in self._property_lock

    @validator("optimizer_state")
    def _check_optimizer_state(self, proposal: dict) -> str:
        value = proposal["value"]
        if value not in OPTIMIZER_STATES:
            raise ConfigError(f"optimizer_state={value!r} is invalid; use one of {OPTIMIZER_STATES}.")
        return value

    def set_state(self, sync_data: dict) -> None:
        # Front-end updates and the background thread's publishing take turns, so a
        # message never interleaves with a half-published update.
        with self._sync_lock:
            super().set_state(sync_data)

    # -- actions -------------------------------------------------------------------------

    def settings(self) -> dict:
        """Return the settings the next apply would use, from the current control values."""
        return {
            "lr": float(self.lr),
            "steps": int(self.steps),
            "window": WindowSpec(int(self.window_size), self.window_unit),
            "replay": float(self.replay),
            "optimizer_state": self.optimizer_state,
        }

    def apply(self, *, wait: bool = False, **overrides: Any) -> UpdateRecord | None:
        """Start an update in a background thread with the current control values (``overrides`` set them first).

        With ``wait`` the call blocks until the update ends and returns its record (re-raising
        its error). Raises ConfigError while another update runs or when the stream is
        exhausted.
        """
        with self._sync_lock:
            if self.busy:
                raise ConfigError("an update is already running; wait for it to finish (panel.wait()) before applying.")
            if not self.can_apply:
                raise ConfigError("the stream is exhausted; undo or reset to replay windows with other settings.")
            with self.hold_sync():
                for name, value in overrides.items():
                    if name not in ("lr", "steps", "window_size", "replay", "optimizer_state"):
                        raise ConfigError(
                            f"unknown setting {name!r}; use lr, steps, window_size, replay or optimizer_state."
                        )
                    setattr(self, name, value)
                settings = self.settings()
                update = len(self.updater.records) + 1
                self.running = {
                    "update": update,
                    "lr": settings["lr"],
                    "steps": settings["steps"],
                    "window": settings["window"].label(),
                    "replay": settings["replay"],
                    "optimizer_state": settings["optimizer_state"],
                }
                self.busy = True
                self.progress = 0.0
                self.status = f"Update {update} started."
            self._error = None
            self._last_record = None
            self._last_progress = 0.0
            self._thread = threading.Thread(target=self._run, args=(settings,), name="online-update", daemon=True)
            self._thread.start()
        if wait:
            return self.wait()
        return None

    def wait(self, timeout: float | None = None) -> UpdateRecord | None:
        """Block until the running update ends; return its record, or re-raise its error."""
        thread = self._thread
        if thread is not None:
            thread.join(timeout)
            if thread.is_alive():
                raise TimeoutError(f"the update is still running after {timeout} s.")
        if self._error is not None:
            raise self._error
        return self._last_record

    def _run(self, settings: dict) -> None:
        """Run one update (in the background thread) and publish the result."""
        try:
            record = self.updater.apply(progress=self._report, **settings)
            self._last_record = record
            message = (
                f"Update {record.update} applied on window {record.window} ({record.n_interactions} interactions, "
                f"{record.seconds_update:.1f} s of training); commit keeps it, undo reverts it."
            )
        except Exception as error:
            logger.exception("online update %s failed (settings %s)", self.running.get("update"), self.running)
            self._error = error
            message = "The update failed; the model is unchanged."
            with self._sync_lock:
                self.python_error = f"{type(error).__name__}: {error}"
        with self._sync_lock, self.hold_sync():
            if self._error is None and self.python_error:
                self.python_error = ""
            self._publish()
            self.status = message
            self.progress = 1.0 if self._error is None else 0.0
            self.busy = False

    def _report(self, fraction: float, message: str) -> None:
        now = time.monotonic()
        if 0.0 < fraction < 1.0 and now - self._last_progress < self.progress_interval_s:
            return
        self._last_progress = now
        with self._sync_lock, self.hold_sync():
            self.progress = float(min(max(fraction, 0.0), 1.0))
            self.status = f"Update {self.running.get('update', '')}: {message} ({fraction:.0%})."

    def undo(self) -> UpdateRecord:
        """Revert the latest pending update exactly; see :meth:`OnlineUpdater.undo`."""
        record = self._while_idle(self.updater.undo)
        self._after_action(f"Update {record.update} undone; the model is back to its state before it.")
        return record

    def commit(self) -> int:
        """Keep the pending updates; see :meth:`OnlineUpdater.commit`."""
        count = self._while_idle(self.updater.commit)
        self._after_action(f"{count} update(s) committed." if count else "Nothing to commit.")
        return count

    def reset(self) -> None:
        """Return to the original model; see :meth:`OnlineUpdater.reset`."""
        self._while_idle(self.updater.reset)
        self._after_action("Reset to the original model at the cutoff.")

    def selected_history(self) -> np.ndarray | None:
        """Return the selected user's item ids up to the next window, oldest first; None without a selection.

        This is the history the updated model reads for that user, for views such as an
        attention heatmap that follow ``selected_user``.
        """
        if self.selected_user is None:
            return None
        return self.updater.stream.history(int(self.selected_user), self.updater.position)

    def refresh(self) -> None:
        """Re-read the updater's history and state, after it was changed without the panel."""
        with self._sync_lock, self.hold_sync():
            self._publish()

    def _while_idle(self, action):
        with self._sync_lock:
            if self.busy:
                raise ConfigError("an update is running; wait for it to finish (panel.wait()) first.")
            return action()

    def _after_action(self, message: str) -> None:
        with self._sync_lock, self.hold_sync():
            self._publish()
            self.status = message

    def _on_message(self, widget: Any, content: dict, buffers: list) -> None:
        """Handle a button press of the front end: ``{"action": ..., "settings": {...}}``.

        Every message is acknowledged with ``{"event": "handled", "action": ...}``, also when
        the action fails, so the front end can enable its buttons again.
        """
        action = content.get("action") if isinstance(content, dict) else None
        try:
            if action == "apply":
                settings = content.get("settings") or {}
                names = ("lr", "steps", "window_size", "replay", "optimizer_state")
                self.apply(**{name: settings[name] for name in names if name in settings})
            elif action == "undo":
                self.undo()
            elif action == "commit":
                self.commit()
            elif action == "reset":
                self.reset()
            else:
                raise ConfigError(f"unknown panel action {action!r}; expected apply, undo, commit or reset.")
        finally:
            self.send({"event": "handled", "action": action})

    # -- publishing ----------------------------------------------------------------------

    def _on_window_size(self, change: dict) -> None:
        """Describe the window that the new size gives, and whether one is left."""
        spec = WindowSpec(int(self.window_size), self.window_unit)
        window = self.updater.next_window(spec)
        with self.hold_sync():
            self.can_apply = window is not None
            self.next_window = _window_text(window, spec)

    def _publish(self) -> None:
        """Copy the updater's state into the synced traits (call inside ``hold_sync``)."""
        updater = self.updater
        records = updater.records
        spec = WindowSpec(int(self.window_size), self.window_unit) if self.window_unit else updater.defaults.window
        window = updater.next_window(spec)
        self.can_apply = window is not None
        self.next_window = _window_text(window, spec)
        self.n_pending = updater.n_pending
        self.depth = updater.depth
        self.history = _history_array(records, self.metric)
        self.history_status = [record.status for record in records]
        self.history_settings = [
            f"{record.settings.window.label()}, {record.settings.optimizer_state} optimizer state" for record in records
        ]
        latest = updater.latest()
        self.cards = _cards(latest, updater.metric_labels())
        self.movers = [] if latest is None else _movers(latest.movers, self._titles)

    # -- data ----------------------------------------------------------------------------

    def online_data(self) -> pd.DataFrame:
        """Return the update history; see :meth:`OnlineUpdater.online_data`."""
        return self.updater.online_data()

    def data(self) -> pd.DataFrame:
        return self.online_data()

    def _fallback_frame(self) -> pd.DataFrame:
        frame = self.online_data()
        if frame.empty:
            return frame
        labels = [f"plasticity_{self.metric}", f"forgetting_{self.metric}"]
        columns = ["window", "update", "status", "start", "end", "lr", "steps", "replay", "optimizer_state"]
        for label in labels:
            columns += [f"{label}_before", f"{label}_after"]
        return frame[[column for column in columns if column in frame.columns]]

    def _fallback_title(self) -> str:
        return f"OnlineUpdatePanel: {self.depth} update(s) held, {self.n_pending} pending"


def _window_max(spec: WindowSpec) -> int:
    """Return the upper end of the window-size slider for the unit of ``spec``."""
    limits = {"days": 60, "hours": 24 * 14, "interactions": 20000}
    return max(limits[spec.unit], int(math.ceil(spec.size)))


def _window_text(window: Window | None, spec: WindowSpec) -> str:
    if window is None:
        return "The stream is exhausted: no window is left after the last applied one."
    start = pd.Timestamp(window.start_time, unit="s").strftime("%Y-%m-%d %H:%M")
    end = pd.Timestamp(window.end_time, unit="s").strftime("%Y-%m-%d %H:%M")
    return f"Next window ({spec.label()}): {start} to {end}, {len(window)} interactions."


def _plain(value) -> float | None:
    """Return a float for JSON, with NaN and missing values as None."""
    if value is None:
        return None
    value = float(value)
    return None if math.isnan(value) else value


def _cards(record: UpdateRecord | None, labels: list[str]) -> list[dict]:
    """Return the before/after cards of ``record`` (empty without a record)."""
    if record is None:
        return []
    cards = []
    for kind, title in (("plasticity", "Next window"), ("forgetting", "Earlier users")):
        for label in labels:
            cards.append(
                {
                    "key": f"{kind}_{label}",
                    "label": f"{title} {label}",
                    "original": _plain(getattr(record, f"{kind}_original")[label]),
                    "before": _plain(getattr(record, f"{kind}_before")[label]),
                    "after": _plain(getattr(record, f"{kind}_after")[label]),
                }
            )
    cards.append(
        {
            "key": "jaccard",
            "label": "Top-k change (Jaccard), window users / others",
            "original": None,
            "before": _plain(record.jaccard_affected),
            "after": _plain(record.jaccard_other),
            "pair": True,
        }
    )
    cards.append(
        {
            "key": "drift",
            "label": "Item embedding drift (L2), in window / out",
            "original": None,
            "before": _plain(record.drift.get("drift_l2_in")),
            "after": _plain(record.drift.get("drift_l2_out")),
            "pair": True,
        }
    )
    return cards


def _history_array(records: list[UpdateRecord], metric: str) -> np.ndarray:
    """Return the (n_updates, len(HISTORY_COLUMNS)) float64 history; NaN where a value is missing."""
    values = np.full((len(records), len(HISTORY_COLUMNS)), np.nan, dtype=np.float64)
    for row, record in enumerate(records):
        entries = {
            "window": record.window,
            "update": record.update,
            "start": record.start.timestamp(),
            "end": record.end.timestamp(),
            "n_interactions": record.n_interactions,
            "lr": record.settings.lr,
            "steps": record.settings.steps,
            "replay": record.settings.replay,
            "plasticity_before": record.plasticity_before.get(metric),
            "plasticity_after": record.plasticity_after.get(metric),
            "plasticity_original": record.plasticity_original.get(metric),
            "forgetting_before": record.forgetting_before.get(metric),
            "forgetting_after": record.forgetting_after.get(metric),
            "forgetting_original": record.forgetting_original.get(metric),
            "jaccard_affected": record.jaccard_affected,
            "jaccard_other": record.jaccard_other,
            "drift_l2_in": record.drift.get("drift_l2_in"),
            "drift_l2_out": record.drift.get("drift_l2_out"),
            "seconds_update": record.seconds_update,
        }
        for column, name in enumerate(HISTORY_COLUMNS):
            value = entries[name]
            values[row, column] = np.nan if value is None else float(value)
    return values


def _movers(frame: pd.DataFrame, titles: list[str]) -> list[dict]:
    """Return the movers table as JSON rows with item titles (the first ``MOVER_ITEMS_SHOWN`` of each list)."""

    def named(items: list[int]) -> list[str]:
        return [titles[item] if 0 < item < len(titles) else str(item) for item in items[:MOVER_ITEMS_SHOWN]]

    rows = []
    for row in frame.itertuples(index=False):
        rows.append(
            {
                "user": int(row.user),
                "user_id": str(row.user_id),
                "jaccard": float(row.jaccard),
                "in_window": bool(row.in_window),
                "before": named(list(row.before)),
                "after": named(list(row.after)),
            }
        )
    return rows
