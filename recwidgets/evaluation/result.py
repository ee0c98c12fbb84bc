"""EvaluationResult: per-user metric arrays, means with confidence intervals, segments and the card."""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from recwidgets.data.split import ProtocolCard
from recwidgets.errors import ConfigError, ProtocolWarning
from recwidgets.evaluation.bootstrap import bootstrap_intervals
from recwidgets.evaluation.metrics import ACCURACY_METRICS, LIST_METRICS
from recwidgets.evaluation.segments import POPULARITY_BUCKETS

#: Label prefixes of the metrics that have one value per user.
PER_USER_METRICS = tuple(ACCURACY_METRICS) + tuple(LIST_METRICS)

#: Card fields that must agree for numbers to be comparable side by side.
COMPARABLE_CARD_FIELDS = (
    "dataset",
    "variant",
    "split",
    "targets",
    "cutoff_time",
    "part",
    "ranking",
    "n_negatives",
    "sample_seed",
    "exclude_seen",
    "ties",
    "n_evaluated_users",
)


def metric_label(name: str, k: int, n_negatives: int | None = None) -> str:
    """Return the display label of a metric, such as ``"NDCG@10"`` or ``"NDCG@10 (sampled, 100 negatives)"``."""
    label = f"{name}@{k}"
    if n_negatives is not None:
        label += f" (sampled, {n_negatives} negatives)"
    return label


def _plain(value: float) -> float | None:
    """Return a float for JSON, with NaN as None."""
    value = float(value)
    return None if math.isnan(value) else value


@dataclass(frozen=True, eq=False)
class EvaluationResult:
    """The output of ``evaluate`` for one model on one split part.

    The per-user arrays are the primary data, and every mean is derived from them.

    - ``metrics``: DataFrame indexed by metric label (``"NDCG@10"``) with the columns
      ``value`` (mean over users, or the global value for Coverage and Gini), ``ci_low``,
      ``ci_high`` (bootstrap bounds, NaN when ``n_bootstrap`` was 0) and ``n_users`` (users
      the value is computed over).
    - ``per_user``: one row per evaluated user, column ``user`` plus one column per
      per-user metric label. Only users with at least one target item are evaluated.
    - ``topk``: (U, max k) int64 recommended item ids in rank order, 0 = no item.
    - ``target_ranks``: per user, the 1-based ranks of the target items (targets in order,
      repeats removed).
    - ``users``: the evaluated internal user ids, the row order of every array here.
    - ``segments``: per user, ``activity`` (history-length quartile) and
      ``target_popularity`` (head, mid or tail bucket of the first target), see
      ``recwidgets.evaluation.segments``.
    - ``card``: the split's protocol card with the evaluation fields set.
    - ``negatives``: (U, N) negative items of a sampled evaluation, else None.
    - ``coverage_counts``: number of distinct recommended items per k.
    """

    metrics: pd.DataFrame
    per_user: pd.DataFrame
    topk: np.ndarray
    target_ranks: list[np.ndarray]
    users: np.ndarray
    segments: pd.DataFrame
    card: ProtocolCard
    model_name: str
    k: tuple[int, ...]
    negatives: np.ndarray | None = None
    coverage_counts: dict[int, int] = field(default_factory=dict)
    n_users_without_targets: int = 0
    n_bootstrap: int = 0
    confidence: float = 0.95
    seed: int = 0

    @property
    def sampled(self) -> bool:
        """Whether the ranks come from sampled negatives instead of the full catalog."""
        return self.negatives is not None

    def label(self, name: str, k: int) -> str:
        """Return this result's label of metric ``name`` at ``k``, with the sampled suffix when it applies."""
        return metric_label(name, k, None if self.negatives is None else self.negatives.shape[1])

    def _row(self, label: str) -> pd.Series:
        if label in self.metrics.index:
            return self.metrics.loc[label]
        hint = ""
        name, _, k = label.partition("@")
        if self.sampled and k.isdigit():
            hint = f" This result is sampled, so its labels read like {self.label(name, int(k))!r}."
        raise ConfigError(
            f"metric {label!r} is not in this result.{hint} Available: {', '.join(self.metrics.index)}."
        )

    def value(self, label: str) -> float:
        """Return the value of metric ``label``, such as ``result.value("NDCG@10")``."""
        return float(self._row(label)["value"])

    def ci(self, label: str) -> tuple[float, float]:
        """Return the (low, high) confidence bounds of metric ``label``; NaN without bootstrap."""
        row = self._row(label)
        return float(row["ci_low"]), float(row["ci_high"])

    def segment_metrics(self, column: str, k: int = 10) -> pd.DataFrame:
        """Return per-segment means of the per-user metrics at ``k``, with CIs and user counts.

        ``column`` is a column of ``segments`` (``"activity"`` or ``"target_popularity"``).
        The result is long-form, one row per segment and metric, with the columns
        ``segment, metric, value, ci_low, ci_high, n_users``. Intervals use this result's
        ``n_bootstrap``, ``confidence`` and ``seed``, resampling users inside each segment.
        """
        columns = [name for name in self.segments.columns if name != "user"]
        if column not in columns:
            raise ConfigError(f"segment column {column!r} is unknown; use one of {columns}.")
        if k not in self.k:
            raise ConfigError(f"k={k!r} was not evaluated; use one of {list(self.k)} or evaluate with k including {k}.")

        labels = [self.label(name, k) for name in PER_USER_METRICS if self.label(name, k) in self.per_user.columns]
        segment_of_user = self.segments[column].to_numpy()
        present = [segment for segment in pd.unique(segment_of_user) if isinstance(segment, str) and segment]
        order = [bucket for bucket in POPULARITY_BUCKETS if bucket in present]
        order += sorted(segment for segment in present if segment not in order)

        rows = []
        for segment in order:
            values = self.per_user.loc[segment_of_user == segment, labels].to_numpy(dtype=np.float64)
            finite = np.isfinite(values)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)
                means = np.nanmean(values, axis=0)
            low, high, _ = bootstrap_intervals(
                values, n_resamples=self.n_bootstrap, confidence=self.confidence, seed=self.seed
            )
            for index, label in enumerate(labels):
                rows.append(
                    {
                        "segment": segment,
                        "metric": label,
                        "value": float(means[index]),
                        "ci_low": float(low[index]),
                        "ci_high": float(high[index]),
                        "n_users": int(finite[:, index].sum()),
                    }
                )
        return pd.DataFrame(rows, columns=["segment", "metric", "value", "ci_low", "ci_high", "n_users"])

    def to_dict(self) -> dict:
        """Return ``{"NDCG@10": {"value": v, "ci": [low, high]}, ...}`` as JSON-ready data (NaN as None).

        Coverage entries also carry ``"count"``, the number of distinct recommended items.
        """
        payload = {}
        for label, row in self.metrics.iterrows():
            entry = {"value": _plain(row["value"]), "ci": [_plain(row["ci_low"]), _plain(row["ci_high"])]}
            if label.startswith("Coverage@"):
                k = int(label.split("@")[1].split(" ")[0])
                entry["count"] = int(self.coverage_counts.get(k, 0))
            payload[label] = entry
        return payload

    def to_frame(self) -> pd.DataFrame:
        """Return the metrics in long form: ``model, metric, k, label, value, ci_low, ci_high, n_users``."""
        frame = self.metrics.reset_index(names="label")
        names = frame["label"].str.split("@").str[0]
        ks = frame["label"].str.split("@").str[1].str.split(" ").str[0].astype(int)
        frame.insert(0, "model", self.model_name)
        frame.insert(1, "metric", names)
        frame.insert(2, "k", ks)
        return frame

    def __repr__(self) -> str:
        headline = self.label("NDCG", 10) if 10 in self.k else self.label("NDCG", self.k[0])
        low, high = self.ci(headline)
        interval = "" if math.isnan(low) else f" [{low:.4f}, {high:.4f}]"
        ranking = "sampled" if self.sampled else "full"
        return (
            f"EvaluationResult(model={self.model_name!r}, part={self.card.part!r}, ranking={ranking!r}, "
            f"users={len(self.users)}, {headline}={self.value(headline):.4f}{interval})"
        )


