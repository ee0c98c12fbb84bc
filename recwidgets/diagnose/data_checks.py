"""Checks of the interaction log itself: duplicates, timestamp ties, order, one-event users."""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd

from recwidgets.data.log import InteractionLog
from recwidgets.diagnose._common import record
from recwidgets.diagnose.catalog import make_finding
from recwidgets.diagnose.finding import Finding

logger = logging.getLogger(__name__)

#: Share of events that exactly repeat another (user, item, timestamp) event before a
#: warning. One in a thousand tolerates rare double logging; ML-100K and the synthetic
#: generator have none.
DUPLICATE_WARN_FRACTION = 0.001

#: Share of consecutive same-user event pairs with equal timestamps before an info finding.
TIES_INFO_FRACTION = 0.05

#: Share of tied consecutive pairs before a warning. ML-100K (second resolution, ratings
#: entered in bursts) has 0.51 and ml-latest-small 0.16; truncating ML-100K to hours or
#: days gives 0.97 and 0.98. Above 0.8 most of the within-user order is arbitrary.
TIES_WARN_FRACTION = 0.8

#: With hour or day resolution (every timestamp a multiple of 3600 s) a lower tie share
#: already warns, because the order inside each hour or day was lost on export. The synthetic
#: log cut to days has 0.73; clean logs at second resolution never take this path.
TIES_WARN_FRACTION_COARSE = 0.25

#: Resolutions, in seconds, that count as coarse.
COARSE_RESOLUTION = 3_600

#: Share of users with exactly one interaction before a warning. Such users give a
#: next-item model no training pair; 5% matches the usual 5-core filtering intent.
SINGLE_WARN_FRACTION = 0.05

#: Timestamp units tested from coarse to fine, to report the log's effective resolution.
_RESOLUTIONS = ((86_400, "day"), (3_600, "hour"), (60, "minute"), (1, "second"))


def _round(value: float, digits: int = 4) -> float:
    return float(round(float(value), digits))


def check_duplicates(log: InteractionLog) -> list[Finding]:
    """Flag identical (user, item, timestamp) events, which double-count an interaction."""
    frame = log.interactions
    duplicated = frame.duplicated(["user", "item", "timestamp"], keep="first").to_numpy()
    n_duplicates = int(duplicated.sum())
    fraction = n_duplicates / max(len(frame), 1)
    evidence = {
        "n_duplicates": n_duplicates,
        "duplicate_fraction": _round(fraction, 5),
        "n_interactions": len(frame),
        "threshold": DUPLICATE_WARN_FRACTION,
    }
    record("data.duplicates", evidence)
    if n_duplicates == 0:
        return []
    first = frame[duplicated].iloc[0]
    evidence.update({"example_user": int(first["user"]), "example_item": int(first["item"])})
    severity = "warning" if fraction >= DUPLICATE_WARN_FRACTION else "info"
    return [
        make_finding(
            "data.duplicates",
            severity,
            f"{n_duplicates} duplicated events ({fraction:.2%} of the log)",
            evidence,
            "Drop exact duplicates before splitting (frame.drop_duplicates(['user', 'item', 'timestamp'])); "
            "they inflate popularity and can put the same event on both sides of a split.",
        )
    ]


def timestamp_resolution(timestamps: np.ndarray) -> tuple[int, str]:
    """Return the coarsest unit (seconds, name) that divides every timestamp."""
    timestamps = np.asarray(timestamps, dtype=np.int64)
    for seconds, name in _RESOLUTIONS:
        if seconds == 1 or not np.any(timestamps % seconds):
            return seconds, name
    return 1, "second"


