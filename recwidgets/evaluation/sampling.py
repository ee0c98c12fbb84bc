"""Negative sampling for sampled evaluation, and checks of reused negatives.

Sampled metrics rank each user's targets among a few random items instead of the whole
catalog. They are cheaper but biased and can even reorder models (Krichene and Rendle,
"On Sampled Metrics for Item Recommendation", KDD 2020), so ``evaluate`` always labels
them and emits a ``ProtocolWarning``.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from recwidgets.errors import ConfigError


def sample_negatives(
    histories: Sequence[np.ndarray],
    targets: Sequence[np.ndarray],
    n_items: int,
    n_negatives: int,
    seed: int = 0,
    users: np.ndarray | None = None,
) -> np.ndarray:
    """Draw ``n_negatives`` distinct items per user, uniformly from the items outside history and targets.

    Returns an int64 array of shape (U, n_negatives). One ``numpy.random.Generator`` seeded
    with ``seed`` draws for the users in order, so the same inputs and seed give the same
    negatives. Raises ConfigError when a user has fewer allowed items than ``n_negatives``;
    ``users`` only names that user in the message.
    """
    rng = np.random.default_rng(seed)
    negatives = np.zeros((len(targets), n_negatives), dtype=np.int64)

    for row, (history, target) in enumerate(zip(histories, targets)):
        excluded = np.unique(np.concatenate([np.asarray(history, dtype=np.int64), np.asarray(target, dtype=np.int64)]))
        excluded = excluded[(excluded >= 1) & (excluded <= n_items)]
        n_allowed = n_items - len(excluded)
        if n_allowed < n_negatives:
            who = f"user {int(users[row])}" if users is not None else f"user row {row}"
            raise ConfigError(
                f"sampled={n_negatives} is too large: {who} has only {n_allowed} items outside its "
                f"history and targets. Pass sampled={max(n_allowed, 1)} or fewer, or use full ranking (sampled=None)."
            )

        if n_negatives <= n_allowed // 2:
            # Rejection sampling stays O(n_negatives) per user when most items are allowed.
            chosen = np.zeros(0, dtype=np.int64)
            while len(chosen) < n_negatives:
                draw = rng.integers(1, n_items + 1, size=2 * n_negatives)
                draw = draw[~np.isin(draw, excluded)]
                merged = np.concatenate([chosen, draw])
                _, first = np.unique(merged, return_index=True)
                chosen = merged[np.sort(first)]
            negatives[row] = chosen[:n_negatives]
        else:
            pool = np.setdiff1d(np.arange(1, n_items + 1), excluded, assume_unique=True)
            negatives[row] = rng.choice(pool, size=n_negatives, replace=False)
    return negatives


def check_negatives(negatives, targets: Sequence[np.ndarray], n_items: int) -> np.ndarray:
    """Return reused ``negatives`` as a (U, N) int64 array after checking it against the users.

    Raises ConfigError on a wrong shape, an item id outside 1..n_items, a repeated item
    within a row, or a negative that is one of the user's targets.
    """
    array = np.asarray(negatives)
    if array.ndim != 2 or array.shape[0] != len(targets) or array.shape[1] < 1:
        raise ConfigError(
            f"negatives has shape {array.shape}; expected ({len(targets)}, N): one row per evaluated user "
            "with at least one target, as stored in result.negatives by an earlier sampled evaluate() "
            "on the same split and part."
        )
    if not np.issubdtype(array.dtype, np.integer):
        raise ConfigError(f"negatives has dtype {array.dtype}; pass integer item ids.")
    array = array.astype(np.int64)
    outside = array[(array < 1) | (array > n_items)]
    if len(outside):
        raise ConfigError(
            f"negatives contains item id {int(outside[0])}, outside 1..{n_items}; "
            "reuse negatives only with the split they were drawn for."
        )
    ordered = np.sort(array, axis=1)
    repeated = np.flatnonzero((ordered[:, 1:] == ordered[:, :-1]).any(axis=1))
    if len(repeated):
        raise ConfigError(f"negatives row {int(repeated[0])} repeats an item; each row needs distinct items.")
    for row, target in enumerate(targets):
        if np.isin(target, array[row]).any():
            raise ConfigError(
                f"negatives row {row} contains a target item of that user; reuse negatives only with the "
                "split and part they were drawn for."
            )
    return array
