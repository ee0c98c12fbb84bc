"""ColdStartCurve: a metric against the number of revealed interactions, one line per strategy."""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
import pandas as pd
import traitlets

from recwidgets.coldstart.evaluation import CURVE_COLUMNS, SEGMENT_LABELS, ColdStartResult
from recwidgets.errors import ConfigError
from recwidgets.widgets.base import ArrayTrait, RecWidget, validator
from recwidgets.widgets.metric_panel import _known_segment_by, _segment_labels

logger = logging.getLogger(__name__)

ALL_USERS = "All cold users"

# Fields of one estimate in the `values` array, in order.
_STATS = ("value", "ci_low", "ci_high")

# Fields of one item-bucket cell in the `item_values` array, in order.
_ITEM_STATS = ("exposure", "hit_rate", "n_targets")


class ColdStartCurve(RecWidget):
    """Cold-start metrics of several strategies against the revealed prefix length ``n``, with CI bands.

    ``result`` comes from :func:`recwidgets.coldstart.coldstart_curve`. Every estimate
    (strategy, n, metric, segment) and every per-user value is precomputed and sent as
    binary arrays, so switching the metric or the segment and clicking points work in the
    offline export too. A click on a point (or setting ``selected_strategy`` and
    ``selected_n``) fills :attr:`selected_users` with the users evaluated at that ``n``
    in the current segment. The widget lists them with their metric value, worst first.

    Example::

        curve = coldstart_curve(model, cold_split)
        widget = ColdStartCurve(curve, metric="HR@10", segment_by="gender")
        widget.selected_strategy, widget.selected_n = "none", 3
        widget.selected_users  # internal ids of the cold users evaluated at n = 3
    """

    _esm_name = "cold_start_curve"

    strategies = traitlets.List(traitlets.Unicode(), help="Strategy names, one line each, in legend order.").tag(sync=True)
    ns = traitlets.List(traitlets.Int(), help="Revealed prefix lengths n on the x axis, ascending.").tag(sync=True)
    metric_names = traitlets.List(traitlets.Unicode(), help="Metric labels such as 'NDCG@10' with precomputed values.").tag(
        sync=True
    )
    metric = traitlets.Unicode("NDCG@10", help="Metric label drawn on the y axis; one of `metric_names`.").tag(sync=True)
    segment_groups = traitlets.List(
        traitlets.Dict(),
        help='Breakdowns as {"key", "label", "segments"}; the key "" is the one segment of all cold users. The rows '
        "of `values` are the segments of every group, in this order.",
    ).tag(sync=True)
    segment_by = traitlets.Unicode(
        "", help='Breakdown in use: "" (all cold users), "activity", "gender" or "age" when present.'
    ).tag(sync=True)
    segment = traitlets.Unicode("", help="Segment of the current breakdown whose curve is drawn.").tag(sync=True)
    values = ArrayTrait(
        help="float64 array (n_strategies, n_ns, n_metrics, n_segment_rows, 3): value, ci_low, ci_high; NaN where "
        "no user was evaluated."
    ).tag(sync=True)
    counts = ArrayTrait(help="int32 array (n_ns, n_segment_rows): users evaluated per n and segment.").tag(sync=True)
    skipped = ArrayTrait(help="int32 array (n_ns,): cold users with n or fewer interactions, left out at n.").tag(
        sync=True
    )
    user_ids = ArrayTrait(help="int32 array (n_users,): internal ids of the cold users, ascending.").tag(sync=True)
    user_rows = ArrayTrait(
        help="int32 array (n_groups, n_users): the segment row (index into the rows of `values`) of each user per "
        "breakdown, -1 when the user has no label there."
    ).tag(sync=True)
    user_values = ArrayTrait(
        help="float32 array (n_strategies, n_ns, n_metrics, n_users): per-user metric values, NaN where the user "
        "was not evaluated at that n."
    ).tag(sync=True)
    item_buckets = traitlets.List(traitlets.Unicode(), help="Labels of the training-count buckets of items.").tag(
        sync=True
    )
    item_k = traitlets.Int(10, help="Cutoff of the item exposure and hit-rate table.").tag(sync=True)
    item_counts = ArrayTrait(help="int32 array (n_buckets,): catalog items per training-count bucket.").tag(sync=True)
    item_values = ArrayTrait(
        help="float64 array (n_strategies, n_ns, n_buckets, 3): exposure (share of top-k slots), hit rate and "
        "number of targets per bucket; NaN where undefined."
    ).tag(sync=True)
    selected_strategy = traitlets.Unicode("", help="Strategy of the selected point; empty when none.").tag(sync=True)
    selected_n = traitlets.Int(-1, help="Prefix length n of the selected point; -1 when none.").tag(sync=True)
    selected_users = ArrayTrait(
        help="Internal ids (ascending) of the users behind the selected point in the current segment; empty when none."
    ).tag(sync=True)
    notes = traitlets.List(traitlets.Unicode(), help="Notes shown under the chart, such as users left out at large n.").tag(
        sync=True
    )
    card_rows = traitlets.List(traitlets.List(), help="Protocol card as [label, text] rows.").tag(sync=True)

    def __init__(self, result: ColdStartResult, *, metric: str = "NDCG@10", segment_by: str = "", segment: str | None = None):
        if not isinstance(result, ColdStartResult):
            raise ConfigError(
                f"ColdStartCurve needs a ColdStartResult from recwidgets.coldstart.coldstart_curve; got {type(result).__name__}."
            )
        self._result = result
        groups = _segment_groups(result)
        metrics = list(result.metrics)
        if metric not in metrics:
            raise ConfigError(f"metric={metric!r} has no precomputed values; use one of {metrics}.")

        super().__init__()
        with self.hold_sync():
            self.strategies = list(result.strategies)
            self.ns = list(result.ns)
            self.metric_names = metrics
            self.segment_groups = groups
            self.values, self.counts = _estimate_arrays(result, groups)
            self.skipped = _skipped(result)
            self.user_ids, self.user_rows, self.user_values = _user_arrays(result, groups)
            self.item_buckets = list(result.item_buckets)
            self.item_k = int(result.item_k)
            self.item_counts, self.item_values = _item_arrays(result)
            self.notes = _notes(result)
            self.card_rows = [[label, text] for label, text in result.card.rows()]
            self.selected_users = np.empty(0, dtype=np.int64)
            self.metric = metric
            self.segment_by = segment_by
            self.segment = segment if segment is not None else self.segment_labels(segment_by)[0]
        self.observe_guarded(self._on_breakdown, names=["segment_by"])
        self.observe_guarded(self._on_selection, names=["selected_strategy", "selected_n", "segment"])

    # -- validation ----------------------------------------------------------------------

    @validator("metric")
    def _check_metric(self, proposal: dict) -> str:
        value = proposal["value"]
        if self.metric_names and value not in self.metric_names:
            raise ConfigError(f"metric={value!r} has no precomputed values; use one of {self.metric_names}.")
        return value

    @validator("segment_by")
    def _check_segment_by(self, proposal: dict) -> str:
        return _known_segment_by(proposal["value"], self.segment_groups)

    @validator("segment")
    def _check_segment(self, proposal: dict) -> str:
        value = proposal["value"]
        if self.segment_groups:
            labels = self.segment_labels()
            if value not in labels:
                raise ConfigError(f"segment={value!r} is not a segment of {self.segment_by or 'all users'!r}; use one of {labels}.")
        return value

    # -- selection -----------------------------------------------------------------------

    def segment_labels(self, segment_by: str | None = None) -> list[str]:
        """Return the segment labels of a breakdown (the current one by default)."""
        return _segment_labels(self.segment_groups, self.segment_by if segment_by is None else segment_by)

    def _on_breakdown(self, change: dict) -> None:
        labels = self.segment_labels(change["new"])
        if self.segment not in labels:
            self.segment = labels[0]

    def _on_selection(self, change: dict) -> None:
        strategy, n = self.selected_strategy, self.selected_n
        if not strategy or n == -1:
            self.selected_users = np.empty(0, dtype=np.int64)
            return
        # Checked here, not in a validator, so a bad value from the front end shows in python_error.
        if strategy not in self.strategies or n not in self.ns:
            self.selected_users = np.empty(0, dtype=np.int64)
            raise ConfigError(
                f"point (selected_strategy={strategy!r}, selected_n={n}) does not exist; use a strategy of "
                f"{self.strategies} and n of {self.ns}, or selected_n=-1 for none."
            )
        users = self._result.users(strategy, n)
        if self.segment_by:
            segments = self._result.segments.set_index("user")[self.segment_by]
            users = users[segments.reindex(users).to_numpy() == self.segment]
        self.selected_users = users
        logger.debug("point (%s, n=%d) selected: %d users in segment %r", strategy, n, len(users), self.segment)

    # -- data ----------------------------------------------------------------------------

    def coldstart_data(self, *, segments: bool = False) -> pd.DataFrame:
        """Return the curve in long form: ``strategy, n, metric, value, ci_low, ci_high, n_users``.

        With ``segments=True`` the rows of every segment follow, with the extra columns
        ``segment_by`` and ``segment`` (``""`` and ``"All cold users"`` for all users).
        """
        frame = self._result.data()
        if not segments:
            return frame
        overall = frame.assign(segment_by="", segment=ALL_USERS)
        return pd.concat([overall, self._result.segment_curve], ignore_index=True)[
            [*CURVE_COLUMNS[:2], "segment_by", "segment", *CURVE_COLUMNS[2:]]
        ]

    def items_data(self) -> pd.DataFrame:
        """Return item exposure and hit rate per (strategy, n, training-count bucket)."""
        return self._result.items.copy()

    def data(self) -> pd.DataFrame:
        return self.coldstart_data()

    def _fallback_frame(self) -> pd.DataFrame:
        """Return the current metric as text with intervals: one row per n, one column per strategy."""
        rows = self._result.curve[self._result.curve["metric"] == self.metric]
        cells = rows.assign(text=[_estimate_text(row) for row in rows.itertuples()])
        frame = cells.pivot_table(index="n", columns="strategy", values="text", aggfunc="first", sort=False)
        return frame.reindex(columns=self.strategies)

    def _fallback_title(self) -> str:
        return f"ColdStartCurve: {self.metric} against revealed interactions n"


