"""Train / validation / test splits, each with the protocol card that describes it."""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass, field, replace

import numpy as np
import pandas as pd

from recwidgets.data.log import InteractionLog
from recwidgets.errors import ConfigError, DataError

logger = logging.getLogger(__name__)

SHORT_USER_POLICIES = ("raise", "drop", "train")


@dataclass(frozen=True)
class ProtocolCard:
    """A serialisable record of how numbers were produced; it travels with every result.

    The split fields are filled by the split functions; ``evaluate`` adds the evaluation
    fields (ranking, seen-item exclusion, ties, cutoffs, bootstrap) with ``with_evaluation``.
    """

    dataset: str
    variant: dict
    split: str
    targets: str
    validation: str
    n_users: int
    n_items: int
    n_interactions: int
    n_train_interactions: int
    n_test_users: int
    users_without_test: int
    short_users: str = "raise"
    users_dropped: int = 0
    cutoff_time: int | None = None
    validation_cutoff_time: int | None = None
    # Evaluation fields, set by ``with_evaluation``.
    part: str | None = None
    ranking: str | None = None
    n_negatives: int | None = None
    sample_seed: int | None = None
    exclude_seen: bool | None = None
    ties: str | None = None
    k: tuple[int, ...] | None = None
    max_history_len: int | None = None
    n_evaluated_users: int | None = None
    bootstrap: dict | None = None
    model: str | None = None
    extra: dict = field(default_factory=dict)

    def with_evaluation(self, **fields) -> "ProtocolCard":
        """Return a copy with evaluation fields set (unknown names go into ``extra``)."""
        known = {name: value for name, value in fields.items() if name in self.__dataclass_fields__}
        unknown = {name: value for name, value in fields.items() if name not in self.__dataclass_fields__}
        return replace(self, **known, extra={**self.extra, **unknown})

    def to_dict(self) -> dict:
        """Return the card as JSON-serialisable plain data (tuples become lists)."""
        data = asdict(self)
        if data["k"] is not None:
            data["k"] = list(data["k"])
        return data

    def rows(self) -> list[tuple[str, str]]:
        """Return (label, text) pairs for display, skipping fields that are not set."""
        labels = {
            "dataset": "Dataset",
            "variant": "Variant",
            "split": "Split",
            "targets": "Test targets",
            "validation": "Validation",
            "cutoff_time": "Cutoff (unix s)",
            "n_users": "Users",
            "n_items": "Items",
            "n_interactions": "Interactions",
            "n_train_interactions": "Training interactions",
            "n_test_users": "Test users",
            "users_without_test": "Users without a test item (left out of means)",
            "users_dropped": "Users dropped (too short)",
            "part": "Evaluated part",
            "ranking": "Ranking",
            "exclude_seen": "Seen items excluded",
            "ties": "Ties",
            "k": "Cutoffs k",
            "max_history_len": "Max history length",
            "bootstrap": "Confidence intervals",
            "model": "Model",
        }
        rows = []
        for name, label in labels.items():
            value = getattr(self, name)
            if value is None or value == {}:
                continue
            if isinstance(value, dict):
                value = ", ".join(f"{key}={item}" for key, item in value.items())
            elif isinstance(value, tuple):
                value = ", ".join(str(item) for item in value)
            elif isinstance(value, bool):
                value = "yes" if value else "no"
            rows.append((label, str(value)))
        return rows


@dataclass(frozen=True, eq=False)
class EvalSet:
    """Users to evaluate, each with a chronological input history and a set of target items.

    ``targets[i]`` may be empty: such users are counted on the card and left out of means.
    """

    users: np.ndarray
    histories: list[np.ndarray]
    targets: list[np.ndarray]

    def __len__(self) -> int:
        return len(self.users)

    def has_target(self) -> np.ndarray:
        """Return a boolean mask of users with at least one target item."""
        return np.array([len(target) > 0 for target in self.targets], dtype=bool)

    def subset(self, mask_or_index) -> "EvalSet":
        """Return the users selected by a boolean mask or an integer index array."""
        index = np.flatnonzero(mask_or_index) if np.asarray(mask_or_index).dtype == bool else np.asarray(mask_or_index)
        return EvalSet(
            users=self.users[index],
            histories=[self.histories[i] for i in index],
            targets=[self.targets[i] for i in index],
        )


