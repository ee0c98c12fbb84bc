"""The interaction stream after a cutoff: shared id vocabularies, stream order and windows.

An online update replays the interactions after a time cutoff in windows. Every event gets
a position in one global stream order (timestamp, then user, then the user's own order).
A window is then a range of positions, whether it is defined by a duration or by a number
of interactions. "A user's history up to the end of a window" is every event of that user
at an earlier position.
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass

import numpy as np
import pandas as pd

from recwidgets.data.log import PAD, InteractionLog
from recwidgets.errors import ConfigError, DataError

logger = logging.getLogger(__name__)

WINDOW_UNITS = ("days", "hours", "interactions")


def cutoff_time(log: InteractionLog, cutoff) -> int:
    """Return ``cutoff`` as unix seconds.

    Accepts a quantile of the timestamps in (0, 1) (a float such as 0.8), unix seconds (an
    int), or a ``datetime`` / ``pandas.Timestamp`` / date string (naive values are UTC).
    """
    timestamps = log.interactions["timestamp"].to_numpy()
    if isinstance(cutoff, (float, np.floating)) and 0.0 < float(cutoff) < 1.0:
        return int(np.quantile(timestamps, float(cutoff)))
    if isinstance(cutoff, (int, np.integer)) and not isinstance(cutoff, (bool, np.bool_)):
        return int(cutoff)
    if isinstance(cutoff, (str, dt.datetime, dt.date, pd.Timestamp)):
        try:
            stamp = pd.Timestamp(cutoff)
        except (TypeError, ValueError) as error:
            raise ConfigError(f"cutoff={cutoff!r} is not a date; pass an ISO date such as '1998-03-01'.") from error
        if stamp.tzinfo is not None:
            stamp = stamp.tz_convert("UTC").tz_localize(None)
        return int((stamp - pd.Timestamp(0)) // pd.Timedelta(seconds=1))
    raise ConfigError(
        f"cutoff={cutoff!r} is invalid; pass a quantile of the timestamps in (0, 1) such as 0.8, unix seconds "
        "as an int, or a date such as '1998-03-01'."
    )


@dataclass(frozen=True)
class WindowSpec:
    """How long one update window is: ``size`` days, hours or interactions (``unit``)."""

    size: float
    unit: str

    @property
    def by_count(self) -> bool:
        """Whether windows hold a fixed number of interactions rather than a duration."""
        return self.unit == "interactions"

    @property
    def seconds(self) -> int:
        """Length of a duration window in seconds (0 for count windows)."""
        if self.unit == "days":
            return int(round(self.size * 86400))
        if self.unit == "hours":
            return int(round(self.size * 3600))
        return 0

    def label(self) -> str:
        """Return a short text such as ``"7 days"`` or ``"500 interactions"``."""
        size = f"{self.size:g}"
        unit = self.unit[:-1] if self.size == 1 else self.unit
        return f"{size} {unit}"


def window_spec(window) -> WindowSpec:
    """Parse a window: an int (interactions), a ``timedelta`` or a pandas duration string such as ``"7D"``.

    Durations of a whole number of days use the unit ``"days"``, others ``"hours"``. A
    ``WindowSpec`` passes through unchanged.
    """
    if isinstance(window, WindowSpec):
        if window.unit not in WINDOW_UNITS or not window.size > 0:
            raise ConfigError(f"window={window!r} is invalid; the unit must be one of {WINDOW_UNITS} and the size > 0.")
        return window
    if isinstance(window, (int, np.integer)) and not isinstance(window, (bool, np.bool_)):
        if window < 1:
            raise ConfigError(f"window={window!r} is invalid; pass a positive number of interactions, such as 500.")
        return WindowSpec(int(window), "interactions")
    if isinstance(window, (str, dt.timedelta, pd.Timedelta)):
        try:
            duration = pd.Timedelta(window)
        except (TypeError, ValueError) as error:
            raise ConfigError(
                f"window={window!r} is not a duration; pass a pandas duration such as '7D' or '12h', "
                "or a number of interactions as an int."
            ) from error
        seconds = duration.total_seconds()
        if not seconds >= 3600:
            raise ConfigError(f"window={window!r} is shorter than one hour; pass a duration of at least '1h'.")
        if seconds % 86400 == 0:
            return WindowSpec(seconds / 86400, "days")
        return WindowSpec(seconds / 3600, "hours")
    raise ConfigError(
        f"window={window!r} is invalid; pass a duration such as '7D' or a timedelta, or a number of interactions."
    )


@dataclass(frozen=True)
class Window:
    """One update window: stream positions ``[start, stop)`` and the times it covers.

    ``start_time`` and ``end_time`` are unix seconds; ``end_time`` is exclusive for
    duration windows and the last event's time for count windows.
    """

    start: int
    stop: int
    start_time: int
    end_time: int

    def __len__(self) -> int:
        return self.stop - self.start


@dataclass(frozen=True, eq=False)
class OnlineLogs:
    """A log split at a cutoff into a pre-cutoff log and the full stream, over shared ids.

    Items and users seen before the cutoff get the ids ``1..n`` in both logs, so a model
    trained on ``pre_cutoff`` scores the same ids in ``stream``. Items and users first seen
    after the cutoff get the next ids in order of their first interaction. Growing a table
    to the largest id seen so far therefore adds exactly the new rows.
    """

    stream: InteractionLog
    pre_cutoff: InteractionLog
    cutoff: int


def online_logs(log: InteractionLog, cutoff) -> OnlineLogs:
    """Renumber ``log`` for online updates at ``cutoff``; see :class:`OnlineLogs`.

    Train the model on ``pre_cutoff`` (for example ``leave_last_out(pre_cutoff,
    short_users="train")``) and pass ``stream`` to ``OnlineUpdater``.
    """
    cut = cutoff_time(log, cutoff)
    frame = log.interactions
    before = frame["timestamp"].to_numpy() < cut
    if not before.any():
        raise DataError(f"no interaction happens before the cutoff {cut}; choose a later cutoff.")
    if before.all():
        raise DataError(f"no interaction happens at or after the cutoff {cut}; choose an earlier cutoff.")

    item_map = _first_seen_order(frame["item"].to_numpy(), frame["timestamp"].to_numpy(), before, log.n_items)
    user_map = _first_seen_order(frame["user"].to_numpy(), frame["timestamp"].to_numpy(), before, log.n_users)

    renumbered = pd.DataFrame(
        {
            "user": user_map[frame["user"].to_numpy()],
            "item": item_map[frame["item"].to_numpy()],
            "timestamp": frame["timestamp"].to_numpy(),
            "rating": frame["rating"].to_numpy(),
            "row": np.arange(len(frame)),
        }
    )
    # The old row order breaks timestamp ties, as InteractionLog.from_frame does.
    renumbered = renumbered.sort_values(["user", "timestamp", "row"], kind="stable").drop(columns="row")
    renumbered = renumbered.reset_index(drop=True)

    stream = _relabelled_log(log, renumbered, item_map, user_map, variant={"online_cutoff": cut})
    pre_frame = renumbered[renumbered["timestamp"].to_numpy() < cut].reset_index(drop=True)
    n_pre_items = int(pre_frame["item"].max())
    n_pre_users = int(pre_frame["user"].max())
    pre_cutoff = InteractionLog(
        interactions=pre_frame,
        user_ids=stream.user_ids[: n_pre_users + 1],
        item_ids=stream.item_ids[: n_pre_items + 1],
        items=None if stream.items is None else stream.items[stream.items.index <= n_pre_items],
        users=None if stream.users is None else stream.users[stream.users.index <= n_pre_users],
        name=log.name,
        variant={**log.variant, "before_cutoff": cut},
    )
    logger.info(
        "online logs at %d: %d items and %d users before the cutoff, %d new items and %d new users after it",
        cut,
        n_pre_items,
        n_pre_users,
        stream.n_items - n_pre_items,
        stream.n_users - n_pre_users,
    )
    return OnlineLogs(stream=stream, pre_cutoff=pre_cutoff, cutoff=cut)


def _first_seen_order(ids: np.ndarray, timestamps: np.ndarray, before: np.ndarray, n: int) -> np.ndarray:
    """Return an old-id -> new-id map: ids seen before the cutoff first (old order), then by first event time."""
    first_time = np.full(n + 1, np.iinfo(np.int64).max, dtype=np.int64)
    np.minimum.at(first_time, ids, timestamps)
    seen_before = np.zeros(n + 1, dtype=bool)
    seen_before[ids[before]] = True
    old_ids = np.arange(1, n + 1)
    known = old_ids[seen_before[1:]]
    new = old_ids[~seen_before[1:]]
    new = new[np.argsort(first_time[new], kind="stable")]
    mapping = np.zeros(n + 1, dtype=np.int64)
    mapping[np.concatenate([known, new])] = np.arange(1, n + 1)
    mapping[PAD] = PAD
    return mapping


def _relabelled_log(
    log: InteractionLog, interactions: pd.DataFrame, item_map: np.ndarray, user_map: np.ndarray, variant: dict
) -> InteractionLog:
    """Return ``log`` with new internal ids, its raw-id vocabularies and metadata moved along."""
    item_ids = np.empty_like(log.item_ids)
    item_ids[item_map] = log.item_ids
    user_ids = np.empty_like(log.user_ids)
    user_ids[user_map] = log.user_ids

    def move(meta: pd.DataFrame | None, mapping: np.ndarray) -> pd.DataFrame | None:
        if meta is None:
            return None
        moved = meta.copy()
        moved.index = pd.Index(mapping[meta.index.to_numpy()], name=meta.index.name)
        return moved.sort_index()

    return InteractionLog(
        interactions=interactions,
        user_ids=user_ids,
        item_ids=item_ids,
        items=move(log.items, item_map),
        users=move(log.users, user_map),
        name=log.name,
        variant={**log.variant, **variant},
    )


class Stream:
    """Global stream order of a log and each user's events in it.

    ``items[p]``, ``users[p]`` and ``times[p]`` describe the event at stream position ``p``.
    ``first`` is the position of the first event at or after the cutoff.
    """

    def __init__(self, log: InteractionLog, cutoff: int):
        frame = log.interactions
        n = len(frame)
        # Per-user order is the log's order (time, then original row), so sorting on
        # (time, user, row of the log) keeps each user's events in their own order.
        order = np.lexsort((np.arange(n), frame["user"].to_numpy(), frame["timestamp"].to_numpy()))
        self.items = frame["item"].to_numpy()[order].astype(np.int64)
        self.users = frame["user"].to_numpy()[order].astype(np.int64)
        self.times = frame["timestamp"].to_numpy()[order].astype(np.int64)
        self.cutoff = int(cutoff)
        self.first = int(np.searchsorted(self.times, self.cutoff, side="left"))
        self.n_users = log.n_users
        self.n_items = log.n_items

        # _user_positions[u] is the int64 array of user u's stream positions, ascending.
        by_user_order = np.argsort(self.users, kind="stable")
        bounds = np.searchsorted(self.users[by_user_order], np.arange(self.n_users + 2))
        self._user_positions = [by_user_order[bounds[u] : bounds[u + 1]] for u in range(self.n_users + 1)]

    def __len__(self) -> int:
        return len(self.items)

    def positions(self, user: int) -> np.ndarray:
        """Return the stream positions of ``user``'s events, ascending."""
        return self._user_positions[int(user)]

    def history(self, user: int, stop: int) -> np.ndarray:
        """Return ``user``'s items at stream positions before ``stop``, oldest first."""
        positions = self._user_positions[int(user)]
        return self.items[positions[: np.searchsorted(positions, stop, side="left")]]

    def max_item(self, stop: int) -> int:
        """Return the largest item id among the events before ``stop`` (0 when none)."""
        return int(self.items[:stop].max()) if stop > 0 else 0

    def max_user(self, stop: int) -> int:
        """Return the largest user id among the events before ``stop`` (0 when none)."""
        return int(self.users[:stop].max()) if stop > 0 else 0

    def next_window(self, position: int, start_time: int, spec: WindowSpec) -> Window | None:
        """Return the window that starts at ``position`` (and, for durations, ``start_time``), or None at the end.

        A duration window covers ``[start_time, start_time + length)``. When that span contains
        no event, the window moves forward to start at the time of the next event, so a quiet
        period never yields an empty window.
        """
        if position >= len(self):
            return None
        if spec.by_count:
            stop = min(position + int(spec.size), len(self))
            return Window(position, stop, int(self.times[position]), int(self.times[stop - 1]))
        start_time = int(start_time)
        if self.times[position] >= start_time + spec.seconds:
            start_time = int(self.times[position])
        end_time = start_time + spec.seconds
        # The event at ``position`` lies before end_time, so the window is never empty.
        stop = int(np.searchsorted(self.times, end_time, side="left"))
        return Window(position, stop, start_time, end_time)

