"""Helpers shared by the detectors: paired bootstrap, per-user alignment, baseline detection."""

from __future__ import annotations

import contextlib
import contextvars

import numpy as np
import pandas as pd

#: Resamples of users for the paired bootstrap intervals of metric differences.
N_PAIRED_RESAMPLES = 1000


def rounded(value: float, digits: int = 4) -> float | None:
    """Return ``value`` rounded for evidence, with NaN as None so the evidence stays JSON."""
    value = float(value)
    if not np.isfinite(value):
        return None
    return float(round(value, digits))


def percent(fraction: float) -> str:
    """Format a share for a title without rounding a partial share up to 100% or down to 0%."""
    text = f"{fraction:.0%}"
    if text == "100%" and fraction < 1.0:
        return f"{min(fraction, 0.999):.1%}"
    if text == "0%" and fraction > 0.0:
        return "<1%"
    return text


def paired_difference(a: np.ndarray, b: np.ndarray, *, seed: int = 0, confidence: float = 0.95) -> tuple[float, float, float]:
    """Return (mean of a - b, low, high): a percentile bootstrap interval over paired users.

    ``a`` and ``b`` hold one value per user, in the same user order. Users are resampled
    with replacement, so the interval reflects how much the mean difference depends on
    which users happen to be in the test set.
    """
    diff = np.asarray(a, dtype=np.float64) - np.asarray(b, dtype=np.float64)
    diff = diff[np.isfinite(diff)]
    if len(diff) == 0:
        return float("nan"), float("nan"), float("nan")
    rng = np.random.default_rng(seed)
    index = rng.integers(0, len(diff), size=(N_PAIRED_RESAMPLES, len(diff)))
    means = diff[index].mean(axis=1)
    tail = (1.0 - confidence) / 2 * 100
    low, high = np.percentile(means, [tail, 100 - tail])
    return float(diff.mean()), float(low), float(high)


def aligned_metric(result, reference, label: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Return (users, values of ``result``, values of ``reference``) for users both evaluated."""
    left = result.per_user[["user", label]]
    right = reference.per_user[["user", label]]
    joined = left.merge(right, on="user", suffixes=("_model", "_reference"))
    return (
        joined["user"].to_numpy(),
        joined[f"{label}_model"].to_numpy(dtype=np.float64),
        joined[f"{label}_reference"].to_numpy(dtype=np.float64),
    )


def is_popularity_baseline(name: str, model=None, result=None) -> bool:
    """Tell whether a model or result is the most-popular baseline, which is popular by design."""
    try:
        from recwidgets.models import Popularity
    except ImportError:  # pragma: no cover - the models package ships with recwidgets
        Popularity = None
    if model is not None and Popularity is not None and isinstance(model, Popularity):
        return True
    names = {str(name).lower()}
    if result is not None:
        names.add(str(getattr(result, "model_name", "")).lower())
    if model is not None:
        names.add(str(getattr(model, "name", "")).lower())
    return bool(names & {"popularity", "most-popular", "mostpop", "pop"})


def headline_label(result, name: str = "NDCG", k: int = 10) -> str | None:
    """Return the result's label for ``name@k`` (sampled suffix included), or None if absent."""
    label = result.label(name, k) if hasattr(result, "label") else f"{name}@{k}"
    return label if label in result.metrics.index else None


def history_lengths(split, result) -> np.ndarray:
    """Return the input history length of each evaluated user of ``result``, in its user order."""
    part = split.part(result.card.part or "test")
    lengths = pd.Series([len(history) for history in part.histories], index=np.asarray(part.users))
    lengths = lengths[~lengths.index.duplicated(keep="first")]
    return lengths.reindex(np.asarray(result.users)).fillna(0).to_numpy(dtype=np.int64)


# Detectors report the evidence they measured, whether or not it raised a finding, so that
# the suite and the report can show the values on clean setups too. ``diagnose`` installs
# a list here for the duration of one run.
_MEASUREMENTS: contextvars.ContextVar[list | None] = contextvars.ContextVar("recwidgets_measurements", default=None)


def record(finding_id: str, evidence: dict) -> None:
    """Store the evidence a detector measured for ``finding_id`` in the running diagnosis, if any."""
    sink = _MEASUREMENTS.get()
    if sink is not None:
        sink.append({"id": finding_id, **evidence})


@contextlib.contextmanager
def collecting_measurements():
    """Collect every ``record`` call made inside the block into the yielded list."""
    sink: list = []
    token = _MEASUREMENTS.set(sink)
    try:
        yield sink
    finally:
        _MEASUREMENTS.reset(token)
