"""MetricPanel: evaluation results of one or several models side by side, with segments."""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
import traitlets

from recwidgets.errors import ConfigError
from recwidgets.widgets.base import ArrayTrait, RecWidget, validator

logger = logging.getLogger(__name__)

#: Breakdowns offered by the panel: ``segment_by`` value and display label. The empty key
#: is the single segment of all evaluated users.
SEGMENT_COLUMNS = {"activity": "User activity", "target_popularity": "Target popularity"}
ALL_USERS = "All users"

#: Card fields whose text may differ between models without making numbers incomparable.
#: The max history length is how much of the same history a model reads (SASRec's window,
#: none for EASE), a property of the model rather than of the evaluation protocol.
_CARD_ROWS_ALLOWED_TO_DIFFER = {"Model", "Max history length"}

# A metric label such as "NDCG@10" or "NDCG@10 (sampled, 100 negatives)".
_LABEL = re.compile(r"^(?P<name>[^@]+)@(?P<k>\d+)(?P<suffix>.*)$")

# Fields of one estimate in the `values` array, in order.
_STATS = ("value", "ci_low", "ci_high")


def _known_chart_metric(value: str, metric_names: list[str]) -> str:
    """Return ``value`` when it names one of ``metric_names`` (any value before they are set)."""
    if metric_names and value not in metric_names:
        raise ConfigError(f"chart_metric={value!r} is unknown; use one of {metric_names}.")
    return value


def _known_k(value: int, ks: list[int]) -> int:
    """Return ``value`` as an int when it is one of the precomputed cutoffs ``ks`` (any value before they are set)."""
    value = int(value)
    if ks and value not in ks:
        raise ConfigError(f"k={value} has no precomputed values; use one of {ks}.")
    return value


def _known_segment_by(value: str, segment_groups: list[dict]) -> str:
    """Return ``value`` when it is the key of one of ``segment_groups`` (any value before they are set)."""
    keys = [group["key"] for group in segment_groups]
    if segment_groups and value not in keys:
        raise ConfigError(f"segment_by={value!r} is unknown; use one of {keys}.")
    return value


def _segment_labels(segment_groups: list[dict], key: str) -> list[str]:
    """Return the segment labels of the breakdown ``key``."""
    for group in segment_groups:
        if group["key"] == key:
            return list(group["segments"])
    raise ConfigError(f"segment_by={key!r} is unknown; use one of {[group['key'] for group in segment_groups]}.")


