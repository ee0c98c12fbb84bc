"""Full and sampled ranking: target ranks and top-k lists for batches of users.

The model scores the whole catalog for ``batch_size`` users at a time, on the model's
device. Memory use is a few (batch_size, n_items + 1) tensors, never a users x items
matrix. Candidates are the items a user could be recommended:

- full ranking: every real item, minus the items of the user's input history when
  ``exclude_seen`` is set (the whole history, also the part before the model's
  ``max_len`` window). The user's target items always stay candidates, even when they
  also occur in the history;
- sampled ranking: the user's target items plus the given negative items.

The padding column 0 is never a candidate. Ties are broken pessimistically: a target's
rank is 1 + the number of candidates scoring strictly higher + the number of non-target
candidates scoring equal. When several targets of one user tie with each other, they take
the last places of their tie group in target order, so the ranks of one user stay distinct
(for a single target this is exactly 1 + higher + equal others).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from recwidgets.errors import RecwidgetsError
from recwidgets.models.base import pad_histories

logger = logging.getLogger(__name__)


@dataclass(frozen=True, eq=False)
class Ranking:
    """Ranking output for U users.

    ``target_ranks[u]`` contains the 1-based ranks (int64) of user u's target items among
    the user's candidates, in the order of the targets. ``topk`` (U, k_max) contains the
    recommended item ids in rank order, 0 where the user had fewer than k_max candidates.
    ``n_candidates`` (U,) is the candidate count per user.
    """

    target_ranks: list[np.ndarray]
    topk: np.ndarray
    n_candidates: np.ndarray


def unique_targets(targets: np.ndarray) -> np.ndarray:
    """Return ``targets`` as int64 without repeated items, keeping first occurrences in order."""
    targets = np.asarray(targets, dtype=np.int64)
    _, first = np.unique(targets, return_index=True)
    return targets[np.sort(first)]


def score_batch(model, histories: Sequence[np.ndarray], users: np.ndarray | None = None) -> torch.Tensor:
    """Score one batch of histories with ``model`` and check the (B, n_items + 1) result.

    Raises RecwidgetsError when the model returns something other than a floating tensor
    of that shape, or NaN scores (naming the model and the number of affected rows).
    """
    padded = pad_histories(histories, model.max_len, model.device)
    with torch.no_grad():
        scores = model.score(padded)

    expected = (len(histories), model.n_items + 1)
    if not isinstance(scores, torch.Tensor) or not scores.is_floating_point():
        raise RecwidgetsError(
            f"model {model.name!r} returned {type(scores).__name__} from score(); "
            "return a floating-point torch.Tensor of shape (batch, n_items + 1)."
        )
    if tuple(scores.shape) != expected:
        raise RecwidgetsError(
            f"model {model.name!r} returned scores of shape {tuple(scores.shape)}; expected "
            f"(batch, n_items + 1) = {expected}. Column 0 is the padding item and must be included."
        )

    nan_rows = torch.isnan(scores).any(dim=1)
    if bool(nan_rows.any()):
        rows = torch.nonzero(nan_rows).flatten().cpu().numpy()
        example = f" (for example user {int(users[rows[0]])})" if users is not None else ""
        raise RecwidgetsError(
            f"model {model.name!r} returned NaN scores for {len(rows)} of {len(histories)} histories in a "
            f"batch{example}; evaluation cannot rank NaN. Check the model for diverged weights or an "
            "all-padding history that produces NaN attention, and retrain or mask that case."
        )
    return scores


def _flat_pairs(lists: Sequence[np.ndarray], device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """Return (row, item) index tensors for every item of every row of a ragged list."""
    lengths = np.array([len(items) for items in lists], dtype=np.int64)
    rows = np.repeat(np.arange(len(lists), dtype=np.int64), lengths)
    items = np.concatenate([np.asarray(items, dtype=np.int64) for items in lists]) if len(lists) else rows
    return torch.from_numpy(rows).to(device), torch.from_numpy(items).to(device)


def candidate_mask(
    n_items: int,
    histories: Sequence[np.ndarray],
    targets: Sequence[np.ndarray],
    *,
    exclude_seen: bool = True,
    negatives: np.ndarray | None = None,
    device: torch.device | str = "cpu",
) -> torch.Tensor:
    """Return the (B, n_items + 1) boolean mask of candidate items per user.

    Without ``negatives`` this is full ranking: every real item, minus the history when
    ``exclude_seen``. With ``negatives`` (B, N) only those items are candidates. Targets
    are always candidates and column 0 (padding) never is.
    """
    n_rows = len(targets)
    if negatives is None:
        mask = torch.ones((n_rows, n_items + 1), dtype=torch.bool, device=device)
        if exclude_seen:
            rows, items = _flat_pairs(histories, mask.device)
            mask[rows, items] = False
    else:
        mask = torch.zeros((n_rows, n_items + 1), dtype=torch.bool, device=device)
        rows = torch.arange(n_rows, device=mask.device).repeat_interleave(negatives.shape[1])
        mask[rows, torch.from_numpy(np.ascontiguousarray(negatives, dtype=np.int64)).to(mask.device).flatten()] = True

    rows, items = _flat_pairs(targets, mask.device)
    mask[rows, items] = True
    mask[:, 0] = False
    return mask


def _target_tie_groups(target_scores: np.ndarray, valid: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Return (group size, position in group) of each target among equal-scoring targets of its row.

    Both arrays have the shape (B, T) of ``target_scores``; positions count from 0 in
    target order, and invalid (padding) entries get 0.
    """
    rows, columns = np.nonzero(valid)
    scores = target_scores[rows, columns]
    order = np.lexsort((columns, scores, rows))
    sorted_rows, sorted_scores = rows[order], scores[order]

    starts = np.ones(len(order), dtype=bool)
    starts[1:] = (sorted_rows[1:] != sorted_rows[:-1]) | (sorted_scores[1:] != sorted_scores[:-1])
    group = np.cumsum(starts) - 1
    first_of_group = np.flatnonzero(starts)

    size = np.zeros(target_scores.shape, dtype=np.int64)
    position = np.zeros(target_scores.shape, dtype=np.int64)
    size[rows[order], columns[order]] = np.bincount(group)[group]
    position[rows[order], columns[order]] = np.arange(len(order)) - first_of_group[group]
    return size, position