# -- building the arrays ------------------------------------------------------------------


def _segment_groups(result: ColdStartResult) -> list[dict]:
    groups = [{"key": "", "label": ALL_USERS, "segments": [ALL_USERS]}]
    for column, label in SEGMENT_LABELS.items():
        if column not in result.segments.columns:
            continue
        present = sorted(
            {value for value in result.segments[column] if isinstance(value, str) and value}, key=_segment_sort_key
        )
        if present:
            groups.append({"key": column, "label": label, "segments": present})
    return groups


def _segment_sort_key(label: str) -> tuple[int, str]:
    # Text order fits quartiles ("Q1 ...") and age groups once "under 25" comes first.
    return (0 if label.startswith("under") else 1, label)


def _row_index(groups: list[dict]) -> dict[tuple[str, str], int]:
    rows = {}
    for group in groups:
        for segment in group["segments"]:
            rows[(group["key"], segment)] = len(rows)
    return rows


def _estimate_arrays(result: ColdStartResult, groups: list[dict]) -> tuple[np.ndarray, np.ndarray]:
    rows = _row_index(groups)
    strategy_index = {name: index for index, name in enumerate(result.strategies)}
    n_index = {n: index for index, n in enumerate(result.ns)}
    metric_index = {name: index for index, name in enumerate(result.metrics)}
    values = np.full((len(strategy_index), len(n_index), len(metric_index), len(rows), 3), np.nan)
    counts = np.zeros((len(n_index), len(rows)), dtype=np.int32)

    overall = result.curve.assign(segment_by="", segment=ALL_USERS)
    for frame in (overall, result.segment_curve):
        for row in frame.itertuples(index=False):
            position = rows.get((row.segment_by, row.segment))
            if position is None:
                continue
            s, n = strategy_index[row.strategy], n_index[row.n]
            values[s, n, metric_index[row.metric], position] = (row.value, row.ci_low, row.ci_high)
            counts[n, position] = max(counts[n, position], int(row.n_users))
    return values, counts


