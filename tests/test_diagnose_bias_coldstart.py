"""Popularity-bias and cold-start checks on EASE, the most-popular baseline and faulty variants."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from recwidgets.data.split import temporal
from recwidgets.diagnose.bias_checks import check_popularity_bias, popularity_profile
from recwidgets.diagnose.coldstart_checks import check_cold_items, check_cold_users, tail_target_positions
from recwidgets.diagnose.faults import ScoreTransform, standardise_scores
from recwidgets.evaluation import evaluate
from recwidgets.evaluation.segments import popularity_buckets
from recwidgets.models import EASE, Popularity
from recwidgets.synthetic import synthetic_log


@pytest.fixture(scope="module")
def setup():
    split = temporal(synthetic_log(600, 200, seed=0))
    ease = EASE().fit(split)
    popularity = Popularity().fit(split)
    return {
        "split": split,
        "ease": ease,
        "popularity": popularity,
        "ease_result": evaluate(ease, split, n_bootstrap=0),
        "reference": evaluate(popularity, split, n_bootstrap=0),
        "train_popularity": split.train_popularity(),
    }


def _evaluate(setup, transform, name):
    model = ScoreTransform(setup["ease"], transform, name)
    return evaluate(model, setup["split"], n_bootstrap=0)


def test_profile_of_popularity_lists(setup):
    profile = popularity_profile(setup["reference"], setup["train_popularity"], setup["split"])
    # Most-popular lists sit on the head: more popular than what users consume.
    assert profile["arp"] > profile["target_arp"]
    assert profile["tail_slots"] == 0
    assert 0 < profile["coverage"] < 0.2


def test_clean_ease_no_bias_warning(setup):
    findings = check_popularity_bias("ease", setup["ease_result"], setup["train_popularity"], setup["split"], setup["reference"])
    assert all(finding.severity == "info" for finding in findings)


def test_popularity_baseline_skipped(setup):
    findings = check_popularity_bias(
        "popularity", setup["reference"], setup["train_popularity"], setup["split"], setup["reference"]
    )
    assert findings == []


def test_collapse_onto_popularity_flagged(setup):
    log_popularity = torch.log1p(torch.from_numpy(setup["train_popularity"]).float())
    result = _evaluate(setup, lambda histories, scores: standardise_scores(scores) + 20 * log_popularity, "collapsed")
    findings = check_popularity_bias("collapsed", result, setup["train_popularity"], setup["split"], setup["reference"])
    assert findings[0].id == "bias.popularity"
    assert findings[0].severity == "warning"
    assert findings[0].evidence["popularity_collapse"] > 0.9
    assert "Abdollahpouri" in findings[0].reference


def test_clean_ease_cold_users_pass(setup):
    assert check_cold_users("ease", setup["ease_result"], setup["reference"], setup["split"]) == []


def test_broken_short_histories_flagged(setup):
    lengths = np.array([len(history) for history in setup["split"].test.histories])
    limit = int(np.quantile(lengths, 0.25))
    anti = -torch.from_numpy(setup["train_popularity"]).float()

    def transform(histories, scores):
        short = (histories != 0).sum(dim=1) <= limit
        return torch.where(short[:, None], anti.expand_as(scores), scores)

    result = _evaluate(setup, transform, "broken")
    findings = check_cold_users("broken", result, setup["reference"], setup["split"])
    assert findings[0].id == "coldstart.users"
    assert findings[0].evidence["max_history_length"] == limit
    assert findings[0].evidence["difference_ci"][1] < 0


def test_tail_positions_match_ranks(setup):
    positions = tail_target_positions(setup["reference"], setup["split"], setup["train_popularity"])
    buckets = popularity_buckets(setup["train_popularity"])
    assert len(positions) > 0
    assert (buckets[positions["item"].to_numpy()] == "tail").all()
    assert positions["position"].between(0, 1).all()


def test_clean_ease_cold_items_no_warning(setup):
    findings = check_cold_items("ease", setup["ease_result"], setup["train_popularity"], setup["split"], setup["reference"])
    assert all(finding.severity == "info" for finding in findings)


def test_masked_tail_flagged(setup):
    tail = torch.from_numpy(popularity_buckets(setup["train_popularity"]) == "tail")
    result = _evaluate(setup, lambda histories, scores: scores.masked_fill(tail[None, :], -1e6), "no-tail")
    findings = check_cold_items("no-tail", result, setup["train_popularity"], setup["split"], setup["reference"])
    assert findings[0].id == "coldstart.items"
    assert findings[0].severity == "warning"
    assert findings[0].evidence["tail_slot_share"] == 0.0
    assert findings[0].evidence["tail_position"] > 0.9
