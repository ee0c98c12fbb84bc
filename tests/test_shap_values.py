"""Shapley values over history positions: efficiency, exactness, absence modes, contrast, cancellation."""

from __future__ import annotations

import itertools
import logging
import threading

import matplotlib
import numpy as np
import pandas as pd
import pytest
import shap
import torch

from recwidgets.data.log import InteractionLog
from recwidgets.data.split import leave_last_out
from recwidgets.errors import ConfigError, DataError
from recwidgets.explain.shap_values import (
    ConvergenceWarning,
    ExplanationCancelled,
    HistoryValueFunction,
    ShapExplainer,
    attribution_summary,
    explain_recommendation,
    genre_groups,
    recency_groups,
    recommend,
    shap_frame,
)
from recwidgets.models.base import pad_histories
from shap_toy_models import TinyAttentionRecommender, additive_model, triple_interaction_model

matplotlib.use("Agg")

HISTORY = np.array([3, 5, 7, 9, 11, 2, 4, 6, 8, 10])


@pytest.fixture
def table() -> torch.Tensor:
    generator = torch.Generator().manual_seed(1)
    table = torch.randn(31, 31, generator=generator)
    table[0] = 0.0
    return table


@pytest.fixture
def tiny() -> TinyAttentionRecommender:
    return TinyAttentionRecommender(30, max_len=12, scale=0.5)


def full_output(model, history, target, output="score") -> float:
    scores = model.score(pad_histories([history], model.max_len)).double()[0]
    if output == "log_prob":
        return float(torch.log_softmax(scores[1:], dim=0)[target - 1])
    return float(scores[target])


# ---------------------------------------------------------------------------------------
# Exactness and efficiency


@pytest.mark.parametrize("absence", ["remove", "pad"])
@pytest.mark.parametrize("method", ["exact", "permutation", "kernel"])
def test_additive_model_recovers_contributions(table, absence, method):
    model = additive_model(table, bias=torch.full((31,), 0.5))
    explanation = ShapExplainer(model, method=method, absence=absence, n_pairs=24).explain(HISTORY, 13)

    expected = table[HISTORY, 13].double().numpy()
    np.testing.assert_allclose(explanation.values, expected, atol=1e-5)
    assert explanation.base_values == pytest.approx(0.5, abs=1e-6)
    # Every ordering adds the same amount per item, so sampling has no error at all.
    np.testing.assert_allclose(explanation.error_std, 0.0, atol=1e-5)


@pytest.mark.parametrize("output", ["score", "log_prob"])
@pytest.mark.parametrize("method", ["exact", "permutation", "kernel"])
def test_efficiency_holds(tiny, output, method):
    explanation = ShapExplainer(tiny, method=method, output=output, n_pairs=24).explain(HISTORY)
    target = explanation.meta.target

    explained = full_output(tiny, HISTORY, target, output)
    total = explanation.base_values + explanation.values.sum()
    assert total == pytest.approx(explained, abs=1e-4)
    assert explanation.meta.explained_output == pytest.approx(explained, abs=1e-4)
    assert explanation.meta.method == method


def test_exact_matches_average_over_all_orderings(tiny):
    # Shapley values by their definition: the mean marginal contribution over all 6! orderings.
    history = HISTORY[:6]
    explainer = ShapExplainer(tiny, method="exact")
    ours = explainer.explain(history)
    value_fn = explainer.value_function(history, ours.meta.target)

    masks = np.array(list(itertools.product([False, True], repeat=6)))
    values = dict(zip(map(tuple, masks), value_fn(masks)))
    expected = np.zeros(6)
    orderings = list(itertools.permutations(range(6)))
    for ordering in orderings:
        present = [False] * 6
        for player in ordering:
            before = values[tuple(present)]
            present[player] = True
            expected[player] += values[tuple(present)] - before
    np.testing.assert_allclose(ours.values, expected / len(orderings), atol=1e-9)
    assert ours.base_values == pytest.approx(values[(False,) * 6], abs=1e-12)


@pytest.mark.parametrize("method", ["permutation", "kernel"])
def test_default_budget_matches_exact(method):
    # A milder toy model (weights 0.25): the run then converges in a few seconds.
    model = TinyAttentionRecommender(30, max_len=12, scale=0.25)
    exact = ShapExplainer(model, method="exact").explain(HISTORY)
    sampled = ShapExplainer(model, method=method).explain(HISTORY, exact.meta.target, progress=False)

    assert sampled.meta.converged
    assert sampled.meta.n_pairs >= 16
    assert np.abs(sampled.values - exact.values).max() <= 0.01
    assert sampled.meta.max_standard_error <= 0.01


