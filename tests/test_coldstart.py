"""Cold-start split, adaptation strategies, the curve and its findings, on real ML-100K data.

The SASRec here is tiny (hidden 16, one block, one epoch) so the module stays fast. The
tests check mechanics (isolation, reproducibility, shapes, rules), not model quality.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from recwidgets.coldstart import (
    AdaptationConfig,
    AdaptedRecommender,
    GenrePopularity,
    HiddenStateAdapter,
    adapt_parameters,
    coldstart_curve,
    coldstart_finding,
    coldstart_items_finding,
    coldstart_split,
    item_bucket_labels,
    item_buckets,
    item_exposure,
    meta_train,
    prefix_states,
)
from recwidgets.data.log import InteractionLog
from recwidgets.data.split import leave_last_out
from recwidgets.datasets import load_ml100k
from recwidgets.errors import ConfigError, DataError
from recwidgets.models import EASE, SASRec
from recwidgets.models.base import pad_histories

FAST_META = AdaptationConfig(meta_steps=8, meta_batch=16, steps=3)


@pytest.fixture(scope="module")
def log(ml100k_dir):
    return load_ml100k(ml100k_dir)


@pytest.fixture(scope="module")
def cold(log):
    return coldstart_split(log, user_share=0.2, seed=0)


@pytest.fixture(scope="module")
def sasrec(cold):
    return SASRec(hidden=16, max_len=20, layers=1, heads=1, epochs=1, seed=0).fit(
        cold.split, device="cpu", progress=False, validate=False
    )


@pytest.fixture(scope="module")
def ease(cold):
    return EASE().fit(cold.split)


@pytest.fixture(scope="module")
def ease_curve(ease, cold):
    return coldstart_curve(ease, cold, strategies=("none", "popularity", "genre"), n_bootstrap=200)


@pytest.fixture(scope="module")
def sasrec_curve(sasrec, cold):
    return coldstart_curve(sasrec, cold, ns=(1, 3, 20, 400), k=(10,), n_bootstrap=100, adaptation=FAST_META)


class IgnoresShortHistories:
    """A planted fault: EASE, except that histories of at most ``limit`` items get constant scores."""

    name = "ignores-short"
    max_len = None

    def __init__(self, base, limit: int = 5):
        self.base, self.limit = base, limit
        self.n_items, self.device = base.n_items, base.device

    def score(self, histories: torch.Tensor) -> torch.Tensor:
        scores = self.base.score(histories)
        short = (histories != 0).sum(dim=1) <= self.limit
        scores[short] = 0.0
        return scores


def snapshot(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {name: value.detach().clone() for name, value in module.state_dict().items()}


# -- split --------------------------------------------------------------------------------


def test_split_excludes_cold_users(cold, log):
    cold_set = set(cold.cold_users.tolist())

    assert len(cold.cold_users) == round(0.2 * log.n_users)
    assert cold_set.isdisjoint(cold.split.train["user"].tolist())
    assert cold_set.isdisjoint(cold.split.validation.users.tolist())
    assert cold_set.isdisjoint(cold.split.test.users.tolist())
    # Every warm user keeps a test target; the catalog is the whole log's.
    assert cold.split.test.has_target().all()
    assert cold.split.log.n_items == log.n_items
    assert cold.split.card.extra["cold_users"] == len(cold.cold_users)


def test_split_is_seeded(log, cold):
    again = coldstart_split(log, user_share=0.2, seed=0)
    other = coldstart_split(log, user_share=0.2, seed=1)

    np.testing.assert_array_equal(again.cold_users, cold.cold_users)
    assert not np.array_equal(other.cold_users, cold.cold_users)


def test_split_rejects_bad_share(log):
    with pytest.raises(ConfigError, match="user_share"):
        coldstart_split(log, user_share=1.5)
    with pytest.raises(DataError, match="cold users"):
        coldstart_split(log, user_share=1e-6)


def test_prefix_evalset_reveals_first_n(cold, log):
    evalset, skipped = cold.prefix_evalset(3)
    sequences = log.sequences()
    user = int(evalset.users[0])

    np.testing.assert_array_equal(evalset.histories[0], sequences[user][:3])
    np.testing.assert_array_equal(evalset.targets[0], sequences[user][3:4])
    assert len(evalset) + len(skipped) == len(cold.cold_users)


def test_prefix_longer_than_history_skips_users(cold):
    lengths = np.array([len(sequence) for sequence in cold.cold_sequences])
    n = int(np.median(lengths))
    evalset, skipped = cold.prefix_evalset(n)

    assert len(skipped) == int((lengths <= n).sum())
    assert len(skipped) > 0
    assert all(len(target) == 1 for target in evalset.targets)
    assert set(skipped.tolist()).isdisjoint(evalset.users.tolist())


# -- adaptation ---------------------------------------------------------------------------


def test_adaptation_leaves_shared_model_unchanged(sasrec, cold):
    before = snapshot(sasrec.module)
    # Training leaves the last step's gradients behind; adaptation must not add to them.
    grads_before = {name: None if p.grad is None else p.grad.clone() for name, p in sasrec.module.named_parameters()}
    evalset, _ = cold.prefix_evalset(5)

    finetune = AdaptedRecommender(sasrec, config=AdaptationConfig(steps=5, lr=5.0))
    finetune.score(evalset.histories[:64])
    meta = meta_train(sasrec, cold.split, FAST_META)
    AdaptedRecommender(sasrec, start=meta.start, config=FAST_META).score(evalset.histories[:64])
    coldstart_curve(sasrec, cold, strategies=("finetune",), ns=(2,), k=(10,), n_bootstrap=0, adaptation=FAST_META)

    after = sasrec.module.state_dict()
    for name, value in before.items():
        assert torch.equal(after[name], value), name
    for name, parameter in sasrec.module.named_parameters():
        if grads_before[name] is None:
            assert parameter.grad is None, name
        else:
            assert torch.equal(parameter.grad, grads_before[name]), name


def test_zero_steps_equal_plain_model(sasrec, cold):
    evalset, _ = cold.prefix_evalset(5)
    histories = pad_histories(evalset.histories[:32], sasrec.max_len)

    adapted = AdaptedRecommender(sasrec, config=AdaptationConfig(steps=0)).score(histories)
    torch.testing.assert_close(adapted, sasrec.score(histories))


def test_finetune_changes_scores(sasrec, cold):
    evalset, _ = cold.prefix_evalset(5)
    histories = pad_histories(evalset.histories[:32], sasrec.max_len)

    adapted = AdaptedRecommender(sasrec, config=AdaptationConfig(steps=5, lr=5.0)).score(histories)
    assert not torch.allclose(adapted, sasrec.score(histories))


def test_finetune_lowers_prefix_loss(sasrec, cold):
    evalset, _ = cold.prefix_evalset(10)
    histories = pad_histories(evalset.histories[:64], sasrec.max_len)
    states, targets, _ = prefix_states(sasrec.module, histories)
    adapter = HiddenStateAdapter(16)
    start = {name: value.detach() for name, value in adapter.named_parameters()}
    weight = sasrec.module.item_embedding.weight.detach()

    from recwidgets.coldstart.adaptation import _next_item_loss

    adapted = adapt_parameters(adapter, start, states, targets, weight, AdaptationConfig(steps=5, lr=1.0))
    loss_before = _next_item_loss(adapter, start, states, targets, weight)
    loss_after = _next_item_loss(adapter, adapted, states, targets, weight)
    assert float(loss_after.mean()) < float(loss_before.mean())
    assert float((loss_after < loss_before).float().mean()) > 0.9


def test_batched_adaptation_equals_one_by_one(sasrec, cold):
    evalset, _ = cold.prefix_evalset(4)
    recommender = AdaptedRecommender(sasrec, config=AdaptationConfig(steps=3, lr=2.0))
    histories = evalset.histories[:6]

    batched = recommender.score(pad_histories(histories, sasrec.max_len))
    for row, history in enumerate(histories):
        alone = recommender.score(pad_histories([history], sasrec.max_len))
        torch.testing.assert_close(batched[row : row + 1], alone, rtol=1e-5, atol=1e-5)


def test_prefix_states_targets(sasrec):
    histories = torch.tensor([[0, 0, 7, 8, 9], [0, 0, 0, 0, 4], [0, 0, 0, 0, 0]])
    states, targets, last = prefix_states(sasrec.module, histories)

    # Empty context predicts the first item, each position the next one, the last none.
    assert targets.tolist() == [[7, 0, 0, 8, 9, 0], [4, 0, 0, 0, 0, 0], [0, 0, 0, 0, 0, 0]]
    assert states.shape == (3, 6, 16)
    assert torch.equal(states[:, 0], torch.zeros(3, 16))
    torch.testing.assert_close(last, sasrec.hidden(histories)[:, -1])


def test_meta_training_is_reproducible(sasrec, cold):
    first = meta_train(sasrec, cold.split, FAST_META)
    second = meta_train(sasrec, cold.split, FAST_META)
    other_seed = meta_train(sasrec, cold.split, AdaptationConfig(meta_steps=8, meta_batch=16, steps=3, seed=1))

    for name in ("scale", "shift"):
        assert torch.equal(first.start[name], second.start[name])
    pd.testing.assert_frame_equal(first.history, second.history)
    assert not torch.equal(first.start["shift"], other_seed.start["shift"])
    assert len(first.history) == FAST_META.meta_steps


def test_meta_moves_start_values(sasrec, cold):
    for method in ("fomaml", "reptile"):
        result = meta_train(sasrec, cold.split, AdaptationConfig(meta_steps=5, meta_batch=8, steps=2, meta_method=method))
        assert float(result.start["shift"].abs().sum()) > 0, method
        assert np.isfinite(result.history[["query_loss_start", "query_loss_adapted"]].to_numpy()).all()


def test_adaptation_needs_sasrec(ease):
    with pytest.raises(ConfigError, match="SASRec"):
        AdaptedRecommender(ease)


def test_adaptation_config_rejects_bad_values():
    with pytest.raises(ConfigError, match="meta_method"):
        AdaptationConfig(meta_method="maml")
    with pytest.raises(ConfigError, match="lr"):
        AdaptationConfig(lr=0.0)


# -- baselines and items ------------------------------------------------------------------


def tiny_log() -> InteractionLog:
    frame = pd.DataFrame(
        {
            "user": [1, 1, 1, 2, 2, 2, 3, 3, 3],
            "item": ["a", "b", "c", "a", "c", "d", "b", "a", "d"],
            "timestamp": [1, 2, 3, 1, 2, 3, 1, 2, 3],
        }
    )
    items = pd.DataFrame(
        {"genres": [("x",), ("x", "y"), ("y",), ()]}, index=pd.Index(["a", "b", "c", "d"])
    )
    return InteractionLog.from_frame(frame, items=items)


def test_genre_popularity_hand_computed():
    split = leave_last_out(tiny_log())
    model = GenrePopularity(smoothing=0.5).fit(split)
    # Training counts (first item of each user): a=2, b=1; c and d have none.
    counts = split.train_popularity()
    assert counts.tolist() == [0, 2, 1, 0, 0]

    # History [a, b]: genre shares x = 2/3, y = 1/3.
    scores = model.score([np.array([1, 2])])[0].numpy()
    expected_affinity = np.array([0.0, 2 / 3, (2 / 3 + 1 / 3) / 2, 1 / 3, 0.0])
    np.testing.assert_allclose(scores, counts * (0.5 + expected_affinity), rtol=1e-6)

    # An empty history falls back to popularity times the smoothing.
    np.testing.assert_allclose(model.score([np.array([], dtype=np.int64)])[0].numpy(), counts * 0.5, rtol=1e-6)


def test_genre_popularity_needs_genres(log):
    bare = InteractionLog.from_frame(
        pd.DataFrame({"user": [1, 1, 1], "item": [1, 2, 3], "timestamp": [1, 2, 3]})
    )
    with pytest.raises(DataError, match="genres"):
        GenrePopularity().fit(leave_last_out(bare))


def test_item_buckets_and_labels():
    counts = np.array([0, 0, 1, 4, 5, 19, 20, 300])

    assert item_bucket_labels() == ["0", "1-4", "5-19", "20+"]
    assert item_buckets(counts).tolist() == [-1, 0, 1, 1, 2, 2, 3, 3]
    with pytest.raises(ConfigError, match="edges"):
        item_bucket_labels((1, 5))


def test_item_exposure_hand_computed():
    counts = np.array([0, 0, 3, 10, 50])  # items 1..4 in buckets 0, 1-4, 5-19, 20+
    topk = np.array([[4, 3], [4, 2], [4, 0]])
    targets = [np.array([3]), np.array([1]), np.array([4])]
    table = item_exposure(topk, targets, counts, k=2).set_index("bucket")

    assert table["slots"].tolist() == [0, 1, 1, 3]
    np.testing.assert_allclose(table["exposure"], [0, 0.2, 0.2, 0.6])
    assert table["n_targets"].tolist() == [1, 0, 1, 1]
    assert table["hits"].tolist() == [0, 0, 1, 1]
    assert np.isnan(table.loc["1-4", "hit_rate"])


# -- the curve ----------------------------------------------------------------------------


def test_curve_columns_and_intervals(ease_curve, cold):
    curve = ease_curve.data()

    assert list(curve.columns) == ["strategy", "n", "metric", "value", "ci_low", "ci_high", "n_users"]
    assert set(curve["strategy"]) == {"none", "popularity", "genre"}
    assert sorted(set(curve["n"])) == [1, 2, 3, 5, 10, 20]
    assert {"NDCG@10", "HR@10", "MRR@10"} <= set(curve["metric"])
    assert (curve["ci_low"] <= curve["value"] + 1e-12).all()
    assert (curve["value"] <= curve["ci_high"] + 1e-12).all()
    assert ((curve["value"] >= 0) & (curve["value"] <= 1)).all()
    assert (ease_curve.curve["n_users"] + ease_curve.curve["n_skipped"] == len(cold.cold_users)).all()


def test_curve_matches_per_user_means(ease_curve):
    rows = ease_curve.per_user[(ease_curve.per_user["strategy"] == "genre") & (ease_curve.per_user["n"] == 3)]

    assert ease_curve.value("genre", 3, "HR@10") == pytest.approx(rows["HR@10"].mean())
    np.testing.assert_array_equal(ease_curve.users("genre", 3), np.sort(rows["user"].to_numpy()))


def test_curve_counts_users_beyond_history(sasrec_curve, cold):
    lengths = np.array([len(sequence) for sequence in cold.cold_sequences])
    rows = sasrec_curve.curve[sasrec_curve.curve["metric"] == "NDCG@10"].set_index(["strategy", "n"])

    for n in (20, 400):
        assert rows.loc[("none", n), "n_skipped"] == int((lengths <= n).sum())
        assert rows.loc[("none", n), "n_users"] == int((lengths > n).sum())
    assert rows.loc[("none", 400), "n_skipped"] > 0


def test_curve_with_every_user_left_out(ease, cold):
    result = coldstart_curve(ease, cold, strategies=("none", "popularity"), ns=(1, 100_000), k=(10,), n_bootstrap=20)
    rows = result.curve[result.curve["n"] == 100_000]

    assert rows["value"].isna().all()
    assert (rows["n_users"] == 0).all()
    assert (rows["n_skipped"] == len(cold.cold_users)).all()


def test_curve_has_every_strategy(sasrec_curve):
    assert sasrec_curve.strategies == ("none", "finetune", "meta", "popularity", "genre")
    assert sasrec_curve.meta is not None
    assert len(sasrec_curve.meta.history) == FAST_META.meta_steps
    assert set(sasrec_curve.segment_curve["segment_by"]) == {"activity", "gender", "age"}


def test_curve_segments_add_up(ease_curve):
    segments = ease_curve.segment_curve
    rows = segments[(segments["strategy"] == "none") & (segments["n"] == 5) & (segments["metric"] == "NDCG@10")]
    gender = rows[rows["segment_by"] == "gender"]

    overall = ease_curve.value("none", 5, "NDCG@10")
    weighted = float((gender["value"] * gender["n_users"]).sum() / gender["n_users"].sum())
    assert weighted == pytest.approx(overall)
    assert set(gender["segment"]) == {"F", "M"}


def test_curve_rejects_unknown_strategy(ease, cold):
    with pytest.raises(ConfigError, match="unknown cold-start strategy"):
        coldstart_curve(ease, cold, strategies=("none", "oracle"), n_bootstrap=0)


# -- findings -----------------------------------------------------------------------------


def test_finding_fires_on_planted_model(ease, cold):
    planted = IgnoresShortHistories(ease, limit=5)
    curve = coldstart_curve(planted, cold, strategies=("none", "popularity"), ns=(1, 3, 5, 10), k=(10,), n_bootstrap=200)
    finding = coldstart_finding(curve, max_n=5)

    assert finding is not None
    assert finding.id == "coldstart.users"
    assert finding.severity == "warning"
    assert finding.evidence["failing_n"] == [1, 3, 5]
    assert finding.view["widget"] == "ColdStartCurve"
    # At n = 10 the planted model is plain EASE again, which is not flagged.
    assert coldstart_finding(curve, max_n=10).evidence["failing_n"] == [1, 3, 5]


def test_finding_silent_when_model_beats_popularity(ease_curve):
    assert ease_curve.value("none", 1) > ease_curve.value("popularity", 1)
    assert coldstart_finding(ease_curve, max_n=20) is None


def test_finding_rule_uses_upper_bound():
    def frame(model_high: float) -> pd.DataFrame:
        return pd.DataFrame(
            [
                {"strategy": "none", "n": 1, "metric": "NDCG@10", "value": 0.05, "ci_low": 0.03, "ci_high": model_high, "n_users": 50},
                {"strategy": "popularity", "n": 1, "metric": "NDCG@10", "value": 0.10, "ci_low": 0.08, "ci_high": 0.12, "n_users": 50},
            ]
        )

    assert coldstart_finding(frame(0.099)) is not None
    assert coldstart_finding(frame(0.101)) is None
    with pytest.raises(ConfigError, match="popularity"):
        coldstart_finding(frame(0.099).iloc[:1])


def test_items_finding(ease_curve):
    never = coldstart_items_finding(ease_curve, strategy="popularity", max_count=19)
    assert never is not None
    assert never.id == "coldstart.items"
    assert never.severity == "warning"
    assert never.evidence["slots"] == 0
    assert never.evidence["n_targets"] >= 5

    # EASE lists a few rare items but does not hit their targets: an info finding at most.
    listed = coldstart_items_finding(ease_curve, strategy="none", max_count=19)
    assert listed is None or listed.severity == "info"


def test_diagnose_reports_curve_finding(ease, cold):
    from recwidgets.diagnose import diagnose

    planted = IgnoresShortHistories(ease, limit=5)
    curve = coldstart_curve(planted, cold, strategies=("none", "popularity"), ns=(1, 3), k=(10,), n_bootstrap=100)

    findings = diagnose(split=cold.split, checks=["coldstart"], coldstart_curve=curve)

    curve_findings = [f for f in findings if f.id == "coldstart.users" and f.view.get("widget") == "ColdStartCurve"]
    assert len(curve_findings) == 1
    assert curve_findings[0].severity == "warning"
