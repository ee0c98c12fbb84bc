"""Measurements of an online update: next-window and forgetting metrics, top-k movement, embedding drift.

Every model is scored over the stream's whole catalog through :class:`CatalogScorer`, so
numbers before and after a table grows, and of the original model, rank the same
candidates: an item the model has no row for yet scores ``-inf`` and is dropped from the
histories it reads.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import numpy as np
import torch

from recwidgets.data.log import PAD
from recwidgets.data.split import EvalSet
from recwidgets.evaluation.metrics import ACCURACY_METRICS
from recwidgets.evaluation.ranking import candidate_mask, score_batch, top_k_items
from recwidgets.models.base import pad_histories
from recwidgets.online.stream import Stream, Window

logger = logging.getLogger(__name__)

#: Metric names recorded per measurement, each at the updater's cutoff k.
METRICS = ("NDCG", "HR")


class CatalogScorer:
    """A model behind the scoring protocol over a catalog of ``n_items`` items, possibly more than its table has.

    Items beyond ``model.n_items`` are removed from each history (the rest is left-padded
    again) and get the score ``-inf``.
    """

    def __init__(self, model, n_items: int):
        self.model = model
        self.n_items = int(n_items)
        self.name = str(getattr(model, "name", "model"))
        self.max_len = model.max_len
        self.device = model.device

    @torch.no_grad()
    def score(self, histories: torch.Tensor) -> torch.Tensor:
        known = int(self.model.n_items)
        histories = histories.to(self.device)
        if bool((histories > known).any()):
            rows = [row[(row != PAD) & (row <= known)].cpu().numpy() for row in histories]
            histories = pad_histories(rows, histories.shape[1], self.device)
        scores = self.model.score(histories).float()  # (B, known + 1)
        if known < self.n_items:
            unknown = torch.full((scores.shape[0], self.n_items - known), float("-inf"), device=scores.device)
            scores = torch.cat([scores, unknown], dim=1)  # (B, n_items + 1)
        return scores


def next_item_evalset(stream: Stream, window: Window, max_rows: int | None, rng: np.random.Generator) -> EvalSet:
    """Return one next-item case per event of ``window`` whose user has an earlier event.

    The history of the event at position ``p`` is every earlier event of the user (before
    and inside the window), and the target is the event's item. With more cases than
    ``max_rows``, a seeded sample of ``max_rows`` is kept, in stream order.
    """
    positions = np.arange(window.start, window.stop)
    if max_rows is not None and len(positions) > max_rows:
        positions = np.sort(rng.choice(positions, size=max_rows, replace=False))
    users, histories, targets = [], [], []
    for position in positions:
        user = int(stream.users[position])
        history = stream.history(user, int(position))
        if len(history) == 0:
            continue
        users.append(user)
        histories.append(history)
        targets.append(stream.items[position : position + 1])
    return EvalSet(np.asarray(users, dtype=np.int64), histories, targets)


@torch.no_grad()
def target_ranks(scorer: CatalogScorer, evalset: EvalSet, batch_size: int = 256) -> np.ndarray:
    """Return the 1-based rank of each case's single target, shape (U,).

    The rule is the one of ``recwidgets.evaluation``: full ranking over every real item,
    the history's items excluded unless they are the target, and ties counted against the
    target (rank = 1 + candidates scoring higher + other candidates scoring equal). Each
    case has exactly one target, so counting replaces the full sort of ``evaluate``.
    """
    ranks = np.zeros(len(evalset), dtype=np.float64)
    for start in range(0, len(evalset), batch_size):
        histories = evalset.histories[start : start + batch_size]
        targets = evalset.targets[start : start + batch_size]
        scores = score_batch(scorer, histories)  # (B, n_items + 1)
        candidates = candidate_mask(scorer.n_items, histories, targets, exclude_seen=True, device=scores.device)
        index = torch.as_tensor(np.array([target[0] for target in targets], dtype=np.int64), device=scores.device)
        target_scores = scores.gather(1, index.unsqueeze(1))  # (B, 1)
        higher = ((scores > target_scores) & candidates).sum(dim=1)
        equal = ((scores == target_scores) & candidates).sum(dim=1) - 1
        ranks[start : start + len(targets)] = (1 + higher + equal).cpu().numpy()
    return ranks


def measure(scorer: CatalogScorer, evalset: EvalSet | None, k: int) -> dict[str, float]:
    """Return ``{"NDCG@k": ..., "HR@k": ...}``, means over the cases of ``evalset``; NaN when it has none.

    Every case must have exactly one target item (as ``next_item_evalset`` builds them).
    """
    labels = {name: f"{name}@{k}" for name in METRICS}
    if evalset is None or len(evalset) == 0:
        return {label: float("nan") for label in labels.values()}
    ranks = target_ranks(scorer, evalset)[:, None]  # (U, 1) rank matrix
    return {label: float(np.mean(ACCURACY_METRICS[name](ranks, k))) for name, label in labels.items()}


@torch.no_grad()
def top_lists(scorer: CatalogScorer, histories: Sequence[np.ndarray], k: int, batch_size: int = 256) -> np.ndarray:
    """Return the (U, k) top-k item ids per history, seen and unknown items excluded, 0 where fewer qualify."""
    known = int(scorer.model.n_items)
    lists = np.zeros((len(histories), k), dtype=np.int64)
    for start in range(0, len(histories), batch_size):
        batch = list(histories[start : start + batch_size])
        scores = score_batch(scorer, batch)
        candidates = candidate_mask(
            scorer.n_items, batch, [history[:0] for history in batch], exclude_seen=True, device=scores.device
        )
        candidates[:, known + 1 :] = False
        lists[start : start + len(batch)] = top_k_items(scores, candidates, k)
    return lists


def jaccard_distance(before: np.ndarray, after: np.ndarray) -> np.ndarray:
    """Return 1 - |A & B| / |A | B| per row of two (U, k) id matrices; 0 entries are not items."""
    distances = np.zeros(len(before), dtype=np.float64)
    for row, (left, right) in enumerate(zip(before, after)):
        a = set(int(item) for item in left if item != PAD)
        b = set(int(item) for item in right if item != PAD)
        union = a | b
        distances[row] = 1.0 - len(a & b) / len(union) if union else 0.0
    return distances


def embedding_drift(before: torch.Tensor, after: torch.Tensor, in_window: np.ndarray) -> dict[str, float]:
    """Return the mean L2 and cosine change of item rows, for items in and out of the window.

    ``before`` is the (n + 1, D) table before the update; only its rows 1..n are compared
    with the same rows of ``after``. ``in_window`` lists item ids of the window's events.
    Cosine change is ``1 - cos(before_i, after_i)``.
    """
    n = before.shape[0] - 1
    old = before[1:].double()
    new = after[1 : n + 1].detach().to("cpu").double()
    l2 = torch.linalg.vector_norm(new - old, dim=1).numpy()  # (n,)
    cosine = 1.0 - torch.nn.functional.cosine_similarity(new, old, dim=1, eps=1e-12).numpy()
    inside = np.zeros(n, dtype=bool)
    ids = np.asarray(in_window, dtype=np.int64)
    ids = ids[(ids >= 1) & (ids <= n)]
    inside[ids - 1] = True

    def mean(values: np.ndarray, mask: np.ndarray) -> float:
        return float(values[mask].mean()) if mask.any() else float("nan")

    return {
        "drift_l2_in": mean(l2, inside),
        "drift_l2_out": mean(l2, ~inside),
        "drift_cos_in": mean(cosine, inside),
        "drift_cos_out": mean(cosine, ~inside),
    }
