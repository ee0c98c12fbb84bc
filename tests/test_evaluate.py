"""evaluate() end to end on hand-made splits: values, validation, bootstrap, sampling, results."""

from __future__ import annotations

import logging
import math
import warnings

import numpy as np
import pandas as pd
import pytest
import torch

from recwidgets.data.log import InteractionLog
from recwidgets.data.split import EvalSet, leave_last_out
from recwidgets.errors import ConfigError, DataError, ProtocolWarning, RecwidgetsError
from recwidgets.evaluation import EvaluationResult, compare, evaluate


class FixedScores:
    """A model that gives every history the same score vector (column 0 is padding)."""

    name = "fixed"
    max_len = 4
    device = torch.device("cpu")

    def __init__(self, scores, name="fixed"):
        self.scores = torch.as_tensor(scores, dtype=torch.float32)
        self.n_items = len(self.scores) - 1
        self.name = name

    def score(self, histories: torch.Tensor) -> torch.Tensor:
        return self.scores.expand(histories.shape[0], -1).clone()


class LastItemTable:
    """A model whose scores are the table row of the history's last item."""

    name = "last-item-table"
    max_len = 3
    device = torch.device("cpu")

    def __init__(self, table):
        self.table = torch.as_tensor(table, dtype=torch.float32)
        self.n_items = self.table.shape[1] - 1

    def score(self, histories: torch.Tensor) -> torch.Tensor:
        return self.table[histories[:, -1]].clone()


# Items 1..6 score 6, 5, 4, 3, 2, 1 under SCORES.
SCORES = [0, 6, 5, 4, 3, 2, 1]


@pytest.fixture(scope="module")
def tiny_split():
    """Four users; with seen items excluded, the test targets of users 1-3 rank 1, 2 and 3.

    User 4 has two interactions only, so under short_users="train" it has no test target.
    """
    sequences = {1: [4, 5, 1], 2: [5, 6, 2], 3: [5, 6, 3], 4: [1, 2]}
    rows = [
        {"user": user, "item": item, "timestamp": 100 * user + position}
        for user, items in sequences.items()
        for position, item in enumerate(items)
    ]
    log = InteractionLog.from_frame(pd.DataFrame(rows), name="tiny")
    return leave_last_out(log, short_users="train")


@pytest.fixture(scope="module")
def random_evalset():
    """120 users of a 40-item catalog with random histories and one or two targets each."""
    rng = np.random.default_rng(7)
    n_items, n_users = 40, 120
    histories = [rng.choice(np.arange(1, n_items + 1), size=rng.integers(1, 12), replace=False) for _ in range(n_users)]
    targets = []
    for history in histories:
        allowed = np.setdiff1d(np.arange(1, n_items + 1), history)
        targets.append(rng.choice(allowed, size=rng.integers(1, 3), replace=False))
    popularity = np.concatenate([[0], rng.integers(0, 50, size=n_items)])
    table = rng.normal(size=(n_items + 1, n_items + 1)).astype(np.float32)
    evalset = EvalSet(np.arange(1, n_users + 1, dtype=np.int64), histories, targets)
    return evalset, popularity, LastItemTable(table)


def test_hand_computed_means(tiny_split):
    result = evaluate(FixedScores(SCORES), tiny_split, k=(1, 3, 5), n_bootstrap=0)
    assert [ranks.tolist() for ranks in result.target_ranks] == [[1], [2], [3]]
    assert result.users.tolist() == [1, 2, 3]
    assert result.value("NDCG@3") == pytest.approx((1 + 1 / math.log2(3) + 0.5) / 3)
    assert result.value("HR@1") == pytest.approx(1 / 3)
    assert result.value("HR@3") == pytest.approx(1.0)
    assert result.value("MRR@3") == pytest.approx((1 + 1 / 2 + 1 / 3) / 3)
    assert result.value("MAP@3") == pytest.approx((1 + 1 / 2 + 1 / 3) / 3)
    assert result.value("Precision@5") == pytest.approx(1 / 5)
    assert result.value("Recall@1") == pytest.approx(1 / 3)


