"""Popularity and EASE on a hand-checkable matrix and on ML-100K."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from recwidgets.data.log import InteractionLog
from recwidgets.data.split import leave_last_out
from recwidgets.errors import ConfigError
from recwidgets.models import EASE, Popularity, Recommender


@pytest.fixture(scope="module")
def ml100k_split(ml100k_dir):
    frame = pd.read_csv(ml100k_dir / "u.data", sep="\t", names=["user", "item", "rating", "timestamp"])
    return leave_last_out(InteractionLog.from_frame(frame, name="ml-100k"))


@pytest.fixture(scope="module")
def tiny_split():
    """Training matrix X over items a, b, c: u1 = {a, b}, u2 = {b, c}, u3 = {a, b, c}.

    Each user then has two more events (items d, e) that leave-last-out moves to validation
    and test, so d and e have empty training columns.
    """
    rows = []
    for user, items in (("u1", "ab"), ("u2", "bc"), ("u3", "abc")):
        for time, item in enumerate(items + "de"):
            rows.append({"user": user, "item": item, "timestamp": time})
    return leave_last_out(InteractionLog.from_frame(pd.DataFrame(rows)))


def test_popularity_scores_equal_training_counts(ml100k_split):
    model = Popularity().fit(ml100k_split)
    histories = [ml100k_split.test.histories[i] for i in range(5)]
    counts = np.bincount(ml100k_split.train["item"], minlength=ml100k_split.log.n_items + 1)

    scores = model.score(histories)

    assert scores.shape == (5, ml100k_split.log.n_items + 1)
    for row in scores:
        assert np.array_equal(row.numpy(), counts.astype(np.float32))
    assert isinstance(model, Recommender)


def test_popularity_before_fit_raises():
    with pytest.raises(ConfigError, match="not fitted"):
        Popularity().score(torch.ones(1, 3, dtype=torch.long))


def test_ease_hand_checked_weights(tiny_split):
    # For lambda = 1, G + I = [[3, 2, 1], [2, 4, 2], [1, 2, 3]]. Its inverse P is
    # [[.5, -.25, 0], [-.25, .5, -.25], [0, -.25, .5]], so B = -P / diag(P) off the diagonal.
    expected = torch.tensor([[0.0, 0.5, 0.0], [0.5, 0.0, 0.5], [0.0, 0.5, 0.0]], dtype=torch.float64)

    model = EASE(1.0, dtype=torch.float64).fit(tiny_split)
    weights = model.weights

    assert weights.shape == (6, 6)
    assert torch.allclose(weights[1:4, 1:4], expected, atol=1e-12)
    assert torch.all(weights.diagonal() == 0)
    assert torch.all(weights[0] == 0)
    assert torch.all(weights[:, 0] == 0)
    assert torch.all(weights[4:] == 0)
    assert torch.all(weights[:, 4:] == 0)


def test_ease_scores_sum_weight_rows(tiny_split):
    model = EASE(1.0, dtype=torch.float64).fit(tiny_split)

    scores = model.score([np.array([1]), np.array([1, 3, 3]), np.array([], dtype=np.int64)])

    assert scores.dtype == torch.float32
    assert torch.allclose(scores[0], torch.tensor([0.0, 0.0, 0.5, 0.0, 0.0, 0.0]))
    assert torch.allclose(scores[1], torch.tensor([0.0, 0.0, 1.0, 0.0, 0.0, 0.0]))
    assert torch.all(scores[2] == 0)


def test_ease_on_ml100k(ml100k_split):
    model = EASE().fit(ml100k_split)
    n_items = ml100k_split.log.n_items
    histories = [ml100k_split.test.histories[i] for i in range(4)]

    scores = model.score(histories)

    assert model.weights.shape == (n_items + 1, n_items + 1)
    assert torch.all(model.weights.diagonal() == 0)
    assert scores.shape == (4, n_items + 1)
    assert torch.isfinite(scores).all()
    assert torch.all(scores[:, 0] == 0)


def test_ease_rejects_catalog_over_budget(ml100k_split):
    with pytest.raises(ConfigError, match="memory_budget"):
        EASE(memory_budget=10**6).fit(ml100k_split)


@pytest.mark.parametrize("value", [0, -1.0, float("nan"), "500"])
def test_ease_rejects_invalid_regularization(value):
    with pytest.raises(ConfigError, match="regularization"):
        EASE(value)