def test_refinement_targets_interacting_players(table):
    # 40 items, three of which interact: only they vary across orderings, so single-player
    # rounds are far cheaper than whole permutations.
    history = np.arange(1, 41)
    model = triple_interaction_model(table.repeat(2, 2)[:41, :41], items=(7, 30, 35), strength=0.45)
    explanation = ShapExplainer(model, method="permutation", tolerance=0.01).explain(history, 13, progress=False)

    expected = model.module.item_embedding.weight[history, 13].double().detach().numpy()
    expected[[6, 29, 34]] += 0.15
    assert explanation.meta.converged
    assert explanation.meta.n_refined > 0
    assert np.abs(explanation.values - expected).max() <= 0.01
    assert explanation.base_values + explanation.values.sum() == pytest.approx(
        explanation.meta.explained_output, abs=1e-9
    )
    # Whole permutations alone do not get there with the same number of forward passes.
    budget = explanation.meta.n_evals
    with pytest.warns(ConvergenceWarning):
        plain = ShapExplainer(model, method="permutation", tolerance=0.01, refine=False, max_evals=budget).explain(
            history, 13
        )
    assert plain.meta.n_refined == 0
    assert plain.meta.max_standard_error > explanation.meta.max_standard_error


@pytest.mark.parametrize("method", ["permutation", "kernel"])
def test_error_shrinks_with_pairs(tiny, method):
    exact = ShapExplainer(tiny, method="exact").explain(HISTORY)
    few = ShapExplainer(tiny, method=method, n_pairs=32).explain(HISTORY, exact.meta.target)
    many = ShapExplainer(tiny, method=method, n_pairs=1024).explain(HISTORY, exact.meta.target)

    assert np.abs(many.values - exact.values).max() < np.abs(few.values - exact.values).max()
    assert many.meta.max_standard_error < few.meta.max_standard_error
    # The reported standard error is honest: errors stay within 4 of them.
    assert np.all(np.abs(many.values - exact.values) <= 4 * many.error_std + 1e-9)


def test_same_seed_gives_same_values(tiny):
    first = ShapExplainer(tiny, method="permutation", n_pairs=8, seed=3).explain(HISTORY)
    second = ShapExplainer(tiny, method="permutation", n_pairs=8, seed=3).explain(HISTORY)
    other = ShapExplainer(tiny, method="permutation", n_pairs=8, seed=4).explain(HISTORY)

    np.testing.assert_array_equal(first.values, second.values)
    assert not np.array_equal(first.values, other.values)


def test_budget_too_small_warns(tiny):
    with pytest.warns(ConvergenceWarning, match="max_evals"):
        explanation = ShapExplainer(tiny, method="permutation", max_evals=400, tolerance=1e-4).explain(HISTORY)
    assert not explanation.meta.converged
    assert explanation.meta.n_evals <= 400 + 1


# ---------------------------------------------------------------------------------------
# Players, padding and absence


def test_padding_positions_get_zero(tiny):
    padded = np.concatenate([[0, 0], HISTORY])
    explainer = ShapExplainer(tiny, method="exact")
    plain = explainer.explain(HISTORY)
    with_padding = explainer.explain(padded, plain.meta.target)

    assert len(with_padding.values) == 12
    assert np.all(with_padding.values[:2] == 0.0)
    assert np.all(with_padding.error_std[:2] == 0.0)
    assert list(with_padding.data[:2]) == [0, 0]
    np.testing.assert_allclose(with_padding.values[2:], plain.values, atol=1e-12)


def test_padding_inside_history_gets_zero(tiny):
    history = np.array([3, 5, 0, 9, 11])
    explanation = ShapExplainer(tiny, method="exact", absence="pad").explain(history)

    assert explanation.values[2] == 0.0
    assert explanation.cost.n_players == 4