def test_hand_computed_topk_and_coverage(tiny_split):
    result = evaluate(FixedScores(SCORES), tiny_split, k=(1, 3), n_bootstrap=0)
    # Seen items are excluded: user 1 saw 4, 5; users 2 and 3 saw 5, 6.
    assert result.topk.tolist() == [[1, 2, 3], [1, 2, 3], [1, 2, 3]]
    assert result.value("Coverage@3") == pytest.approx(3 / 6)
    assert result.coverage_counts == {1: 1, 3: 3}
    # Exposure counts sorted [0, 0, 0, 3, 3, 3], weights 2i - 7 = [-5, -3, -1, 1, 3, 5]:
    # Gini = 3 * (1 + 3 + 5) / (6 * 9).
    assert result.value("Gini@3") == pytest.approx(27 / 54)


def test_users_without_targets_counted(tiny_split, caplog):
    with caplog.at_level(logging.INFO, logger="recwidgets.evaluation"):
        result = evaluate(FixedScores(SCORES), tiny_split, k=(3,), n_bootstrap=0)
    assert result.card.users_without_test == 1
    assert result.n_users_without_targets == 1
    assert result.card.n_evaluated_users == 3
    assert 4 not in result.per_user["user"].tolist()
    assert (result.metrics["n_users"] == 3).all()
    assert "1 of 4 users of the test part have no target item" in caplog.text


def test_card_records_protocol(tiny_split):
    result = evaluate(FixedScores(SCORES), tiny_split, k=(3, 1), n_bootstrap=50, seed=3)
    card = result.card
    assert card.part == "test"
    assert card.ranking == "full"
    assert card.ties == "pessimistic"
    assert card.exclude_seen is True
    assert card.k == (1, 3)
    assert card.max_history_len == 4
    assert card.model == "fixed"
    assert card.n_negatives is None
    assert card.bootstrap["n_resamples"] == 50
    assert card.bootstrap["seed"] == 3
    assert card.split == "leave-last-out"
    assert card.to_dict()["k"] == [1, 3]


def test_exclude_seen_switch(tiny_split):
    # Without exclusion, user 1's seen items 4 and 5 stay candidates but score below item 1.
    result = evaluate(FixedScores(SCORES), tiny_split, k=(3,), n_bootstrap=0, exclude_seen=False)
    assert [ranks.tolist() for ranks in result.target_ranks] == [[1], [2], [3]]
    assert result.card.exclude_seen is False
    reversed_scores = [0, 1, 2, 3, 4, 5, 6]
    seen_first = evaluate(FixedScores(reversed_scores), tiny_split, k=(3,), n_bootstrap=0, exclude_seen=False)
    excluded = evaluate(FixedScores(reversed_scores), tiny_split, k=(3,), n_bootstrap=0)
    assert seen_first.target_ranks[0].tolist() == [6]
    assert excluded.target_ranks[0].tolist() == [4]


@pytest.mark.parametrize(
    ("k", "message"),
    [
        (0, "k=0 is invalid"),
        ((5, -1), "k=-1 is invalid"),
        (7, "k=7 is larger than the catalog of 6 items"),
        ((3, 100), "k=100 is larger than the catalog of 6 items"),
        ("10", "k='10' is invalid"),
        ((2.0,), "k=2.0 is invalid"),
        ((), "empty"),
    ],
)
def test_invalid_k_raises_with_value(tiny_split, k, message):
    with pytest.raises(ConfigError, match=message):
        evaluate(FixedScores(SCORES), tiny_split, k=k, n_bootstrap=0)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"part": "train"}, "part='train' is invalid"),
        ({"n_bootstrap": -1}, "n_bootstrap=-1 is invalid"),
        ({"batch_size": 0}, "batch_size=0 is invalid"),
        ({"confidence": 1.5}, "confidence=1.5 is invalid"),
        ({"sampled": 0}, "sampled=0 is invalid"),
    ],
)
def test_invalid_options_raise(tiny_split, options, message):
    with pytest.raises(ConfigError, match=message):
        evaluate(FixedScores(SCORES), tiny_split, **{"k": (3,), "n_bootstrap": 0, **options})


