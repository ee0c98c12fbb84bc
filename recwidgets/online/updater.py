"""OnlineUpdater: incremental training on the interactions after a cutoff, window by window.

Each ``apply`` takes the next window of the stream and

1. measures the model as it is (test-then-train): metrics on the window after this one,
   which no update has trained on, metrics on a frozen set of earlier users (forgetting),
   and every known user's top-k list;
2. grows the item (and user) tables for ids first seen in the window;
3. takes ``steps`` optimizer steps on the full histories of the window's users up to the
   window's end, optionally mixed with a ``replay`` fraction of pre-cutoff sequences;
4. measures again, plus the drift of item embeddings, and records the update.

An update stays pending until ``commit``. ``undo`` restores the parameters, the optimizer
state, the table sizes and the stream position exactly as they were before it. The
original model is kept as a snapshot, and ``reset`` returns to it.
"""

from __future__ import annotations

import copy
import logging
import math
import threading
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import torch

from recwidgets.data.log import PAD, InteractionLog
from recwidgets.data.split import EvalSet
from recwidgets.errors import ConfigError, DataError, RecwidgetsWarning
from recwidgets.online.measure import (
    METRICS,
    CatalogScorer,
    embedding_drift,
    jaccard_distance,
    measure,
    next_item_evalset,
    top_lists,
)
from recwidgets.online.optim import UpdateOptimizer
from recwidgets.online.stream import Stream, Window, WindowSpec, cutoff_time, window_spec
from recwidgets.online.trainable import NOISE_SCALE, OnlineTrainable, as_trainable, resize_rows

logger = logging.getLogger(__name__)

OPTIMIZER_STATES = ("fresh", "carry")
STATUSES = ("pending", "committed", "undone", "reset")

#: Training windows of models without a length limit are cut to this many items.
UNLIMITED_MAX_LEN = 200

#: A progress callback receives the finished fraction in [0, 1] and a short message.
Progress = Callable[[float, str], None]


class OnlineWarning(RecwidgetsWarning):
    """An online update ran in a degraded way (no trainable rows, a non-finite loss)."""


@dataclass(frozen=True)
class UpdateSettings:
    """The settings of one update: learning rate, optimizer steps, window, replay fraction and optimizer state."""

    lr: float
    steps: int
    window: WindowSpec
    replay: float
    optimizer_state: str


@dataclass(frozen=True, eq=False)
class Snapshot:
    """A copy of everything an update changes, with tensors cloned to the CPU.

    ``parameters`` is ``module.state_dict()``; ``optimizer`` is the optimizer state (None
    when no optimizer existed yet); ``position`` and ``time`` locate the next window.
    """

    parameters: dict[str, torch.Tensor]
    optimizer: dict | None
    n_items: int
    n_users: int | None
    position: int
    time: int
    depth: int


@dataclass(frozen=True, eq=False)
class TrainingBatch:
    """The rows an update trains on, before they are split into steps.

    ``inputs`` and ``targets`` are (N, L) int64 arrays, left-padded with 0; ``targets`` is 0
    where a position has no target (padding, or a held-out forgetting target). ``users`` is
    (N,). Rows come from the users with an event in the window, cut from their full
    history up to the window's end. A row is kept when one of its targets is a window event.
    """

    inputs: np.ndarray
    targets: np.ndarray
    users: np.ndarray

    def __len__(self) -> int:
        return len(self.inputs)

    def items(self) -> np.ndarray:
        """Return the sorted item ids that occur in the rows (inputs or targets), padding excluded."""
        present = np.unique(np.concatenate([self.inputs.ravel(), self.targets.ravel()]))
        return present[present != PAD]


