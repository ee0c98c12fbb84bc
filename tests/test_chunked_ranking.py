"""Chunked full ranking against the unchunked ``rank_users`` on random data with many ties."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from recwidgets.data.loaders import load_ml100k
from recwidgets.data.split import leave_last_out
from recwidgets.distributed import FactorScorer, ModelScorer, SASRecScorer, chunked_rank_users, evaluate_sharded
from recwidgets.errors import ConfigError, RecwidgetsError
from recwidgets.evaluation import evaluate
from recwidgets.evaluation.ranking import rank_users
from recwidgets.models.sasrec import SASRec


class TableModel:
    """Scores user ``u`` with row ``u`` of a fixed table; the history's first item names the user.

    Histories here are ``[u + 1] + real history``, so the score row does not depend on how
    the batch was padded. Item ``u + 1`` is then part of the history, as any other item.
    """

    name = "table"
    max_len = None
    device = torch.device("cpu")

    def __init__(self, table: torch.Tensor):
        self.table = table
        self.n_items = table.shape[1] - 1

    def score(self, histories: torch.Tensor) -> torch.Tensor:
        # The first non-padding item of a left-padded row is its leftmost one (argmax returns the first).
        positions = (histories > 0).float().argmax(dim=1)
        first = histories[torch.arange(len(histories)), positions]
        return self.table[first - 1]


def random_case(rng, n_users, n_items, levels, minus_inf_share=0.0, max_targets=12):
    """Random integer scores (many ties), histories, and distinct targets per user."""
    table = torch.from_numpy(rng.integers(-levels, levels + 1, size=(n_users, n_items + 1)).astype(np.float32))
    if minus_inf_share:
        table[torch.from_numpy(rng.random(table.shape) < minus_inf_share)] = float("-inf")
    histories, targets = [], []
    for user in range(n_users):
        seen = rng.choice(np.arange(1, n_items + 1), size=int(rng.integers(0, n_items // 2)), replace=False)
        histories.append(np.concatenate([[user + 1], seen[seen != user + 1]]).astype(np.int64))
        count = int(rng.integers(1, min(max_targets, n_items) + 1))
        targets.append(rng.choice(np.arange(1, n_items + 1), size=count, replace=False).astype(np.int64))
    return TableModel(table), histories, targets


def assert_rankings_equal(expected, actual):
    assert len(expected.target_ranks) == len(actual.target_ranks)
    for a, b in zip(expected.target_ranks, actual.target_ranks):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(expected.topk, actual.topk)
    np.testing.assert_array_equal(expected.n_candidates, actual.n_candidates)


@pytest.mark.parametrize("exclude_seen", [True, False])
@pytest.mark.parametrize("case", range(12))
def test_chunked_equals_unchunked(case, exclude_seen):
    rng = np.random.default_rng(case)
    n_items = int(rng.integers(40, 90))
    n_users = int(rng.integers(20, 40))
    model, histories, targets = random_case(
        rng, n_users, n_items, levels=int(rng.integers(1, 4)), minus_inf_share=0.1 if case % 3 == 0 else 0.0
    )
    k = int(rng.integers(1, 25))
    expected = rank_users(model, histories, targets, k=k, exclude_seen=exclude_seen, batch_size=9)
    for user_batch, item_chunk in [(4, 7), (64, 1), (3, 1000), (16, 32)]:
        actual = chunked_rank_users(
            ModelScorer(model, histories),
            histories,
            targets,
            k=k,
            exclude_seen=exclude_seen,
            user_batch=user_batch,
            item_chunk=item_chunk,
        )
        assert_rankings_equal(expected, actual)


def test_many_targets_take_sort_path():
    rng = np.random.default_rng(99)
    model, histories, targets = random_case(rng, 15, 60, levels=2, max_targets=30)
    assert max(len(t) for t in targets) > 8
    expected = rank_users(model, histories, targets, k=10)
    actual = chunked_rank_users(ModelScorer(model, histories), histories, targets, k=10, user_batch=4, item_chunk=13)
    assert_rankings_equal(expected, actual)


def test_factor_scorer_exact_integers():
    # Small integer factors make every dot product exact in float32, so chunked GEMMs agree bitwise.
    rng = np.random.default_rng(5)
    n_users, n_items, dims = 50, 300, 6
    queries = rng.integers(-2, 3, size=(n_users, dims)).astype(np.float32)
    items = rng.integers(-2, 3, size=(n_items + 1, dims)).astype(np.float32)
    table = torch.from_numpy(queries @ items.T)
    model, histories, targets = random_case(rng, n_users, n_items, levels=1)
    model = TableModel(table)
    expected = rank_users(model, histories, targets, k=20, batch_size=17)
    actual = chunked_rank_users(FactorScorer(queries, items), histories, targets, k=20, user_batch=8, item_chunk=64)
    assert_rankings_equal(expected, actual)


def test_hand_checked_ranks_and_ties():
    # Scores of items 0..5 (0 is padding): item 3 ties with 2 and 5; item 1 is seen.
    table = torch.tensor([[9.0, 8.0, 3.0, 3.0, 1.0, 3.0]])
    model = TableModel(table)
    histories, targets = [np.array([1])], [np.array([3])]
    ranking = chunked_rank_users(ModelScorer(model, histories), histories, targets, k=3, item_chunk=2)
    # Candidates 2, 3, 4, 5; target 3 is pessimistically behind 2 and 5.
    np.testing.assert_array_equal(ranking.target_ranks[0], [3])
    np.testing.assert_array_equal(ranking.topk[0], [2, 3, 5])
    assert ranking.n_candidates[0] == 4


def test_sasrec_scorer_matches_evaluate(ml100k_dir):
    log = load_ml100k(ml100k_dir)
    frame = log.interactions
    split = leave_last_out(log.with_interactions(frame[frame["user"] <= 120]))
    model = SASRec(hidden=16, layers=1, heads=1, epochs=1, seed=1).fit(split, progress=False, validate=False)

    def ranker(model, histories, targets, *, k, exclude_seen, negatives, users):
        return chunked_rank_users(
            SASRecScorer(model, histories), histories, targets, k=k, exclude_seen=exclude_seen, item_chunk=200
        )

    expected = evaluate(model, split, k=(10,), n_bootstrap=0)
    chunked = evaluate_sharded(model, split, k=(10,), n_bootstrap=0, ranker=ranker)
    # Scores come from another GEMM shape, so only near-ties may differ; on this data none do.
    np.testing.assert_array_equal(chunked.topk, expected.topk)
    np.testing.assert_allclose(chunked.value("NDCG@10"), expected.value("NDCG@10"), rtol=0, atol=1e-12)


def test_rejects_user_without_target():
    model, histories, targets = random_case(np.random.default_rng(1), 3, 20, levels=1)
    targets[1] = np.array([], dtype=np.int64)
    with pytest.raises(RecwidgetsError, match="no target item"):
        chunked_rank_users(ModelScorer(model, histories), histories, targets, k=5)


def test_rejects_bad_chunk():
    model, histories, targets = random_case(np.random.default_rng(1), 3, 20, levels=1)
    with pytest.raises(ConfigError, match="item_chunk=0"):
        chunked_rank_users(ModelScorer(model, histories), histories, targets, k=5, item_chunk=0)


def test_rejects_nan_in_later_chunk():
    model, histories, targets = random_case(np.random.default_rng(2), 6, 60, levels=1)
    model.table[2, 50] = float("nan")
    with pytest.raises(RecwidgetsError, match="NaN"):
        chunked_rank_users(ModelScorer(model, histories), histories, targets, k=3, item_chunk=16)