def test_history_cut_to_max_len(tiny):
    long_history = np.arange(1, 21)  # 20 items, the model reads the last 12
    explanation = ShapExplainer(tiny, n_pairs=4).explain(long_history)

    assert len(explanation.values) == 12
    np.testing.assert_array_equal(explanation.data, long_history[-12:])
    np.testing.assert_array_equal(explanation.meta.positions, np.arange(-12, 0))
    explained = full_output(tiny, long_history, explanation.meta.target)
    assert explanation.base_values + explanation.values.sum() == pytest.approx(explained, abs=1e-4)


def test_absence_modes_build_expected_histories(tiny):
    history = np.array([5, 6, 7, 8])
    coalition = np.array([[True, False, True, False], [False, False, False, False], [True, True, True, True]])

    removed = HistoryValueFunction(tiny, history, target=1, absence="remove").histories(coalition)
    padded = HistoryValueFunction(tiny, history, target=1, absence="pad").histories(coalition)

    zeros = [0] * 8
    assert removed.tolist() == [zeros + [0, 0, 5, 7], zeros + [0, 0, 0, 0], zeros + [5, 6, 7, 8]]
    assert padded.tolist() == [zeros + [5, 0, 7, 0], zeros + [0, 0, 0, 0], zeros + [5, 6, 7, 8]]


def test_absence_modes_differ_on_positional_model(tiny):
    removed = ShapExplainer(tiny, method="exact", absence="remove").explain(HISTORY)
    padded = ShapExplainer(tiny, method="exact", absence="pad").explain(HISTORY, removed.meta.target)

    assert removed.meta.absence == "remove"
    assert padded.meta.absence == "pad"
    assert np.abs(removed.values - padded.values).max() > 0.05
    # Both explain the same full-history output.
    assert removed.meta.explained_output == pytest.approx(padded.meta.explained_output, abs=1e-9)


def test_genre_group_absent_hides_all_its_items(tiny):
    history = np.array([1, 2, 3, 4])
    genres = {1: ("Drama",), 2: ("Comedy", "Drama"), 3: ("Comedy",), 4: ()}
    groups = genre_groups(history, genres)
    assert groups == {"(no genre)": [3], "Comedy": [1, 2], "Drama": [0, 1]}

    value_fn = HistoryValueFunction(tiny, history, target=1, groups=groups, absence="pad")
    assert value_fn.player_names == ["(no genre)", "Comedy", "Drama"]
    # Drama absent: item 1 and the Comedy-Drama item 2 are hidden, item 3 stays.
    hidden = value_fn.histories(np.array([[True, True, False]]))[0, -4:]
    assert hidden.tolist() == [0, 0, 3, 4]


def test_grouped_explanation_is_efficient(tiny):
    groups = recency_groups(len(HISTORY), 4)
    assert groups["last 4"] == [6, 7, 8, 9]
    assert groups["position -10"] == [0]

    explanation = ShapExplainer(tiny, method="exact").explain(HISTORY, groups=groups)
    assert explanation.feature_names[-1] == "last 4"
    assert explanation.data[-1] == 4
    assert explanation.meta.positions is None
    explained = full_output(tiny, HISTORY, explanation.meta.target)
    assert explanation.base_values + explanation.values.sum() == pytest.approx(explained, abs=1e-4)


def test_positions_outside_groups_form_other_player(tiny):
    value_fn = HistoryValueFunction(tiny, HISTORY, target=1, groups={"first": [0, 1]})
    assert value_fn.player_names == ["first", "(other)"]
    assert value_fn.membership[1].sum() == 8


# ---------------------------------------------------------------------------------------
# Targets and contrast


def test_default_target_is_top1_unseen(tiny):
    items, scores = recommend(tiny, HISTORY, k=5)
    explanation = ShapExplainer(tiny, n_pairs=2).explain(HISTORY)

    assert explanation.meta.target == items[0]
    assert not set(items) & set(HISTORY.tolist())
    assert np.all(np.diff(scores) <= 0)


@pytest.mark.parametrize("method", ["exact", "permutation", "kernel"])
def test_contrast_is_difference_of_targets(tiny, method):
    explainer = ShapExplainer(tiny, method=method, n_pairs=24)
    first = explainer.explain(HISTORY, 12)
    second = explainer.explain(HISTORY, 20)
    contrast = explainer.explain(HISTORY, 12, versus=20)

    np.testing.assert_allclose(contrast.values, first.values - second.values, atol=1e-9)
    assert contrast.base_values == pytest.approx(first.base_values - second.base_values, abs=1e-9)
    assert contrast.meta.versus == 20


