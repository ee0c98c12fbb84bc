"""Deletion and insertion curves: hand-checked values, known orders, skipped methods, the table."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from recwidgets.data.log import InteractionLog
from recwidgets.data.split import leave_last_out
from recwidgets.errors import ConfigError
from recwidgets.explain.faithfulness import (
    AttributionUnavailable,
    attention_attribution,
    curve_auc,
    deletion_insertion_curves,
    faithfulness_curves,
    faithfulness_table,
    gradient_attribution,
)
from recwidgets.explain.shap_values import HistoryValueFunction
from shap_toy_models import ScoreOnly, TinyAttentionRecommender, additive_model

HISTORY = np.array([3, 5, 7, 9, 11, 2, 4, 6, 8, 10])
TARGET = 13


@pytest.fixture
def table() -> torch.Tensor:
    generator = torch.Generator().manual_seed(1)
    table = torch.randn(31, 31, generator=generator)
    table[0] = 0.0
    return table


@pytest.fixture
def additive(table):
    return additive_model(table)


def aucs(curves: pd.DataFrame) -> pd.Series:
    return curves.groupby(["method", "curve"])["value"].apply(curve_auc)


def test_curve_auc_by_hand():
    assert curve_auc([1.0, 0.0]) == pytest.approx(0.5)
    assert curve_auc([0.0, 1.0, 1.0]) == pytest.approx(0.75)
    assert curve_auc([2.0]) == pytest.approx(2.0)


def test_curves_on_additive_model(additive, table):
    value_fn = HistoryValueFunction(additive, HISTORY, target=TARGET, output="score")
    order = np.arange(10)[::-1]  # most recent first
    deletion, insertion = deletion_insertion_curves(value_fn, order)

    contributions = table[HISTORY, TARGET].double().numpy()
    removed = np.concatenate([[0.0], np.cumsum(contributions[order])])
    np.testing.assert_allclose(deletion, contributions.sum() - removed, atol=1e-5)
    np.testing.assert_allclose(insertion, removed, atol=1e-5)
    assert deletion[0] == pytest.approx(insertion[-1], abs=1e-9)
    assert deletion[-1] == pytest.approx(0.0, abs=1e-9)


def test_order_must_be_a_permutation(additive):
    value_fn = HistoryValueFunction(additive, HISTORY, target=TARGET)
    with pytest.raises(ConfigError, match="permutation of the 10 players"):
        deletion_insertion_curves(value_fn, [0, 0, 1])


def test_gradient_times_input_is_exact_on_additive_model(additive, table):
    value_fn = HistoryValueFunction(additive, HISTORY, target=TARGET)
    additive.module.train()
    np.testing.assert_allclose(gradient_attribution(additive, value_fn), table[HISTORY, TARGET].numpy(), atol=1e-5)
    assert additive.module.training is True  # the flag is restored after the eval-mode pass


def test_attention_is_last_query_of_last_layer():
    model = TinyAttentionRecommender(30, max_len=12)
    history = np.array([3, 5, 7, 9])
    value_fn = HistoryValueFunction(model, history, target=TARGET)
    weights = attention_attribution(model, value_fn)

    expected = model.attention(value_fn.histories(np.ones((1, 4), dtype=bool)))[-1][0, :, -1, -4:].mean(0)
    np.testing.assert_allclose(weights, expected.double().numpy(), atol=1e-7)
    assert weights.sum() == pytest.approx(1.0, abs=1e-6)


def test_shap_order_is_steepest_on_additive_model(additive):
    curves, skipped = faithfulness_curves(
        additive, [HISTORY], targets=[TARGET], methods=("shap", "gradient", "random"), output="score"
    )
    assert skipped == {}
    area = aucs(curves)

    # Removing the largest contributions first minimises every point of the deletion curve.
    shap_deletion = curves.query("method == 'shap' and curve == 'deletion'")["value"].to_numpy()
    random_deletion = curves.query("method == 'random' and curve == 'deletion'")["value"].to_numpy()
    assert np.all(shap_deletion <= random_deletion + 1e-9)
    assert area["shap", "deletion"] < area["random", "deletion"]
    assert area["shap", "insertion"] > area["random", "insertion"]
    # Gradient x input equals the contributions here, so it ranks like SHAP.
    assert area["gradient", "deletion"] == pytest.approx(area["shap", "deletion"], abs=1e-6)


def test_attention_and_gradient_skipped_without_support(additive):
    curves, skipped = faithfulness_curves(ScoreOnly(additive), [HISTORY], targets=[TARGET], methods=("attention", "gradient", "random"))

    assert set(skipped) == {"attention", "gradient"}
    assert "no attention(histories) method" in skipped["attention"]
    assert "exposes no torch module" in skipped["gradient"]
    assert set(curves["method"]) == {"random"}


def test_gradient_unavailable_without_item_embedding():
    class Bag(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.weight = torch.nn.Parameter(torch.randn(31))

        def forward(self, histories):
            return self.weight[histories].sum(1, keepdim=True).expand(-1, 31)

    from recwidgets.models.base import TorchModuleRecommender

    model = TorchModuleRecommender(Bag(), 30, max_len=12)
    value_fn = HistoryValueFunction(model, HISTORY, target=TARGET)
    with pytest.raises(AttributionUnavailable, match="no item embedding"):
        gradient_attribution(model, value_fn)


def synthetic_split(n_users: int = 12, n_items: int = 30, length: int = 14):
    rng = np.random.default_rng(0)
    rows = []
    for user in range(1, n_users + 1):
        items = rng.choice(np.arange(1, n_items + 1), size=length, replace=False)
        rows += [(user, int(item), t) for t, item in enumerate(items)]
    frame = pd.DataFrame(rows, columns=["user", "item", "timestamp"])
    # Every item occurs, so internal ids equal raw ids.
    frame = pd.concat([frame, pd.DataFrame({"user": 99, "item": np.arange(1, n_items + 1), "timestamp": 0})])
    return leave_last_out(InteractionLog.from_frame(frame))


def test_faithfulness_table_ranks_shap_above_random(additive):
    split = synthetic_split()
    table = faithfulness_table(ScoreOnly(additive), split, users=8, output="score", seed=1)

    assert list(table["method"]) == ["shap", "attention", "gradient", "random"]
    by_method = table.set_index("method")
    assert by_method.loc["shap", "n_users"] == 8
    assert by_method.loc["shap", "deletion_auc"] < by_method.loc["random", "deletion_auc"]
    assert by_method.loc["shap", "insertion_auc"] > by_method.loc["random", "insertion_auc"]
    assert np.isfinite(by_method.loc["shap", "deletion_ci"])
    assert np.isnan(by_method.loc["attention", "deletion_auc"])
    assert "attention" in by_method.loc["attention", "note"]
    assert by_method.loc["random", "note"] == ""


def test_faithfulness_table_with_user_list_and_next_target():
    model = TinyAttentionRecommender(30, max_len=12)
    split = synthetic_split()
    users = split.test.users[:3]
    table = faithfulness_table(model, split, users=users, target="next", methods=("shap", "attention", "gradient"))

    assert list(table["n_users"]) == [3, 3, 3]
    assert table["deletion_auc"].notna().all()
    assert (table["note"] == "").all()


def test_faithfulness_rejects_bad_options(additive):
    split = synthetic_split()
    with pytest.raises(ConfigError, match="methods=\\['lime'\\]"):
        faithfulness_table(additive, split, methods=("lime",))
    with pytest.raises(ConfigError, match="target='last'"):
        faithfulness_table(additive, split, target="last")
    with pytest.raises(ConfigError, match="user 1000 is not in the test part"):
        faithfulness_table(additive, split, users=[1000])


@pytest.mark.slow
def test_sasrec_attention_and_gradient_on_ml100k(ml100k_dir):
    from recwidgets.data.loaders import load_ml100k
    from recwidgets.models.sasrec import SASRec

    split = leave_last_out(load_ml100k(ml100k_dir))
    model = SASRec(hidden=16, layers=2, heads=2, max_len=50, epochs=1).fit(
        split, device="cpu", progress=False, validate=False
    )
    table = faithfulness_table(model, split, users=3, seed=0, shap_options={"n_pairs": 2})

    assert (table["note"] == "").all()
    assert list(table["n_users"]) == [3, 3, 3, 3]
    assert table[["deletion_auc", "insertion_auc"]].notna().all().all()
