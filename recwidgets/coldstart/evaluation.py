"""Cold-start evaluation: metric against the number of revealed interactions, per strategy.

``coldstart_curve(model, cold_split)`` reveals the first ``n`` interactions of each
held-out user, ranks the full catalog with every strategy (revealed items excluded) and
scores the ``(n + 1)``-th interaction. Each (strategy, n) cell is an
ordinary :func:`recwidgets.evaluation.evaluate` call, so the metrics, tie rule and
bootstrap intervals are those of the rest of the package. Users whose history has ``n`` or
fewer interactions have no target at that ``n``: they are left out of that cell and
counted in ``n_skipped``.

The same rankings give the new-item view: the share of top-k slots and the hit rate of
items grouped by their number of training interactions (0, 1-4, 5-19, 20+ by default).

``coldstart_finding`` and ``coldstart_items_finding`` turn a result into diagnosis
findings with the ids ``coldstart.users`` and ``coldstart.items``.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from recwidgets.coldstart.adaptation import AdaptationConfig, AdaptedRecommender, MetaTrainingResult, meta_train
from recwidgets.coldstart.baselines import GenrePopularity
from recwidgets.coldstart.split import DEFAULT_NS, ColdStartSplit, check_prefix_lengths, user_attribute_segments
from recwidgets.data.split import ProtocolCard
from recwidgets.errors import ConfigError
from recwidgets.evaluation import evaluate
from recwidgets.evaluation.bootstrap import bootstrap_intervals
from recwidgets.evaluation.result import metric_label
from recwidgets.models.baselines import Popularity

if TYPE_CHECKING:
    from recwidgets.diagnose.finding import Finding

logger = logging.getLogger(__name__)

#: Strategies computed by default, in display order.
STRATEGIES = ("none", "finetune", "meta", "popularity", "genre")

#: Per-user metrics on the curve. With one target per user Recall equals HR, Precision is
#: HR / k and MAP equals MRR, so those are left out.
CURVE_METRICS = ("HR", "NDCG", "MRR")

#: Lower edges of the training-count buckets of items: 0, 1-4, 5-19, 20+.
ITEM_EDGES = (0, 1, 5, 20)

#: Columns of ``ColdStartResult.curve`` and of the widget's ``coldstart_data()``.
CURVE_COLUMNS = ["strategy", "n", "metric", "value", "ci_low", "ci_high", "n_users"]

#: Display labels of the user segment columns.
SEGMENT_LABELS = {"activity": "User activity", "gender": "Gender", "age": "Age"}

MODEL_REFERENCE = (
    "Lee et al., 'MeLU: Meta-Learned User Preference Estimator for Cold-Start Recommendation', KDD 2019"
)


@dataclass(frozen=True, eq=False)
class ColdStartResult:
    """Cold-start metrics of several strategies against the revealed prefix length ``n``.

    - ``curve``: one row per (strategy, n, metric): ``strategy, n, metric, value, ci_low,
      ci_high, n_users`` plus ``n_skipped`` (cold users with ``n`` or fewer interactions,
      left out at that ``n``). ``metric`` is a label such as ``"NDCG@10"``.
    - ``per_user``: one row per (strategy, n, user) with one column per metric label.
    - ``segments``: one row per cold user: ``user``, ``activity`` (quartile of the total
      number of interactions) and ``gender`` and ``age`` when the log has user metadata.
    - ``segment_curve``: like ``curve`` per segment, with ``segment_by`` and ``segment``.
    - ``items``: per (strategy, n, bucket of training count): ``n_items`` in the catalog,
      ``slots`` (top-``item_k`` slots holding such items), ``exposure`` (their share of
      all filled slots), ``n_targets``, ``hits`` and ``hit_rate`` (HR@``item_k`` of the
      users whose target is in the bucket; NaN without such users).
    - ``meta``: the meta-training record when the ``meta`` strategy ran.
    """

    curve: pd.DataFrame
    per_user: pd.DataFrame
    segments: pd.DataFrame
    segment_curve: pd.DataFrame
    items: pd.DataFrame
    strategies: tuple[str, ...]
    ns: tuple[int, ...]
    k: tuple[int, ...]
    metrics: tuple[str, ...]
    item_buckets: tuple[str, ...]
    item_k: int
    card: ProtocolCard
    n_cold_users: int
    n_bootstrap: int
    confidence: float
    seed: int
    meta: MetaTrainingResult | None = None

    def data(self) -> pd.DataFrame:
        """Return the curve with the columns ``strategy, n, metric, value, ci_low, ci_high, n_users``."""
        return self.curve[CURVE_COLUMNS].copy()

    def value(self, strategy: str, n: int, metric: str = "NDCG@10") -> float:
        """Return the mean ``metric`` of ``strategy`` at prefix length ``n``."""
        return float(self._row(strategy, n, metric)["value"])

    def ci(self, strategy: str, n: int, metric: str = "NDCG@10") -> tuple[float, float]:
        """Return the (low, high) confidence bounds of ``metric`` for ``strategy`` at ``n``."""
        row = self._row(strategy, n, metric)
        return float(row["ci_low"]), float(row["ci_high"])

    def users(self, strategy: str, n: int) -> np.ndarray:
        """Return the internal ids of the users evaluated for ``strategy`` at ``n``, ascending."""
        self._row(strategy, n, self.metrics[0])
        rows = self.per_user[(self.per_user["strategy"] == strategy) & (self.per_user["n"] == n)]
        return np.sort(rows["user"].to_numpy(dtype=np.int64))

    def _row(self, strategy: str, n: int, metric: str) -> pd.Series:
        if strategy not in self.strategies:
            raise ConfigError(f"strategy {strategy!r} is not in this result; use one of {list(self.strategies)}.")
        if n not in self.ns:
            raise ConfigError(f"n={n!r} was not evaluated; use one of {list(self.ns)}.")
        if metric not in self.metrics:
            raise ConfigError(f"metric {metric!r} is not in this result; use one of {list(self.metrics)}.")
        rows = self.curve[(self.curve["strategy"] == strategy) & (self.curve["n"] == n) & (self.curve["metric"] == metric)]
        return rows.iloc[0]


# -- strategies ---------------------------------------------------------------------------


def build_strategies(
    model,
    cold: ColdStartSplit,
    strategies: Sequence[str] | Mapping[str, object],
    *,
    adaptation: AdaptationConfig | None = None,
    meta: MetaTrainingResult | None = None,
) -> tuple[dict[str, object], MetaTrainingResult | None]:
    """Return (display name -> recommender, meta-training record) for the requested strategies.

    Names: ``"none"`` (``model`` itself), ``"finetune"`` (per-user adapter from the
    identity), ``"meta"`` (per-user adapter from meta-learned start values, meta-trained on
    ``cold.split`` unless ``meta`` is given), ``"popularity"`` and ``"genre"``
    (:class:`~recwidgets.coldstart.baselines.GenrePopularity`), both fitted on
    ``cold.split``. A mapping may also give a fitted recommender as the value.
    """
    named = list(strategies.items()) if isinstance(strategies, Mapping) else [(name, name) for name in strategies]
    if not named:
        raise ConfigError("strategies is empty; pass at least one of " f"{list(STRATEGIES)}.")
    config = adaptation or (meta.config if meta is not None else AdaptationConfig())
    built: dict[str, object] = {}
    for name, spec in named:
        if not isinstance(spec, str):
            built[str(name)] = spec
            continue
        if spec == "none":
            built[name] = model
        elif spec == "finetune":
            built[name] = AdaptedRecommender(model, config=config, name=f"{getattr(model, 'name', 'model')}+finetune")
        elif spec == "meta":
            if meta is None:
                meta = meta_train(model, cold.split, config)
            built[name] = AdaptedRecommender(model, start=meta.start, config=config, name=f"{getattr(model, 'name', 'model')}+meta")
        elif spec == "popularity":
            built[name] = Popularity().fit(cold.split)
        elif spec == "genre":
            built[name] = GenrePopularity().fit(cold.split)
        else:
            raise ConfigError(f"unknown cold-start strategy {spec!r}; use one of {list(STRATEGIES)} or pass a fitted model.")
    return built, meta


# -- items --------------------------------------------------------------------------------


def item_bucket_labels(edges: Sequence[int] = ITEM_EDGES) -> list[str]:
    """Return labels of the training-count buckets with lower ``edges``: ``["0", "1-4", "5-19", "20+"]``."""
    edges = _check_edges(edges)
    labels = []
    for index, low in enumerate(edges):
        if index + 1 == len(edges):
            labels.append(f"{low}+")
        elif edges[index + 1] - low == 1:
            labels.append(str(low))
        else:
            labels.append(f"{low}-{edges[index + 1] - 1}")
    return labels


def _check_edges(edges: Sequence[int]) -> tuple[int, ...]:
    values = tuple(int(edge) for edge in edges)
    if not values or values[0] != 0 or any(b <= a for a, b in zip(values, values[1:])):
        raise ConfigError(f"item bucket edges {tuple(edges)!r} are invalid; pass increasing counts starting at 0, such as (0, 1, 5, 20).")
    return values


def item_buckets(train_popularity: np.ndarray, edges: Sequence[int] = ITEM_EDGES) -> np.ndarray:
    """Return the bucket index of every internal item id by its training count; padding gets -1."""
    edges = _check_edges(edges)
    counts = np.asarray(train_popularity)
    bucket = np.searchsorted(np.asarray(edges), counts, side="right") - 1
    bucket[0] = -1
    return bucket.astype(np.int64)


def item_exposure(
    topk: np.ndarray,
    targets: Sequence[np.ndarray],
    train_popularity: np.ndarray,
    *,
    k: int = 10,
    edges: Sequence[int] = ITEM_EDGES,
) -> pd.DataFrame:
    """Return exposure and hit rate of items grouped by training count.

    ``topk`` (U, >= k) contains ranked item ids (0 = empty slot) and ``targets[u]`` the
    target items of user u. Per bucket: ``n_items`` (catalog items in it), ``slots``
    (top-k slots holding one of them), ``exposure`` (slots / all filled slots),
    ``n_targets`` (users whose first target is in the bucket), ``hits`` (of those, users
    with that target in the top k) and ``hit_rate`` (hits / n_targets, NaN for 0).
    """
    labels = item_bucket_labels(edges)
    bucket_of = item_buckets(train_popularity, edges)
    top = np.asarray(topk)[:, :k]
    filled = top[top > 0]
    slots = np.bincount(bucket_of[filled], minlength=len(labels)) if len(filled) else np.zeros(len(labels), dtype=np.int64)
    first = np.array([int(target[0]) for target in targets], dtype=np.int64)
    hit = np.array([first[row] in top[row] for row in range(len(first))], dtype=bool)
    target_bucket = bucket_of[first] if len(first) else np.zeros(0, dtype=np.int64)
    n_items = np.bincount(bucket_of[1:], minlength=len(labels))
    rows = []
    for index, label in enumerate(labels):
        in_bucket = target_bucket == index
        n_targets = int(in_bucket.sum())
        hits = int(hit[in_bucket].sum())
        rows.append(
            {
                "bucket": label,
                "n_items": int(n_items[index]),
                "slots": int(slots[index]),
                "exposure": float(slots[index] / len(filled)) if len(filled) else float("nan"),
                "n_targets": n_targets,
                "hits": hits,
                "hit_rate": hits / n_targets if n_targets else float("nan"),
            }
        )
    return pd.DataFrame(rows, columns=["bucket", "n_items", "slots", "exposure", "n_targets", "hits", "hit_rate"])


# -- the curve ----------------------------------------------------------------------------


def coldstart_curve(
    model,
    cold: ColdStartSplit,
    *,
    strategies: Sequence[str] | Mapping[str, object] = STRATEGIES,
    ns: Sequence[int] = DEFAULT_NS,
    k: Sequence[int] = (5, 10, 20),
    n_bootstrap: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
    adaptation: AdaptationConfig | None = None,
    meta: MetaTrainingResult | None = None,
    item_edges: Sequence[int] = ITEM_EDGES,
    item_k: int = 10,
    batch_size: int = 256,
) -> ColdStartResult:
    """Evaluate every strategy on the cold users of ``cold`` at each revealed prefix length in ``ns``.

    ``model`` must be fitted on ``cold.split`` (warm users only). Each (strategy, n) cell
    is one full-ranking ``evaluate`` call with revealed items excluded, ``k`` cutoffs and
    ``n_bootstrap`` user resamples with seed ``seed``. All strategies at one ``n`` have the
    same users and seed, so they share the resamples. ``strategies`` are names from
    :data:`STRATEGIES` or a mapping to names or fitted models (see
    :func:`build_strategies`). ``adaptation`` sets the fine-tuning and meta-training
    steps; a ready ``meta`` record skips meta-training.

    A cold user with ``n`` or fewer interactions has no ``(n + 1)``-th item, so the user is
    left out at that ``n`` (counted in ``n_skipped``); at an ``n`` where every cold user is
    left out the values are NaN with ``n_users`` 0.
    """
    ns = check_prefix_lengths(ns)
    ks = tuple(sorted({int(value) for value in ([k] if isinstance(k, int) else k)}))
    if isinstance(item_k, bool) or not isinstance(item_k, int) or item_k < 1:
        raise ConfigError(f"item_k={item_k!r} is invalid; pass a cutoff >= 1 such as 10.")
    if item_k not in ks:
        ks = tuple(sorted(set(ks) | {item_k}))
    built, meta = build_strategies(model, cold, strategies, adaptation=adaptation, meta=meta)
    popularity = cold.train_popularity()
    labels = [metric_label(name, cutoff) for name in CURVE_METRICS for cutoff in ks]
    bucket_labels = item_bucket_labels(item_edges)
    lengths = np.array([len(sequence) for sequence in cold.cold_sequences], dtype=np.int64)
    segments = user_attribute_segments(cold.log, cold.cold_users, lengths)

    curve_rows, per_user_frames, item_frames = [], [], []
    for n in ns:
        evalset, skipped = cold.prefix_evalset(n)
        if len(skipped):
            logger.info("cold start n=%d: %d of %d cold users have <= %d interactions and are left out", n, len(skipped), len(cold.cold_users), n)
        card = replace(
            cold.card,
            targets=f"interaction {n + 1} of each cold user, after the first {n} revealed",
            n_test_users=len(evalset),
            users_without_test=len(skipped),
        )
        for name, recommender in built.items():
            if len(evalset) == 0:
                curve_rows += [_empty_row(name, n, label, len(skipped)) for label in labels]
                continue
            result = evaluate(
                recommender,
                evalset,
                train_popularity=popularity,
                card=card,
                k=ks,
                n_bootstrap=n_bootstrap,
                n_bootstrap_global=0,
                confidence=confidence,
                seed=seed,
                batch_size=batch_size,
            )
            for label in labels:
                value, low, high, n_users = result.metrics.loc[label, ["value", "ci_low", "ci_high", "n_users"]]
                curve_rows.append(
                    {
                        "strategy": name,
                        "n": n,
                        "metric": label,
                        "value": float(value),
                        "ci_low": float(low),
                        "ci_high": float(high),
                        "n_users": int(n_users),
                        "n_skipped": len(skipped),
                    }
                )
            frame = result.per_user[["user", *labels]].copy()
            frame.insert(0, "n", n)
            frame.insert(0, "strategy", name)
            per_user_frames.append(frame)
            items = item_exposure(result.topk, evalset.targets, popularity, k=item_k, edges=item_edges)
            items.insert(0, "n", n)
            items.insert(0, "strategy", name)
            item_frames.append(items)
        logger.info("cold start n=%d evaluated for %d strategies on %d users", n, len(built), len(evalset))

    curve = pd.DataFrame(curve_rows, columns=[*CURVE_COLUMNS, "n_skipped"])
    per_user = (
        pd.concat(per_user_frames, ignore_index=True)
        if per_user_frames
        else pd.DataFrame(columns=["strategy", "n", "user", *labels])
    )
    items = pd.concat(item_frames, ignore_index=True) if item_frames else pd.DataFrame()
    segment_curve = _segment_curve(per_user, segments, labels, n_bootstrap, confidence, seed)
    return ColdStartResult(
        curve=curve,
        per_user=per_user,
        segments=segments,
        segment_curve=segment_curve,
        items=items,
        strategies=tuple(built),
        ns=ns,
        k=ks,
        metrics=tuple(labels),
        item_buckets=tuple(bucket_labels),
        item_k=item_k,
        card=cold.card,
        n_cold_users=len(cold.cold_users),
        n_bootstrap=n_bootstrap,
        confidence=float(confidence),
        seed=seed,
        meta=meta,
    )


def _empty_row(strategy: str, n: int, label: str, n_skipped: int) -> dict:
    nan = float("nan")
    return {"strategy": strategy, "n": n, "metric": label, "value": nan, "ci_low": nan, "ci_high": nan, "n_users": 0, "n_skipped": n_skipped}


def _segment_curve(
    per_user: pd.DataFrame, segments: pd.DataFrame, labels: list[str], n_bootstrap: int, confidence: float, seed: int
) -> pd.DataFrame:
    """Return per-segment means and bootstrap intervals of every (strategy, n, metric)."""
    columns = ["strategy", "n", "segment_by", "segment", "metric", "value", "ci_low", "ci_high", "n_users"]
    segment_columns = [column for column in SEGMENT_LABELS if column in segments.columns]
    if per_user.empty or not segment_columns:
        return pd.DataFrame(columns=columns)
    joined = per_user.merge(segments, on="user", how="left")
    rows = []
    for (strategy, n), group in joined.groupby(["strategy", "n"], sort=False):
        for column in segment_columns:
            for segment, members in group.groupby(column, sort=True):
                if not isinstance(segment, str) or not segment:
                    continue
                values = members[labels].to_numpy(dtype=np.float64)
                low, high, _ = bootstrap_intervals(values, n_resamples=n_bootstrap, confidence=confidence, seed=seed)
                finite = np.isfinite(values)
                for index, label in enumerate(labels):
                    column_values = values[finite[:, index], index]
                    rows.append(
                        {
                            "strategy": strategy,
                            "n": int(n),
                            "segment_by": column,
                            "segment": segment,
                            "metric": label,
                            "value": float(column_values.mean()) if len(column_values) else float("nan"),
                            "ci_low": float(low[index]),
                            "ci_high": float(high[index]),
                            "n_users": int(len(column_values)),
                        }
                    )
    return pd.DataFrame(rows, columns=columns)


# -- findings -----------------------------------------------------------------------------


def _curve_frame(curve) -> pd.DataFrame:
    frame = curve.curve if isinstance(curve, ColdStartResult) else curve
    if not isinstance(frame, pd.DataFrame):
        raise ConfigError(f"curve has type {type(curve).__name__}; pass a ColdStartResult or its coldstart_data() frame.")
    missing = [column for column in CURVE_COLUMNS if column not in frame.columns]
    if missing:
        raise ConfigError(f"the curve frame lacks column(s) {missing}; pass a ColdStartResult or its coldstart_data() frame.")
    return frame


def _rounded(value: float) -> float | None:
    value = float(value)
    return round(value, 4) if math.isfinite(value) else None


def coldstart_finding(
    curve,
    *,
    max_n: int = 5,
    strategy: str = "none",
    reference: str = "popularity",
    metric: str = "NDCG@10",
) -> Finding | None:
    """Return a ``coldstart.users`` warning when ``strategy`` is worse than ``reference`` for short histories.

    The rule, per prefix length ``n <= max_n``: the upper confidence bound of the model
    (``strategy``, default the plain model) lies below the value of the most-popular
    baseline (``reference``). The model's interval alone has to clear the baseline's
    point value, so a difference within the model's own sampling noise does not fire. The
    finding fires when at least one such ``n`` exists and names them in the evidence.
    Returns None when no ``n`` qualifies or none has values.

    ``curve`` is a :class:`ColdStartResult` or a frame with the ``coldstart_data()`` columns.
    """
    # Imported here because the diagnosis engine imports this module: a module-level import
    # would make the two packages import each other while half-initialised.
    from recwidgets.diagnose.finding import Finding

    frame = _curve_frame(curve)
    for name in (strategy, reference):
        if name not in set(frame["strategy"]):
            raise ConfigError(
                f"strategy {name!r} is not in the curve (found {sorted(set(frame['strategy']))}); "
                "compute the curve with both the model and the 'popularity' strategy."
            )
    if metric not in set(frame["metric"]):
        raise ConfigError(f"metric {metric!r} is not in the curve; use one of {sorted(set(frame['metric']))}.")

    rows = frame[(frame["metric"] == metric) & (frame["n"] <= max_n)]
    model_rows = rows[rows["strategy"] == strategy].set_index("n")
    reference_rows = rows[rows["strategy"] == reference].set_index("n")
    points, failing = [], []
    for n in sorted(set(model_rows.index) & set(reference_rows.index)):
        model_row, reference_row = model_rows.loc[n], reference_rows.loc[n]
        if not (np.isfinite(model_row["value"]) and np.isfinite(reference_row["value"])):
            continue
        worse = bool(np.isfinite(model_row["ci_high"]) and model_row["ci_high"] < reference_row["value"])
        points.append(
            {
                "n": int(n),
                "model": _rounded(model_row["value"]),
                "model_ci": [_rounded(model_row["ci_low"]), _rounded(model_row["ci_high"])],
                "popularity": _rounded(reference_row["value"]),
                "n_users": int(model_row["n_users"]),
                "worse": worse,
            }
        )
        if worse:
            failing.append(int(n))
    if not failing:
        return None

    worst = max(failing)
    point = next(item for item in points if item["n"] == worst)
    evidence = {
        "model": strategy,
        "reference": reference,
        "metric": metric,
        "max_n": int(max_n),
        "failing_n": failing,
        "points": points,
        "rule": "upper CI bound of the model below the popularity value",
    }
    return Finding(
        id="coldstart.users",
        severity="warning",
        title=(
            f"{strategy}: for new users with {worst} revealed interaction(s), {metric} is {point['model']:.4f} "
            f"(CI up to {point['model_ci'][1]:.4f}) vs {point['popularity']:.4f} for most-popular"
        ),
        evidence=evidence,
        fix=(
            f"Serve the most-popular list (or blend with it) while a user has at most {worst} interaction(s), or adapt "
            "per user with meta-learned start values (strategy 'meta'); also check that training includes short "
            "windows so the model sees short histories."
        ),
        reference=MODEL_REFERENCE,
        view={"widget": "ColdStartCurve", "strategy": strategy, "n": worst, "metric": metric},
    )


def coldstart_items_finding(
    curve: ColdStartResult, *, strategy: str = "none", max_count: int = 4, min_targets: int = 5
) -> Finding | None:
    """Return a ``coldstart.items`` finding when items with few training interactions are never listed or hit.

    Buckets whose training counts are all at most ``max_count`` (by default "0" and "1-4")
    are pooled over every ``n``. A warning fires when ``strategy`` never puts such an item
    into a top-k list although at least ``min_targets`` targets are such items. An info
    finding fires when they are listed but never hit over at least ``min_targets``
    targets. Returns None otherwise.
    """
    from recwidgets.diagnose.finding import Finding

    if not isinstance(curve, ColdStartResult):
        raise ConfigError(f"curve has type {type(curve).__name__}; the item check needs a ColdStartResult.")
    if strategy not in curve.strategies:
        raise ConfigError(f"strategy {strategy!r} is not in the curve; use one of {list(curve.strategies)}.")
    items = curve.items[curve.items["strategy"] == strategy]
    upper = _bucket_upper_bounds(curve.item_buckets)
    rare = [label for label, bound in zip(curve.item_buckets, upper) if bound is not None and bound <= max_count]
    if not rare or items.empty:
        return None
    pooled = items[items["bucket"].isin(rare)]
    slots, n_targets, hits = int(pooled["slots"].sum()), int(pooled["n_targets"].sum()), int(pooled["hits"].sum())
    all_slots = int(items["slots"].sum())
    catalog = items[items["n"] == items["n"].iloc[0]].set_index("bucket")["n_items"]
    evidence = {
        "model": strategy,
        "buckets": rare,
        "max_training_count": int(max_count),
        "k": curve.item_k,
        "slots": slots,
        "slot_share": _rounded(slots / all_slots) if all_slots else None,
        "n_targets": n_targets,
        "hits": hits,
        "n_items": int(catalog.loc[rare].sum()),
    }
    if n_targets < min_targets:
        return None
    view = {"widget": "ColdStartCurve", "strategy": strategy}
    if slots == 0:
        return Finding(
            id="coldstart.items",
            severity="warning",
            title=(
                f"{strategy}: items with at most {max_count} training interactions are never recommended, "
                f"although {n_targets} cold-start targets are such items"
            ),
            evidence=evidence,
            fix=(
                "Check that rare items keep trained embeddings (no min-count filter, no mask on unseen items), "
                "add a content-based score for new items, or reserve slots for exploration of new items."
            ),
            view=view,
        )
    if hits == 0:
        return Finding(
            id="coldstart.items",
            severity="info",
            title=(
                f"{strategy}: items with at most {max_count} training interactions fill {slots} top-{curve.item_k} "
                f"slots but none of their {n_targets} targets is hit"
            ),
            evidence=evidence,
            fix="Add item side information (genres, text) so new items are ranked by content until they have interactions.",
            view=view,
        )
    return None


def _bucket_upper_bounds(labels: Sequence[str]) -> list[int | None]:
    """Return the largest training count of each bucket label ("0" -> 0, "1-4" -> 4, "20+" -> None)."""
    bounds: list[int | None] = []
    for label in labels:
        if label.endswith("+"):
            bounds.append(None)
        elif "-" in label:
            bounds.append(int(label.split("-")[1]))
        else:
            bounds.append(int(label))
    return bounds
