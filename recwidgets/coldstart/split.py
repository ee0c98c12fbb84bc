"""Cold-start splits: a seeded share of users is held out of training entirely.

The held-out ("cold") users never reach the model during training, validation or early
stopping. At evaluation time the first ``n`` interactions of each cold user are revealed
as the history and the ``(n + 1)``-th interaction is the single target, which measures
how fast a model (or an adaptation strategy) becomes useful for a new user.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace

import numpy as np
import pandas as pd

from recwidgets.data.log import InteractionLog
from recwidgets.data.split import EvalSet, ProtocolCard, Split, leave_last_out
from recwidgets.errors import ConfigError, DataError

logger = logging.getLogger(__name__)

#: Revealed prefix lengths evaluated by default.
DEFAULT_NS = (1, 2, 3, 5, 10, 20)


@dataclass(frozen=True, eq=False)
class ColdStartSplit:
    """A leave-last-out split of the warm users plus the chronological sequences of cold users.

    ``split`` contains only warm users in ``train``, ``validation`` and ``test``; fit every
    model on it. ``split.log`` is the full log, so item ids and the catalog size are those
    of the whole data set, and items consumed only by cold users have no training
    interaction. ``cold_users`` contains the internal ids of the held-out users (sorted) and
    ``cold_sequences[i]`` the full chronological item sequence of ``cold_users[i]``.
    """

    split: Split
    cold_users: np.ndarray
    cold_sequences: list[np.ndarray]
    user_share: float
    seed: int

    @property
    def log(self) -> InteractionLog:
        """The full interaction log, cold users included."""
        return self.split.log

    @property
    def card(self) -> ProtocolCard:
        """The protocol card of the warm split, with the cold-start fields in ``extra``."""
        return self.split.card

    def train_popularity(self) -> np.ndarray:
        """Return training counts per internal item id, shape (n_items + 1,), from warm users only."""
        return self.split.train_popularity()

    def prefix_evalset(self, n: int) -> tuple[EvalSet, np.ndarray]:
        """Return the cold users' evaluation set at prefix length ``n`` and the users left out.

        Each cold user with more than ``n`` interactions gets the first ``n`` items as the
        history and the ``(n + 1)``-th item as the only target. A user with ``n`` or fewer
        interactions has no target at this ``n``: the user is left out of the set and
        returned in the second array, so callers can count (and report) them.
        """
        n = _check_prefix_length(n)
        lengths = np.array([len(sequence) for sequence in self.cold_sequences], dtype=np.int64)
        kept = np.flatnonzero(lengths > n)
        skipped = self.cold_users[lengths <= n]
        evalset = EvalSet(
            users=self.cold_users[kept],
            histories=[self.cold_sequences[i][:n] for i in kept],
            targets=[self.cold_sequences[i][n : n + 1] for i in kept],
        )
        return evalset, skipped


def _check_prefix_length(n) -> int:
    if isinstance(n, (bool, np.bool_)) or not isinstance(n, (int, np.integer)) or n < 0:
        raise ConfigError(f"prefix length n={n!r} is invalid; pass an integer >= 0 such as 5.")
    return int(n)


def check_prefix_lengths(ns) -> tuple[int, ...]:
    """Return the prefix lengths ``ns`` as a sorted tuple without repeats; raise ConfigError on bad values."""
    values = [ns] if isinstance(ns, (int, np.integer)) else list(ns)
    if not values:
        raise ConfigError("ns=() is empty; pass at least one prefix length, such as ns=(1, 2, 5).")
    return tuple(sorted({_check_prefix_length(value) for value in values}))


def coldstart_split(
    log: InteractionLog, *, user_share: float = 0.2, seed: int = 0, short_users: str = "raise"
) -> ColdStartSplit:
    """Hold out a seeded ``user_share`` of users as cold users and split the rest leave-last-out.

    Cold users are drawn uniformly at random with ``numpy.random.default_rng(seed)``, so
    the same log and seed give the same cold users. Every interaction of a cold user is
    removed from training, validation and test of the returned ``split``. The warm users
    are split by :func:`recwidgets.data.split.leave_last_out`, whose ``short_users`` policy
    applies to warm users with fewer than 3 interactions.

    Raises ConfigError for a share outside (0, 1) and DataError when the share leaves no
    warm or no cold user.
    """
    if isinstance(user_share, bool) or not isinstance(user_share, (float, int)) or not 0.0 < float(user_share) < 1.0:
        raise ConfigError(f"user_share={user_share!r} is invalid; pass a fraction of users in (0, 1), such as 0.2.")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ConfigError(f"seed={seed!r} is invalid; pass a non-negative int.")

    n_users = log.n_users
    n_cold = int(round(float(user_share) * n_users))
    if n_cold < 1 or n_cold >= n_users:
        raise DataError(
            f"user_share={user_share} of {n_users} users gives {n_cold} cold users; at least one cold and one "
            "warm user are needed, so pick a share that leaves both."
        )
    rng = np.random.default_rng(int(seed))
    cold_users = np.sort(rng.choice(np.arange(1, n_users + 1, dtype=np.int64), size=n_cold, replace=False))

    # The warm log keeps the full vocabularies, so item ids mean the same in both parts.
    frame = log.interactions
    is_cold = frame["user"].isin(cold_users).to_numpy()
    warm_log = replace(log, interactions=frame[~is_cold].reset_index(drop=True))
    warm = leave_last_out(warm_log, short_users=short_users)

    # leave_last_out lists every user id of the vocabulary; cold users show up without targets.
    validation = _drop_users(warm.validation, cold_users)
    test = _drop_users(warm.test, cold_users)
    card = replace(
        warm.card,
        split=f"leave-last-out on warm users; {n_cold} cold users ({float(user_share):.0%}, seed {int(seed)}) held out",
        n_interactions=len(log),
        n_test_users=int(test.has_target().sum()),
        users_without_test=int((~test.has_target()).sum()),
        extra={
            **warm.card.extra,
            "cold_users": n_cold,
            "cold_user_share": float(user_share),
            "cold_seed": int(seed),
            "cold_interactions": int(is_cold.sum()),
        },
    )
    split = Split(log=log, train=warm.train, validation=validation, test=test, card=card)

    sequences = log.sequences()
    cold_sequences = [sequences[int(user)] for user in cold_users]
    logger.info(
        "cold-start split: %d cold users (%d interactions) held out, %d warm training interactions",
        n_cold,
        int(is_cold.sum()),
        len(warm.train),
    )
    return ColdStartSplit(
        split=split, cold_users=cold_users, cold_sequences=cold_sequences, user_share=float(user_share), seed=int(seed)
    )


def _drop_users(evalset: EvalSet, users: np.ndarray) -> EvalSet:
    return evalset.subset(~np.isin(evalset.users, users))


def user_attribute_segments(log: InteractionLog, users: np.ndarray, total_lengths: np.ndarray) -> pd.DataFrame:
    """Return one row per user with segment labels: ``activity`` and, when known, ``gender`` and ``age``.

    ``activity`` is the quartile of the user's total number of interactions (see
    :func:`recwidgets.evaluation.activity_segments`). ``gender`` and ``age`` come from
    ``log.users`` when it has those columns; ages are grouped as under 25, 25-34, 35-44
    and 45 or older.
    """
    from recwidgets.evaluation.segments import activity_segments

    users = np.asarray(users, dtype=np.int64)
    table = pd.DataFrame({"user": users, "activity": activity_segments(np.asarray(total_lengths))})
    meta = log.users
    if meta is not None and len(users):
        if "gender" in meta.columns:
            gender = meta["gender"].reindex(users)
            table["gender"] = [str(value) if isinstance(value, str) and value else "" for value in gender]
        if "age" in meta.columns:
            ages = pd.to_numeric(meta["age"].reindex(users), errors="coerce").to_numpy()
            table["age"] = [_age_group(age) for age in ages]
    return table


def _age_group(age: float) -> str:
    if not np.isfinite(age):
        return ""
    if age < 25:
        return "under 25"
    if age < 35:
        return "25-34"
    if age < 45:
        return "35-44"
    return "45+"
