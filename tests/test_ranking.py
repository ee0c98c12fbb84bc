"""Full and sampled ranking: pessimistic ties, seen-item exclusion, padding, batching, NaN scores."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from recwidgets.errors import RecwidgetsError
from recwidgets.evaluation.ranking import candidate_mask, rank_targets, rank_users, top_k_items


class FixedScores:
    """A model that gives every history the same score vector (column 0 is padding)."""

    name = "fixed"
    max_len = 4
    device = torch.device("cpu")

    def __init__(self, scores):
        self.scores = torch.as_tensor(scores, dtype=torch.float32)
        self.n_items = len(self.scores) - 1

    def score(self, histories: torch.Tensor) -> torch.Tensor:
        return self.scores.expand(histories.shape[0], -1).clone()


class LastItemTable:
    """A model whose scores are the table row of the history's last item (row 0 for an empty history)."""

    name = "last-item-table"
    max_len = 3
    device = torch.device("cpu")

    def __init__(self, table):
        self.table = torch.as_tensor(table, dtype=torch.float32)
        self.n_items = self.table.shape[1] - 1

    def score(self, histories: torch.Tensor) -> torch.Tensor:
        return self.table[histories[:, -1]].clone()


def rank_one(scores, history, targets, *, k=3, exclude_seen=True):
    """Rank one user's targets under a fixed score vector; return (ranks, top-k list)."""
    model = FixedScores(scores)
    ranking = rank_users(
        model, [np.array(history, dtype=np.int64)], [np.array(targets, dtype=np.int64)], k=k, exclude_seen=exclude_seen
    )
    return ranking.target_ranks[0].tolist(), ranking.topk[0].tolist()


def test_distinct_scores_rank_by_score():
    # Items 1..5 score 5, 4, 3, 2, 1.
    scores = [0, 5, 4, 3, 2, 1]
    assert rank_one(scores, [], [1])[0] == [1]
    assert rank_one(scores, [], [2])[0] == [2]
    assert rank_one(scores, [], [3])[0] == [3]


def test_tie_at_top_is_pessimistic():
    # The target (item 2) ties with items 1 and 3 at the top: it ranks behind both.
    scores = [0, 9, 9, 9, 1, 1]
    ranks, top = rank_one(scores, [], [2])
    assert ranks == [3]
    # The top-k list orders ties by item id, so the deterministic list is [1, 2, 3].
    assert top == [1, 2, 3]


def test_tie_below_higher_items():
    # Item 5 is strictly higher; the target (item 4) ties with items 1 and 2.
    scores = [0, 3, 3, 0, 3, 7]
    assert rank_one(scores, [], [4])[0] == [4]


def test_history_exclusion_keeps_target():
    # The target (item 1) is also in the history; items 2 and 3 are seen and excluded.
    scores = [0, 1, 9, 8, 5, 0]
    ranks, top = rank_one(scores, [2, 3, 1], [1])
    assert ranks == [2]
    assert top == [4, 1, 5]


def test_history_kept_when_exclusion_off():
    scores = [0, 1, 9, 8, 5, 0]
    ranks, top = rank_one(scores, [2, 3, 1], [1], exclude_seen=False)
    assert ranks == [4]
    assert top == [2, 3, 4]


def test_padding_never_recommended():
    # Column 0 scores highest; it must neither appear nor push the target down.
    scores = [100, 1, 2, 3, 4, 5]
    ranks, top = rank_one(scores, [], [5])
    assert ranks == [1]
    assert 0 not in top
    assert top == [5, 4, 3]


def test_short_candidate_list_padded_with_zero():
    # Four of five items are seen; one seen item is the target, so two candidates remain.
    scores = [0, 5, 4, 3, 2, 1]
    ranks, top = rank_one(scores, [1, 2, 3, 4], [4], k=4)
    assert ranks == [1]
    assert top == [4, 5, 0, 0]


def test_tied_targets_take_distinct_last_places():
    # Targets 1 and 2 tie with the non-target item 3: non-targets first, then targets in order.
    scores = [0, 6, 6, 6, 0, 0]
    ranks, _ = rank_one(scores, [], [2, 1])
    assert ranks == [2, 3]


def test_minus_infinity_scores_rank_among_candidates_only():
    # Item 4 is seen and excluded; the target (item 5) scores -inf like item 3.
    scores = [0, 2, 1, float("-inf"), float("-inf"), float("-inf")]
    ranks, top = rank_one(scores, [4], [5], k=4)
    assert ranks == [4]
    assert top == [1, 2, 3, 5]