def test_model_catalog_mismatch_raises(tiny_split):
    with pytest.raises(ConfigError, match="scores 4 items but the split has 6"):
        evaluate(FixedScores([0, 1, 2, 3, 4]), tiny_split, k=(3,))


def test_object_without_protocol_raises(tiny_split):
    with pytest.raises(ConfigError, match="lacks"):
        evaluate(object(), tiny_split)


def test_nan_model_raises_through_evaluate(tiny_split):
    scores = list(SCORES)
    scores[3] = float("nan")
    with pytest.raises(RecwidgetsError, match=r"model 'fixed' returned NaN scores for 3 of 3"):
        evaluate(FixedScores(scores), tiny_split, k=(3,), n_bootstrap=0)


def test_evalset_needs_train_popularity(random_evalset):
    evalset, popularity, model = random_evalset
    with pytest.raises(ConfigError, match="train_popularity="):
        evaluate(model, evalset, n_bootstrap=0)
    result = evaluate(model, evalset, train_popularity=popularity, n_bootstrap=0)
    assert result.card.dataset == "custom"
    assert len(result.users) == len(evalset)


def test_target_id_outside_catalog_raises(random_evalset):
    _, popularity, model = random_evalset
    evalset = EvalSet(np.array([1]), [np.array([1, 2])], [np.array([41])])
    with pytest.raises(DataError, match="item id 41, outside 1..40"):
        evaluate(model, evalset, train_popularity=popularity, n_bootstrap=0)


def test_bootstrap_ci_contains_mean_and_is_seeded(random_evalset):
    evalset, popularity, model = random_evalset
    result = evaluate(model, evalset, train_popularity=popularity, n_bootstrap=300, seed=5)
    per_user_labels = [label for label in result.per_user.columns if label != "user"]
    for label in per_user_labels:
        low, high = result.ci(label)
        assert low <= result.value(label) <= high, label
        assert low < high, label

    again = evaluate(model, evalset, train_popularity=popularity, n_bootstrap=300, seed=5)
    pd.testing.assert_frame_equal(result.metrics, again.metrics)
    other_seed = evaluate(model, evalset, train_popularity=popularity, n_bootstrap=300, seed=6)
    assert other_seed.ci("NDCG@10") != result.ci("NDCG@10")
    assert other_seed.value("NDCG@10") == result.value("NDCG@10")


def test_bootstrap_off_gives_nan_intervals(random_evalset):
    evalset, popularity, model = random_evalset
    result = evaluate(model, evalset, train_popularity=popularity, n_bootstrap=0)
    assert result.metrics[["ci_low", "ci_high"]].isna().all().all()
    assert result.card.bootstrap == {"n_resamples": 0}
    assert result.to_dict()["NDCG@10"]["ci"] == [None, None]


def test_batched_evaluation_equals_one_batch(random_evalset):
    evalset, popularity, model = random_evalset
    whole = evaluate(model, evalset, train_popularity=popularity, n_bootstrap=100, batch_size=1000)
    batched = evaluate(model, evalset, train_popularity=popularity, n_bootstrap=100, batch_size=7)
    pd.testing.assert_frame_equal(whole.metrics, batched.metrics)
    pd.testing.assert_frame_equal(whole.per_user, batched.per_user)
    np.testing.assert_array_equal(whole.topk, batched.topk)


def test_sampled_evaluation_is_labelled_and_warns(random_evalset):
    evalset, popularity, model = random_evalset
    with pytest.warns(ProtocolWarning, match="20 random negatives"):
        result = evaluate(model, evalset, train_popularity=popularity, sampled=20, k=(5, 10), n_bootstrap=0)
    assert "NDCG@10 (sampled, 20 negatives)" in result.metrics.index
    assert "NDCG@10" not in result.metrics.index
    assert all("(sampled, 20 negatives)" in label for label in result.metrics.index)
    assert "HR@5 (sampled, 20 negatives)" in result.per_user.columns
    assert result.card.ranking == "sampled"
    assert result.card.n_negatives == 20
    assert result.card.sample_seed == 0
    assert result.negatives.shape == (len(evalset), 20)
    with pytest.raises(ConfigError, match=r"NDCG@10 \(sampled, 20 negatives\)"):
        result.value("NDCG@10")