class MetricPanel(RecWidget):
    """Metrics with confidence intervals for several models, by k and by user segment.

    ``results`` is one ``EvaluationResult``, a sequence of them (named by ``model_name``),
    or a mapping from display name to result. Every (model, metric, k, segment) estimate
    is computed here and sent as one binary array, so switching k or the breakdown
    needs no kernel. Selecting a segment (a click in the view, or setting
    ``selected_segment``) fills :attr:`selected_users` with the internal user ids of that
    segment over all results.

    Example::

        panel = MetricPanel({"SASRec": sasrec_result, "Popularity": pop_result})
        panel.segment_by = "activity"
        panel.selected_segment = panel.segment_labels("activity")[0]
        panel.selected_users  # internal user ids of the least active quartile
    """

    _esm_name = "metric_panel"

    model_names = traitlets.List(traitlets.Unicode(), help="Display names of the compared models, in column order.").tag(
        sync=True
    )
    metric_names = traitlets.List(
        traitlets.Unicode(), help="Metric names without cutoff (NDCG, HR, ...), in row order."
    ).tag(sync=True)
    ks = traitlets.List(traitlets.Int(), help="Cutoffs k with precomputed values, ascending.").tag(sync=True)
    segment_groups = traitlets.List(
        traitlets.Dict(),
        help='Breakdowns as {"key", "label", "segments"}; the key "" is the one segment of all users. The rows of '
        "`values` are the segments of every group, in this order.",
    ).tag(sync=True)
    values = ArrayTrait(
        help="float64 array of shape (n_models, n_metrics, n_ks, n_segment_rows, 3): value, ci_low, ci_high; NaN "
        "where a metric has no value (global metrics such as Coverage have none per segment).",
    ).tag(sync=True)
    counts = ArrayTrait(help="int32 array of shape (n_models, n_segment_rows): evaluated users per segment.").tag(
        sync=True
    )
    card_rows = traitlets.List(
        traitlets.List(),
        help="Protocol card of the first model as [label, text, differs] rows; differs is true when another "
        "model's card has other text there.",
    ).tag(sync=True)
    notes = traitlets.List(
        traitlets.Unicode(), help="Warnings shown above the table, such as sampled metrics or protocol differences."
    ).tag(sync=True)
    k = traitlets.Int(10, help="Cutoff shown in the table and the segment view; one of `ks`.").tag(sync=True)
    segment_by = traitlets.Unicode(
        "", help='Breakdown shown: "" (none), "activity" (history-length quartiles) or "target_popularity" '
        "(head, mid or tail bucket of the target item)."
    ).tag(sync=True)
    chart_metric = traitlets.Unicode("", help="Metric drawn in the bar chart and the segment table.").tag(sync=True)
    selected_segment = traitlets.Unicode(
        "", help="Label of the selected segment of the current breakdown; empty when none."
    ).tag(sync=True)

    def __init__(self, results: Any, *, k: int | None = None, segment_by: str = "", chart_metric: str | None = None):
        named = _named_results(results)
        self._results = dict(named)
        self.selected_users = np.empty(0, dtype=np.int64)

        table = _estimates(named)
        self._table = table
        ks = sorted(int(value) for value in table["k"].unique())
        metrics = list(dict.fromkeys(table["metric"]))
        groups = _segment_groups(named)

        if k is None:
            k = 10 if 10 in ks else ks[0]
        if chart_metric is None:
            chart_metric = "NDCG" if "NDCG" in metrics else metrics[0]

        super().__init__()
        with self.hold_sync():
            self.model_names = [name for name, _ in named]
            self.metric_names = metrics
            self.ks = ks
            self.segment_groups = groups
            self.values, self.counts = _arrays(table, [name for name, _ in named], metrics, ks, groups)
            self.card_rows = _card_rows([result for _, result in named])
            self.notes = _notes(named)
            self.k = k
            self.segment_by = segment_by
            self.chart_metric = chart_metric
        self.observe_guarded(self._on_selection, names=["selected_segment"])
        self.observe_guarded(self._on_breakdown, names=["segment_by"])

    # -- validation ----------------------------------------------------------------------

    @validator("k")
    def _check_k(self, proposal: dict) -> int:
        return _known_k(proposal["value"], self.ks)

    @validator("segment_by")
    def _check_segment_by(self, proposal: dict) -> str:
        return _known_segment_by(proposal["value"], self.segment_groups)

    @validator("chart_metric")
    def _check_chart_metric(self, proposal: dict) -> str:
        return _known_chart_metric(proposal["value"], self.metric_names)

    # -- selection -----------------------------------------------------------------------

    def segment_labels(self, segment_by: str | None = None) -> list[str]:
        """Return the segment labels of a breakdown (the current one by default)."""
        return _segment_labels(self.segment_groups, self.segment_by if segment_by is None else segment_by)

    def _on_breakdown(self, change: dict) -> None:
        self.selected_segment = ""

    def _on_selection(self, change: dict) -> None:
        label = change["new"]
        if not label:
            self.selected_users = np.empty(0, dtype=np.int64)
            return
        labels = self.segment_labels()
        if label not in labels:
            self.selected_users = np.empty(0, dtype=np.int64)
            raise ConfigError(f"selected_segment={label!r} is not a segment of {self.segment_by or 'all users'!r}; use one of {labels}.")
        chosen = []
        for result in self._results.values():
            segments = result.segments
            users = segments["user"].to_numpy() if "user" in segments.columns else segments.index.to_numpy()
            if self.segment_by:
                users = users[segments[self.segment_by].to_numpy() == label]
            chosen.append(np.asarray(users, dtype=np.int64))
        self.selected_users = np.unique(np.concatenate(chosen)) if chosen else np.empty(0, dtype=np.int64)
        logger.debug("segment %r selected: %d users", label, len(self.selected_users))

    # -- data ----------------------------------------------------------------------------

    def metrics_data(self) -> pd.DataFrame:
        """Return every estimate behind the view in long form.

        Columns: ``model, segment_by, segment, metric, k, label, value, ci_low, ci_high,
        n_users``. ``segment_by`` is ``""`` for the rows over all evaluated users.
        """
        return self._table.copy()

    def data(self) -> pd.DataFrame:
        return self.metrics_data()

    def _fallback_frame(self) -> pd.DataFrame:
        """Return the overall metrics at the current k, one column per model, as text with intervals."""
        rows = self._table[(self._table["segment_by"] == "") & (self._table["k"] == self.k)]
        cells = rows.assign(text=[_estimate_text(row) for row in rows.itertuples()])
        frame = cells.pivot_table(index="label", columns="model", values="text", aggfunc="first", sort=False)
        return frame.reindex(columns=self.model_names)

    def _fallback_title(self) -> str:
        return f"MetricPanel: {', '.join(self.model_names)} at k={self.k}"

    def chart(self):
        """Return an Altair bar chart with error bars of the current view (k, breakdown, chart metric)."""
        import altair as alt

        rows = self._table[
            (self._table["segment_by"] == self.segment_by)
            & (self._table["k"] == self.k)
            & (self._table["metric"] == self.chart_metric)
        ].dropna(subset=["value"])
        x_title = SEGMENT_COLUMNS.get(self.segment_by, ALL_USERS)
        base = alt.Chart(rows).encode(
            x=alt.X("segment:N", title=x_title, sort=list(dict.fromkeys(rows["segment"]))),
            xOffset=alt.XOffset("model:N", sort=self.model_names),
            color=alt.Color("model:N", sort=self.model_names, title="Model"),
        )
        bars = base.mark_bar().encode(
            y=alt.Y("value:Q", title=f"{self.chart_metric}@{self.k}"),
            tooltip=["model", "segment", "label", "value", "ci_low", "ci_high", "n_users"],
        )
        errors = base.mark_errorbar(ticks=True).encode(y=alt.Y("ci_low:Q", title=""), y2="ci_high:Q")
        return (bars + errors).properties(title=f"{self.chart_metric}@{self.k} with confidence intervals")