def test_sampled_ranking_uses_only_negatives():
    model = FixedScores([0, 9, 8, 7, 6, 5, 4])
    ranking = rank_users(
        model,
        [np.array([1])],
        [np.array([6])],
        k=2,
        negatives=np.array([[2, 5]]),
    )
    assert ranking.target_ranks[0].tolist() == [3]
    assert ranking.topk[0].tolist() == [2, 5]
    assert ranking.n_candidates.tolist() == [3]


def test_nan_scores_raise_naming_model_and_rows():
    table = np.zeros((5, 5), dtype=np.float32)
    table[2, 3] = np.nan
    model = LastItemTable(table)
    histories = [np.array([1]), np.array([2]), np.array([1, 2]), np.array([3])]
    targets = [np.array([4])] * 4
    with pytest.raises(RecwidgetsError, match=r"'last-item-table' returned NaN scores for 2 of 4 histories"):
        rank_users(model, histories, targets, k=2, users=np.array([10, 11, 12, 13]))


def test_wrong_score_shape_raises():
    class Truncated(FixedScores):
        def score(self, histories):
            return super().score(histories)[:, 1:]

    with pytest.raises(RecwidgetsError, match=r"shape \(1, 5\); expected"):
        rank_users(Truncated([0, 1, 2, 3, 4, 5]), [np.array([1])], [np.array([2])], k=2)


def test_batched_equals_one_batch():
    rng = np.random.default_rng(3)
    n_items = 30
    # Integer scores make ties common, which exercises the tie rules across batches.
    table = rng.integers(0, 6, size=(n_items + 1, n_items + 1)).astype(np.float32)
    model = LastItemTable(table)
    histories = [rng.choice(np.arange(1, n_items + 1), size=rng.integers(0, 8), replace=False) for _ in range(23)]
    targets = [rng.choice(np.arange(1, n_items + 1), size=rng.integers(1, 4), replace=False) for _ in range(23)]

    whole = rank_users(model, histories, targets, k=7, batch_size=100)
    for batch_size in (1, 4, 10):
        batched = rank_users(model, histories, targets, k=7, batch_size=batch_size)
        np.testing.assert_array_equal(batched.topk, whole.topk)
        np.testing.assert_array_equal(batched.n_candidates, whole.n_candidates)
        for got, expected in zip(batched.target_ranks, whole.target_ranks):
            np.testing.assert_array_equal(got, expected)


def reference_ranking(scores, candidates, targets, k):
    """Rank by brute force: sort candidates by score, non-targets before targets in a tie."""
    targets = list(targets)
    items = [item for item in range(len(scores)) if candidates[item]]

    def pessimistic(item):
        is_target = item in targets
        return (-scores[item], is_target, targets.index(item) if is_target else 0)

    order = sorted(items, key=pessimistic)
    ranks = [order.index(target) + 1 for target in targets]
    top = sorted(items, key=lambda item: (-scores[item], item))[:k]
    return ranks, top + [0] * (k - len(top))


@st.composite
def ranking_cases(draw):
    """A small batch with integer scores (many ties, some -inf), histories and targets."""
    n_items = draw(st.integers(2, 8))
    n_rows = draw(st.integers(1, 3))
    score_values = st.sampled_from([float("-inf"), 0.0, 1.0, 2.0])
    scores = [draw(st.lists(score_values, min_size=n_items + 1, max_size=n_items + 1)) for _ in range(n_rows)]
    item = st.integers(1, n_items)
    histories = [draw(st.lists(item, max_size=n_items, unique=True)) for _ in range(n_rows)]
    targets = [draw(st.lists(item, min_size=1, max_size=3, unique=True)) for _ in range(n_rows)]
    k = draw(st.integers(1, n_items))
    exclude_seen = draw(st.booleans())
    return np.array(scores, dtype=np.float32), histories, targets, k, exclude_seen


@settings(max_examples=200, deadline=None)
@given(ranking_cases())
def test_ranking_matches_brute_force(case):
    scores, histories, targets, k, exclude_seen = case
    n_items = scores.shape[1] - 1
    history_arrays = [np.array(history, dtype=np.int64) for history in histories]
    target_arrays = [np.array(target, dtype=np.int64) for target in targets]
    candidates = candidate_mask(n_items, history_arrays, target_arrays, exclude_seen=exclude_seen)
    tensor = torch.from_numpy(scores)

    ranks = rank_targets(tensor, candidates, target_arrays)
    top = top_k_items(tensor, candidates, k)
    for row in range(len(scores)):
        expected_ranks, expected_top = reference_ranking(scores[row], candidates[row].numpy(), targets[row], k)
        assert ranks[row].tolist() == expected_ranks
        assert top[row].tolist() == expected_top
        assert not candidates[row, 0]
