"""Checks of training: overfitting, underfitting and divergence.

They read a model's per-epoch ``history`` (a DataFrame with ``epoch``, ``train_loss``,
``grad_norm``, ``finite``, ``best_epoch`` and validation columns such as ``val_NDCG@10``,
as ``SASRec.fit`` writes it) and compare evaluation results with the most-popular baseline.
"""

from __future__ import annotations

import logging
import math

import numpy as np
import pandas as pd

from recwidgets.diagnose._common import aligned_metric, headline_label, paired_difference, record, rounded
from recwidgets.diagnose.catalog import make_finding
from recwidgets.diagnose.finding import Finding

logger = logging.getLogger(__name__)

#: Relative drop of the validation metric from its peak to the mean of the last
#: ``OVERFIT_TAIL_EPOCHS`` validations that counts as overfitting. Clean synthetic runs with
#: early stopping (patience 3) measured drops of 3-8%. The planted fault (60 epochs on 150
#: users, no dropout) measured 32%.
OVERFIT_RELATIVE_DROP = 0.2

#: Absolute drop below which a fall is noise whatever its relative size.
OVERFIT_MIN_ABSOLUTE_DROP = 0.01

#: The drop must also exceed this multiple of the validation noise (see ``validation_noise``).
#: Small validation sets are noisy. On ML-100K's temporal split (85 validation users) a clean
#: 10-epoch run fell 55% from a 0.03 peak, which is only 2.2 times its noise. The planted
#: fault falls by 12 times its noise.
OVERFIT_NOISE_MULTIPLE = 4.0

#: Validations after the peak needed to judge a trend, and the tail averaged for the drop.
OVERFIT_MIN_EPOCHS_AFTER_PEAK = 3
OVERFIT_TAIL_EPOCHS = 3

#: A cross-entropy loss above this share of the chance level log(n_items) at the last epoch
#: means the model learned next to nothing. Clean SASRec runs in the fault suite end at
#: 0.68-0.85 of it.
UNDERFIT_LOSS_RATIO = 0.95

#: A training loss above this multiple of the chance level is worse than guessing
#: uniformly, which only a diverging optimiser produces.
DIVERGENCE_LOSS_RATIO = 1.5

#: A gradient norm above this multiple of the median of the first epochs is exploding.
#: Clean runs stay within a factor of about 2.
DIVERGENCE_GRAD_RATIO = 20.0


def _history(model) -> pd.DataFrame | None:
    history = getattr(model, "history", None)
    if isinstance(history, pd.DataFrame) and len(history) and "train_loss" in history.columns:
        return history
    return None


def chance_loss(model) -> float | None:
    """Return the training loss of a model that scores every item equally, if its loss is known.

    Cross-entropy over the catalog gives log(n_items). The sampled binary loss with n
    negatives gives (1 + n) log 2.
    """
    config = getattr(model, "config", None)
    n_items = int(getattr(model, "n_items", 0) or 0)
    loss = getattr(config, "loss", "ce") if config is not None else None
    if loss == "ce" and n_items > 1:
        return math.log(n_items)
    if loss == "bce":
        return (1 + int(getattr(config, "n_negatives", 1))) * math.log(2)
    return None