def rank_targets(scores: torch.Tensor, candidates: torch.Tensor, targets: Sequence[np.ndarray]) -> list[np.ndarray]:
    """Return the pessimistic 1-based rank of each target among the candidates, one array per row.

    ``scores`` and ``candidates`` have shape (B, n_items + 1); every target must be a
    candidate. The rule is in the module docstring.
    """
    n_rows, n_columns = scores.shape
    width = max(len(row) for row in targets)
    target_index = np.zeros((n_rows, width), dtype=np.int64)
    valid = np.zeros((n_rows, width), dtype=bool)
    for row, items in enumerate(targets):
        target_index[row, : len(items)] = items
        valid[row, : len(items)] = True

    # Non-candidates sit at -inf, so they never count as scoring higher. They do join the
    # equal count of a target that itself scores -inf, and the correction below removes them.
    masked = scores.masked_fill(~candidates, float("-inf"))
    ascending = torch.sort(masked, dim=1).values
    target_scores = scores.gather(1, torch.from_numpy(target_index).to(scores.device))
    right = torch.searchsorted(ascending, target_scores, right=True)
    left = torch.searchsorted(ascending, target_scores, right=False)
    higher = n_columns - right
    equal = right - left
    n_excluded = (~candidates).sum(dim=1, keepdim=True)
    equal = equal - torch.where(target_scores == float("-inf"), n_excluded, torch.zeros_like(n_excluded))

    target_scores_cpu = target_scores.detach().to("cpu", torch.float64).numpy()
    group_size, position = _target_tie_groups(target_scores_cpu, valid)
    ranks = 1 + higher.cpu().numpy() + (equal.cpu().numpy() - group_size) + position
    return [ranks[row, : len(items)].astype(np.int64) for row, items in enumerate(targets)]


