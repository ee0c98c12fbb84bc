"""Shapley-value attributions of a sequential recommender's output to the items of one history.

The *players* are the positions of a user's history (its last ``max_len`` items), or named
groups of positions (genres, a recency window). The *value function* ``v(S)`` scores the
history in which only the players in coalition ``S`` are present. It reads one output: the
score of a target item, its log-probability under a softmax over the catalog, or the
contrast ``score(A) - score(B)`` between two items. The Shapley value of player ``i`` is

    phi_i = sum over S without i of |S|! (P - |S| - 1)! / P! * (v(S + i) - v(S))

(Shapley, "A value for n-person games", 1953; used for model explanations by Lundberg and
Lee, "A Unified Approach to Interpreting Model Predictions", NeurIPS 2017). Three estimators
are implemented here:

- ``exact``: enumerates all 2^P coalitions in batched forward passes (P <= 20).
- ``kernel``: paired Kernel SHAP, a least-squares fit of coalitions drawn from the Shapley
  kernel, with sandwich standard errors. The default run stops once every player is within
  ``tolerance`` at 95% simultaneous confidence. At equal budgets on SASRec trained on ML-100K
  its largest standard error was 1.1 to 3.2 times smaller than that of permutation sampling
  over 12 histories of 50 items (``bench/results/shap_methods.md``), so ``method="auto"``
  uses it for adaptive runs beyond 14 players.
- ``permutation``: averages marginal contributions along random orderings of the players
  (Castro, Gomez and Tejada, "Polynomial calculation of the Shapley value based on
  sampling", 2009), each ordering paired with its reverse (antithetic sampling, Mitchell et
  al., "Sampling Permutations for Shapley Value Estimation", JMLR 2022). The standard error
  of each player comes from the spread of the per-pair contributions, with the same
  stopping rule. After a pilot of 16 pairs, a round may instead sample marginal
  contributions of the single players whose error is still too large, at 4 forward passes
  per sample instead of 2 (P - 1) for a whole ordering. ``method="auto"`` uses it when a
  fixed ``n_pairs`` is given, because those pairs are cheap whole orderings.

All three satisfy efficiency: ``base_value + sum(values)`` equals the explained output
``v(all players)``. The exact formula does by construction, the marginal contributions
along one ordering telescope to ``v(all) - v(empty)``, after single-player rounds the
remaining residual is spread over the players in proportion to their variances, and the
Kernel SHAP fit is constrained to it.

The ``shap`` package is used for its ``Explanation`` type, so ``shap.plots.bar`` and
``shap.plots.waterfall`` draw our results. Its ``PermutationExplainer`` evaluates one
ordering per model call, and neither it nor ``KernelExplainer`` reports a per-player error
to stop on or can be cancelled, so the estimators here are our own.
"""

from __future__ import annotations

import logging
import math
import threading
import time
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from statistics import NormalDist
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import torch

from recwidgets.data.log import PAD
from recwidgets.errors import ConfigError, DataError, RecwidgetsWarning

if TYPE_CHECKING:
    import shap

    from recwidgets.data.log import InteractionLog
    from recwidgets.data.split import Split

logger = logging.getLogger(__name__)

OUTPUTS = ("score", "log_prob")
ABSENCE_MODES = ("remove", "pad")
METHODS = ("auto", "exact", "permutation", "kernel")

#: ``method="auto"`` enumerates coalitions up to this many players (2^14 = 16,384 passes).
AUTO_EXACT_MAX_PLAYERS = 14
#: ``method="exact"`` rejects more players than this (2^20 is about a million passes).
EXACT_MAX_PLAYERS = 20
#: Antithetic pairs evaluated before the first convergence check.
MIN_PAIRS = 16

__all__ = [
    "ABSENCE_MODES",
    "OUTPUTS",
    "ConvergenceWarning",
    "ExplanationCancelled",
    "ExplanationCost",
    "HistoryValueFunction",
    "ShapExplainer",
    "ShapMeta",
    "attribution_summary",
    "explain_recommendation",
    "genre_groups",
    "recency_groups",
    "recommend",
    "shap_frame",
]


class ConvergenceWarning(RecwidgetsWarning):
    """A sampled explanation stopped at its budget before reaching the requested tolerance."""


class ExplanationCancelled(RuntimeError):
    """Raised when a callback or a cancel event stops an explanation before it finishes.

    ``partial`` is a ``shap.Explanation`` built from the sampled pairs finished so far
    (flagged ``meta.partial=True``, still efficient), or None when nothing usable was
    computed (exact enumeration, or a sampled run cancelled before its first pair).
    """

    def __init__(self, message: str, partial: "shap.Explanation | None" = None):
        super().__init__(message)
        self.partial = partial


@dataclass(frozen=True)
class ExplanationCost:
    """The forward passes (scored histories) an explanation needs, known before it runs.

    For an adaptive sampled run ``forward_passes`` is the upper bound ``max_evals``;
    ``estimated_forward_passes`` is filled in after the first convergence check.
    """

    method: str
    n_players: int
    forward_passes: int
    batches: int
    adaptive: bool = False
    estimated_forward_passes: int | None = None

    def __str__(self) -> str:
        bound = "up to " if self.adaptive else ""
        text = (
            f"{self.method} Shapley values for {self.n_players} player(s): {bound}{self.forward_passes:,} "
            f"forward passes in {bound}{self.batches:,} batch(es)"
        )
        if self.estimated_forward_passes is not None:
            text += f", estimated {self.estimated_forward_passes:,} to converge"
        return text


@dataclass(frozen=True)
class ShapMeta:
    """The explained output and the estimation details of one explanation, stored as ``explanation.meta``.

    ``positions`` gives each feature's offset from the end of the history (-1 is the most
    recent item) when the players are positions, and is None for grouped players. ``label``
    names the output for display, such as ``"score(Fargo (1996))"``.
    ``max_standard_error`` is 0 for exact values. ``n_pairs`` counts permutation pairs and
    ``n_refined`` single-player samples. ``partial`` is True only for the result attached
    to :class:`ExplanationCancelled`.
    """

    user: int | None
    target: int
    versus: int | None
    output: str
    absence: str
    method: str
    positions: np.ndarray | None
    explained_output: float
    n_evals: int
    n_pairs: int | None
    n_refined: int
    max_standard_error: float
    tolerance: float | None
    converged: bool
    partial: bool = False
    label: str = ""


# ---------------------------------------------------------------------------------------
# Recommendations and player groups
# ---------------------------------------------------------------------------------------


def _check_model(model) -> None:
    missing = [name for name in ("score", "n_items", "max_len", "device") if not hasattr(model, name)]
    if missing:
        raise ConfigError(
            f"{type(model).__name__} lacks {missing} of the model protocol; wrap a torch module with "
            "recwidgets.models.TorchModuleRecommender or fit the model first."
        )


def _as_history(history, n_items: int) -> np.ndarray:
    """Return ``history`` as a 1-D int64 array of ids in [0, n_items], 0 being padding."""
    if isinstance(history, torch.Tensor):
        history = history.detach().cpu().numpy()
    items = np.asarray(history)
    if items.ndim == 2 and items.shape[0] == 1:
        items = items[0]
    if items.ndim != 1:
        raise DataError(f"a history must be a 1-D sequence of item ids; got shape {items.shape}.")
    if items.size and not np.issubdtype(items.dtype, np.integer):
        raise DataError(f"a history must contain integer item ids; got dtype {items.dtype}.")
    items = items.astype(np.int64)
    bad = items[(items < 0) | (items > n_items)]
    if bad.size:
        raise DataError(
            f"history contains item id {int(bad[0])}, outside the catalog [1, {n_items}] (0 is padding); "
            "pass internal item ids from the same InteractionLog the model was trained on."
        )
    return items