def test_sampled_negatives_avoid_history_and_targets(random_evalset):
    evalset, popularity, model = random_evalset
    with pytest.warns(ProtocolWarning):
        result = evaluate(model, evalset, train_popularity=popularity, sampled=20, k=(10,), n_bootstrap=0)
    for row, negatives in enumerate(result.negatives):
        assert len(set(negatives.tolist())) == 20
        assert not np.isin(negatives, evalset.histories[row]).any()
        assert not np.isin(negatives, evalset.targets[row]).any()
    # Among 20 negatives plus the targets, no rank exceeds 22.
    assert max(int(ranks.max()) for ranks in result.target_ranks) <= 22


def test_sampled_evaluation_is_reproducible(random_evalset):
    evalset, popularity, model = random_evalset
    options = {"train_popularity": popularity, "k": (10,), "n_bootstrap": 0}
    with pytest.warns(ProtocolWarning):
        first = evaluate(model, evalset, sampled=15, sample_seed=4, **options)
    with pytest.warns(ProtocolWarning):
        second = evaluate(model, evalset, sampled=15, sample_seed=4, **options)
    with pytest.warns(ProtocolWarning):
        other = evaluate(model, evalset, sampled=15, sample_seed=5, **options)
    with pytest.warns(ProtocolWarning):
        reused = evaluate(model, evalset, negatives=first.negatives, sample_seed=4, **options)
    np.testing.assert_array_equal(first.negatives, second.negatives)
    assert not np.array_equal(first.negatives, other.negatives)
    pd.testing.assert_frame_equal(first.metrics, reused.metrics)
    assert first.card.extra["negatives_digest"] == reused.card.extra["negatives_digest"]


def test_sampled_cutoff_above_negatives_raises(random_evalset):
    evalset, popularity, model = random_evalset
    with pytest.raises(ConfigError, match="k=20 is larger than the sampled=10"):
        evaluate(model, evalset, train_popularity=popularity, sampled=10, k=(5, 20))


def test_sampled_more_than_available_raises(tiny_split):
    with pytest.raises(ConfigError, match="sampled=5 is too large: user 1 has only 3 items"):
        evaluate(FixedScores(SCORES), tiny_split, sampled=5, k=(3,))


def test_reused_negatives_wrong_shape_raises(random_evalset):
    evalset, popularity, model = random_evalset
    with pytest.raises(ConfigError, match=r"negatives has shape \(3, 5\)"):
        evaluate(model, evalset, train_popularity=popularity, negatives=np.ones((3, 5), dtype=np.int64))


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ("out_of_range", "item id 99, outside 1..6"),
        ("repeated", "negatives row 0 repeats an item"),
        ("target", "negatives row 1 contains a target item"),
    ],
)
def test_reused_negatives_checked(tiny_split, change, message):
    # Valid negatives for the three users with targets 1, 2, 3 and histories [4, 5], [5, 6], [5, 6].
    negatives = np.array([[2, 3], [1, 3], [1, 2]])
    if change == "out_of_range":
        negatives[0, 0] = 99
    elif change == "repeated":
        negatives[0] = [2, 2]
    else:
        negatives[1] = [1, 2]
    with pytest.raises(ConfigError, match=message):
        evaluate(FixedScores(SCORES), tiny_split, negatives=negatives, k=(1,), n_bootstrap=0)