# -- building the arrays ------------------------------------------------------------------


def _named_results(results: Any) -> list[tuple[str, Any]]:
    """Return (display name, result) pairs; repeated model names get a "#2" suffix."""
    if isinstance(results, Mapping):
        named = [(str(name), result) for name, result in results.items()]
    elif isinstance(results, Sequence) and not isinstance(results, (str, bytes)):
        named = []
        seen: dict[str, int] = {}
        for result in results:
            name = str(getattr(result, "model_name", "model"))
            seen[name] = seen.get(name, 0) + 1
            named.append((name if seen[name] == 1 else f"{name} #{seen[name]}", result))
    else:
        named = [(str(getattr(results, "model_name", "model")), results)]
    if not named:
        raise ConfigError("MetricPanel got no results; pass an EvaluationResult, a list of them or a dict name -> result.")
    for name, result in named:
        missing = [attribute for attribute in ("metrics", "segments", "card") if not hasattr(result, attribute)]
        if missing:
            raise ConfigError(
                f"MetricPanel input {name!r} is a {type(result).__name__} without {', '.join(missing)}; "
                "pass results of recwidgets.evaluation.evaluate."
            )
    return named


def _parse_label(label: str) -> tuple[str, int, str] | None:
    match = _LABEL.match(str(label))
    if match is None:
        return None
    return match["name"], int(match["k"]), match["suffix"].strip()


def _segment_columns(result: Any) -> list[str]:
    return [column for column in SEGMENT_COLUMNS if column in result.segments.columns]


def _estimates(named: list[tuple[str, Any]]) -> pd.DataFrame:
    """Return the long table of every estimate: overall rows from ``metrics``, segment rows from ``segment_metrics``."""
    rows = []
    for name, result in named:
        n_users = len(result.users) if hasattr(result, "users") else np.nan
        ks_of_result = set()
        for label, row in result.metrics.iterrows():
            parsed = _parse_label(label)
            if parsed is None:
                logger.debug("MetricPanel skips metric %r of %s: no @k cutoff", label, name)
                continue
            metric, k, _ = parsed
            ks_of_result.add(k)
            rows.append(
                {
                    "model": name,
                    "segment_by": "",
                    "segment": ALL_USERS,
                    "metric": metric,
                    "k": k,
                    "label": str(label),
                    **{stat: float(row.get(stat, np.nan)) for stat in _STATS},
                    "n_users": float(row.get("n_users", n_users)),
                }
            )
        for column in _segment_columns(result):
            for k in sorted(ks_of_result):
                frame = result.segment_metrics(column, k=k)
                for row in frame.itertuples(index=False):
                    parsed = _parse_label(row.metric)
                    if parsed is None:
                        continue
                    rows.append(
                        {
                            "model": name,
                            "segment_by": column,
                            "segment": str(row.segment),
                            "metric": parsed[0],
                            "k": parsed[1],
                            "label": str(row.metric),
                            "value": float(row.value),
                            "ci_low": float(row.ci_low),
                            "ci_high": float(row.ci_high),
                            "n_users": float(row.n_users),
                        }
                    )
    table = pd.DataFrame(
        rows, columns=["model", "segment_by", "segment", "metric", "k", "label", "value", "ci_low", "ci_high", "n_users"]
    )
    if table.empty:
        raise ConfigError("The results hold no metric labelled like 'NDCG@10'; evaluate with at least one k.")
    return table