def top_k_items(scores: torch.Tensor, candidates: torch.Tensor, k: int) -> np.ndarray:
    """Return the (B, k) ids of the k best candidates per row, 0 where a row has fewer.

    Equal scores are ordered by item id (lower first), so the lists are deterministic.
    ``torch.topk`` picks the set; only rows where ties straddle the k-th place (or where
    -inf scores reach it) are sorted in full on the CPU.
    """
    masked = scores.masked_fill(~candidates, float("-inf"))
    values, index = torch.topk(masked, k, dim=1)
    at_least_kth = (masked >= values[:, -1:]).sum(dim=1)
    ambiguous = (at_least_kth > k).cpu().numpy()

    values_cpu = values.detach().to("cpu", torch.float64).numpy()
    index_cpu = index.cpu().numpy()
    order = np.lexsort((index_cpu, -values_cpu), axis=-1)
    top = np.take_along_axis(index_cpu, order, axis=-1)

    if ambiguous.any():
        rows = np.flatnonzero(ambiguous)
        row_scores = scores[torch.from_numpy(rows).to(scores.device)].detach().to("cpu", torch.float64).numpy()
        row_candidates = candidates[torch.from_numpy(rows).to(candidates.device)].cpu().numpy()
        item_ids = np.broadcast_to(np.arange(row_scores.shape[1]), row_scores.shape)
        # Sort keys, last one primary: candidates first, then higher score, then lower id.
        full_order = np.lexsort((item_ids, -row_scores, ~row_candidates), axis=-1)[:, :k]
        chosen = np.take_along_axis(item_ids, full_order, axis=-1)
        chosen = np.where(np.take_along_axis(row_candidates, full_order, axis=-1), chosen, 0)
        top[rows] = chosen
    return top.astype(np.int64)


def rank_users(
    model,
    histories: Sequence[np.ndarray],
    targets: Sequence[np.ndarray],
    *,
    k: int,
    exclude_seen: bool = True,
    batch_size: int = 256,
    negatives: np.ndarray | None = None,
    users: np.ndarray | None = None,
) -> Ranking:
    """Rank every user's targets and build top-``k`` lists, ``batch_size`` users at a time.

    ``histories`` and ``targets`` are per-user item-id arrays; every user must have at least
    one target, and targets must not repeat (see ``unique_targets``). ``negatives`` (U, N)
    switches to sampled ranking among targets plus negatives. ``users`` only names users in
    error messages.
    """
    n_users = len(targets)
    ranks: list[np.ndarray] = []
    topk = np.zeros((n_users, k), dtype=np.int64)
    n_candidates = np.zeros(n_users, dtype=np.int64)

    for start in range(0, n_users, batch_size):
        stop = min(start + batch_size, n_users)
        batch_histories = histories[start:stop]
        batch_targets = targets[start:stop]
        batch_users = users[start:stop] if users is not None else None

        scores = score_batch(model, batch_histories, batch_users)
        candidates = candidate_mask(
            model.n_items,
            batch_histories,
            batch_targets,
            exclude_seen=exclude_seen,
            negatives=None if negatives is None else negatives[start:stop],
            device=scores.device,
        )

        ranks.extend(rank_targets(scores, candidates, batch_targets))
        topk[start:stop] = top_k_items(scores, candidates, k)
        n_candidates[start:stop] = candidates.sum(dim=1).cpu().numpy()
        logger.debug("ranked users %d to %d of %d", start, stop, n_users)

    return Ranking(target_ranks=ranks, topk=topk, n_candidates=n_candidates)