def check_divergence(name: str, model) -> list[Finding]:
    """Flag NaN or infinite losses, losses worse than chance, and exploding gradient norms."""
    history = _history(model)
    if history is None:
        return []
    losses = history["train_loss"].to_numpy(dtype=np.float64)
    finite = np.isfinite(losses)
    if "finite" in history.columns:
        finite &= history["finite"].fillna(True).to_numpy(dtype=bool)
    norms = history["grad_norm"].to_numpy(dtype=np.float64) if "grad_norm" in history.columns else np.full(len(losses), np.nan)
    chance = chance_loss(model)
    epochs = history["epoch"].to_numpy() if "epoch" in history.columns else np.arange(1, len(losses) + 1)

    evidence: dict = {"model": name, "epochs_run": int(len(losses))}
    reasons = []
    severity = None
    if not finite.all():
        first_bad = int(epochs[np.flatnonzero(~finite)[0]])
        evidence["first_non_finite_epoch"] = first_bad
        reasons.append(f"the loss became non-finite in epoch {first_bad}")
        severity = "error"
    finite_losses = losses[np.isfinite(losses)]
    if chance is not None and len(finite_losses):
        worst = float(finite_losses.max())
        evidence["max_train_loss"] = rounded(worst)
        evidence["chance_loss"] = rounded(chance)
        if worst > DIVERGENCE_LOSS_RATIO * chance:
            reasons.append(f"the loss reached {worst:.3g}, above {DIVERGENCE_LOSS_RATIO}x the chance level {chance:.3g}")
            severity = severity or "warning"
    finite_norms = norms[np.isfinite(norms)]
    if len(finite_norms) >= 2:
        start = float(np.median(finite_norms[: min(3, len(finite_norms))]))
        peak = float(finite_norms.max())
        evidence["grad_norm_start"] = rounded(start)
        evidence["grad_norm_max"] = rounded(peak)
        if start > 0 and peak > DIVERGENCE_GRAD_RATIO * start:
            reasons.append(f"the gradient norm grew {peak / start:.0f}-fold")
            severity = severity or "warning"
    evidence["thresholds"] = {"loss_ratio": DIVERGENCE_LOSS_RATIO, "grad_ratio": DIVERGENCE_GRAD_RATIO}
    record("fit.divergence", evidence)
    if severity is None:
        return []
    return [
        make_finding(
            "fit.divergence",
            severity,
            f"{name}: training diverged ({'; '.join(reasons)})",
            evidence,
            "Lower the learning rate (try 10x smaller), clip gradients (max_grad_norm=1.0), or add warm-up; "
            "check the inputs for extreme values.",
            view={"model": name},
        )
    ]


def _validation_column(history: pd.DataFrame) -> str | None:
    for column in ("val_NDCG@10", "val_HR@10"):
        if column in history.columns and history[column].notna().sum() >= 2:
            return column
    candidates = [column for column in history.columns if column.startswith("val_") and history[column].notna().sum() >= 2]
    return candidates[0] if candidates else None


def validation_noise(values: np.ndarray) -> float:
    """Estimate the epoch-to-epoch noise (standard deviation) of a validation curve.

    Second differences cancel a locally linear trend, so a steady rise or fall does not
    count as noise. For independent Gaussian noise of standard deviation s, a second
    difference has standard deviation s * sqrt(6), and the median absolute value of a
    Gaussian is 0.6745 of its standard deviation.
    """
    values = np.asarray(values, dtype=np.float64)
    if len(values) < 3:
        return float("nan")
    second = np.diff(values, n=2)
    return float(np.median(np.abs(second)) / (0.6745 * np.sqrt(6.0)))


def check_overfitting(name: str, model) -> list[Finding]:
    """Flag a validation metric that peaked and then fell clearly while the training loss kept falling.

    Severity is ``warning`` when the model has the parameters of the peak epoch (early
    stopping or best-epoch restore), because the evaluated model is fine but training ran
    too long for its data. It is ``error`` when the model has later, worse parameters.
    """
    history = _history(model)
    if history is None:
        return []
    column = _validation_column(history)
    if column is None:
        return []
    validated = history[history[column].notna()]
    values = validated[column].to_numpy(dtype=np.float64)
    epochs = validated["epoch"].to_numpy()
    peak_index = int(np.argmax(values))
    after = len(values) - 1 - peak_index
    if after < OVERFIT_MIN_EPOCHS_AFTER_PEAK:
        return []
    peak = float(values[peak_index])
    tail = float(values[-OVERFIT_TAIL_EPOCHS:].mean())
    drop = peak - tail
    relative = drop / peak if peak > 0 else 0.0
    noise = validation_noise(values)
    drop_to_noise = drop / noise if noise > 0 else float("inf")
    losses = validated["train_loss"].to_numpy(dtype=np.float64)
    loss_kept_falling = bool(np.isfinite(losses[-1]) and losses[-1] < losses[peak_index])
    record(
        "fit.overfitting",
        {
            "model": name,
            "metric": column,
            "relative_drop": rounded(relative),
            "drop_to_noise": rounded(drop_to_noise, 2),
            "epochs_after_peak": int(after),
        },
    )
    clear = drop >= OVERFIT_MIN_ABSOLUTE_DROP and drop_to_noise >= OVERFIT_NOISE_MULTIPLE
    if relative < OVERFIT_RELATIVE_DROP or not clear or not loss_kept_falling:
        return []

    peak_epoch = int(epochs[peak_index])
    held_epoch = int(getattr(model, "best_epoch", 0) or 0)
    restored = held_epoch == peak_epoch
    evidence = {
        "model": name,
        "metric": column,
        "peak_epoch": peak_epoch,
        "peak_value": rounded(peak),
        "last_epochs_mean": rounded(tail),
        "relative_drop": rounded(relative),
        "drop_to_noise": rounded(drop_to_noise, 2),
        "train_loss_at_peak": rounded(losses[peak_index]),
        "train_loss_last": rounded(losses[-1]),
        "epochs_after_peak": int(epochs[-1] - peak_epoch),
        "model_holds_epoch": held_epoch,
        "best_epoch_restored": restored,
        "threshold": OVERFIT_RELATIVE_DROP,
    }
    kept = (
        f"the model holds epoch {peak_epoch}, the peak"
        if restored
        else f"the model holds epoch {held_epoch}, after the peak"
    )
    return [
        make_finding(
            "fit.overfitting",
            "warning" if restored else "error",
            f"{name}: {column[4:]} fell {relative:.0%} after epoch {peak_epoch} while the training loss kept falling",
            evidence,
            f"Training ran long past the best epoch ({kept}). Use early stopping (patience=5), more "
            "dropout or weight decay, a smaller model, or more training data.",
            view={"model": name, "epoch": peak_epoch},
        )
    ]


