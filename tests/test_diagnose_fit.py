"""Training checks on hand-written histories and on real evaluation results."""

from __future__ import annotations

import math
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
import torch

from recwidgets.data.split import temporal
from recwidgets.diagnose.faults import ScoreTransform
from recwidgets.diagnose.fit_checks import (
    chance_loss,
    check_divergence,
    check_overfitting,
    check_underfitting,
)
from recwidgets.evaluation import evaluate
from recwidgets.models import Popularity
from recwidgets.synthetic import synthetic_log


def _model(losses, validation=None, *, grad=None, best_epoch=None, n_items=100, loss="ce", finite=None):
    epochs = np.arange(1, len(losses) + 1)
    history = pd.DataFrame(
        {
            "epoch": epochs,
            "train_loss": losses,
            "grad_norm": grad if grad is not None else np.full(len(losses), 0.5),
            "finite": finite if finite is not None else np.isfinite(losses),
        }
    )
    if validation is not None:
        history["val_NDCG@10"] = validation
    if best_epoch is None:
        best_epoch = int(epochs[np.nanargmax(validation)]) if validation is not None else len(losses)
    return SimpleNamespace(
        history=history,
        best_epoch=best_epoch,
        n_items=n_items,
        config=SimpleNamespace(loss=loss, n_negatives=1),
    )


def test_chance_loss_values():
    assert chance_loss(_model([1.0], n_items=100)) == pytest.approx(math.log(100))
    assert chance_loss(_model([1.0], loss="bce")) == pytest.approx(2 * math.log(2))


def test_nan_loss_is_divergence():
    findings = check_divergence("m", _model([4.0, 3.5, float("nan")]))
    assert findings[0].id == "fit.divergence"
    assert findings[0].severity == "error"
    assert findings[0].evidence["first_non_finite_epoch"] == 3


def test_exploding_gradient_is_divergence():
    findings = check_divergence("m", _model([4.0, 3.9, 3.8, 3.9], grad=[0.5, 0.6, 0.5, 40.0]))
    assert findings[0].severity == "warning"
    assert findings[0].evidence["grad_norm_max"] == 40.0


def test_loss_above_chance_is_divergence():
    findings = check_divergence("m", _model([4.0, 13.0, 40.0], n_items=100))
    assert findings[0].severity == "warning"
    assert "chance" in findings[0].title


def test_healthy_curve_no_divergence():
    assert check_divergence("m", _model([4.5, 4.0, 3.6, 3.4])) == []


def test_overfitting_peak_then_fall():
    validation = [0.10, 0.20, 0.30, 0.28, 0.22, 0.18, 0.16, 0.15]
    losses = [5.0, 4.5, 4.0, 3.5, 3.0, 2.5, 2.0, 1.5]
    restored = check_overfitting("m", _model(losses, validation, best_epoch=3))
    assert restored[0].id == "fit.overfitting"
    assert restored[0].severity == "warning"
    assert restored[0].evidence["peak_epoch"] == 3
    # Mean of the last three validations, 0.163, is 46% below the 0.30 peak.
    assert restored[0].evidence["relative_drop"] == pytest.approx(1 - (0.18 + 0.16 + 0.15) / 3 / 0.30, abs=1e-3)

    kept_last = check_overfitting("m", _model(losses, validation, best_epoch=8))
    assert kept_last[0].severity == "error"


def test_plateau_is_not_overfitting():
    validation = [0.10, 0.20, 0.30, 0.29, 0.30, 0.28, 0.29]
    assert check_overfitting("m", _model([5, 4.5, 4, 3.8, 3.7, 3.6, 3.5], validation)) == []


def test_fall_with_rising_loss_is_not_overfitting():
    validation = [0.10, 0.30, 0.20, 0.15, 0.12]
    assert check_overfitting("m", _model([3.0, 2.0, 2.5, 3.0, 3.5], validation)) == []


def test_stuck_loss_is_underfitting():
    findings = check_underfitting("m", _model([4.62, 4.61, 4.60], n_items=100))
    assert findings[0].severity == "warning"
    assert findings[0].evidence["loss_to_chance"] == pytest.approx(4.60 / math.log(100), abs=1e-3)


@pytest.fixture(scope="module")
def split():
    return temporal(synthetic_log(400, 200, seed=0))


def test_worse_than_popularity_is_underfitting(split):
    popularity = Popularity().fit(split)
    reference = evaluate(popularity, split, n_bootstrap=0)
    anti = ScoreTransform(popularity, lambda histories, scores: -scores, "anti-popular")
    result = evaluate(anti, split, n_bootstrap=0)
    findings = check_underfitting("anti-popular", None, result, reference)
    assert findings[0].severity == "warning"
    low, high = findings[0].evidence["difference_ci"]
    assert high < 0


def test_equal_to_popularity_is_at_most_info(split):
    popularity = Popularity().fit(split)
    reference = evaluate(popularity, split, n_bootstrap=0)
    jitter = ScoreTransform(popularity, lambda histories, scores: scores + 1e-3 * torch.rand(scores.shape), "jitter")
    result = evaluate(jitter, split, n_bootstrap=0)
    findings = check_underfitting("jitter", None, result, reference)
    assert all(finding.severity == "info" for finding in findings)


def test_noisy_small_validation_not_overfitting():
    # A clean ML-100K run (85 validation users): a 55% fall from the peak, within the noise.
    validation = [0.0138, 0.0236, 0.0297, 0.0208, 0.0240, 0.0118, 0.0181, 0.0121, 0.0135, 0.0147]
    losses = [7.20, 6.75, 6.58, 6.40, 6.19, 6.04, 5.95, 5.90, 5.86, 5.84]
    assert check_overfitting("m", _model(losses, validation, best_epoch=3)) == []