@dataclass(frozen=True, eq=False)
class Split:
    """Training interactions, validation and test sets of one log, and the protocol card."""

    log: InteractionLog
    train: pd.DataFrame
    validation: EvalSet
    test: EvalSet
    card: ProtocolCard

    def train_sequences(self) -> list[np.ndarray]:
        """Return chronological training items per internal user id (index 0 is empty)."""
        users = self.train["user"].to_numpy()
        items = self.train["item"].to_numpy()
        bounds = np.searchsorted(users, np.arange(self.log.n_users + 2))
        return [items[bounds[u] : bounds[u + 1]] for u in range(self.log.n_users + 1)]

    def train_popularity(self) -> np.ndarray:
        """Return training interaction counts per internal item id, shape (n_items + 1,)."""
        return np.bincount(self.train["item"].to_numpy(), minlength=self.log.n_items + 1)

    def part(self, name: str) -> EvalSet:
        """Return ``"validation"`` or ``"test"``."""
        if name == "test":
            return self.test
        if name == "validation":
            return self.validation
        raise ConfigError(f"unknown split part {name!r}; use 'validation' or 'test'.")


def _check_short_users(
    log: InteractionLog, counts: pd.Series, minimum: int, short_users: str, split_name: str
) -> np.ndarray:
    """Return the users with fewer than ``minimum`` interactions, raising under the 'raise' policy."""
    if short_users not in SHORT_USER_POLICIES:
        raise ConfigError(f"short_users={short_users!r} is invalid; use one of {SHORT_USER_POLICIES}.")
    short = counts.index[counts < minimum].to_numpy()
    if len(short) and short_users == "raise":
        example = int(short[0])
        raise DataError(
            f"{len(short)} user(s) have fewer than {minimum} interactions, which {split_name} needs "
            f"(for example user {log.user_ids[example]!r} with {int(counts.loc[example])}). "
            f"Pass short_users='drop' (--short-users drop) to remove them, short_users='train' "
            f"(--short-users train) to keep them for training only, or filter with kcore={minimum} "
            f"(--kcore {minimum}), which also drops items with fewer than {minimum} interactions."
        )
    return short


def require_log(value, caller: str) -> InteractionLog:
    """Return ``value`` if it is an InteractionLog, and raise a ConfigError that names ``caller`` if not."""
    if not isinstance(value, InteractionLog):
        raise ConfigError(
            f"{caller} needs an InteractionLog, got {type(value).__name__}; load one with rw.datasets.load(...), "
            "load_table(...) or InteractionLog.from_frame(frame, ...)."
        )
    return value


def require_split(value, caller: str) -> "Split":
    """Return ``value`` if it is a Split, and raise a ConfigError that names ``caller`` if not."""
    if not isinstance(value, Split):
        hint = " Split it first, for example rw.leave_last_out(log)." if isinstance(value, InteractionLog) else ""
        raise ConfigError(
            f"{caller} needs a Split from leave_last_out or temporal, got {type(value).__name__}.{hint}"
        )
    return value


def leave_last_out(log: InteractionLog, *, short_users: str = "raise") -> Split:
    """Split each user's sequence: test = last item, validation = second to last, train = the rest.

    The test history is everything before the last item (training items plus the validation
    item); the validation history is the training items. Users need at least 3 interactions;
    ``short_users`` sets what happens to the others ("raise", "drop", or "train" to keep them
    as training data without validation and test targets).
    """
    require_log(log, "leave_last_out")
    frame = log.interactions
    counts = frame.groupby("user").size()
    short = _check_short_users(log, counts, 3, short_users, "leave-last-out")
    dropped = len(short) if short_users == "drop" else 0

    # Position of each event from the end of its user's sequence: 0 = last.
    from_end = frame.groupby("user").cumcount(ascending=False).to_numpy()
    is_short = frame["user"].isin(short).to_numpy()
    if short_users == "drop":
        keep = ~is_short
    else:
        keep = np.ones(len(frame), dtype=bool)
    train_mask = keep & ((from_end >= 2) | is_short)
    train = frame[train_mask].reset_index(drop=True)

    sequences = log.sequences()
    short_set = set(int(u) for u in short)
    eval_users = np.array(
        [u for u in range(1, log.n_users + 1) if u not in short_set or short_users == "train"], dtype=np.int64
    )
    validation_h, validation_t, test_h, test_t = [], [], [], []
    for user in eval_users:
        sequence = sequences[user]
        if int(user) in short_set:
            validation_h.append(sequence)
            validation_t.append(sequence[:0])
            test_h.append(sequence)
            test_t.append(sequence[:0])
            continue
        validation_h.append(sequence[:-2])
        validation_t.append(sequence[-2:-1])
        test_h.append(sequence[:-1])
        test_t.append(sequence[-1:])

    validation = EvalSet(eval_users.astype(np.int64), validation_h, validation_t)
    test = EvalSet(eval_users.astype(np.int64), test_h, test_t)
    card = ProtocolCard(
        dataset=log.name,
        variant=dict(log.variant),
        split="leave-last-out",
        targets="last interaction of each user",
        validation="second-to-last interaction of each user",
        n_users=log.n_users,
        n_items=log.n_items,
        n_interactions=len(log),
        n_train_interactions=len(train),
        n_test_users=int(test.has_target().sum()),
        users_without_test=int((~test.has_target()).sum()),
        short_users=short_users,
        users_dropped=dropped,
    )
    logger.info("leave-last-out split: %d training interactions, %d test users", len(train), card.n_test_users)
    return Split(log=log, train=train, validation=validation, test=test, card=card)