def _segment_groups(named: list[tuple[str, Any]]) -> list[dict]:
    """Return the breakdowns with their segment labels, in display order, over all results."""
    groups = [{"key": "", "label": ALL_USERS, "segments": [ALL_USERS]}]
    for column, label in SEGMENT_COLUMNS.items():
        labels: list[str] = []
        for _, result in named:
            if column not in result.segments.columns:
                continue
            present = [value for value in pd.unique(result.segments[column]) if isinstance(value, str) and value]
            labels += [value for value in present if value not in labels]
        if labels:
            groups.append({"key": column, "label": label, "segments": _ordered_segments(labels)})
    return groups


def _ordered_segments(labels: list[str]) -> list[str]:
    """Order popularity buckets head, mid, tail and other labels (Q1 ... Q4) by text."""
    buckets = [bucket for bucket in ("head", "mid", "tail") if bucket in labels]
    return buckets + sorted(label for label in labels if label not in buckets)


def _arrays(
    table: pd.DataFrame, models: list[str], metrics: list[str], ks: list[int], groups: list[dict]
) -> tuple[np.ndarray, np.ndarray]:
    """Scatter the long table into (models, metrics, ks, rows, 3) values and (models, rows) counts."""
    row_of = {}
    for group in groups:
        for segment in group["segments"]:
            row_of[(group["key"], segment)] = len(row_of)
    values = np.full((len(models), len(metrics), len(ks), len(row_of), len(_STATS)), np.nan, dtype=np.float64)
    counts = np.zeros((len(models), len(row_of)), dtype=np.int32)
    model_index = {name: index for index, name in enumerate(models)}
    metric_index = {name: index for index, name in enumerate(metrics)}
    k_index = {k: index for index, k in enumerate(ks)}
    for row in table.itertuples(index=False):
        position = row_of.get((row.segment_by, row.segment))
        if position is None:
            continue
        m = model_index[row.model]
        values[m, metric_index[row.metric], k_index[row.k], position] = (row.value, row.ci_low, row.ci_high)
        if np.isfinite(row.n_users):
            counts[m, position] = max(counts[m, position], int(row.n_users))
    return values, counts


def _card_rows(results: list[Any]) -> list[list]:
    """Return the first card's rows, each flagged when another card shows other text there."""
    first = results[0].card.rows()
    others = [dict(result.card.rows()) for result in results[1:]]
    rows = []
    for label, text in first:
        differs = label not in _CARD_ROWS_ALLOWED_TO_DIFFER and any(other.get(label) != text for other in others)
        rows.append([label, text, differs])
    return rows


def _notes(named: list[tuple[str, Any]]) -> list[str]:
    notes = []
    sampled = [name for name, result in named if getattr(result, "sampled", False)]
    if sampled:
        notes.append(
            f"Sampled ranking for {', '.join(sampled)}: these values are not comparable with full-ranking results."
        )
    differing = [row[0] for row in _card_rows([result for _, result in named]) if row[2]]
    if differing:
        notes.append(
            f"The protocol cards differ in {', '.join(differing)}; numbers side by side are not comparable."
        )
    return notes


def _estimate_text(row: Any) -> str:
    if not np.isfinite(row.value):
        return "-"
    if np.isfinite(row.ci_low) and np.isfinite(row.ci_high):
        return f"{row.value:.4f} [{row.ci_low:.4f}, {row.ci_high:.4f}]"
    return f"{row.value:.4f}"