def check_underfitting(
    name: str,
    model=None,
    result=None,
    reference=None,
    *,
    seed: int = 0,
) -> list[Finding]:
    """Flag a model that is significantly worse than the most-popular ``reference`` result,
    or whose training loss ended near the chance level.

    The comparison is a paired bootstrap over the users both results evaluated: a 95%
    interval of (model - popularity) NDCG@10 entirely below 0 is a warning. A point
    estimate below the baseline with an interval that includes 0 is only info, because small
    test sets (ML-100K's temporal split has about 100 test users) cannot tell them apart.
    """
    findings: list[Finding] = []
    evidence: dict = {"model": name}
    reasons = []
    severity = None

    history = _history(model) if model is not None else None
    chance = chance_loss(model) if model is not None else None
    if history is not None and chance is not None:
        losses = history["train_loss"].to_numpy(dtype=np.float64)
        finite_losses = losses[np.isfinite(losses)]
        if len(finite_losses):
            last = float(finite_losses[-1])
            evidence["train_loss_last"] = rounded(last)
            evidence["chance_loss"] = rounded(chance)
            evidence["loss_to_chance"] = rounded(last / chance)
            if UNDERFIT_LOSS_RATIO * chance <= last <= DIVERGENCE_LOSS_RATIO * chance:
                reasons.append(f"the training loss ended at {last / chance:.0%} of the chance level log(n_items)")
                severity = "warning"

    if result is not None and reference is not None:
        label = headline_label(result)
        if label is not None and label in reference.per_user.columns:
            _, model_values, reference_values = aligned_metric(result, reference, label)
            if len(model_values):
                mean, low, high = paired_difference(model_values, reference_values, seed=seed)
                evidence.update(
                    {
                        "metric": label,
                        "model_value": rounded(np.nanmean(model_values)),
                        "popularity_value": rounded(np.nanmean(reference_values)),
                        "difference": rounded(mean),
                        "difference_ci": [rounded(low), rounded(high)],
                        "n_users": int(len(model_values)),
                    }
                )
                if high < 0:
                    reasons.append(
                        f"{label} {np.nanmean(model_values):.4f} is below the most-popular baseline's "
                        f"{np.nanmean(reference_values):.4f} (95% CI of the difference below 0)"
                    )
                    severity = "warning"
                elif mean <= 0 and severity is None:
                    reasons.append(f"{label} is not above the most-popular baseline (the difference is within noise)")
                    severity = "info"

    record("fit.underfitting", evidence)
    if severity is None:
        return findings
    findings.append(
        make_finding(
            "fit.underfitting",
            severity,
            f"{name}: {'; '.join(reasons)}",
            evidence,
            "Train longer or with a higher learning rate, check that the loss falls and that the model "
            "is evaluated after fitting; a sequential model that cannot beat most-popular learned little.",
            view={"model": name},
        )
    )
    return findings