def compare(results: Mapping[str, EvaluationResult] | Sequence[EvaluationResult]) -> pd.DataFrame:
    """Put several results side by side: metric labels as rows, (model, value/ci_low/ci_high) as columns.

    ``results`` is a mapping from a display name to a result, or a sequence of results
    named by their ``model_name`` (repeated names get a ``#2``, ``#3`` suffix). Emits a
    ``ProtocolWarning`` naming the first card field that differs between results, because
    such numbers are not comparable.
    """
    if isinstance(results, Mapping):
        named = list(results.items())
    else:
        named = []
        seen: dict[str, int] = {}
        for result in results:
            seen[result.model_name] = seen.get(result.model_name, 0) + 1
            suffix = "" if seen[result.model_name] == 1 else f" #{seen[result.model_name]}"
            named.append((result.model_name + suffix, result))
    if not named:
        raise ConfigError("compare() got no results; pass a dict or list of EvaluationResult.")

    first_name, first = named[0]
    for name, result in named[1:]:
        for card_field in COMPARABLE_CARD_FIELDS:
            a, b = getattr(first.card, card_field), getattr(result.card, card_field)
            if a != b:
                warnings.warn(
                    f"results differ in protocol field {card_field!r}: {first_name} has {a!r}, {name} has {b!r}; "
                    "their numbers are not comparable. Evaluate all models on the same split and settings.",
                    ProtocolWarning,
                    stacklevel=2,
                )
                break

    labels: list[str] = []
    for _, result in named:
        labels += [label for label in result.metrics.index if label not in labels]
    frame = pd.concat(
        {name: result.metrics[["value", "ci_low", "ci_high"]].reindex(labels) for name, result in named}, axis=1
    )
    frame.columns.names = ["model", "field"]
    frame.index.name = "metric"
    return frame