def _window(model, items: np.ndarray) -> tuple[np.ndarray, int]:
    """Cut ``items`` to the last ``max_len`` and return them with the model input width."""
    if model.max_len is None:
        return items, max(len(items), 1)
    width = int(model.max_len)
    return items[-width:], width


def recommend(model, history, k: int = 10, *, exclude_seen: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """Return the top-``k`` item ids and their scores for one history, best first.

    Ranks as full-ranking evaluation does (:mod:`recwidgets.evaluation.ranking`): padding
    (id 0) is never recommended, with ``exclude_seen`` neither is any item of the history,
    and equal scores go to the lower item id.
    """
    from recwidgets.evaluation.ranking import candidate_mask, score_batch, top_k_items

    _check_model(model)
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
        raise ConfigError(f"k={k!r} is invalid; pass an int >= 1.")
    items = _as_history(history, model.n_items)
    items = items[items != PAD]
    scores = score_batch(model, [items])
    candidates = candidate_mask(model.n_items, [items], [items[:0]], exclude_seen=exclude_seen, device=scores.device)
    k = min(int(k), int(candidates.sum()))
    if k == 0:
        return np.zeros(0, dtype=np.int64), np.zeros(0)
    top = top_k_items(scores, candidates, k)[0]
    return top, scores[0, torch.from_numpy(top).to(scores.device)].double().cpu().numpy()


def genre_groups(history, item_genres, *, max_len: int | None = None) -> dict[str, list[int]]:
    """Group history positions by genre, for players that are genres rather than items.

    ``item_genres`` maps an item id to its genres: a sequence indexed by item id, a mapping,
    or an ``InteractionLog`` (its ``items["genres"]``). Positions are counted within the last
    ``max_len`` items (all of them when None). Items without a genre form the group
    ``"(no genre)"``. An item with several genres belongs to each group, and the value
    function treats it as absent as soon as one of its groups is absent, so a genre's
    absence hides every item of that genre.
    """
    items = np.asarray(history, dtype=np.int64)
    if max_len is not None:
        items = items[-max_len:]
    lookup = _genre_lookup(item_genres)
    groups: dict[str, list[int]] = {}
    for position, item in enumerate(items):
        if item == PAD:
            continue
        genres = tuple(lookup(int(item))) or ("(no genre)",)
        for genre in genres:
            groups.setdefault(str(genre), []).append(position)
    return dict(sorted(groups.items()))


def _genre_lookup(item_genres) -> Callable[[int], Sequence[str]]:
    items = getattr(item_genres, "items", None)
    if isinstance(items, pd.DataFrame):
        if "genres" not in items.columns:
            raise DataError("the log's item table has no 'genres' column; load a dataset with genres.")
        column = items["genres"]
        return lambda item: column.get(item, ()) or ()
    if isinstance(item_genres, Mapping):
        return lambda item: item_genres.get(item, ()) or ()
    if isinstance(item_genres, pd.Series):
        return lambda item: item_genres.get(item, ()) or ()
    return lambda item: item_genres[item] if item < len(item_genres) else ()


def recency_groups(length: int, window: int) -> dict[str, list[int]]:
    """Group the most recent ``window`` positions of a ``length``-item history into one player.

    Older positions stay single players named ``"position -j"`` (``-1`` is the most recent
    item), so the result shows how much the recent session weighs against each older item.
    """
    if isinstance(window, bool) or not isinstance(window, (int, np.integer)) or window < 1:
        raise ConfigError(f"window={window!r} is invalid; pass an int >= 1.")
    length = int(length)
    recent = list(range(max(length - window, 0), length))
    groups = {f"position {position - length}": [position] for position in range(max(length - window, 0))}
    groups[f"last {min(window, length)}"] = recent
    return groups


# ---------------------------------------------------------------------------------------
# The value function
# ---------------------------------------------------------------------------------------


def _build_players(
    items: np.ndarray, groups: Mapping[str, Sequence[int]] | None
) -> tuple[list[str], np.ndarray]:
    """Return player names and the (P, n) membership of the ``n`` history positions in players."""
    n = len(items)
    real = items != PAD
    if groups is None:
        positions = np.flatnonzero(real)
        membership = np.zeros((len(positions), n), dtype=bool)
        membership[np.arange(len(positions)), positions] = True
        return [f"position {p - n}" for p in positions], membership

    if not isinstance(groups, Mapping):
        raise ConfigError(
            f"groups must map player names to lists of positions; got {type(groups).__name__}. "
            "Build one with genre_groups or recency_groups."
        )
    names, rows = [], []
    for name, positions in groups.items():
        positions = np.asarray(list(positions), dtype=np.int64)
        outside = positions[(positions < 0) | (positions >= n)]
        if outside.size:
            raise ConfigError(
                f"group {name!r} names position {int(outside[0])}, outside the {n} kept history "
                f"positions [0, {n - 1}]; count positions within the last max_len items."
            )
        row = np.zeros(n, dtype=bool)
        row[positions] = True
        row &= real
        if row.any():
            names.append(str(name))
            rows.append(row)
    covered = np.any(rows, axis=0) if rows else np.zeros(n, dtype=bool)
    uncovered = real & ~covered
    if uncovered.any():
        names.append("(other)")
        rows.append(uncovered)
    membership = np.stack(rows) if rows else np.zeros((0, n), dtype=bool)
    return names, membership


class HistoryValueFunction:
    """The value ``v(S)`` of coalitions of history positions for one user and one output.

    ``history`` is the user's chronological item ids (a left-padded row is accepted; its
    padding positions are no players). Only the last ``model.max_len`` items are read, so
    the explained output is the model's output for the full history, and older items never
    enter a masked history.

    ``absence`` sets how an absent item is hidden:

    - ``"remove"`` (default) drops it and left-pads the remaining items again. The masked
      history is a shorter history of the kind the model saw in training, positional
      embeddings included, and its most recent present item is still in the last column,
      where SASRec-style models read their prediction. Removing one item shifts every
      older item by one position, so an attribution also carries the position effects of
      the items it moves, and players interact more. On SASRec trained on ML-100K the
      largest per-pair spread of an attribution was 2.3 to 4.6 times that under padding
      (three 50-item users, ``bench/results/shap_absence.md``), so equal precision takes
      roughly 5 to 20 times as many forward passes.
    - ``"pad"`` puts the padding id in its place, so every other item keeps its position
      and an attribution belongs to that item alone. But gaps never occur in training
      data. Worse, a model that reads its prediction at the last column finds padding
      there once the most recent item is hidden. SASRec then returns the empty history's
      scores whatever else is present, so every other item only counts together with the
      most recent one.

    ``output`` is ``"score"`` (the target's raw score) or ``"log_prob"`` (its log-softmax
    over items 1..n_items). With ``versus`` the value is the contrast
    ``output(target) - output(versus)``. ``target`` defaults to the top-1 recommendation for
    the full history, seen items excluded when ``exclude_seen``.

    ``groups`` maps player names to position lists (0 is the oldest kept item). A position
    is present when every group containing it is present; positions in no group form the
    player ``"(other)"``.

    Calling the object with a boolean (M, P) coalition matrix returns the (M,) float64
    values, scoring ``batch_size`` histories per ``model.score`` call on the model's device.
    ``n_evals`` counts scored histories.
    """

    def __init__(
        self,
        model,
        history,
        *,
        target: int | None = None,
        versus: int | None = None,
        output: str = "score",
        absence: str = "remove",
        groups: Mapping[str, Sequence[int]] | None = None,
        exclude_seen: bool = True,
        batch_size: int = 256,
    ):
        _check_model(model)
        if output not in OUTPUTS:
            raise ConfigError(f"output={output!r} is invalid; use one of {OUTPUTS}.")
        if absence not in ABSENCE_MODES:
            raise ConfigError(f"absence={absence!r} is invalid; use one of {ABSENCE_MODES}.")
        if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
            raise ConfigError(f"batch_size={batch_size!r} is invalid; pass an int >= 1.")
        self.model = model
        self.output = output
        self.absence = absence
        self.batch_size = int(batch_size)
        self.n_evals = 0

        full_history = _as_history(history, model.n_items)
        self.items, self.width = _window(model, full_history)
        self.real = self.items != PAD
        self.grouped = groups is not None
        self.player_names, self.membership = _build_players(self.items, groups)

        device = model.device
        self._items = torch.from_numpy(self.items).to(device)
        self._real = torch.from_numpy(self.real).to(device)
        self._membership = torch.from_numpy(self.membership).to(device=device, dtype=torch.float32)

        self.target = self._resolve_target(target, full_history, exclude_seen)
        self.versus = None if versus is None else self._check_item(versus, "versus")
        if self.versus is not None and self.versus == self.target:
            raise ConfigError(
                f"versus={self.versus} equals the target; pick a different item B for the contrast "
                "score(A) - score(B)."
            )

    @property
    def n_players(self) -> int:
        """Number of players P."""
        return len(self.player_names)

    def _check_item(self, item, name: str) -> int:
        if isinstance(item, bool) or not isinstance(item, (int, np.integer)) or not 1 <= item <= self.model.n_items:
            raise ConfigError(
                f"{name}={item!r} is not an item id; pass an internal id in [1, {self.model.n_items}]."
            )
        return int(item)

    def _resolve_target(self, target, full_history: np.ndarray, exclude_seen: bool) -> int:
        if target is not None:
            return self._check_item(target, "target")
        items, _ = recommend(self.model, full_history, 1, exclude_seen=exclude_seen)
        self.n_evals += 1
        if not len(items):
            raise DataError("no item is left to recommend after excluding the history; pass target= explicitly.")
        return int(items[0])

    def histories(self, coalitions) -> torch.Tensor:
        """Return the (M, L) masked, left-padded histories for a boolean (M, P) coalition matrix."""
        present_players = torch.as_tensor(np.asarray(coalitions, dtype=bool), device=self._items.device)
        rows = present_players.shape[0]

        # (M, P) @ (P, n) counts, per position, the absent groups that contain it.
        absent = ((~present_players).to(torch.float32) @ self._membership) > 0
        keep = ~absent & self._real  # (M, n)
        out = torch.zeros((rows, self.width), dtype=torch.long, device=self._items.device)
        n = len(self.items)
        if n == 0:
            return out
        if self.absence == "pad":
            out[:, self.width - n :] = torch.where(keep, self._items, torch.zeros_like(self._items))
            return out

        # Re-pack: a kept item moves right past every removed item after it, so its column
        # is width minus the number of kept items at or after it.
        kept_after = keep.flip(1).cumsum(1).flip(1)
        row_index, column = keep.nonzero(as_tuple=True)
        out[row_index, self.width - kept_after[row_index, column]] = self._items[column]
        return out

    def output_tensor(self, scores: torch.Tensor) -> torch.Tensor:
        """Read the explained output from (M, n_items + 1) scores as an (M,) float64 tensor.

        Differentiable, so gradient-based attributions explain the same output.
        """
        scores = scores.double()
        if self.output == "log_prob":
            # Padding (column 0) is no candidate, so the softmax runs over items 1..n_items.
            scores = torch.cat([scores[:, :1], torch.log_softmax(scores[:, 1:], dim=1)], dim=1)
        values = scores[:, self.target]
        if self.versus is not None:
            values = values - scores[:, self.versus]
        return values

    def outputs(self, scores: torch.Tensor) -> np.ndarray:
        """Read the explained output from (M, n_items + 1) scores as an (M,) float64 array."""
        # A column of the score matrix is a view that would keep the whole (M, n_items + 1)
        # matrix alive while the batches of a run are collected, so copy it out.
        return self.output_tensor(scores.detach()).cpu().numpy().copy()

    def player_columns(self) -> np.ndarray:
        """Return the input column of each position player in the full history, shape (P,).

        Raises ConfigError for grouped players, which span several columns.
        """
        if self.grouped:
            raise ConfigError("player_columns needs one position per player; build the value function without groups.")
        positions = np.flatnonzero(self.real)
        n = len(self.items)
        if self.absence == "pad":
            return self.width - n + positions
        # Re-packed: a real item sits left of every real item after it.
        return self.width - (len(positions) - np.arange(len(positions)))

    def evaluate_batch(self, coalitions) -> np.ndarray:
        """Score one batch of coalitions with a single ``model.score`` call."""
        histories = self.histories(coalitions)
        with torch.no_grad():
            scores = self.model.score(histories)
        self.n_evals += histories.shape[0]
        return self.outputs(scores)

    def __call__(self, coalitions) -> np.ndarray:
        coalitions = np.asarray(coalitions, dtype=bool).reshape(-1, self.n_players)
        parts = [
            self.evaluate_batch(coalitions[start : start + self.batch_size])
            for start in range(0, len(coalitions), self.batch_size)
        ]
        return np.concatenate(parts) if parts else np.zeros(0)


# ---------------------------------------------------------------------------------------
# Running batches with progress and cancellation
# ---------------------------------------------------------------------------------------


class _Cancelled(Exception):
    pass


class _BatchRunner:
    """Evaluates coalitions batch by batch, updating a progress bar and checking for cancellation."""

    def __init__(self, value_fn: HistoryValueFunction, total: int, *, progress: bool, callback, cancel):
        self.value_fn = value_fn
        self.total = total
        self.done = 0
        self.callback = callback
        self.cancel = cancel
        self.max_standard_error: float | None = None
        self.bar = None
        if progress:
            from tqdm.auto import tqdm

            self.bar = tqdm(total=total, desc="Shapley values", unit="pass", leave=False)

    def set_total(self, total: int) -> None:
        self.total = total
        if self.bar is not None:
            self.bar.total = total
            self.bar.refresh()

    def check(self) -> None:
        if self.cancel is not None and self.cancel.is_set():
            raise _Cancelled("the cancel event was set")
        if self.callback is not None:
            state = {"done": self.done, "total": self.total, "max_standard_error": self.max_standard_error}
            if self.callback(state) is False:
                raise _Cancelled("the callback returned False")

    def __call__(self, coalitions: np.ndarray) -> np.ndarray:
        parts = []
        size = self.value_fn.batch_size
        for start in range(0, len(coalitions), size):
            self.check()
            batch = coalitions[start : start + size]
            parts.append(self.value_fn.evaluate_batch(batch))
            self.done += len(batch)
            if self.bar is not None:
                self.bar.update(len(batch))
        return np.concatenate(parts) if parts else np.zeros(0)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


# ---------------------------------------------------------------------------------------
# Estimators
# ---------------------------------------------------------------------------------------


@dataclass
class _Estimate:
    values: np.ndarray
    base_value: float
    full_value: float
    standard_error: np.ndarray
    n_pairs: int | None
    converged: bool
    n_refined: int = 0


def _exact(run: _BatchRunner, n_players: int) -> _Estimate:
    """Enumerate all 2^P coalitions and apply the Shapley formula."""
    codes = np.arange(2**n_players, dtype=np.int64)
    bits = ((codes[:, None] >> np.arange(n_players)) & 1).astype(bool)  # (2^P, P)
    values = run(bits)
    sizes = bits.sum(axis=1)

    # Weight of a coalition of size s that lacks player i: s! (P - s - 1)! / P!.
    weights = np.array(
        [1.0 / (n_players * math.comb(n_players - 1, size)) for size in range(n_players)], dtype=np.float64
    )
    phi = np.zeros(n_players)
    for player in range(n_players):
        without = codes[~bits[:, player]]
        phi[player] = np.dot(weights[sizes[without]], values[without | (1 << player)] - values[without])
    return _Estimate(phi, float(values[0]), float(values[-1]), np.zeros(n_players), None, True)


def _pair_coalitions(ranks: np.ndarray) -> np.ndarray:
    """Return the coalitions of antithetic pairs: (n_pairs * 2 * (P - 1), P) booleans.

    ``ranks[p, i]`` is player i's place in pair p's permutation. Row block 0 holds the
    prefixes of sizes 1..P-1 of the permutation, block 1 the prefixes of its reverse (the
    last k players of the permutation). The empty and full coalitions are shared by every
    ordering and evaluated once.
    """
    n_players = ranks.shape[1]
    sizes = np.arange(1, n_players)
    forward = ranks[:, None, :] < sizes[None, :, None]  # (n_pairs, P - 1, P)
    backward = ranks[:, None, :] >= (n_players - sizes)[None, :, None]
    return np.stack([forward, backward], axis=1).reshape(-1, n_players)


def _pair_contributions(ranks: np.ndarray, values: np.ndarray, base: float, full: float) -> np.ndarray:
    """Return each pair's mean marginal contribution per player: (n_pairs, P)."""
    n_pairs, n_players = ranks.shape
    values = values.reshape(n_pairs, 2, n_players - 1)
    ends = np.full((n_pairs, 1), base), np.full((n_pairs, 1), full)
    forward = np.diff(np.concatenate([ends[0], values[:, 0], ends[1]], axis=1), axis=1)  # by place in the ordering
    backward = np.diff(np.concatenate([ends[0], values[:, 1], ends[1]], axis=1), axis=1)

    # The player at place r of the permutation is added at step r going forward and at
    # step P - 1 - r along the reverse ordering.
    forward_player = np.take_along_axis(forward, ranks, axis=1)
    backward_player = np.take_along_axis(backward, n_players - 1 - ranks, axis=1)
    return (forward_player + backward_player) / 2.0


def _standard_error(samples: np.ndarray) -> np.ndarray:
    if len(samples) < 2:
        return np.full(samples.shape[1], np.inf)
    return samples.std(axis=0, ddof=1) / math.sqrt(len(samples))


def _player_coalitions(player: int, n_pairs: int, n_players: int, rng: np.random.Generator) -> np.ndarray:
    """Return (n_pairs * 4, P) coalitions for antithetic marginal samples of one player.

    Each pair draws a coalition S of the other players (size uniform in 0..P-1, members
    uniform given the size, as in the Shapley weighting) and its complement S' among the
    other players. Rows come in the order S, S + i, S', S' + i.
    """
    others = n_players - 1
    sizes = rng.integers(0, others + 1, size=n_pairs)
    ranks = np.argsort(rng.random((n_pairs, others)), axis=1).argsort(axis=1)
    chosen = ranks < sizes[:, None]  # (n_pairs, P - 1)
    rest = np.delete(np.arange(n_players), player)
    coalitions = np.zeros((n_pairs, 4, n_players), dtype=bool)
    coalitions[:, 0, rest] = chosen
    coalitions[:, 2, rest] = ~chosen
    coalitions[:, 1] = coalitions[:, 0]
    coalitions[:, 3] = coalitions[:, 2]
    coalitions[:, 1, player] = True
    coalitions[:, 3, player] = True
    return coalitions.reshape(-1, n_players)


class _PermutationRun:
    """Antithetic permutation sampling, optionally refined player by player.

    Phase 1 samples pairs of a random permutation and its reverse. Each pair gives every
    player one sample (the mean of its two marginal contributions) for 2 (P - 1) passes.
    With ``refine``, a later round may instead spend passes only on the players whose
    standard error is still above the target, where an antithetic marginal sample of one
    player costs 4 passes. Each round takes whichever of the two is predicted to reach the target
    with fewer passes, which is refinement when a few players carry most of the variance.
    Per player, the two kinds of samples are combined by inverse-variance weights, and the
    residual ``v(all) - v(empty) - sum(values)`` is spread over players in proportion to
    their squared standard errors (the least-squares projection onto the efficiency
    constraint), so efficiency holds exactly either way.

    NOTE: a variance from the 16 pilot pairs can miss rare large contributions. On SASRec
    with a 50-item history (``bench/results/shap.md``), the player furthest from the
    reference (0.037) had only its pilot pairs, whose spread gave a standard error of 0.006,
    and refinement spent the budget on other players. Kernel SHAP is the adaptive default
    for that reason.
    """

    def __init__(
        self,
        run: _BatchRunner,
        n_players: int,
        *,
        rng: np.random.Generator,
        n_pairs: int | None,
        tolerance: float,
        confidence: float,
        max_evals: int,
        refine: bool,
    ):
        self.run = run
        self.n_players = n_players
        self.rng = rng
        self.n_pairs = n_pairs
        self.max_evals = max_evals
        self.refine = refine
        # Bonferroni over players: every player within tolerance at the joint confidence.
        self.z = NormalDist().inv_cdf(1.0 - (1.0 - confidence) / (2.0 * n_players))
        self.target_error = tolerance / self.z
        self.samples: list[np.ndarray] = []
        self.player_samples: list[list[np.ndarray]] = [[] for _ in range(n_players)]
        self.base = self.full = math.nan
        self.estimated_passes: int | None = None

    @property
    def rows_per_pair(self) -> int:
        return 2 * (self.n_players - 1)

    @property
    def pairs_done(self) -> int:
        return sum(len(samples) for samples in self.samples)

    def _phase_statistics(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Return count, mean and variance per player of phase 1 and of the refinement samples.

        A phase with fewer than ``MIN_PAIRS`` samples borrows the other phase's variance,
        because a variance from a handful of samples can be 0 by chance.
        """
        stacked = np.concatenate(self.samples) if self.samples else np.zeros((0, self.n_players))
        count = np.full(self.n_players, len(stacked), dtype=np.float64)
        mean = stacked.mean(axis=0) if len(stacked) else np.zeros(self.n_players)
        variance = stacked.var(axis=0, ddof=1) if len(stacked) > 1 else np.full(self.n_players, np.inf)
        extra_count = np.zeros(self.n_players)
        extra_mean = np.zeros(self.n_players)
        extra_variance = variance.copy()
        for player, samples in enumerate(self.player_samples):
            if samples:
                values = np.concatenate(samples)
                extra_count[player] = len(values)
                extra_mean[player] = values.mean()
                if len(values) >= MIN_PAIRS:
                    extra_variance[player] = values.var(ddof=1)
        borrow = (count < MIN_PAIRS) & (extra_count >= MIN_PAIRS)
        variance = np.where(borrow, extra_variance, variance)
        return count, mean, variance, extra_count, extra_mean, extra_variance

    def _combined(self) -> tuple[np.ndarray, np.ndarray]:
        """Return per-player values and standard errors before the efficiency projection."""
        count, mean, variance, extra_count, extra_mean, extra_variance = self._phase_statistics()
        with np.errstate(divide="ignore", invalid="ignore"):
            precision = np.where(variance > 0, count / variance, np.where(count > 0, np.inf, 0.0))
            extra_precision = np.where(
                extra_variance > 0, extra_count / extra_variance, np.where(extra_count > 0, np.inf, 0.0)
            )
            total = precision + extra_precision
            # A phase with zero variance is exact; weigh by sample counts when both are.
            weight = np.where(
                np.isinf(total),
                np.where(np.isinf(precision) & np.isinf(extra_precision), count / (count + extra_count),
                         np.isinf(precision).astype(np.float64)),
                precision / total,
            )
            errors = np.where(np.isinf(total), 0.0, 1.0 / np.sqrt(total))
        values = weight * mean + (1.0 - weight) * extra_mean
        return values, errors

    def estimate(self, converged: bool) -> _Estimate:
        values, errors = self._combined()
        residual = (self.full - self.base) - values.sum()
        squared = errors**2
        if np.isfinite(squared).all() and squared.sum() > 0:
            values = values + residual * squared / squared.sum()
        else:
            values = values + residual / self.n_players
        n_pairs = sum(len(samples) for samples in self.samples)
        n_refined = sum(len(samples) for per_player in self.player_samples for samples in per_player)
        return _Estimate(values, self.base, self.full, errors, n_pairs, converged, n_refined)

    def _needs(self, errors: np.ndarray) -> tuple[int, int, np.ndarray]:
        """Return predicted passes to the target by permutation pairs and by refinement, and the pairs per player."""
        _, _, variance, _, _, extra_variance = self._phase_statistics()
        with np.errstate(divide="ignore"):
            # Each sample adds 1 / variance to a player's precision, which must reach 1 / target^2.
            gap = np.clip(1.0 / self.target_error**2 - 1.0 / errors**2, 0.0, None)
        plain = np.ceil(np.nan_to_num(variance * gap, posinf=0.0))
        refined = np.ceil(np.nan_to_num(extra_variance * gap, posinf=0.0))
        return int(self.rows_per_pair * plain.max()), int(4 * refined.sum()), refined

    def _permutation_round(self, pairs: int) -> None:
        ranks = np.argsort(self.rng.random((pairs, self.n_players)), axis=1).argsort(axis=1)
        values = self.run(_pair_coalitions(ranks))
        self.samples.append(_pair_contributions(ranks, values, self.base, self.full))

    def _refinement_round(self, needs: np.ndarray, max_rows: int) -> int:
        """Sample the players that need it, neediest first, in at most ``max_rows`` passes; return the passes."""
        players = [int(player) for player in np.argsort(-needs, kind="stable") if needs[player] > 0]
        scale = min(1.0, max_rows / (4 * needs.sum()))
        left = max_rows
        for player in players:
            pairs = min(max(MIN_PAIRS, math.ceil(needs[player] * scale)), left // 4)
            if pairs < 1:
                break
            coalitions = _player_coalitions(player, pairs, self.n_players, self.rng)
            values = self.run(coalitions).reshape(pairs, 4)
            self.player_samples[player].append(((values[:, 1] - values[:, 0]) + (values[:, 3] - values[:, 2])) / 2.0)
            left -= len(coalitions)
        return max_rows - left

    def __call__(self) -> _Estimate:
        self.base, self.full = self.run(np.array([[False] * self.n_players, [True] * self.n_players]))
        per_round = max(1, math.ceil(self.run.value_fn.batch_size / self.rows_per_pair))

        if self.n_pairs is not None:
            done = 0
            while done < self.n_pairs:
                pairs = min(per_round, self.n_pairs - done)
                self._permutation_round(pairs)
                done += pairs
            return self.estimate(converged=True)

        self._permutation_round(min(MIN_PAIRS, max((self.max_evals - 2) // self.rows_per_pair, 1)))
        round_rows = max(self.run.value_fn.batch_size, 4 * MIN_PAIRS)
        while True:
            _, errors = self._combined()
            error = float(errors.max())
            self.run.max_standard_error = error
            if error <= self.target_error:
                return self.estimate(converged=True)
            plain_cost, refine_cost, needs = self._needs(errors)
            use_refinement = self.refine and refine_cost < plain_cost
            predicted = self.run.done + (refine_cost if use_refinement else plain_cost)
            if self.estimated_passes is None:
                self.estimated_passes = min(predicted, self.max_evals)
                logger.info(
                    "Shapley values: max standard error %.4g after the pilot; estimated %d forward passes to reach %.4g",
                    error,
                    self.estimated_passes,
                    self.target_error,
                )
            self.run.set_total(min(max(predicted, self.run.done + round_rows), self.max_evals))

            left = self.max_evals - self.run.done
            # A refinement round that finds nothing to sample falls through to whole permutations.
            if use_refinement and left >= 4 and self._refinement_round(needs, min(round_rows, left)) > 0:
                continue
            pairs = min(per_round, left // self.rows_per_pair)
            if pairs < 1:
                return self.estimate(converged=False)
            self._permutation_round(pairs)


class _KernelRun:
    """Paired Kernel SHAP: a least-squares fit of the value function, with a standard error.

    Coalitions are drawn from the Shapley kernel (size s with probability proportional to
    (P - 1) / (s (P - s)), members uniform given the size), each with its complement
    (paired sampling, Covert and Lee, "Improving KernelSHAP: Practical Shapley Value
    Estimation via Linear Regression", AISTATS 2021). The values solve
    min sum (v(z) - v(empty) - beta . z)^2 subject to sum(beta) = v(all) - v(empty), so
    efficiency holds exactly and an additive value function is recovered exactly. The
    standard errors come from the sandwich (heteroskedasticity-consistent) covariance of
    the constrained fit, with each pair as one observation.

    shap's KernelExplainer also enumerates the coalition sizes of largest kernel weight (1 and
    P - 1, then 2 and P - 2, ...) exactly when its budget allows. On SASRec with a 50-item
    history, its max error and this fit's were within each other's spread over seeds at
    budgets of 4,002 to 64,002 passes (``bench/results/shap.md``).
    """

    def __init__(
        self,
        run: _BatchRunner,
        n_players: int,
        *,
        rng: np.random.Generator,
        n_pairs: int | None,
        tolerance: float,
        confidence: float,
        max_evals: int,
    ):
        self.run = run
        self.n_players = n_players
        self.rng = rng
        self.n_pairs = n_pairs
        self.max_evals = max_evals
        self.z = NormalDist().inv_cdf(1.0 - (1.0 - confidence) / (2.0 * n_players))
        self.target_error = tolerance / self.z
        sizes = np.arange(1, n_players)
        weights = (n_players - 1) / (sizes * (n_players - sizes))
        self.size_probability = weights / weights.sum()
        self.coalitions: list[np.ndarray] = []
        self.values: list[np.ndarray] = []
        self.base = self.full = math.nan
        self.estimated_passes: int | None = None

    @property
    def pairs_done(self) -> int:
        return sum(len(block) for block in self.coalitions)

    def _round(self, pairs: int) -> None:
        players = self.n_players
        sizes = self.rng.choice(np.arange(1, players), size=pairs, p=self.size_probability)
        ranks = np.argsort(self.rng.random((pairs, players)), axis=1).argsort(axis=1)
        chosen = ranks < sizes[:, None]  # (pairs, P)
        values = self.run(np.stack([chosen, ~chosen], axis=1).reshape(-1, players)).reshape(pairs, 2)
        self.coalitions.append(chosen)
        self.values.append(values)

    def _fit(self) -> tuple[np.ndarray, np.ndarray]:
        """Return the constrained least-squares values and their standard errors."""
        players = self.n_players
        chosen = np.concatenate(self.coalitions).astype(np.float64)  # (n, P)
        other = 1.0 - chosen
        values = np.concatenate(self.values) - self.base  # (n, 2): v(z) and v(complement), minus v(empty)
        count = len(chosen)
        ones = np.ones(players)
        total = self.full - self.base

        # Normal equations of the fit, averaged over both members of every pair: A beta = b.
        matrix = (chosen.T @ chosen + other.T @ other) / (2 * count)  # (P, P)
        vector = (chosen.T @ values[:, 0] + other.T @ values[:, 1]) / (2 * count)  # (P,)
        inverse = np.linalg.pinv(matrix)
        inverse_b, inverse_1 = inverse @ vector, inverse @ ones
        multiplier = (ones @ inverse_b - total) / (ones @ inverse_1)
        beta = inverse_b - multiplier * inverse_1

        # beta - beta_true ~ M (b - A beta_true) with M the constrained inverse, and
        # b - A beta is the mean over pairs of g = (z r(z) + z' r(z')) / 2.
        residual = values[:, 0] - chosen @ beta
        residual_other = values[:, 1] - other @ beta
        per_pair = (chosen * residual[:, None] + other * residual_other[:, None]) / 2.0  # (n, P)
        constrained = inverse - np.outer(inverse_1, inverse_1) / (ones @ inverse_1)
        if count > 1:
            covariance = constrained @ np.cov(per_pair, rowvar=False) @ constrained.T / count
            errors = np.sqrt(np.clip(np.diag(covariance), 0.0, None))
        else:
            errors = np.full(players, np.inf)
        return beta, errors

    def estimate(self, converged: bool) -> _Estimate:
        if not self.coalitions:
            values = np.full(self.n_players, (self.full - self.base) / self.n_players)
            return _Estimate(values, self.base, self.full, np.full(self.n_players, np.inf), 0, converged)
        values, errors = self._fit()
        return _Estimate(values, self.base, self.full, errors, self.pairs_done, converged)

    def __call__(self) -> _Estimate:
        players = self.n_players
        self.base, self.full = self.run(np.array([[False] * players, [True] * players]))
        per_round = max(1, math.ceil(self.run.value_fn.batch_size / 2))

        if self.n_pairs is not None:
            done = 0
            while done < self.n_pairs:
                pairs = min(per_round, self.n_pairs - done)
                self._round(pairs)
                done += pairs
            return self.estimate(converged=True)

        # The fit needs more pairs than players before its covariance means anything.
        pilot = min(max(2 * players, 4 * MIN_PAIRS), max((self.max_evals - 2) // 2, 1))
        self._round(pilot)
        while True:
            _, errors = self._fit()
            error = float(errors.max())
            self.run.max_standard_error = error
            if error <= self.target_error:
                return self.estimate(converged=True)
            # Errors shrink as 1/sqrt(pairs), so the current error predicts the pairs still needed.
            needed = math.ceil(self.pairs_done * (error / self.target_error) ** 2)
            predicted = 2 + 2 * needed
            if self.estimated_passes is None:
                self.estimated_passes = min(predicted, self.max_evals)
                logger.info(
                    "Kernel SHAP: max standard error %.4g after %d pairs; estimated %d forward passes to reach %.4g",
                    error,
                    self.pairs_done,
                    self.estimated_passes,
                    self.target_error,
                )
            self.run.set_total(min(max(predicted, self.run.done + 2 * per_round), self.max_evals))
            # Each fit costs O(pairs * P^2), so rounds grow with the pairs done to keep fits few.
            step = max(per_round, self.pairs_done // 4, (needed - self.pairs_done) // 2)
            pairs = min(step, (self.max_evals - self.run.done) // 2)
            if pairs < 1:
                return self.estimate(converged=False)
            self._round(pairs)


# ---------------------------------------------------------------------------------------
# The explainer
# ---------------------------------------------------------------------------------------


def _check_positive_int(name: str, value, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ConfigError(f"{name}={value!r} is invalid; pass an int >= {minimum}.")
    return int(value)


class ShapExplainer:
    """Explains a recommender's output for one history with Shapley values over its items.

    ``method="auto"`` enumerates coalitions exactly for up to 14 players. Beyond that it
    runs paired Kernel SHAP until every player's value is within ``tolerance`` (in output
    units) at ``confidence`` jointly over players, judged by its standard error, or until
    ``max_evals`` forward passes. With a fixed ``n_pairs`` it samples exactly that many
    antithetic permutation pairs instead. ``"kernel"`` and ``"permutation"`` force one
    estimator (for ``"kernel"``, ``n_pairs`` counts coalition pairs). With a fixed
    ``n_pairs`` explanations stay linear in the output, so a contrast equals the difference
    of its targets' explanations for the same seed. ``refine=False`` keeps adaptive
    permutation runs to whole orderings. The default tolerance 0.01 is an absolute error of
    a score or log-probability. Its cost depends on the model's interactions, so read
    ``cost`` and ``meta.n_evals``.

    ``titles`` (indexed by item id, for example ``log.item_titles()``) names the features.
    ``progress=None`` shows a tqdm bar for runs of at least ten batches. ``seed`` fixes the
    sampled permutations, so equal calls give equal values.
    """

    def __init__(
        self,
        model,
        *,
        output: str = "score",
        absence: str = "remove",
        method: str = "auto",
        tolerance: float = 0.01,
        confidence: float = 0.95,
        n_pairs: int | None = None,
        refine: bool = True,
        max_evals: int = 200_000,
        batch_size: int = 256,
        seed: int = 0,
        titles: Sequence[str] | None = None,
        exclude_seen: bool = True,
        progress: bool | None = None,
    ):
        _check_model(model)
        if output not in OUTPUTS:
            raise ConfigError(f"output={output!r} is invalid; use one of {OUTPUTS}.")
        if absence not in ABSENCE_MODES:
            raise ConfigError(f"absence={absence!r} is invalid; use one of {ABSENCE_MODES}.")
        if method not in METHODS:
            raise ConfigError(f"method={method!r} is invalid; use one of {METHODS}.")
        if not isinstance(tolerance, (int, float)) or isinstance(tolerance, bool) or not tolerance > 0:
            raise ConfigError(f"tolerance={tolerance!r} is invalid; pass a positive number in output units.")
        if not isinstance(confidence, float) or not 0.0 < confidence < 1.0:
            raise ConfigError(f"confidence={confidence!r} is invalid; pass a float in (0, 1) such as 0.95.")
        self.model = model
        self.output = output
        self.absence = absence
        self.method = method
        self.tolerance = float(tolerance)
        self.confidence = confidence
        self.n_pairs = None if n_pairs is None else _check_positive_int("n_pairs", n_pairs)
        self.refine = bool(refine)
        self.max_evals = _check_positive_int("max_evals", max_evals, 3)
        self.batch_size = _check_positive_int("batch_size", batch_size)
        self.seed = _check_positive_int("seed", seed, 0)
        self.titles = titles
        self.exclude_seen = exclude_seen
        self.progress = progress

    # -- planning -----------------------------------------------------------------------

    def _method_for(self, n_players: int) -> str:
        if n_players <= 1:
            return "exact"
        if self.method == "exact":
            if n_players > EXACT_MAX_PLAYERS:
                raise ConfigError(
                    f"method='exact' needs 2^{n_players} forward passes for {n_players} players; use "
                    f"method='permutation', or group positions (genre_groups, recency_groups) to at most "
                    f"{EXACT_MAX_PLAYERS} players."
                )
            return "exact"
        if self.method == "auto":
            if n_players <= AUTO_EXACT_MAX_PLAYERS:
                return "exact"
            return "permutation" if self.n_pairs is not None else "kernel"
        return self.method

    def _cost(self, n_players: int) -> ExplanationCost:
        method = self._method_for(n_players)
        if method == "exact":
            passes, adaptive = 2**n_players, False
        elif self.n_pairs is not None and method == "kernel":
            passes, adaptive = 2 + self.n_pairs * 2, False
        elif self.n_pairs is not None:
            passes, adaptive = 2 + self.n_pairs * 2 * (n_players - 1), False
        else:
            passes, adaptive = self.max_evals, True
        return ExplanationCost(method, n_players, passes, math.ceil(passes / self.batch_size), adaptive)

    def plan(self, history, *, groups: Mapping[str, Sequence[int]] | None = None) -> ExplanationCost:
        """Return the cost of explaining ``history`` without scoring anything."""
        items, _ = _window(self.model, _as_history(history, self.model.n_items))
        names, _ = _build_players(items, groups)
        return self._cost(len(names))

    # -- explaining ---------------------------------------------------------------------

    def value_function(
        self, history, target: int | None = None, *, versus: int | None = None, groups=None
    ) -> HistoryValueFunction:
        """Return the value function this explainer uses for ``history`` and ``target``."""
        return HistoryValueFunction(
            self.model,
            history,
            target=target,
            versus=versus,
            output=self.output,
            absence=self.absence,
            groups=groups,
            exclude_seen=self.exclude_seen,
            batch_size=self.batch_size,
        )

    def explain(
        self,
        history,
        target: int | None = None,
        *,
        versus: int | None = None,
        groups: Mapping[str, Sequence[int]] | None = None,
        user: int | None = None,
        callback: Callable[[dict], bool | None] | None = None,
        cancel: threading.Event | None = None,
        progress: bool | None = None,
    ) -> "shap.Explanation":
        """Explain the output for ``target`` (default: the top-1 recommendation) given ``history``.

        Returns a ``shap.Explanation`` with ``values`` (one per feature), ``base_values``
        (the output with every player absent), ``data`` (item ids, or item counts for
        groups), ``feature_names`` (titles or group names) and ``error_std`` (standard
        errors), plus ``cost`` (:class:`ExplanationCost`) and ``meta`` (:class:`ShapMeta`).
        Features are the kept history positions, padding included with value exactly 0, or
        the groups. Slicing the Explanation drops ``cost`` and ``meta``.

        ``callback`` receives ``{"done", "total", "max_standard_error"}`` before each batch;
        returning False cancels, as does setting ``cancel``. A cancelled run raises
        :class:`ExplanationCancelled`. Its ``partial`` contains the estimate from the
        finished sampled pairs (flagged ``meta.partial``), or None.
        """
        started = time.perf_counter()
        value_fn = self.value_function(history, target, versus=versus, groups=groups)
        n_players = value_fn.n_players
        if n_players == 0:
            raise DataError(
                "the history has no items to attribute the output to; pass a history with at least one item id"
                + (", and groups that contain some of its positions." if groups is not None else ".")
            )
        cost = self._cost(n_players)
        show = self.progress if progress is None else progress
        if show is None:
            show = cost.batches >= 10
        logger.info("explaining target %d for user %s: %s", value_fn.target, user, cost)

        run = _BatchRunner(value_fn, cost.forward_passes, progress=bool(show), callback=callback, cancel=cancel)
        sampler = None
        try:
            if cost.method == "exact":
                estimate = _exact(run, n_players)
            elif cost.method == "kernel":
                sampler = _KernelRun(
                    run,
                    n_players,
                    rng=np.random.default_rng(self.seed),
                    n_pairs=self.n_pairs,
                    tolerance=self.tolerance,
                    confidence=self.confidence,
                    max_evals=self.max_evals,
                )
                estimate = sampler()
                cost = replace(cost, estimated_forward_passes=sampler.estimated_passes)
            else:
                sampler = _PermutationRun(
                    run,
                    n_players,
                    rng=np.random.default_rng(self.seed),
                    n_pairs=self.n_pairs,
                    tolerance=self.tolerance,
                    confidence=self.confidence,
                    max_evals=self.max_evals,
                    refine=self.refine,
                )
                estimate = sampler()
                cost = replace(cost, estimated_forward_passes=sampler.estimated_passes)
        except _Cancelled as reason:
            partial = None
            if sampler is not None and sampler.pairs_done > 0:
                partial = self._explanation(
                    value_fn, sampler.estimate(converged=False), cost, user, started, partial=True
                )
            done = "no usable estimate" if partial is None else f"{partial.meta.n_pairs} finished pair(s)"
            logger.info("explanation cancelled after %d forward passes (%s)", run.done, reason)
            raise ExplanationCancelled(
                f"explanation of target {value_fn.target} cancelled after {run.done:,} of {run.total:,} forward "
                f"passes because {reason}; {done} in .partial.",
                partial,
            ) from None
        finally:
            run.close()

        if not estimate.converged:
            warnings.warn(
                f"Shapley values stopped at max_evals={self.max_evals:,} with a max standard error of "
                f"{float(estimate.standard_error.max()):.4g}, above the {sampler.target_error:.4g} needed for "
                f"tolerance={self.tolerance}; raise max_evals or the tolerance, or group positions.",
                ConvergenceWarning,
                stacklevel=2,
            )
        return self._explanation(value_fn, estimate, cost, user, started)

    def _explanation(
        self, value_fn: HistoryValueFunction, estimate: _Estimate, cost, user, started: float, *, partial=False
    ) -> "shap.Explanation":
        import shap

        if value_fn.grouped:
            values, errors = estimate.values, estimate.standard_error
            data = value_fn.membership.sum(axis=1).astype(np.int64)
            names = list(value_fn.player_names)
            positions = None
        else:
            # Padding positions are features too, with value and error exactly 0.
            n = len(value_fn.items)
            values = np.zeros(n)
            errors = np.zeros(n)
            values[value_fn.real] = estimate.values
            errors[value_fn.real] = estimate.standard_error
            data = value_fn.items.copy()
            names = [self._title(int(item)) for item in data]
            positions = np.arange(n) - n

        meta = ShapMeta(
            user=None if user is None else int(user),
            target=value_fn.target,
            versus=value_fn.versus,
            output=value_fn.output,
            absence=value_fn.absence,
            method=cost.method,
            positions=positions,
            explained_output=estimate.full_value,
            n_evals=value_fn.n_evals,
            n_pairs=estimate.n_pairs,
            n_refined=estimate.n_refined,
            max_standard_error=float(errors.max()) if len(errors) else 0.0,
            tolerance=self.tolerance if cost.method == "permutation" and self.n_pairs is None else None,
            converged=estimate.converged,
            partial=partial,
            label=self._output_name(value_fn),
        )
        explanation = shap.Explanation(
            values=values,
            base_values=estimate.base_value,
            data=data,
            feature_names=names,
            error_std=errors,
            compute_time=time.perf_counter() - started,
        )
        explanation.cost = cost
        explanation.meta = meta
        return explanation

    def _title(self, item: int) -> str:
        if item == PAD:
            return "<pad>"
        if self.titles is not None and item < len(self.titles):
            return str(self.titles[item])
        return f"item {item}"

    def _output_name(self, value_fn: HistoryValueFunction) -> str:
        label = "log p" if value_fn.output == "log_prob" else "score"
        text = f"{label}({self._title(value_fn.target)})"
        if value_fn.versus is not None:
            text += f" - {label}({self._title(value_fn.versus)})"
        return text

    def explain_users(
        self,
        split: "Split",
        users: Sequence[int],
        *,
        part: str = "test",
        target: str = "top1",
        progress: bool | None = None,
        cancel: threading.Event | None = None,
    ) -> list["shap.Explanation"]:
        """Explain one output per user of ``split.part(part)``: the top-1 item or the held-out one.

        ``target="top1"`` explains each user's top-1 recommendation; ``"next"`` explains the
        first held-out target item (users without one are skipped with a log message).
        """
        if target not in ("top1", "next"):
            raise ConfigError(f"target={target!r} is invalid; use 'top1' or 'next'.")
        evalset = split.part(part)
        index = {int(user): row for row, user in enumerate(evalset.users)}
        missing = [int(user) for user in users if int(user) not in index]
        if missing:
            raise ConfigError(
                f"user {missing[0]} is not in the {part} part ({len(missing)} missing); pick users from "
                f"split.{part}.users."
            )
        from tqdm.auto import tqdm

        show = (len(users) >= 10) if progress is None else progress
        explanations = []
        for user in tqdm(list(users), desc="users", disable=not show, leave=False):
            row = index[int(user)]
            item = None
            if target == "next":
                if not len(evalset.targets[row]):
                    logger.info("user %d has no held-out target in the %s part; skipped", user, part)
                    continue
                item = int(evalset.targets[row][0])
            explanations.append(
                self.explain(evalset.histories[row], item, user=int(user), cancel=cancel, progress=False)
            )
        return explanations


def explain_recommendation(model, history, target: int | None = None, **options) -> "shap.Explanation":
    """Explain ``target`` (default: the top-1 recommendation) for one history.

    A shortcut for ``ShapExplainer(model, **options).explain(history, target)``; options
    that belong to ``explain`` (``versus``, ``groups``, ``user``, ``callback``, ``cancel``)
    are passed through.
    """
    call_options = {
        name: options.pop(name) for name in ("versus", "groups", "user", "callback", "cancel") if name in options
    }
    return ShapExplainer(model, **options).explain(history, target, **call_options)


# ---------------------------------------------------------------------------------------
# Tidy data and summaries
# ---------------------------------------------------------------------------------------

FRAME_COLUMNS = [
    "user",
    "target",
    "versus",
    "output",
    "position",
    "item",
    "title",
    "attribution",
    "standard_error",
    "base_value",
]


def shap_frame(explanations: Sequence["shap.Explanation"]) -> pd.DataFrame:
    """Return one row per history item and explanation, padding left out.

    Columns: ``user``, ``target``, ``versus`` (-1 without contrast), ``output``,
    ``position`` (-1 is the most recent item), ``item``, ``title``, ``attribution``,
    ``standard_error`` and ``base_value``. Grouped explanations have no item rows and are
    rejected.
    """
    frames = []
    for explanation in explanations:
        meta = getattr(explanation, "meta", None)
        if meta is None:
            raise ConfigError("shap_frame needs explanations made by ShapExplainer (they carry .meta); "
                              "do not slice them first.")
        if meta.positions is None:
            raise ConfigError("shap_frame takes per-item explanations; this one has grouped players.")
        items = np.asarray(explanation.data)
        real = items != PAD
        frames.append(
            pd.DataFrame(
                {
                    "user": -1 if meta.user is None else meta.user,
                    "target": meta.target,
                    "versus": -1 if meta.versus is None else meta.versus,
                    "output": meta.output,
                    "position": meta.positions[real],
                    "item": items[real],
                    "title": np.asarray(explanation.feature_names, dtype=object)[real],
                    "attribution": np.asarray(explanation.values, dtype=np.float64)[real],
                    "standard_error": np.asarray(explanation.error_std, dtype=np.float64)[real],
                    "base_value": float(explanation.base_values),
                }
            )
        )
    if not frames:
        return pd.DataFrame({column: [] for column in FRAME_COLUMNS})
    return pd.concat(frames, ignore_index=True)[FRAME_COLUMNS]


def attribution_summary(
    frame: pd.DataFrame,
    *,
    log: "InteractionLog | None" = None,
    popularity: np.ndarray | None = None,
    n_buckets: int = 4,
) -> pd.DataFrame:
    """Aggregate attributions over users by genre, position from the end and popularity bucket.

    ``frame`` is :func:`shap_frame` output. Returns rows ``kind`` (``"genre"``,
    ``"position"``, ``"popularity"``), ``group``, ``mean_attribution``,
    ``mean_abs_attribution``, ``total_attribution`` and ``n`` (item rows). An item counts
    fully toward each of its genres. Popularity buckets are quantiles of ``popularity``
    (interaction counts per item id, such as ``split.train_popularity()``) over the
    catalog, ``"Q1"`` the least popular. Genres need ``log``; buckets need ``popularity``.
    """
    _check_positive_int("n_buckets", n_buckets)
    pieces = []

    def aggregate(kind: str, groups: pd.Series, rows: pd.DataFrame) -> None:
        grouped = rows.assign(group=groups.to_numpy(), magnitude=rows["attribution"].abs()).groupby(
            "group", sort=False
        )
        table = pd.DataFrame(
            {
                "mean_attribution": grouped["attribution"].mean(),
                "mean_abs_attribution": grouped["magnitude"].mean(),
                "total_attribution": grouped["attribution"].sum(),
                "n": grouped.size(),
            }
        ).reset_index()
        table.insert(0, "kind", kind)
        pieces.append(table)

    if len(frame):
        positions = frame.sort_values("position", ascending=False)
        aggregate("position", positions["position"].astype(str), positions)

        if log is not None and log.items is not None and "genres" in log.items.columns:
            genres = log.items["genres"]
            exploded = frame.assign(group=[tuple(genres.get(item, ()) or ("(no genre)",)) for item in frame["item"]])
            exploded = exploded.explode("group")
            aggregate("genre", exploded["group"].astype(str), exploded)

        if popularity is not None:
            counts = np.asarray(popularity, dtype=np.float64)
            edges = np.unique(np.quantile(counts[1:], np.linspace(0.0, 1.0, n_buckets + 1)[1:-1]))
            bucket = np.searchsorted(edges, counts[frame["item"].to_numpy()], side="right")
            labels = pd.Series([f"Q{b + 1}" for b in bucket], index=frame.index)
            order = np.argsort(bucket, kind="stable")
            aggregate("popularity", labels.iloc[order], frame.iloc[order])

    if not pieces:
        return pd.DataFrame(
            columns=["kind", "group", "mean_attribution", "mean_abs_attribution", "total_attribution", "n"]
        )
    return pd.concat(pieces, ignore_index=True)