def test_result_exports(random_evalset):
    evalset, popularity, model = random_evalset
    result = evaluate(model, evalset, train_popularity=popularity, n_bootstrap=50, k=(5, 10))
    assert isinstance(result, EvaluationResult)
    payload = result.to_dict()
    assert payload["NDCG@10"]["value"] == pytest.approx(result.value("NDCG@10"))
    assert payload["NDCG@10"]["ci"] == pytest.approx(list(result.ci("NDCG@10")))
    assert payload["Coverage@5"]["count"] == result.coverage_counts[5]
    frame = result.to_frame()
    assert list(frame.columns[:4]) == ["model", "metric", "k", "label"]
    assert set(frame["metric"]) == {
        "HR", "Precision", "Recall", "NDCG", "MRR", "MAP", "Coverage", "Gini", "Novelty", "ARP"
    }
    assert result.topk.shape == (len(evalset), 10)
    assert result.topk.dtype == np.int64
    assert "last-item-table" in repr(result)


def test_compare_side_by_side(tiny_split):
    best = evaluate(FixedScores(SCORES, name="best"), tiny_split, k=(3,), n_bootstrap=0)
    worst = evaluate(FixedScores(SCORES[:1] + SCORES[1:][::-1], name="worst"), tiny_split, k=(3,), n_bootstrap=0)
    with warnings.catch_warnings():
        warnings.simplefilter("error", ProtocolWarning)
        table = compare([best, worst])
    assert table.loc["NDCG@3", ("best", "value")] > table.loc["NDCG@3", ("worst", "value")]
    assert list(table.columns.get_level_values("model").unique()) == ["best", "worst"]


def test_compare_warns_on_different_parts(tiny_split):
    test = evaluate(FixedScores(SCORES), tiny_split, k=(3,), n_bootstrap=0)
    validation = evaluate(FixedScores(SCORES), tiny_split, part="validation", k=(3,), n_bootstrap=0)
    with pytest.warns(ProtocolWarning, match="'part'"):
        table = compare({"test": test, "validation": validation})
    assert table.shape[1] == 6


def test_segment_metrics(random_evalset):
    evalset, popularity, model = random_evalset
    result = evaluate(model, evalset, train_popularity=popularity, n_bootstrap=100)
    assert list(result.segments.columns) == ["user", "activity", "target_popularity"]
    assert len(result.segments) == len(result.per_user)
    by_activity = result.segment_metrics("activity", k=10)
    assert list(by_activity.columns) == ["segment", "metric", "value", "ci_low", "ci_high", "n_users"]
    ndcg_rows = by_activity[by_activity["metric"] == "NDCG@10"]
    assert ndcg_rows["n_users"].sum() == len(result.users)
    assert all(segment.startswith("Q") for segment in ndcg_rows["segment"])
    # The user-weighted mean of segment means is the overall mean.
    weighted = (ndcg_rows["value"] * ndcg_rows["n_users"]).sum() / ndcg_rows["n_users"].sum()
    assert weighted == pytest.approx(result.value("NDCG@10"))
    assert (ndcg_rows["ci_low"] <= ndcg_rows["value"]).all()
    by_popularity = result.segment_metrics("target_popularity", k=5)
    assert set(by_popularity["segment"]) <= {"head", "mid", "tail"}


def test_segment_metrics_rejects_unknown_inputs(random_evalset):
    evalset, popularity, model = random_evalset
    result = evaluate(model, evalset, train_popularity=popularity, n_bootstrap=0, k=(10,))
    with pytest.raises(ConfigError, match="segment column 'genre' is unknown"):
        result.segment_metrics("genre")
    with pytest.raises(ConfigError, match="k=5 was not evaluated"):
        result.segment_metrics("activity", k=5)


def test_validation_call_used_by_training(tiny_split):
    # The training loop calls evaluate this way after each epoch (k=(10,) on real catalogs).
    result = evaluate(FixedScores(SCORES), tiny_split, n_bootstrap=0, part="validation", k=(5,))
    assert result.card.part == "validation"
    assert result.metrics.index[0] == "HR@5"
    # Validation targets are the second-to-last items 5, 6, 6 with histories [4], [5], [5].
    assert [ranks.tolist() for ranks in result.target_ranks] == [[4], [5], [5]]
