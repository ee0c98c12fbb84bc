"""Protocol checks on real results from recwidgets.evaluate and from a careless evaluator."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from recwidgets.data.split import EvalSet, temporal
from recwidgets.diagnose.faults import ConstantModel, careless_evaluate
from recwidgets.diagnose.protocol_checks import (
    check_empty_test_users,
    check_protocol,
    check_sampled,
    check_seen_items,
    check_ties,
)
from recwidgets.errors import ProtocolWarning
from recwidgets.evaluation import evaluate
from recwidgets.models import Popularity
from recwidgets.synthetic import synthetic_log


@pytest.fixture(scope="module")
def split():
    return temporal(synthetic_log(400, 200, seed=0))


@pytest.fixture(scope="module")
def popularity(split):
    return Popularity().fit(split)


def test_honest_result_passes(split, popularity):
    result = evaluate(popularity, split, n_bootstrap=0)
    assert check_protocol({"popularity": result}, split) == []


def test_sampled_result_flagged(split, popularity):
    with pytest.warns(ProtocolWarning):
        result = evaluate(popularity, split, n_bootstrap=0, sampled=50)
    findings = check_sampled("popularity", result)
    assert findings[0].id == "protocol.sampled_metrics"
    assert findings[0].evidence["n_negatives"] == 50
    assert "Krichene" in findings[0].reference


def test_seen_items_kept_flagged(split, popularity):
    result = evaluate(popularity, split, n_bootstrap=0, exclude_seen=False)
    findings = check_seen_items("popularity", result, split)
    assert findings[0].severity == "warning"
    assert findings[0].evidence["log_repeat_rate"] == 0.0
    # The most popular items are in most histories, so seen items take list slots.
    assert findings[0].evidence["seen_share_of_top10"] > 0.1


def test_optimistic_ties_flagged(split):
    model = ConstantModel(split.log.n_items)
    result = careless_evaluate(model, split, ties="optimistic")
    assert result.value("NDCG@10") == 1.0
    findings = check_ties("constant", result)
    assert findings[0].severity == "error"

    honest = careless_evaluate(model, split, ties="pessimistic")
    assert honest.value("NDCG@10") < 0.01
    assert check_ties("constant", honest) == []


def test_careless_pessimistic_matches_evaluate(split, popularity):
    careless = careless_evaluate(popularity, split, ties="pessimistic")
    honest = evaluate(popularity, split, n_bootstrap=0)
    assert careless.value("NDCG@10") == pytest.approx(honest.value("NDCG@10"), abs=1e-9)
    np.testing.assert_array_equal(np.concatenate(careless.target_ranks), np.concatenate(honest.target_ranks))


def test_empty_users_averaged_in(split, popularity):
    extra_users = np.array([user for user in range(1, 40) if user not in set(split.test.users.tolist())][:10])
    test = EvalSet(
        np.concatenate([split.test.users, extra_users]),
        list(split.test.histories) + [np.array([1, 2], dtype=np.int64)] * len(extra_users),
        list(split.test.targets) + [np.zeros(0, dtype=np.int64)] * len(extra_users),
    )
    faulty = replace(split, test=test)
    careless = careless_evaluate(popularity, faulty, ties="pessimistic", average_empty=True)
    honest = evaluate(popularity, faulty, n_bootstrap=0)
    assert careless.value("NDCG@10") < honest.value("NDCG@10")

    findings = check_empty_test_users("popularity", careless, faulty)
    assert findings[0].evidence["n_rows_without_target"] == len(extra_users)
    assert check_empty_test_users("popularity", honest, faulty) == []