def check_timestamp_ties(log: InteractionLog) -> list[Finding]:
    """Flag logs where consecutive events of a user share timestamps, so their order is arbitrary."""
    frame = log.interactions
    users = frame["user"].to_numpy()
    times = frame["timestamp"].to_numpy()
    same_user = users[1:] == users[:-1]
    n_pairs = int(same_user.sum())
    if n_pairs == 0:
        return []

    tied = same_user & (times[1:] == times[:-1])
    fraction = int(tied.sum()) / n_pairs
    users_with_ties = len(np.unique(users[1:][tied]))
    seconds, unit = timestamp_resolution(times)
    evidence = {
        "tie_fraction": _round(fraction),
        "n_consecutive_pairs": n_pairs,
        "users_with_ties_fraction": _round(users_with_ties / max(log.n_users, 1)),
        "resolution": unit,
        "resolution_seconds": seconds,
        "threshold": TIES_WARN_FRACTION,
        "threshold_coarse": TIES_WARN_FRACTION_COARSE,
    }
    record("data.timestamp_ties", evidence)

    if fraction < TIES_INFO_FRACTION:
        return []
    coarse = seconds >= COARSE_RESOLUTION
    warn = fraction >= TIES_WARN_FRACTION or (coarse and fraction >= TIES_WARN_FRACTION_COARSE)
    severity = "warning" if warn else "info"
    return [
        make_finding(
            "data.timestamp_ties",
            severity,
            f"{fraction:.0%} of consecutive events share a timestamp ({unit} resolution)",
            evidence,
            "Use finer timestamps if the source has them. Otherwise treat tied events as one step "
            "(a session or a set), or break ties by a documented secondary key such as the original row order.",
        )
    ]


def check_unordered(train: pd.DataFrame, *, where: str = "split.train") -> list[Finding]:
    """Flag training rows whose timestamps decrease within a user, in row order.

    ``train`` needs the columns ``user`` and ``timestamp``; rows of one user need not be
    contiguous. Any decrease is a warning, because sequence models read rows in this order.
    """
    if len(train) == 0 or "timestamp" not in train.columns:
        return []
    steps = train.groupby("user", sort=False)["timestamp"].diff().to_numpy()
    decreasing = steps < 0
    n_decreasing = int(decreasing.sum())
    n_steps = int(np.isfinite(steps).sum())
    bad_users = train["user"].to_numpy()[decreasing]
    n_users = int(train["user"].nunique())
    evidence = {
        "n_decreasing_steps": n_decreasing,
        "decreasing_fraction": _round(n_decreasing / max(n_steps, 1)),
        "n_users_unordered": int(len(np.unique(bad_users))),
        "users_unordered_fraction": _round(len(np.unique(bad_users)) / max(n_users, 1)),
        "checked": where,
    }
    record("data.unordered", evidence)
    if n_decreasing == 0:
        return []
    evidence["example_user"] = int(bad_users[0])
    return [
        make_finding(
            "data.unordered",
            "warning",
            f"{evidence['n_users_unordered']} users have training events out of time order",
            evidence,
            "Sort training interactions by user, then timestamp (InteractionLog.from_frame does this) "
            "before building sequences; a next-item model learns the row order as if it were time.",
            view={"user": int(bad_users[0])},
        )
    ]


def check_single_interaction(log: InteractionLog) -> list[Finding]:
    """Flag logs where many users have exactly one interaction."""
    counts = np.bincount(log.interactions["user"].to_numpy(), minlength=log.n_users + 1)[1:]
    single = int((counts == 1).sum())
    fraction = single / max(len(counts), 1)
    evidence = {
        "n_single_users": single,
        "single_fraction": _round(fraction),
        "n_users": int(len(counts)),
        "threshold": SINGLE_WARN_FRACTION,
    }
    record("data.single_interaction", evidence)
    if single == 0:
        return []
    severity = "warning" if fraction >= SINGLE_WARN_FRACTION else "info"
    return [
        make_finding(
            "data.single_interaction",
            severity,
            f"{single} users ({fraction:.1%}) have a single interaction",
            evidence,
            "Filter users to a k-core (recwidgets.datasets.kcore(log, 5)) or keep them for popularity "
            "statistics only; they have no next item to learn or to test.",
        )
    ]


def check_data(log: InteractionLog | None = None, train: pd.DataFrame | None = None) -> list[Finding]:
    """Run every data check that has its input: log checks need ``log``, order needs ``train``."""
    findings: list[Finding] = []
    if log is not None:
        findings += check_duplicates(log)
        findings += check_timestamp_ties(log)
        findings += check_single_interaction(log)
    if train is not None:
        findings += check_unordered(train)
    elif log is not None:
        findings += check_unordered(log.interactions, where="log.interactions")
    return findings