@dataclass(eq=False)
class UpdateRecord:
    """What one ``apply`` did and measured; ``OnlineUpdater.online_data`` has one row per record.

    Metric dicts are keyed by labels such as ``"NDCG@10"``. ``plasticity_*`` are measured on
    the window after the updated one (NaN for the last window of the stream), and
    ``forgetting_*`` on the frozen set of earlier users. ``*_original`` are the original
    model's values on the same cases. ``movers`` lists the users whose top-k list changed
    most (Jaccard distance of the lists before and after).
    """

    update: int
    window: int
    start: pd.Timestamp
    end: pd.Timestamp
    start_position: int
    stop_position: int
    n_interactions: int
    n_users: int
    n_new_items: int
    n_new_users: int
    settings: UpdateSettings
    sparse: bool
    n_train_rows: int
    n_replay_rows: int
    steps_run: int
    loss_first: float
    loss_last: float
    n_plasticity_cases: int
    plasticity_original: dict[str, float]
    plasticity_before: dict[str, float]
    plasticity_after: dict[str, float]
    forgetting_original: dict[str, float]
    forgetting_before: dict[str, float]
    forgetting_after: dict[str, float]
    jaccard_affected: float
    jaccard_other: float
    drift: dict[str, float]
    seconds_update: float
    seconds_measure: float
    movers: pd.DataFrame = field(repr=False)
    status: str = "pending"

    def as_row(self) -> dict:
        """Return the record as one flat row of ``online_data``."""
        row = {
            "window": self.window,
            "update": self.update,
            "status": self.status,
            "start": self.start,
            "end": self.end,
            "n_interactions": self.n_interactions,
            "n_users": self.n_users,
            "n_new_items": self.n_new_items,
            "n_new_users": self.n_new_users,
            "window_size": self.settings.window.label(),
            "lr": self.settings.lr,
            "steps": self.settings.steps,
            "replay": self.settings.replay,
            "optimizer_state": self.settings.optimizer_state,
            "sparse": self.sparse,
            "n_train_rows": self.n_train_rows,
            "n_replay_rows": self.n_replay_rows,
            "steps_run": self.steps_run,
            "loss_first": self.loss_first,
            "loss_last": self.loss_last,
            "n_plasticity_cases": self.n_plasticity_cases,
        }
        for kind in ("plasticity", "forgetting"):
            for label in getattr(self, f"{kind}_after"):
                for when in ("original", "before", "after"):
                    row[f"{kind}_{label}_{when}"] = getattr(self, f"{kind}_{when}")[label]
        row["jaccard_affected"] = self.jaccard_affected
        row["jaccard_other"] = self.jaccard_other
        row.update(self.drift)
        row["seconds_update"] = self.seconds_update
        row["seconds_measure"] = self.seconds_measure
        row["committed"] = self.status == "committed"
        row["undone"] = self.status in ("undone", "reset")
        return row