def test_log_prob_contrast_equals_score_contrast(tiny):
    by_score = ShapExplainer(tiny, method="exact", output="score").explain(HISTORY, 12, versus=20)
    by_log_prob = ShapExplainer(tiny, method="exact", output="log_prob").explain(HISTORY, 12, versus=20)
    np.testing.assert_allclose(by_score.values, by_log_prob.values, atol=1e-9)


# ---------------------------------------------------------------------------------------
# shap integration, cost and cancellation


def test_result_is_shap_explanation_and_plots(tiny):
    titles = ["<pad>"] + [f"Movie {i}" for i in range(1, 31)]
    explanation = ShapExplainer(tiny, method="exact", titles=titles).explain(HISTORY)

    assert isinstance(explanation, shap.Explanation)
    assert explanation.feature_names[0] == "Movie 3"
    np.testing.assert_array_equal(explanation.data, HISTORY)
    assert explanation.meta.label.startswith("score(Movie ")
    shap.plots.bar(explanation, show=False)
    shap.plots.waterfall(explanation, show=False)
    matplotlib.pyplot.close("all")


def test_cost_is_reported_before_the_run(tiny, caplog):
    explainer = ShapExplainer(tiny, method="auto", n_pairs=10)
    assert explainer.plan(HISTORY).method == "exact"
    assert explainer.plan(HISTORY).forward_passes == 2**10

    sampled = ShapExplainer(tiny, method="permutation", n_pairs=10, batch_size=64)
    cost = sampled.plan(HISTORY)
    assert cost.forward_passes == 2 + 10 * 2 * 9
    assert cost.batches == 3
    with caplog.at_level(logging.INFO, logger="recwidgets.explain.shap_values"):
        explanation = sampled.explain(HISTORY)
    assert "182 forward passes" in caplog.text
    assert explanation.cost == cost
    assert explanation.meta.n_evals == 182 + 1  # plus the pass that finds the top-1 target


def test_batch_values_do_not_hold_scores(tiny):
    value_fn = HistoryValueFunction(tiny, HISTORY, target=1)
    coalitions = np.ones((4, value_fn.n_players), dtype=bool)

    values = value_fn.evaluate_batch(coalitions)

    # A view into the (4, n_items + 1) score matrix would keep it alive for the whole run.
    assert values.base is None
    assert values.shape == (4,)


def test_empty_history_rejected(tiny):
    with pytest.raises(DataError, match="no items to attribute"):
        ShapExplainer(tiny).explain([], target=3)


def test_auto_method_by_players_and_pairs():
    model = TinyAttentionRecommender(30, max_len=24, scale=0.5)
    long_history = np.arange(1, 21)

    assert ShapExplainer(model).plan(HISTORY).method == "exact"
    # Beyond 14 players an adaptive run fits Kernel SHAP, and fixed pairs are whole orderings.
    assert ShapExplainer(model).plan(long_history).method == "kernel"
    assert ShapExplainer(model, n_pairs=4).plan(long_history).method == "permutation"
    assert ShapExplainer(model, n_pairs=4).plan(long_history).forward_passes == 2 + 4 * 2 * 19


@pytest.mark.parametrize("method", ["permutation", "kernel"])
def test_cancel_event_returns_partial_result(tiny, method):
    cancel = threading.Event()
    calls = []

    def stop_after_three(state):
        calls.append(state["done"])
        if len(calls) == 3:
            cancel.set()

    explainer = ShapExplainer(tiny, method=method, n_pairs=200, batch_size=64)
    with pytest.raises(ExplanationCancelled, match="cancel event") as caught:
        explainer.explain(HISTORY, 12, callback=stop_after_three, cancel=cancel)

    partial = caught.value.partial
    assert partial is not None
    assert partial.meta.partial
    assert 0 < partial.meta.n_pairs < 200
    total = partial.base_values + partial.values.sum()
    assert total == pytest.approx(full_output(tiny, HISTORY, 12), abs=1e-4)


def test_callback_false_cancels_exact(tiny):
    with pytest.raises(ExplanationCancelled, match="callback returned False") as caught:
        ShapExplainer(tiny, method="exact", batch_size=64).explain(HISTORY, 12, callback=lambda state: False)
    assert caught.value.partial is None


# ---------------------------------------------------------------------------------------
# Bad input


