"""Memory-bounded full ranking: users in batches, the catalog in item chunks.

``rank_users`` in ``recwidgets.evaluation.ranking`` scores a (batch, n_items + 1) matrix
and sorts it. Here each (batch, chunk) block of scores is consumed as soon as it is made:

- a running top-k list per user is merged with the best candidates of each chunk;
- for each target, running counts of the non-target candidates that score strictly higher
  and equally are added up. Targets are compared with each other once, at the end.

Seen items are written into the block as -inf at their positions, with no dense mask. So
memory is a few (user_batch, item_chunk) blocks plus the per-user outputs, never a users x
items matrix. With the GEMM scorers below it is never a full catalog row either. The work per
user is linear in the catalog, because it counts instead of sorting. The ranks follow the rule of ``rank_users``:
pessimistic ties, targets always candidates, padding never, and ``rank = 1 + higher +
equal non-targets + position among tied targets``. Top-k lists order equal scores by item id.

Scores come from a ``ChunkScorer``:

- ``ModelScorer`` wraps any model of the protocol (``score`` returns whole rows). It bounds
  the ranking temporaries, but the model's own (batch, n_items + 1) row stays.
- ``FactorScorer`` scores explicit query and item vectors, ``queries @ items[chunk].T``.
- ``SASRecScorer`` takes SASRec's last hidden state as the query and its tied item
  embedding table as the item vectors, so no full catalog row is ever made.

The ranks equal those of ``rank_users`` whenever the target scores that a scorer returns
are bitwise equal to the same entries of its chunk scores, and its chunk scores are bitwise
equal to the model's full rows. ``ModelScorer`` guarantees both. The GEMM-based scorers can
differ from a full-row GEMM in the last bit of a float32 score. That moves a rank only
where two scores lie within rounding error of each other.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Protocol

import numpy as np
import torch

from recwidgets.errors import ConfigError, RecwidgetsError
from recwidgets.evaluation.ranking import Ranking, score_batch
from recwidgets.models.base import pad_histories

logger = logging.getLogger(__name__)

#: Targets per user up to which counts use one comparison pass per target; above it, a sort.
COMPARE_MAX_TARGETS = 8


class ChunkScorer(Protocol):
    """Scores a batch of users against slices of the catalog.

    ``begin(rows)`` selects the users (row indices into the scorer's user list) of the next
    batch. ``scores(start, stop)`` then returns their float32 scores for item ids
    ``start..stop-1``, shape (B, stop - start). The ranker may overwrite that tensor,
    because it is not read again. ``target_scores(targets)`` returns the scores of item
    ids ``targets`` (B, T) for the same batch.
    """

    n_items: int
    device: torch.device

    def begin(self, rows: np.ndarray) -> None: ...

    def scores(self, start: int, stop: int) -> torch.Tensor: ...

    def target_scores(self, targets: torch.Tensor) -> torch.Tensor: ...


class ModelScorer:
    """Chunks of the full score rows of any model of the protocol (``score`` over histories)."""

    def __init__(self, model, histories: Sequence[np.ndarray], users: np.ndarray | None = None):
        self.model = model
        self.histories = histories
        self.users = users
        self.n_items = int(model.n_items)
        self.device = torch.device(model.device)
        self._rows: torch.Tensor | None = None

    def begin(self, rows: np.ndarray) -> None:
        batch = [self.histories[row] for row in rows]
        users = None if self.users is None else self.users[rows]
        self._rows = score_batch(self.model, batch, users)

    def scores(self, start: int, stop: int) -> torch.Tensor:
        return self._rows[:, start:stop]

    def target_scores(self, targets: torch.Tensor) -> torch.Tensor:
        return self._rows.gather(1, targets)


class FactorScorer:
    """Scores ``queries[row] . items[item]`` from explicit vectors.

    ``queries`` is (U, D), one row per user; ``items`` is (n_items + 1, D) with row 0 the
    padding item. Both are float tensors or arrays and are moved to ``device``.
    """

    def __init__(self, queries, items, device: torch.device | str = "cpu"):
        self.device = torch.device(device)
        self.queries = torch.as_tensor(queries).to(self.device)
        self.items = torch.as_tensor(items).to(self.device)
        if self.queries.dim() != 2 or self.items.dim() != 2 or self.queries.shape[1] != self.items.shape[1]:
            raise ConfigError(
                f"queries {tuple(self.queries.shape)} and items {tuple(self.items.shape)} must be (U, D) and "
                "(n_items + 1, D) with the same D."
            )
        self.n_items = int(self.items.shape[0] - 1)
        self._query: torch.Tensor | None = None
        self._buffer: torch.Tensor | None = None

    def begin(self, rows: np.ndarray) -> None:
        self._query = self.queries[torch.from_numpy(np.asarray(rows, dtype=np.int64)).to(self.device)]

    def scores(self, start: int, stop: int) -> torch.Tensor:
        # One reused output buffer: a fresh (B, C) allocation per chunk costs about as much as the GEMM.
        rows, width = self._query.shape[0], stop - start
        if self._buffer is None or self._buffer.shape[0] < rows or self._buffer.shape[1] < width:
            self._buffer = torch.empty((rows, width), dtype=self._query.dtype, device=self.device)
        out = self._buffer[:rows, :width]
        return torch.mm(self._query, self.items[start:stop].t(), out=out)

    def target_scores(self, targets: torch.Tensor) -> torch.Tensor:
        # (B, 1, D) x (B, D, T): one small GEMM per user, the same reduction over D as above.
        return (self._query.unsqueeze(1) @ self.items[targets].transpose(1, 2)).squeeze(1)


class SASRecScorer(FactorScorer):
    """SASRec's last hidden state against its item embedding table, chunk by chunk.

    ``model`` is a fitted ``recwidgets.models.sasrec.SASRec``. Query vectors are computed
    per user batch, so only (batch, D) hidden states exist at a time.
    """

    def __init__(self, model, histories: Sequence[np.ndarray]):
        module = model._fitted()
        module.eval()
        self.model = model
        self.module = module
        self.histories = histories
        self.device = torch.device(model.device)
        self.items = module.item_embedding.weight.detach().float()
        self.n_items = int(model.n_items)
        self._query = None
        self._buffer = None

    @torch.no_grad()
    def begin(self, rows: np.ndarray) -> None:
        batch = pad_histories([self.histories[row] for row in rows], self.model.max_len, self.device)
        self._query = self.module(batch)[:, -1, :].float()


def _check_positive(name: str, value) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ConfigError(f"{name}={value!r} is invalid; pass an integer of at least 1.")
    return int(value)


def _batch_pairs(lists: Sequence[np.ndarray], n_columns: int) -> np.ndarray:
    """Return the distinct ``row * n_columns + item`` keys of a ragged list of item arrays."""
    lengths = np.fromiter((len(items) for items in lists), dtype=np.int64, count=len(lists))
    if lengths.sum() == 0:
        return np.zeros(0, dtype=np.int64)
    rows = np.repeat(np.arange(len(lists), dtype=np.int64), lengths)
    items = np.concatenate([np.asarray(items, dtype=np.int64) for items in lists])
    return np.unique(rows * n_columns + items)


class _PairSlicer:
    """(row, column) pairs of a batch, sorted by item so that one chunk's pairs are one slice."""

    def __init__(self, keys: np.ndarray, n_columns: int, n_rows: int, device: torch.device):
        rows, items = np.divmod(keys, n_columns)
        order = np.argsort(items, kind="stable")
        self.rows, self.items = rows[order], items[order]
        self.n_rows = n_rows
        self.device = device

    def within(self, start: int, stop: int) -> tuple[np.ndarray, np.ndarray]:
        low, high = np.searchsorted(self.items, [start, stop])
        return self.rows[low:high], self.items[low:high] - start

    def as_tensors(self, rows: np.ndarray, columns: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        return torch.from_numpy(rows).to(self.device), torch.from_numpy(columns).to(self.device)

    def per_row(self, rows: np.ndarray) -> np.ndarray:
        return np.bincount(rows, minlength=self.n_rows)


def _row_candidates(width: int, start: int, excluded: tuple[np.ndarray, np.ndarray], rows: np.ndarray) -> np.ndarray:
    """Return the (len(rows), width) candidate mask of some rows of one chunk, from the excluded pairs."""
    mask = np.ones((len(rows), width), dtype=bool)
    position = {int(row): index for index, row in enumerate(rows)}
    for row, column in zip(*excluded):
        index = position.get(int(row))
        if index is not None:
            mask[index, column] = False
    if start == 0:
        mask[:, 0] = False
    return mask


def _chunk_top(scores: torch.Tensor, start: int, k: int, excluded: tuple[np.ndarray, np.ndarray]):
    """Return (values float64, ids int64, is_candidate bool), each (B, k'), of one chunk's best entries.

    ``scores`` contains the chunk with non-candidates at -inf. The selection follows the key
    (candidate first, higher score, lower item id) exactly. ``torch.topk`` of k' + 1 picks
    the set. Rows where equal scores straddle the k'-th place, or where -inf is selected
    (a non-candidate, or a candidate the model scored -inf), are sorted in full with their
    candidate mask rebuilt from ``excluded``.
    """
    width = scores.shape[1]
    kk = min(k, width)
    values, index = torch.topk(scores, min(kk + 1, width), dim=1)
    if bool(torch.isnan(values).any()):
        raise RecwidgetsError(
            f"the scorer returned NaN scores for items {start}..{start + width - 1}; evaluation cannot rank NaN. "
            "Check the model for diverged weights."
        )
    ambiguous = values[:, kk - 1] == float("-inf")
    if width > kk:
        ambiguous |= values[:, kk] == values[:, kk - 1]
    ambiguous = ambiguous.cpu().numpy()

    values_cpu = values[:, :kk].to("cpu", torch.float64).numpy()
    index_cpu = index[:, :kk].cpu().numpy()
    chosen_candidate = np.ones(values_cpu.shape, dtype=bool)
    if ambiguous.any():
        rows = np.flatnonzero(ambiguous)
        row_scores = scores[torch.from_numpy(rows).to(scores.device)].to("cpu", torch.float64).numpy()
        row_candidates = _row_candidates(width, start, excluded, rows)
        columns = np.broadcast_to(np.arange(width), row_scores.shape)
        order = np.lexsort((columns, -row_scores, ~row_candidates), axis=-1)[:, :kk]
        index_cpu[rows] = np.take_along_axis(columns, order, axis=-1)
        values_cpu[rows] = np.take_along_axis(row_scores, order, axis=-1)
        chosen_candidate[rows] = np.take_along_axis(row_candidates, order, axis=-1)
    return values_cpu, index_cpu + start, chosen_candidate


def _merge_top(running, chunk, k: int):
    """Merge two (values, ids, is_candidate) top lists per row and keep the best ``k``."""
    values = np.concatenate([running[0], chunk[0]], axis=1)
    ids = np.concatenate([running[1], chunk[1]], axis=1)
    valid = np.concatenate([running[2], chunk[2]], axis=1)
    order = np.lexsort((ids, -values, ~valid), axis=-1)[:, :k]
    return (
        np.take_along_axis(values, order, axis=-1),
        np.take_along_axis(ids, order, axis=-1),
        np.take_along_axis(valid, order, axis=-1),
    )


def _merge_running(running, scores: torch.Tensor, start: int, k: int, excluded):
    """Merge one chunk into the running top-k lists, skipping rows that the chunk cannot change.

    Chunks arrive in increasing item id order, so a later entry that ties with a row's k-th
    listed candidate loses on id. A row whose list already has k candidates changes only if
    the chunk has an entry strictly above its k-th value, and other rows skip the ``topk``.
    """
    # For random scores a row stays unchanged with probability about (start / (start + width)) ** k.
    # Below 1/4 the skip test costs more than the topk work it saves.
    worth_testing = (start / (start + scores.shape[1])) ** k >= 0.25
    if running[0].shape[1] < k or scores.device.type != "cpu" or not worth_testing:
        return _merge_top(running, _chunk_top(scores, start, k, excluded), k)
    full = running[2].all(axis=1)
    kth = np.where(full, running[0][:, -1], -np.inf).astype(np.float32)[:, None]
    with np.errstate(invalid="ignore"):
        # A NaN fails "<=" too, so its row goes on to _chunk_top, which raises on it.
        changed = ~np.less_equal(scores.numpy(), kth).all(axis=1) | ~full
    rows = np.flatnonzero(changed)
    if len(rows) == 0:
        return running
    if len(rows) == scores.shape[0]:
        return _merge_top(running, _chunk_top(scores, start, k, excluded), k)
    in_rows = np.isin(excluded[0], rows)
    position = np.full(scores.shape[0], -1, dtype=np.int64)
    position[rows] = np.arange(len(rows))
    local_excluded = (position[excluded[0][in_rows]], excluded[1][in_rows])
    chunk = _chunk_top(scores[torch.from_numpy(rows)], start, k, local_excluded)
    merged = _merge_top(tuple(part[rows] for part in running), chunk, k)
    updated = tuple(part.copy() for part in running)
    for part, new in zip(updated, merged):
        part[rows] = new
    return updated


def _count_against_targets(
    others: torch.Tensor, target_scores: torch.Tensor, minus_inf_others: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Return (higher, equal) counts (B, T) of the non-target candidates of a chunk against each target.

    ``others`` contains the chunk with every non-candidate and every target at -inf.
    ``minus_inf_others`` (B,) counts the real candidates among its -inf entries, the
    ``equal`` count of a target that itself scores -inf.
    """
    n_targets = target_scores.shape[1]
    higher = torch.zeros(target_scores.shape, dtype=torch.int64, device=target_scores.device)
    equal = torch.zeros_like(higher)

    if n_targets <= COMPARE_MAX_TARGETS and others.device.type == "cpu":
        # numpy's compare and count_nonzero run about five times faster than torch's bool sums on CPU.
        values = others.numpy()
        scores = target_scores.numpy()
        higher_np, equal_np = higher.numpy(), equal.numpy()
        above = np.empty(values.shape, dtype=bool)
        with np.errstate(invalid="ignore"):
            for column in range(n_targets):
                score = scores[:, column : column + 1]
                higher_np[:, column] = np.count_nonzero(np.greater(values, score, out=above), axis=1)
                # Exact float ties are rare, so equal entries are counted only in rows that have one.
                tied = np.flatnonzero(np.equal(values, score, out=above).any(axis=1))
                if len(tied):
                    equal_np[tied, column] = np.count_nonzero(values[tied] == score[tied], axis=1)
    elif n_targets <= COMPARE_MAX_TARGETS:
        above = torch.empty(others.shape, dtype=torch.bool, device=others.device)
        for column in range(n_targets):
            score = target_scores[:, column : column + 1]
            # A uint8 view sums much faster than a bool tensor.
            higher[:, column] = torch.gt(others, score, out=above).view(torch.uint8).sum(dim=1, dtype=torch.int32)
            # Exact float ties are rare, so equal entries are counted only in rows that have one.
            tied = torch.nonzero((others == score).any(dim=1)).flatten()
            if len(tied):
                equal[tied, column] = (others[tied] == score[tied]).sum(dim=1)
    else:
        # Many targets: one sort per row, then two binary searches per target.
        ascending = torch.sort(others, dim=1).values
        right = torch.searchsorted(ascending, target_scores.contiguous(), right=True)
        left = torch.searchsorted(ascending, target_scores.contiguous(), right=False)
        higher = others.shape[1] - right
        equal = right - left

    # A -inf target ties with the -inf fill of non-candidates and targets; count real candidates only.
    at_minus_inf = target_scores == float("-inf")
    if bool(at_minus_inf.any()):
        equal = torch.where(at_minus_inf, minus_inf_others[:, None].expand_as(equal), equal)
    return higher, equal


def _rank_among_targets(target_scores: np.ndarray, valid: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Return, per target, how many targets of its row score higher and its place among equal ones."""
    higher = (target_scores[:, None, :] > target_scores[:, :, None]) & valid[:, None, :]
    tied_before = (
        (target_scores[:, None, :] == target_scores[:, :, None])
        & valid[:, None, :]
        & np.tri(valid.shape[1], k=-1, dtype=bool)[None, :, :]
    )
    return higher.sum(axis=2), tied_before.sum(axis=2)


def chunked_rank_users(
    scorer: ChunkScorer,
    histories: Sequence[np.ndarray],
    targets: Sequence[np.ndarray],
    *,
    k: int,
    exclude_seen: bool = True,
    user_batch: int = 1024,
    item_chunk: int = 8192,
    rows: np.ndarray | None = None,
) -> Ranking:
    """Rank every user's targets and build top-``k`` lists, block by block; see the module docstring.

    ``histories`` and ``targets`` are per-user item-id arrays, as for ``rank_users``;
    targets must be non-empty and without repeats. ``rows`` gives the scorer's row of each
    user (default ``0..U-1``), so a shard of users can be ranked with a scorer built for all.
    Peak temporary memory is about ``peak_block_bytes(user_batch, item_chunk)`` plus the
    scorer's own buffers and the per-user outputs.
    """
    k = _check_positive("k", k)
    user_batch = _check_positive("user_batch", user_batch)
    item_chunk = _check_positive("item_chunk", item_chunk)
    n_users = len(targets)
    if len(histories) != n_users:
        raise ConfigError(f"got {len(histories)} histories for {n_users} target lists; pass one of each per user.")
    n_items = int(scorer.n_items)
    if k > n_items:
        raise ConfigError(f"k={k} is larger than the catalog of {n_items} items; pass k <= {n_items}.")
    rows = np.arange(n_users, dtype=np.int64) if rows is None else np.asarray(rows, dtype=np.int64)
    device = torch.device(scorer.device)
    n_columns = n_items + 1

    ranks: list[np.ndarray] = []
    topk = np.zeros((n_users, k), dtype=np.int64)
    n_candidates = np.zeros(n_users, dtype=np.int64)

    for start in range(0, n_users, user_batch):
        stop = min(start + user_batch, n_users)
        batch_targets = targets[start:stop]
        size = stop - start
        if min(len(items) for items in batch_targets) == 0:
            raise RecwidgetsError(
                f"a user among rows {start}..{stop - 1} has no target item; rank only users with targets."
            )
        width = max(len(items) for items in batch_targets)
        target_index = np.zeros((size, width), dtype=np.int64)
        target_valid = np.zeros((size, width), dtype=bool)
        for row, items in enumerate(batch_targets):
            target_index[row, : len(items)] = items
            target_valid[row, : len(items)] = True

        # Pairs that leave the candidates (seen items that are not targets) and the targets.
        own_keys = _batch_pairs(batch_targets, n_columns)
        seen_keys = _batch_pairs(histories[start:stop], n_columns) if exclude_seen else np.zeros(0, dtype=np.int64)
        seen_keys = np.setdiff1d(seen_keys, own_keys, assume_unique=True)
        own = _PairSlicer(own_keys, n_columns, size, device)
        seen = _PairSlicer(seen_keys, n_columns, size, device)
        n_candidates[start:stop] = n_items - seen.per_row(seen.rows)

        scorer.begin(rows[start:stop])
        target_scores = scorer.target_scores(torch.from_numpy(target_index).to(device)).float()
        if bool(torch.isnan(target_scores).any()):
            raise RecwidgetsError(
                f"the scorer returned NaN target scores for users in rows {start}..{stop - 1}; "
                "evaluation cannot rank NaN. Check the model for diverged weights."
            )
        # Padding columns of the target matrix must not count as -inf targets.
        target_scores = target_scores.masked_fill(~torch.from_numpy(target_valid).to(device), float("nan"))

        higher = torch.zeros((size, width), dtype=torch.int64, device=device)
        equal = torch.zeros_like(higher)
        running = (
            np.full((size, 0), -np.inf),
            np.zeros((size, 0), dtype=np.int64),
            np.zeros((size, 0), dtype=bool),
        )

        for item_start in range(0, n_columns, item_chunk):
            item_stop = min(item_start + item_chunk, n_columns)
            scores = scorer.scores(item_start, item_stop)  # (B, C), overwritten below
            if scores.dtype != torch.float32:
                scores = scores.float()

            # Non-candidates go to -inf in place: sparse writes instead of a dense mask.
            seen_pairs = seen.within(item_start, item_stop)
            if len(seen_pairs[0]):
                scores[seen.as_tensors(*seen_pairs)] = float("-inf")
            if item_start == 0:
                scores[:, 0] = float("-inf")
            excluded = (
                np.concatenate([seen_pairs[0], np.arange(size)]) if item_start == 0 else seen_pairs[0],
                np.concatenate([seen_pairs[1], np.zeros(size, dtype=np.int64)]) if item_start == 0 else seen_pairs[1],
            )
            running = _merge_running(running, scores, item_start, k, excluded)

            # Targets leave the counts here; they are compared with each other after the last chunk.
            own_pairs = own.within(item_start, item_stop)
            if len(own_pairs[0]):
                scores[own.as_tensors(*own_pairs)] = float("-inf")
            n_excluded = seen.per_row(seen_pairs[0]) + own.per_row(own_pairs[0]) + (1 if item_start == 0 else 0)
            minus_inf_others = None
            if bool((target_scores == float("-inf")).any()):
                n_minus_inf = (scores == float("-inf")).sum(dim=1)
                minus_inf_others = n_minus_inf - torch.from_numpy(n_excluded).to(device)
            chunk_higher, chunk_equal = _count_against_targets(scores, target_scores, minus_inf_others)
            higher += chunk_higher
            equal += chunk_equal

        target_scores_cpu = target_scores.to("cpu", torch.float64).numpy()
        higher_targets, position = _rank_among_targets(target_scores_cpu, target_valid)
        batch_ranks = 1 + higher.cpu().numpy() + equal.cpu().numpy() + higher_targets + position
        ranks.extend(batch_ranks[row, : len(items)].astype(np.int64) for row, items in enumerate(batch_targets))
        topk[start:stop, : running[1].shape[1]] = np.where(running[2], running[1], 0)
        logger.debug("chunked ranking: users %d to %d of %d", start, stop, n_users)

    return Ranking(target_ranks=ranks, topk=topk, n_candidates=n_candidates)


def peak_block_bytes(user_batch: int, item_chunk: int) -> int:
    """Return an estimate of the temporary bytes of one (user_batch, item_chunk) block.

    Counts the float32 score block, one bool comparison block and the equality test block.
    The estimate excludes the scorer's own buffers (``FactorScorer`` reuses one block) and
    the per-user outputs.
    """
    cells = int(user_batch) * int(item_chunk)
    return cells * (4 + 1 + 1) + int(user_batch) * 64 * 8


def suggest_item_chunk(user_batch: int, budget_bytes: int, n_items: int) -> int:
    """Return the largest item chunk whose block (``peak_block_bytes``) fits ``budget_bytes``."""
    per_cell = peak_block_bytes(1, 1)
    chunk = max(1, int(budget_bytes) // max(per_cell * int(user_batch), 1))
    return int(min(chunk, n_items + 1))