class OnlineUpdater:
    """Replay the interactions after ``cutoff`` in windows, updating ``model`` window by window.

    Args:
        model: a fitted ``SASRec`` or any :class:`~recwidgets.online.OnlineTrainable`. It is
            updated in place; a copy of the original is kept for reference metrics.
        log: the interaction log whose ids the model uses. Items (and users, for models with
            a user table) seen before the cutoff must have ids within the model's tables.
            ``online_logs(log, cutoff)`` renumbers a log that way.
        cutoff: quantile in (0, 1), unix seconds, or a date; events before it are history.
        window: default window of ``apply``: a duration (``"7D"``, a ``timedelta``) or a
            number of interactions.
        steps: optimizer steps per window (0 only measures).
        lr: learning rate of Adam (0 changes no parameter).
        replay: fraction in [0, 0.9] of each step's rows drawn from pre-cutoff sequences.
        optimizer_state: ``"fresh"`` builds a new optimizer for every window; ``"carry"``
            keeps one across windows (the training run's optimizer is not stored, so the
            first window starts fresh either way).
        sparse: only rows of items (and users) present in a step's rows may change; the
            tables use SparseAdam so their untouched rows keep their values and moments.
        k: list cutoff of the metrics and the top-k lists.
        seed: seed of row sampling, replay, dropout, new-row noise and case sampling.
        batch_size: window rows per optimizer step; replay rows come on top.
        max_eval_cases: cap on the next-window cases evaluated per window (a seeded sample).
        forgetting_users: size of the frozen forgetting set.
        n_movers: users listed per update in ``movers``.
        noise_scale: noise of new table rows relative to the spread of existing rows.

    The forgetting set contains users with at least 2 events before the cutoff: the history
    is all of them but the last, and the target is the last. Those targets are never
    training targets of an update (their positions are masked), so forgetting measures what
    the model retains rather than what it is taught again. Train the original model without
    them as targets too, for example on ``leave_last_out(online_logs(...).pre_cutoff)``.
    """

    def __init__(
        self,
        model,
        log: InteractionLog,
        *,
        cutoff,
        window="7D",
        steps: int = 10,
        lr: float = 1e-3,
        replay: float = 0.0,
        optimizer_state: str = "fresh",
        sparse: bool = False,
        k: int = 10,
        seed: int = 0,
        batch_size: int = 128,
        max_eval_cases: int | None = 2000,
        forgetting_users: int = 500,
        n_movers: int = 20,
        noise_scale: float = NOISE_SCALE,
    ):
        self.model = model
        self.trainable: OnlineTrainable = as_trainable(model)
        self.log = log
        self.cutoff = cutoff_time(log, cutoff)
        self.defaults = self._settings(lr=lr, steps=steps, window=window, replay=replay, optimizer_state=optimizer_state)
        self.sparse = _check_bool("sparse", sparse)
        self.k = _check_int("k", k, 1)
        if self.k > log.n_items:
            raise ConfigError(f"k={k} is larger than the catalog of {log.n_items} items; pass k <= {log.n_items}.")
        self.seed = _check_int("seed", seed, 0)
        self.batch_size = _check_int("batch_size", batch_size, 1)
        self.max_eval_cases = None if max_eval_cases is None else _check_int("max_eval_cases", max_eval_cases, 1)
        self.n_movers = _check_int("n_movers", n_movers, 0)
        if not (isinstance(noise_scale, (int, float)) and math.isfinite(noise_scale) and noise_scale >= 0):
            raise ConfigError(f"noise_scale={noise_scale!r} is invalid; pass a number >= 0, such as 0.1.")
        self.noise_scale = float(noise_scale)

        self.stream = Stream(log, self.cutoff)
        self._check_vocabulary()
        self.max_len = self.trainable.max_len or UNLIMITED_MAX_LEN

        self._lock = threading.RLock()
        self._optimizer: UpdateOptimizer | None = None
        self._position = self.stream.first
        self._time = self.cutoff
        self._depth = 0
        self._records: list[UpdateRecord] = []
        self._pending: list[tuple[UpdateRecord, Snapshot]] = []
        self._original_cache: dict[tuple[int, int], dict[str, float]] = {}

        self.forgetting_set, self._heldout = self._forgetting_set(_check_int("forgetting_users", forgetting_users, 1))
        self._replay_pool = self._replay_rows()
        self._original_model = copy.deepcopy(model)
        self._original_scorer = CatalogScorer(as_trainable(self._original_model), log.n_items)
        self._scorer = CatalogScorer(self.trainable, log.n_items)
        self._original_items = self._item_table().to("cpu", copy=True)
        self.original = self.snapshot()
        self._forgetting_original = measure(self._original_scorer, self.forgetting_set, self.k)
        logger.info(
            "online updater: %d events after the cutoff %d, %d forgetting users, %d replay rows",
            len(self.stream) - self.stream.first,
            self.cutoff,
            len(self.forgetting_set),
            len(self._replay_pool),
        )

    # -- settings and checks -----------------------------------------------------------

    def _settings(self, *, lr, steps, window, replay, optimizer_state) -> UpdateSettings:
        if isinstance(lr, bool) or not isinstance(lr, (int, float, np.floating)) or not math.isfinite(lr) or lr < 0:
            raise ConfigError(f"lr={lr!r} is invalid; pass a learning rate >= 0, such as 1e-3.")
        steps = _check_int("steps", steps, 0)
        if (
            isinstance(replay, bool)
            or not isinstance(replay, (int, float, np.floating))
            or not 0.0 <= float(replay) <= 0.9
        ):
            raise ConfigError(f"replay={replay!r} is invalid; pass a fraction of each step's rows in [0, 0.9].")
        if optimizer_state not in OPTIMIZER_STATES:
            raise ConfigError(f"optimizer_state={optimizer_state!r} is invalid; use one of {OPTIMIZER_STATES}.")
        return UpdateSettings(float(lr), steps, window_spec(window), float(replay), optimizer_state)

    def _check_vocabulary(self) -> None:
        stream = self.stream
        if stream.first >= len(stream):
            raise DataError(f"no interaction happens at or after the cutoff {self.cutoff}; choose an earlier cutoff.")
        if stream.first == 0:
            raise DataError(f"no interaction happens before the cutoff {self.cutoff}; choose a later cutoff.")
        n_items = int(self.trainable.n_items)
        if n_items > self.log.n_items:
            raise DataError(
                f"the model scores {n_items} items but the log has only {self.log.n_items}; pass the log whose ids "
                "the model was trained on."
            )
        known = stream.max_item(stream.first)
        if known > n_items:
            raise DataError(
                f"item id {known} occurs before the cutoff, but the model has only {n_items} items, so the ids do "
                "not match. Renumber the log with recwidgets.online.online_logs(log, cutoff) and train the model on "
                "its pre_cutoff log."
            )
        n_users = self.trainable.n_users
        if n_users is not None and stream.max_user(stream.first) > n_users:
            raise DataError(
                f"user id {stream.max_user(stream.first)} occurs before the cutoff, but the model's user table has "
                f"{n_users} users; renumber the log with recwidgets.online.online_logs(log, cutoff)."
            )

    # -- fixed evaluation and training data ----------------------------------------------

    def _forgetting_set(self, n_users: int) -> tuple[EvalSet, np.ndarray]:
        """Return the frozen forgetting set and a stream-length mask of its held-out target positions."""
        stream = self.stream
        heldout = np.zeros(len(stream), dtype=bool)
        candidates = []
        for user in range(1, stream.n_users + 1):
            positions = stream.positions(user)
            before = positions[positions < stream.first]
            if len(before) >= 2:
                candidates.append((user, before))
        rng = np.random.default_rng([self.seed, 0])
        if len(candidates) > n_users:
            chosen = np.sort(rng.choice(len(candidates), size=n_users, replace=False))
            candidates = [candidates[index] for index in chosen]
        users, histories, targets = [], [], []
        for user, before in candidates:
            users.append(user)
            histories.append(stream.items[before[:-1]])
            targets.append(stream.items[before[-1:]])
            heldout[before[-1]] = True
        return EvalSet(np.asarray(users, dtype=np.int64), histories, targets), heldout

    def _rows_of(self, user: int, start: int, stop: int, keep_all: bool) -> list[tuple[np.ndarray, np.ndarray]]:
        """Cut ``user``'s events before ``stop`` into (input, target) windows, newest first.

        Windows are cut from the end as in ``next_item_windows``: ``max_len + 1`` items,
        overlapping by one. Unless ``keep_all``, cutting stops at the first window without a
        target at a position >= ``start``. Held-out forgetting targets become 0.
        """
        positions = self.stream.positions(user)
        positions = positions[positions < stop]
        items = self.stream.items[positions]
        allowed = ~self._heldout[positions]
        is_new = positions >= start
        rows = []
        end = len(items)
        while end >= 2:
            begin = max(0, end - self.max_len - 1)
            if not keep_all and not is_new[begin + 1 : end].any():
                break
            targets = np.where(allowed[begin + 1 : end], items[begin + 1 : end], PAD)
            if targets.any():
                rows.append((items[begin : end - 1], targets))
            if begin == 0:
                break
            end = begin + 1
        return rows

    def _pack(self, rows: list[tuple[int, np.ndarray, np.ndarray]]) -> TrainingBatch:
        inputs = np.zeros((len(rows), self.max_len), dtype=np.int64)
        targets = np.zeros((len(rows), self.max_len), dtype=np.int64)
        users = np.zeros(len(rows), dtype=np.int64)
        for index, (user, row_inputs, row_targets) in enumerate(rows):
            width = len(row_inputs)
            inputs[index, self.max_len - width :] = row_inputs
            targets[index, self.max_len - width :] = row_targets
            users[index] = user
        return TrainingBatch(inputs, targets, users)

    def _replay_rows(self) -> TrainingBatch:
        """Return every training window of the pre-cutoff sequences (the replay pool)."""
        rows = []
        for user in range(1, self.stream.n_users + 1):
            for row_inputs, row_targets in self._rows_of(user, 0, self.stream.first, keep_all=True):
                rows.append((user, row_inputs, row_targets))
        return self._pack(rows)

    def build_batch(self, window: Window) -> TrainingBatch:
        """Return the rows an update on ``window`` trains on (without replay rows); see :class:`TrainingBatch`."""
        users = np.unique(self.stream.users[window.start : window.stop])
        rows = []
        for user in users:
            for row_inputs, row_targets in self._rows_of(int(user), window.start, window.stop, keep_all=False):
                rows.append((int(user), row_inputs, row_targets))
        return self._pack(rows)

    # -- state -------------------------------------------------------------------------

    @property
    def position(self) -> int:
        """Stream position of the next window's first event."""
        return self._position

    @property
    def depth(self) -> int:
        """Number of updates in the model's current state (pending and committed)."""
        return self._depth

    @property
    def n_pending(self) -> int:
        """Number of updates that ``undo`` can still revert."""
        return len(self._pending)

    @property
    def optimizer(self) -> UpdateOptimizer | None:
        """The optimizer of the last update, carried into the next one with ``optimizer_state="carry"``."""
        return self._optimizer

    def next_window(self, window=None) -> Window | None:
        """Return the window the next ``apply`` would train on (default size: ``self.defaults.window``)."""
        spec = self.defaults.window if window is None else window_spec(window)
        return self.stream.next_window(self._position, self._time, spec)

    def snapshot(self) -> Snapshot:
        """Return a CPU copy of the parameters, the optimizer state, the table sizes and the stream position."""
        with self._lock:
            parameters = {
                name: tensor.detach().to("cpu", copy=True) for name, tensor in self.trainable.module.state_dict().items()
            }
            return Snapshot(
                parameters=parameters,
                optimizer=None if self._optimizer is None else self._optimizer.state_dict(),
                n_items=int(self.trainable.n_items),
                n_users=self.trainable.n_users,
                position=self._position,
                time=self._time,
                depth=self._depth,
            )

    def restore(self, snapshot: Snapshot) -> None:
        """Put the model, the optimizer and the stream position back to ``snapshot``, bit for bit."""
        with self._lock:
            self._resize(snapshot.n_items, snapshot.n_users, torch.Generator().manual_seed(0))
            module = self.trainable.module
            device = next(module.parameters()).device
            module.load_state_dict({name: tensor.to(device) for name, tensor in snapshot.parameters.items()})
            if snapshot.optimizer is None:
                self._optimizer = None
            else:
                self._optimizer = self._new_optimizer(lr=0.0)
                self._optimizer.load_state_dict(snapshot.optimizer)
            self._position = snapshot.position
            self._time = snapshot.time
            self._depth = snapshot.depth
            module.eval()

    def _resize(self, n_items: int, n_users: int | None, generator: torch.Generator) -> tuple[int, int]:
        """Resize the item (and user) tables and the optimizer moments; return the numbers of new items and users."""
        trainable = self.trainable
        old_items = int(trainable.n_items)
        old_users = trainable.n_users
        for tables, rows in ((trainable.item_tables(), n_items + 1), (trainable.user_tables(), (n_users or 0) + 1)):
            for parameter in tables.values():
                n_old_rows = resize_rows(parameter, rows, generator, self.noise_scale)
                if self._optimizer is not None and n_old_rows != rows:
                    self._optimizer.pad_state(parameter, n_old_rows)
        trainable.set_sizes(n_items, n_users)
        new_users = 0 if n_users is None or old_users is None else max(n_users - old_users, 0)
        return max(n_items - old_items, 0), new_users

    def _new_optimizer(self, lr: float) -> UpdateOptimizer:
        tables = {**self.trainable.item_tables(), **self.trainable.user_tables()}
        return UpdateOptimizer(self.trainable.module, tables, lr=lr, sparse=self.sparse)

    # -- the update --------------------------------------------------------------------

    def apply(
        self,
        *,
        lr: float | None = None,
        steps: int | None = None,
        window=None,
        replay: float | None = None,
        optimizer_state: str | None = None,
        progress: Progress | None = None,
    ) -> UpdateRecord:
        """Update the model on the next window and return the record; the update stays pending.

        Settings left as None take the updater's defaults. ``progress(fraction, message)``
        is called as the update advances. Raises ConfigError when the stream is exhausted.
        """
        defaults = self.defaults
        settings = self._settings(
            lr=defaults.lr if lr is None else lr,
            steps=defaults.steps if steps is None else steps,
            window=defaults.window if window is None else window,
            replay=defaults.replay if replay is None else replay,
            optimizer_state=defaults.optimizer_state if optimizer_state is None else optimizer_state,
        )
        report = progress if progress is not None else (lambda fraction, message: None)
        with self._lock:
            current = self.stream.next_window(self._position, self._time, settings.window)
            if current is None:
                raise ConfigError(
                    "the stream is exhausted: every window after the cutoff has been applied. Call undo() or reset() "
                    "to replay windows with other settings."
                )
            before = self.snapshot()
            try:
                return self._apply(settings, current, before, report)
            except BaseException:
                # A failed update must not leave half-trained parameters or grown tables behind.
                self.restore(before)
                raise

    def _apply(self, settings: UpdateSettings, current: Window, before: Snapshot, report: Progress) -> UpdateRecord:
        stream = self.stream
        measure_start = time.perf_counter()
        following = stream.next_window(current.stop, current.end_time, settings.window)
        rng = np.random.default_rng([self.seed, current.start, current.stop])
        plasticity_set = None
        if following is not None:
            case_rng = np.random.default_rng([self.seed, following.start, following.stop])
            plasticity_set = next_item_evalset(stream, following, self.max_eval_cases, case_rng)

        report(0.0, "measuring the model before the update")
        known_users = np.unique(stream.users[: current.stop])
        histories = [stream.history(int(user), current.stop) for user in known_users]
        plasticity_before, forgetting_before, lists_before = self._measure_current(plasticity_set, histories)
        plasticity_original = self._original_metrics(following, plasticity_set)
        items_before = self._item_table().to("cpu", copy=True)
        seconds_measure = time.perf_counter() - measure_start

        report(0.2, "growing tables and building training rows")
        update_start = time.perf_counter()
        noise = torch.Generator().manual_seed(int(rng.integers(2**62)))
        n_users_after = None if self.trainable.n_users is None else max(self.trainable.n_users, stream.max_user(current.stop))
        n_new_items, _ = self._resize(
            max(int(self.trainable.n_items), stream.max_item(current.stop)), n_users_after, noise
        )
        batch = self.build_batch(current)
        if settings.optimizer_state == "fresh" or self._optimizer is None:
            self._optimizer = self._new_optimizer(settings.lr)
        self._optimizer.set_lr(settings.lr)
        losses, n_replay = self._train(settings, batch, rng, lambda fraction: report(0.25 + 0.55 * fraction, "training"))
        seconds_update = time.perf_counter() - update_start

        report(0.8, "measuring the model after the update")
        measure_start = time.perf_counter()
        plasticity_after, forgetting_after, lists_after = self._measure_current(plasticity_set, histories)
        items_after = self._item_table().to("cpu")
        drift = embedding_drift(items_before, items_after, stream.items[current.start : current.stop])
        original_rows = self._original_items.shape[0]
        change = items_after[1:original_rows].double() - self._original_items[1:].double()  # (n_original, D)
        drift["drift_l2_original"] = float(torch.linalg.vector_norm(change, dim=1).mean())
        distances = jaccard_distance(lists_before, lists_after)
        affected = np.isin(known_users, stream.users[current.start : current.stop])
        seconds_measure += time.perf_counter() - measure_start

        self._depth += 1
        self._position = current.stop
        self._time = current.end_time
        record = UpdateRecord(
            update=len(self._records) + 1,
            window=self._depth,
            start=pd.Timestamp(current.start_time, unit="s"),
            end=pd.Timestamp(current.end_time, unit="s"),
            start_position=current.start,
            stop_position=current.stop,
            n_interactions=len(current),
            n_users=int(affected.sum()),
            n_new_items=n_new_items,
            n_new_users=self._count_new_users(current),
            settings=settings,
            sparse=self.sparse,
            n_train_rows=len(batch),
            n_replay_rows=n_replay,
            steps_run=len(losses),
            loss_first=losses[0] if losses else float("nan"),
            loss_last=losses[-1] if losses else float("nan"),
            n_plasticity_cases=0 if plasticity_set is None else len(plasticity_set),
            plasticity_original=plasticity_original,
            plasticity_before=plasticity_before,
            plasticity_after=plasticity_after,
            forgetting_original=dict(self._forgetting_original),
            forgetting_before=forgetting_before,
            forgetting_after=forgetting_after,
            jaccard_affected=float(distances[affected].mean()) if affected.any() else float("nan"),
            jaccard_other=float(distances[~affected].mean()) if (~affected).any() else float("nan"),
            drift=drift,
            seconds_update=seconds_update,
            seconds_measure=seconds_measure,
            movers=self._movers(known_users, affected, distances, lists_before, lists_after),
        )
        self._records.append(record)
        self._pending.append((record, before))
        report(1.0, "done")
        logger.info(
            "update %d on window %d (%d events, lr=%g, steps=%d, replay=%g): next-window NDCG@%d %.4f -> %.4f, "
            "forgetting NDCG@%d %.4f -> %.4f",
            record.update,
            record.window,
            record.n_interactions,
            settings.lr,
            settings.steps,
            settings.replay,
            self.k,
            plasticity_before[f"NDCG@{self.k}"],
            plasticity_after[f"NDCG@{self.k}"],
            self.k,
            forgetting_before[f"NDCG@{self.k}"],
            forgetting_after[f"NDCG@{self.k}"],
        )
        return record

    def _measure_current(
        self, plasticity_set: EvalSet | None, histories: list[np.ndarray]
    ) -> tuple[dict[str, float], dict[str, float], np.ndarray]:
        """Return the current model's next-window metrics, forgetting metrics and top-k lists for ``histories``."""
        plasticity = measure(self._scorer, plasticity_set, self.k)
        forgetting = measure(self._scorer, self.forgetting_set, self.k)
        return plasticity, forgetting, top_lists(self._scorer, histories, self.k)

    def _item_table(self) -> torch.Tensor:
        """Return the first item table (the input item embedding), detached."""
        return next(iter(self.trainable.item_tables().values())).detach()

    def _count_new_users(self, window: Window) -> int:
        """Return how many users of ``window`` have no event before it (models without a user table)."""
        users = np.unique(self.stream.users[window.start : window.stop])
        return int(sum(self.stream.positions(int(user))[0] >= window.start for user in users))

    def _original_metrics(self, window: Window | None, evalset: EvalSet | None) -> dict[str, float]:
        if window is None:
            return measure(self._original_scorer, None, self.k)
        key = (window.start, window.stop)
        if key not in self._original_cache:
            self._original_cache[key] = measure(self._original_scorer, evalset, self.k)
        return dict(self._original_cache[key])

    def _train(
        self, settings: UpdateSettings, batch: TrainingBatch, rng: np.random.Generator, report: Callable[[float], None]
    ) -> tuple[list[float], int]:
        """Take ``settings.steps`` optimizer steps; return the loss of each step and the number of replay rows used."""
        if settings.steps == 0:
            return [], 0
        if len(batch) == 0:
            warnings.warn(
                "the window has no trainable row (every user in it has a single event, or only held-out targets), "
                "so the update takes no optimizer step.",
                OnlineWarning,
                stacklevel=4,
            )
            return [], 0

        trainable = self.trainable
        module = trainable.module
        device = next(module.parameters()).device
        per_step = min(self.batch_size, len(batch))
        n_replay = 0
        if settings.replay > 0 and len(self._replay_pool):
            n_replay = int(round(per_step * settings.replay / (1.0 - settings.replay)))
        order = rng.permutation(len(batch))
        loss_generator = torch.Generator().manual_seed(int(rng.integers(2**62)))
        item_names = list(trainable.item_tables())
        user_names = list(trainable.user_tables())
        losses: list[float] = []
        replay_used = 0

        # Dropout draws from torch's global generator. A forked, seeded generator makes the
        # update reproducible without changing the caller's random state.
        # NOTE: the tests run on the CPU only; the CUDA path (forked CUDA generator, SparseAdam
        # on GPU tensors) has not been run.
        devices = [device] if device.type == "cuda" else []
        with torch.random.fork_rng(devices=devices):
            torch.manual_seed(int(rng.integers(2**62)))
            module.train()
            try:
                for step in range(settings.steps):
                    chosen = order[np.arange(step * per_step, (step + 1) * per_step) % len(batch)]
                    inputs, targets, users = batch.inputs[chosen], batch.targets[chosen], batch.users[chosen]
                    if n_replay:
                        pool = self._replay_pool
                        picked = rng.choice(len(pool), size=n_replay, replace=n_replay > len(pool))
                        inputs = np.concatenate([inputs, pool.inputs[picked]])
                        targets = np.concatenate([targets, pool.targets[picked]])
                        users = np.concatenate([users, pool.users[picked]])
                        replay_used += n_replay

                    self._optimizer.zero_grad()
                    loss = trainable.batch_loss(
                        torch.from_numpy(inputs).to(device),
                        torch.from_numpy(targets).to(device),
                        torch.from_numpy(users).to(device),
                        loss_generator,
                    )
                    value = float(loss.detach().item())
                    if not math.isfinite(value):
                        warnings.warn(
                            f"the update loss became {value} at step {step + 1}; the update stops there. Undo it "
                            "and use a lower lr.",
                            OnlineWarning,
                            stacklevel=4,
                        )
                        break
                    loss.backward()
                    allowed = None
                    if self.sparse:
                        present = np.unique(np.concatenate([inputs.ravel(), targets.ravel()]))
                        present_items = torch.from_numpy(present[present != PAD])
                        present_users = torch.from_numpy(np.unique(users[users != PAD]))
                        allowed = {name: present_items for name in item_names}
                        allowed.update({name: present_users for name in user_names})
                    self._optimizer.step(allowed)
                    losses.append(value)
                    report((step + 1) / settings.steps)
            finally:
                module.eval()
        return losses, replay_used

    def _movers(
        self,
        users: np.ndarray,
        affected: np.ndarray,
        distances: np.ndarray,
        before: np.ndarray,
        after: np.ndarray,
    ) -> pd.DataFrame:
        """Return the ``n_movers`` users with the largest Jaccard distance, ties by user id."""
        order = np.lexsort((users, -distances))[: self.n_movers]
        return pd.DataFrame(
            {
                "user": users[order],
                "user_id": self.log.user_ids[users[order]],
                "jaccard": distances[order],
                "in_window": affected[order],
                "before": [[int(item) for item in row if item != PAD] for row in before[order]],
                "after": [[int(item) for item in row if item != PAD] for row in after[order]],
            }
        )

    # -- undo, commit, reset -------------------------------------------------------------

    def undo(self) -> UpdateRecord:
        """Revert the most recent pending update exactly and return its record (now ``"undone"``).

        Raises ConfigError when no update is pending; committed updates are kept, and
        ``reset`` returns to the original model.
        """
        with self._lock:
            if not self._pending:
                raise ConfigError(
                    "there is no pending update to undo; committed updates are kept, so call reset() to return to "
                    "the original model."
                )
            record, before = self._pending.pop()
            self.restore(before)
            record.status = "undone"
            logger.info("undid update %d (window %d)", record.update, record.window)
            return record

    def commit(self) -> int:
        """Keep every pending update (their snapshots are dropped); return how many were committed."""
        with self._lock:
            for record, _ in self._pending:
                record.status = "committed"
            count = len(self._pending)
            self._pending.clear()
            return count

    def reset(self) -> None:
        """Return to the original model and the cutoff; every pending or committed update becomes ``"reset"``."""
        with self._lock:
            self.restore(self.original)
            for record in self._records:
                if record.status in ("pending", "committed"):
                    record.status = "reset"
            self._pending.clear()

    def run(self, n_windows: int | None = None, *, commit: bool = True, progress: Progress | None = None, **settings) -> pd.DataFrame:
        """Apply up to ``n_windows`` windows (default: to the end of the stream), committing each; return ``online_data()``."""
        applied = 0
        while (n_windows is None or applied < n_windows) and self.next_window(settings.get("window")) is not None:
            self.apply(progress=progress, **settings)
            if commit:
                self.commit()
            applied += 1
        return self.online_data()

    # -- results -----------------------------------------------------------------------

    @property
    def records(self) -> list[UpdateRecord]:
        """Every update applied so far, in order, including undone ones."""
        return list(self._records)

    def latest(self) -> UpdateRecord | None:
        """Return the most recent pending or committed update, or None."""
        for record in reversed(self._records):
            if record.status in ("pending", "committed"):
                return record
        return None

    def online_data(self) -> pd.DataFrame:
        """Return the update history, one row per ``apply`` (undone and reset updates included).

        The columns are:

        - ``window`` (1-based depth of the update), ``update`` (1-based call count) and
          ``status`` (pending, committed, undone, reset);
        - the window: ``start``, ``end``, ``n_interactions``, ``n_users``, ``n_new_items``,
          ``n_new_users``, ``window_size``;
        - the settings: ``lr``, ``steps``, ``replay``, ``optimizer_state``, ``sparse``;
        - training counts and losses: ``n_train_rows``, ``n_replay_rows``, ``steps_run``,
          ``loss_first``, ``loss_last``;
        - measurements: ``plasticity_<metric>_{original,before,after}``,
          ``forgetting_<metric>_{original,before,after}``, ``jaccard_affected``,
          ``jaccard_other``, ``drift_*``;
        - ``seconds_update``, ``seconds_measure``, and the flags ``committed`` and ``undone``
          (``undone`` is also true for updates dropped by ``reset``).
        """
        # No lock: copying the list is atomic, so a view can read the history while an update runs.
        rows = [record.as_row() for record in list(self._records)]
        if rows:
            return pd.DataFrame(rows)
        columns = ["window", "update", "status", "start", "end", "n_interactions", "lr", "steps", "replay", "optimizer_state"]
        return pd.DataFrame(columns=columns)

    def movers(self, update: int | None = None) -> pd.DataFrame:
        """Return the top-k movers of update number ``update`` (default: the latest one the model holds)."""
        with self._lock:
            if update is None:
                record = self.latest()
                if record is None:
                    raise ConfigError("no update is applied; call apply() first.")
                return record.movers.copy()
            for record in self._records:
                if record.update == update:
                    return record.movers.copy()
        raise ConfigError(f"update={update!r} is unknown; pass a number from 1 to {len(self._records)}.")

    def metric_labels(self) -> list[str]:
        """Return the metric labels recorded per measurement, such as ``["NDCG@10", "HR@10"]``."""
        return [f"{name}@{self.k}" for name in METRICS]

    def with_defaults(self, **settings) -> None:
        """Change the default settings of later updates (lr, steps, window, replay, optimizer_state)."""
        current = self.defaults
        values = {
            "lr": current.lr,
            "steps": current.steps,
            "window": current.window,
            "replay": current.replay,
            "optimizer_state": current.optimizer_state,
        }
        unknown = sorted(set(settings) - set(values))
        if unknown:
            raise ConfigError(f"unknown setting(s) {unknown}; use {sorted(values)}.")
        values.update(settings)
        self.defaults = self._settings(**values)


def _check_int(name: str, value, minimum: int) -> int:
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ConfigError(f"{name}={value!r} is invalid; pass an integer >= {minimum}.")
    return int(value)


def _check_bool(name: str, value) -> bool:
    if not isinstance(value, (bool, np.bool_)):
        raise ConfigError(f"{name}={value!r} is invalid; pass True or False.")
    return bool(value)
