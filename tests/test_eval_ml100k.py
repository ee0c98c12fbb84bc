"""evaluate() on the real ML-100K data with a popularity scorer."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import torch

from recwidgets.data.log import InteractionLog
from recwidgets.data.split import leave_last_out, temporal
from recwidgets.errors import ProtocolWarning
from recwidgets.evaluation import evaluate


class PopularityScores:
    """Score every item by its training interaction count, whatever the history."""

    name = "popularity"
    max_len = 50
    device = torch.device("cpu")

    def __init__(self, train_popularity: np.ndarray):
        self.n_items = len(train_popularity) - 1
        self.counts = torch.as_tensor(train_popularity, dtype=torch.float32)

    def score(self, histories: torch.Tensor) -> torch.Tensor:
        return self.counts.expand(histories.shape[0], -1).clone()


class RandomScores:
    """Seeded random scores per call; a floor for any useful model."""

    name = "random"
    max_len = 50
    device = torch.device("cpu")

    def __init__(self, n_items: int):
        self.n_items = n_items
        self.generator = torch.Generator().manual_seed(0)

    def score(self, histories: torch.Tensor) -> torch.Tensor:
        return torch.rand((histories.shape[0], self.n_items + 1), generator=self.generator)


@pytest.fixture(scope="module")
def ml100k_log(ml100k_dir):
    frame = pd.read_csv(ml100k_dir / "u.data", sep="\t", names=["user", "item", "rating", "timestamp"])
    return InteractionLog.from_frame(frame, name="ml-100k")


@pytest.fixture(scope="module")
def loo_split(ml100k_log):
    return leave_last_out(ml100k_log)


def reference_popularity_ndcg(split, k: int) -> float:
    """Compute NDCG@k of popularity scoring with a plain per-user loop (pessimistic ties, seen excluded)."""
    counts = split.train_popularity().astype(np.float64)
    total = 0.0
    for history, targets in zip(split.test.histories, split.test.targets):
        target = int(targets[0])
        candidates = np.ones(len(counts), dtype=bool)
        candidates[0] = False
        candidates[history] = False
        candidates[target] = True
        higher = int((candidates & (counts > counts[target])).sum())
        equal_others = int((candidates & (counts == counts[target])).sum()) - 1
        rank = 1 + higher + equal_others
        total += 1 / math.log2(rank + 1) if rank <= k else 0.0
    return total / len(split.test)


def test_popularity_ndcg_on_ml100k(loo_split):
    result = evaluate(PopularityScores(loo_split.train_popularity()), loo_split, n_bootstrap=200)
    value = result.value("NDCG@10")
    # Measured 0.0432 (leave-last-out, seen items excluded, pessimistic ties).
    assert 0.02 < value < 0.08
    assert value == pytest.approx(reference_popularity_ndcg(loo_split, 10))
    low, high = result.ci("NDCG@10")
    assert low < value < high
    assert len(result.users) == 943
    assert result.card.dataset == "ml-100k"
    assert result.card.n_evaluated_users == 943


def test_popularity_beats_random(loo_split):
    popularity = evaluate(PopularityScores(loo_split.train_popularity()), loo_split, k=(10,), n_bootstrap=0)
    random = evaluate(RandomScores(loo_split.log.n_items), loo_split, k=(10,), n_bootstrap=0)
    assert random.value("NDCG@10") < 0.02
    assert popularity.value("NDCG@10") > 3 * random.value("NDCG@10")
    assert random.value("Coverage@10") > popularity.value("Coverage@10")
    assert random.value("Gini@10") < popularity.value("Gini@10")
    assert random.value("ARP@10") < popularity.value("ARP@10")
    assert random.value("Novelty@10") > popularity.value("Novelty@10")


def test_popularity_hits_head_targets(loo_split):
    result = evaluate(PopularityScores(loo_split.train_popularity()), loo_split, k=(10,), n_bootstrap=0)
    by_bucket = result.segment_metrics("target_popularity", k=10).set_index(["segment", "metric"])
    assert by_bucket.loc[("head", "HR@10"), "value"] > by_bucket.loc[("tail", "HR@10"), "value"]
    assert by_bucket.loc[("tail", "HR@10"), "value"] == 0.0


def test_sampled_ml100k_is_higher_and_labelled(loo_split):
    model = PopularityScores(loo_split.train_popularity())
    full = evaluate(model, loo_split, k=(10,), n_bootstrap=0)
    with pytest.warns(ProtocolWarning):
        sampled = evaluate(model, loo_split, k=(10,), n_bootstrap=0, sampled=100)
    assert sampled.value("NDCG@10 (sampled, 100 negatives)") > 2 * full.value("NDCG@10")


def test_validation_part_ml100k(loo_split):
    model = PopularityScores(loo_split.train_popularity())
    result = evaluate(model, loo_split, part="validation", k=(10,), n_bootstrap=0)
    assert result.card.part == "validation"
    assert 0.0 < result.value("NDCG@10") < 0.2


def test_temporal_all_targets_ml100k(ml100k_log):
    split = temporal(ml100k_log, cutoff=0.8, targets="all")
    result = evaluate(PopularityScores(split.train_popularity()), split, k=(10,), n_bootstrap=0)
    assert max(len(ranks) for ranks in result.target_ranks) > 1
    per_user = result.per_user
    assert (per_user["Recall@10"] <= per_user["HR@10"]).all()
    assert (per_user["Precision@10"] <= per_user["HR@10"]).all()
    assert result.card.split == "temporal"
    for ranks in result.target_ranks:
        assert len(np.unique(ranks)) == len(ranks)
