"""Filters applied to an interaction log before splitting: implicit feedback and k-core.

Each filter returns a new log through :meth:`InteractionLog.with_interactions`, so the
internal ids are re-packed, and records what it did in ``log.variant`` so that the protocol
card shows it.
"""

from __future__ import annotations

import logging
import numbers

import numpy as np
import pandas as pd

from recwidgets.data.log import InteractionLog
from recwidgets.errors import ConfigError, DataError

logger = logging.getLogger(__name__)


def to_implicit(log: InteractionLog, threshold: float | None = None) -> InteractionLog:
    """Turn ratings into implicit feedback.

    With ``threshold=None`` every rating counts as an interaction and only the variant changes
    (``implicit="all ratings"``). Otherwise only interactions with ``rating >= threshold`` are
    kept (``implicit="rating >= 4"``, for example); users and items left without interactions
    are dropped.
    """
    if threshold is None:
        return log.with_interactions(log.interactions, implicit="all ratings")
    if isinstance(threshold, bool) or not isinstance(threshold, numbers.Real) or np.isnan(threshold):
        raise ConfigError(f"implicit threshold {threshold!r} is invalid; pass a number such as 4, or None to keep every rating.")

    ratings = log.interactions["rating"]
    if ratings.isna().all():
        raise DataError(
            f"dataset {log.name!r} has no ratings, so implicit threshold {threshold} cannot apply; "
            "pass implicit_threshold=None, or load the rating column (rating_col=)."
        )
    keep = (ratings >= threshold).to_numpy()
    if not keep.any():
        raise DataError(
            f"no interaction of {log.name!r} has a rating >= {threshold} (ratings range from "
            f"{ratings.min()} to {ratings.max()}); choose a lower implicit threshold."
        )
    label = f"rating >= {threshold:g}"
    result = log.with_interactions(log.interactions[keep], implicit=label)
    logger.info("implicit feedback (%s): kept %d of %d interactions", label, len(result), len(log))
    return result


def kcore(log: InteractionLog, k: int, *, users: bool = True, items: bool = True) -> InteractionLog:
    """Keep the k-core: repeatedly drop users and items with fewer than ``k`` interactions.

    Dropping a user can push an item below ``k`` and the other way round, so the filter
    repeats until nothing changes. In the result every user (when ``users``) and every item
    (when ``items``) has at least ``k`` interactions. Repeated (user, item) pairs count once
    per event. The variant records ``kcore=k``, with ``kcore_on`` when only one side is filtered.
    """
    if isinstance(k, bool) or not isinstance(k, numbers.Integral) or k < 1:
        raise ConfigError(f"kcore k={k!r} is invalid; pass an integer >= 1, such as 5.")
    if not (users or items):
        raise ConfigError("kcore with users=False and items=False filters nothing; enable at least one side.")

    frame = log.interactions
    keep = np.ones(len(frame), dtype=bool)
    user_ids = frame["user"].to_numpy()
    item_ids = frame["item"].to_numpy()
    rounds = 0
    while True:
        rounds += 1
        drop = np.zeros(len(frame), dtype=bool)
        if users:
            counts = np.bincount(user_ids[keep], minlength=log.n_users + 1)
            drop |= keep & (counts[user_ids] < k)
        if items:
            counts = np.bincount(item_ids[keep], minlength=log.n_items + 1)
            drop |= keep & (counts[item_ids] < k)
        if not drop.any():
            break
        keep &= ~drop

    if not keep.any():
        raise DataError(
            f"the {k}-core of {log.name!r} is empty: no user and item keep {k} interactions each; choose a smaller k."
        )
    variant = {"kcore": int(k)}
    if not (users and items):
        variant["kcore_on"] = "users" if users else "items"
    result = log.with_interactions(frame[keep], **variant)
    logger.info(
        "%d-core after %d round(s): %d of %d interactions, %d users, %d items",
        k, rounds, len(result), len(log), result.n_users, result.n_items,
    )  # fmt: skip
    return result


def check_order(log: InteractionLog) -> None:
    """Raise DataError unless interactions are sorted by user, then timestamp."""
    frame = log.interactions
    user = frame["user"].to_numpy()
    time = frame["timestamp"].to_numpy()
    same_user = user[1:] == user[:-1]
    bad = (user[1:] < user[:-1]) | (same_user & (time[1:] < time[:-1]))
    if bad.any():
        row = int(np.flatnonzero(bad)[0]) + 1
        raise DataError(
            f"interactions of {log.name!r} are out of order at row {row} (user {int(user[row])}); "
            "build logs with InteractionLog.from_frame, which sorts them."
        )


def duplicates(log: InteractionLog) -> pd.DataFrame:
    """Return the repeated (user, item) pairs with their event counts, most repeated first.

    Sequential models usually keep repeats (a re-watch is a real event), so this only reports them.
    """
    counts = log.interactions.groupby(["user", "item"]).size().rename("count").reset_index()
    repeated = counts[counts["count"] > 1]
    return repeated.sort_values(["count", "user", "item"], ascending=[False, True, True]).reset_index(drop=True)