def _cutoff_value(timestamps: np.ndarray, cutoff, name: str) -> int:
    """Turn a quantile in (0, 1) or an absolute unix time into an absolute time."""
    if isinstance(cutoff, float) and 0.0 < cutoff < 1.0:
        return int(np.quantile(timestamps, cutoff))
    if isinstance(cutoff, (int, np.integer)) and not isinstance(cutoff, bool):
        return int(cutoff)
    raise ConfigError(
        f"{name}={cutoff!r} is invalid; pass a quantile of the timestamps in (0, 1) such as 0.8, "
        "or an absolute unix time in seconds as an int."
    )


def temporal(
    log: InteractionLog,
    *,
    cutoff: float | int = 0.8,
    validation_cutoff: float | int | None = None,
    targets: str = "next",
) -> Split:
    """Split on one global cutoff time, so no test history contains an event from after it.

    Test users have events both before and after ``cutoff``; their history is every event
    before it, and their targets are the first event after it (``targets="next"``) or every
    item after it (``targets="all"``). Validation works the same way at ``validation_cutoff``
    (default: 0.1 quantile points before ``cutoff``), and training uses only events before
    the validation cutoff, so early stopping never sees a test or validation target.
    """
    require_log(log, "temporal")
    if targets not in ("next", "all"):
        raise ConfigError(f"targets={targets!r} is invalid; use 'next' or 'all'.")
    frame = log.interactions
    timestamps = frame["timestamp"].to_numpy()
    cut = _cutoff_value(timestamps, cutoff, "cutoff")
    if validation_cutoff is None:
        # A fixed 0.7 quantile could fall after an early absolute cutoff. So an absolute
        # cutoff is first turned into its quantile, and the default is 0.1 below that.
        position = cutoff if isinstance(cutoff, float) else float(np.mean(timestamps < cut))
        validation_cut = min(int(np.quantile(timestamps, max(position - 0.1, 0.05))), cut)
    else:
        validation_cut = _cutoff_value(timestamps, validation_cutoff, "validation_cutoff")
    if validation_cut > cut:
        raise ConfigError(
            f"validation_cutoff ({validation_cut}) is after cutoff ({cut}); the validation cutoff must come first."
        )

    train = frame[timestamps < validation_cut].reset_index(drop=True)
    if len(train) == 0:
        raise DataError(
            f"no interaction happens before the validation cutoff {validation_cut}; choose a later cutoff."
        )

    def build(before: int, after_end: int | None) -> EvalSet:
        users, histories, target_list = [], [], []
        for user, sequence_frame in frame.groupby("user", sort=True):
            times = sequence_frame["timestamp"].to_numpy()
            items = sequence_frame["item"].to_numpy()
            history = items[times < before]
            window = (times >= before) if after_end is None else ((times >= before) & (times < after_end))
            future = items[window]
            if len(history) == 0 or len(future) == 0:
                continue
            users.append(user)
            histories.append(history)
            target_list.append(future[:1] if targets == "next" else np.unique(future))
        return EvalSet(np.asarray(users, dtype=np.int64), histories, target_list)

    test = build(cut, None)
    validation = build(validation_cut, cut)
    if len(test) == 0:
        raise DataError(
            f"no user has interactions both before and after the cutoff {cut}; choose an earlier cutoff."
        )
    card = ProtocolCard(
        dataset=log.name,
        variant=dict(log.variant),
        split="temporal",
        targets="first interaction after the cutoff" if targets == "next" else "all items after the cutoff",
        validation=f"same rule at the validation cutoff {validation_cut}",
        n_users=log.n_users,
        n_items=log.n_items,
        n_interactions=len(log),
        n_train_interactions=len(train),
        n_test_users=int(test.has_target().sum()),
        users_without_test=int((~test.has_target()).sum()),
        short_users="n/a",
        cutoff_time=cut,
        validation_cutoff_time=validation_cut,
    )
    logger.info("temporal split at %d: %d training interactions, %d test users", cut, len(train), len(test))
    return Split(log=log, train=train, validation=validation, test=test, card=card)


def split(log: InteractionLog, kind: str = "leave-last-out", **options) -> Split:
    """Split ``log`` by name: ``"leave-last-out"`` or ``"temporal"``."""
    if kind in ("leave-last-out", "leave_last_out", "loo"):
        return leave_last_out(log, **options)
    if kind == "temporal":
        return temporal(log, **options)
    raise ConfigError(f"unknown split {kind!r}; use 'leave-last-out' or 'temporal'.")