@pytest.mark.parametrize(
    ("options", "match"),
    [
        ({"output": "prob"}, "output='prob'"),
        ({"absence": "zero"}, "absence='zero'"),
        ({"method": "lime"}, "method='lime'"),
        ({"tolerance": 0}, "tolerance=0"),
        ({"n_pairs": 0}, "n_pairs=0"),
    ],
)
def test_invalid_options_raise(tiny, options, match):
    with pytest.raises(ConfigError, match=match):
        ShapExplainer(tiny, **options)


def test_invalid_targets_raise(tiny):
    explainer = ShapExplainer(tiny)
    with pytest.raises(ConfigError, match="target=31"):
        explainer.explain(HISTORY, 31)
    with pytest.raises(ConfigError, match="versus=12 equals the target"):
        explainer.explain(HISTORY, 12, versus=12)
    with pytest.raises(DataError, match="item id 99"):
        explainer.explain(np.array([1, 99]))


def test_exact_with_too_many_players_raises():
    model = TinyAttentionRecommender(30, max_len=25)
    with pytest.raises(ConfigError, match="2\\^21"):
        ShapExplainer(model, method="exact").explain(np.arange(1, 22))


def test_group_position_out_of_range_raises(tiny):
    with pytest.raises(ConfigError, match="position 10"):
        HistoryValueFunction(tiny, HISTORY, target=1, groups={"late": [10]})


# ---------------------------------------------------------------------------------------
# Tidy data and a real model on real data


def test_shap_frame_and_summary(tiny):
    explainer = ShapExplainer(tiny, method="exact")
    explanations = [explainer.explain(HISTORY, user=7), explainer.explain(HISTORY[:4], user=8)]
    frame = shap_frame(explanations)

    assert list(frame.columns[:3]) == ["user", "target", "versus"]
    assert len(frame) == 14
    assert frame.loc[frame["user"] == 8, "position"].tolist() == [-4, -3, -2, -1]
    popularity = np.where(np.arange(31) > 6, 100, 1)  # items 1-6 rare, the rest popular
    summary = attribution_summary(frame, popularity=popularity, n_buckets=2)
    assert set(summary["kind"]) == {"position", "popularity"}
    assert summary.loc[summary["kind"] == "position", "n"].sum() == 14
    assert set(summary.loc[summary["kind"] == "popularity", "group"]) == {"Q1", "Q2"}


def test_explain_users_of_a_split(tiny):
    rows = [(user, item, time) for user in (1, 2, 3) for time, item in enumerate(range(user, user + 8))]
    rows += [(9, item, 0) for item in range(1, 31)]  # every item occurs, so internal ids equal raw ids
    split = leave_last_out(InteractionLog.from_frame(pd.DataFrame(rows, columns=["user", "item", "timestamp"])))
    explainer = ShapExplainer(tiny, method="exact")

    top1 = explainer.explain_users(split, [1, 2])
    nexts = explainer.explain_users(split, [1, 2], target="next")
    assert [explanation.meta.user for explanation in top1] == [1, 2]
    assert [explanation.meta.target for explanation in nexts] == [int(split.test.targets[0][0]), int(split.test.targets[1][0])]
    assert len(top1[0].values) == 7
    with pytest.raises(ConfigError, match="user 5 is not in the test part"):
        explainer.explain_users(split, [5])


@pytest.mark.slow
def test_sasrec_on_ml100k_is_efficient(ml100k_dir):
    from recwidgets.data.loaders import load_ml100k
    from recwidgets.data.split import leave_last_out
    from recwidgets.models.sasrec import SASRec

    log = load_ml100k(ml100k_dir)
    split = leave_last_out(log)
    model = SASRec(hidden=16, layers=1, heads=1, max_len=50, epochs=1).fit(
        split, device="cpu", progress=False, validate=False
    )
    row = next(i for i, history in enumerate(split.test.histories) if len(history) >= 50)
    explanation = explain_recommendation(
        model, split.test.histories[row], method="permutation", n_pairs=4, titles=log.item_titles(), user=7
    )

    assert len(explanation.values) == 50
    assert explanation.feature_names[-1] == log.item_titles()[split.test.histories[row][-1]]
    explained = full_output(model, split.test.histories[row], explanation.meta.target)
    assert explanation.base_values + explanation.values.sum() == pytest.approx(explained, abs=1e-4)
    assert shap_frame([explanation])["title"].iloc[-1] == explanation.feature_names[-1]