def _skipped(result: ColdStartResult) -> np.ndarray:
    per_n = result.curve.groupby("n")["n_skipped"].max()
    return np.array([int(per_n.get(n, 0)) for n in result.ns], dtype=np.int32)


def _user_arrays(result: ColdStartResult, groups: list[dict]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rows = _row_index(groups)
    segments = result.segments.sort_values("user")
    users = segments["user"].to_numpy(dtype=np.int64)
    column_of_user = {int(user): index for index, user in enumerate(users)}
    user_rows = np.full((len(groups), len(users)), -1, dtype=np.int32)
    for group_index, group in enumerate(groups):
        if not group["key"]:
            user_rows[group_index] = rows[("", ALL_USERS)]
            continue
        for index, label in enumerate(segments[group["key"]].to_numpy()):
            user_rows[group_index, index] = rows.get((group["key"], label), -1)

    strategy_index = {name: index for index, name in enumerate(result.strategies)}
    n_index = {n: index for index, n in enumerate(result.ns)}
    user_values = np.full((len(strategy_index), len(n_index), len(result.metrics), len(users)), np.nan, dtype=np.float32)
    per_user = result.per_user
    if not per_user.empty:
        s = per_user["strategy"].map(strategy_index).to_numpy(dtype=np.int64)
        n = per_user["n"].map(n_index).to_numpy(dtype=np.int64)
        u = per_user["user"].map(column_of_user).to_numpy(dtype=np.int64)
        for m, label in enumerate(result.metrics):
            user_values[s, n, m, u] = per_user[label].to_numpy(dtype=np.float32)
    return users, user_rows, user_values


def _item_arrays(result: ColdStartResult) -> tuple[np.ndarray, np.ndarray]:
    buckets = list(result.item_buckets)
    item_values = np.full((len(result.strategies), len(result.ns), len(buckets), len(_ITEM_STATS)), np.nan)
    item_counts = np.zeros(len(buckets), dtype=np.int32)
    if result.items.empty:
        return item_counts, item_values
    strategy_index = {name: index for index, name in enumerate(result.strategies)}
    n_index = {n: index for index, n in enumerate(result.ns)}
    bucket_index = {label: index for index, label in enumerate(buckets)}
    for row in result.items.itertuples(index=False):
        b = bucket_index[row.bucket]
        item_values[strategy_index[row.strategy], n_index[row.n], b] = (row.exposure, row.hit_rate, row.n_targets)
        item_counts[b] = int(row.n_items)
    return item_counts, item_values


def _notes(result: ColdStartResult) -> list[str]:
    notes = []
    skipped = _skipped(result)
    for n, count in zip(result.ns, skipped):
        if count:
            notes.append(
                f"n = {n}: {int(count)} of {result.n_cold_users} cold users have {n} or fewer interactions, so they "
                "have no target there and are left out."
            )
    notes.append(
        f"Cold users ({result.n_cold_users}) were held out of training. At each n the first n interactions are "
        "revealed and interaction n + 1 is the target; revealed items are excluded from the ranking."
    )
    return notes


def _estimate_text(row: Any) -> str:
    if not np.isfinite(row.value):
        return "-"
    if np.isfinite(row.ci_low) and np.isfinite(row.ci_high):
        return f"{row.value:.4f} [{row.ci_low:.4f}, {row.ci_high:.4f}]"
    return f"{row.value:.4f}"
