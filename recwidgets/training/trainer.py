"""A model-agnostic training loop: devices, seeding, one epoch, and early stopping.

Models supply a module, a batch iterator and a loss function. This module runs the
optimisation, keeps a per-epoch history, calls callbacks and restores the best
validation state, so online updates and distributed training can reuse the same pieces.
"""

from __future__ import annotations

import contextlib
import logging
import math
import random
import time
import warnings
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

from recwidgets.errors import ConfigError, RecwidgetsWarning

logger = logging.getLogger(__name__)

#: A loss function maps (module, batch) to a scalar loss tensor.
LossFn = Callable[[nn.Module, object], torch.Tensor]

#: A callback receives one dict per event; see ``fit_loop`` for the keys.
Callback = Callable[[dict], None]


class TrainingWarning(RecwidgetsWarning):
    """Training stopped or degraded for a reason the user should see (non-finite loss, no validation)."""


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """Turn ``"auto"``, ``"cpu"``, ``"cuda"``, ``"cuda:N"`` or a ``torch.device`` into a device.

    ``"auto"`` picks CUDA when ``torch.cuda.is_available()``, else the CPU.
    """
    if isinstance(device, torch.device):
        resolved = device
    elif device == "auto":
        resolved = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    else:
        try:
            resolved = torch.device(device)
        except (RuntimeError, TypeError) as error:
            raise ConfigError(
                f"device={device!r} is invalid; use 'auto', 'cpu', 'cuda' or 'cuda:N'."
            ) from error
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(
            f"device={str(resolved)!r} was requested but CUDA is not available in this torch build; "
            "use device='cpu' or device='auto'."
        )
    return resolved


def seed_everything(seed: int) -> np.random.Generator:
    """Seed python ``random``, numpy's global state and torch (CPU and CUDA).

    Returns a fresh ``numpy.random.Generator`` for data order, so the shuffling stream does
    not depend on how many global draws other code makes.
    """
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ConfigError(f"seed={seed!r} is invalid; pass a non-negative int.")
    seed = int(seed)
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    if torch.cuda.is_available():
        torch.cuda.manual_seed_all(seed)
    return np.random.default_rng(seed)


def autocast_context(device: torch.device, enabled: bool = True):
    """Return a bf16 autocast context on CUDA, and a no-op context elsewhere.

    bf16 keeps float32's exponent range, so no loss scaling is needed. CPU training stays
    in float32, so CPU runs are exactly reproducible.
    """
    if enabled and device.type == "cuda":
        return torch.autocast(device_type="cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


@dataclass
class EpochStats:
    """Summary of one pass over the training batches.

    ``train_loss`` and ``grad_norm`` are means over the batches that ran; ``grad_norm`` is
    the global L2 norm of all gradients before clipping. ``finite`` is False when a batch
    produced a NaN or infinite loss; the epoch stops at that batch without an optimizer step.
    """

    train_loss: float
    grad_norm: float
    n_batches: int
    seconds: float
    finite: bool = True


def train_epoch(
    module: nn.Module,
    batches: Iterable,
    optimizer: torch.optim.Optimizer,
    loss_fn: LossFn,
    device: torch.device,
    autocast: bool = True,
    *,
    max_grad_norm: float | None = None,
    on_batch: Callable[[int, float], None] | None = None,
) -> EpochStats:
    """Run one epoch of training and return its mean loss and gradient norm.

    ``loss_fn(module, batch)`` must move the batch to ``device`` itself and return a scalar.
    ``max_grad_norm`` clips the global gradient norm when set. ``on_batch(index, loss)`` is
    called after each step, for progress displays.
    """
    module.train()
    start = time.perf_counter()
    losses: list[float] = []
    norms: list[float] = []
    finite = True

    for index, batch in enumerate(batches):
        optimizer.zero_grad(set_to_none=True)
        with autocast_context(device, autocast):
            loss = loss_fn(module, batch)
        value = float(loss.detach().float().item())
        if not math.isfinite(value):
            # Stepping on a NaN or infinite loss would corrupt every parameter.
            losses.append(value)
            finite = False
            break
        loss.backward()
        clip = max_grad_norm if max_grad_norm is not None else float("inf")
        norm = torch.nn.utils.clip_grad_norm_(module.parameters(), clip)
        optimizer.step()
        losses.append(value)
        norms.append(float(norm))
        if on_batch is not None:
            on_batch(index, value)

    return EpochStats(
        train_loss=float(np.mean(losses)) if losses else float("nan"),
        grad_norm=float(np.mean(norms)) if norms else float("nan"),
        n_batches=len(losses),
        seconds=time.perf_counter() - start,
        finite=finite,
    )


def state_snapshot(module: nn.Module) -> dict[str, torch.Tensor]:
    """Return a detached CPU copy of ``module.state_dict()`` that later steps cannot change."""
    return {name: tensor.detach().to("cpu", copy=True) for name, tensor in module.state_dict().items()}


@dataclass
class TrainingResult:
    """What ``fit_loop`` returns: the per-epoch records, the best epoch and why training stopped.

    ``stop_reason`` is one of ``"max epochs"``, ``"early stopping"`` or ``"non-finite loss"``.
    ``best_epoch`` is the epoch whose state the module has at the end. Without validation
    it is the last epoch with a finite loss (0 when there is none).
    """

    history: list[dict] = field(default_factory=list)
    best_epoch: int = 0
    best_value: float | None = None
    stop_reason: str = "max epochs"


def _progress_bar(total: int, enabled: bool):
    if not enabled:
        return None
    from tqdm.auto import tqdm

    return tqdm(total=total, desc="training", unit="epoch", leave=True)


def _notify_failure(callbacks: Sequence[Callback], error: BaseException, result: TrainingResult) -> None:
    """Send the ``"error"`` event. A callback that fails on it is only logged, so the original error propagates."""
    message = f"{type(error).__name__}: {error}" if str(error) else type(error).__name__
    event = {"event": "error", "error": message, "best_epoch": result.best_epoch, "epochs_run": len(result.history)}
    for callback in callbacks:
        try:
            callback(event)
        except Exception:
            logger.exception("callback %r failed on the error event", callback)


def fit_loop(
    module: nn.Module,
    make_batches: Callable[[int], Iterable],
    loss_fn: LossFn,
    optimizer: torch.optim.Optimizer,
    *,
    epochs: int,
    device: torch.device,
    autocast: bool = True,
    validate: Callable[[], dict[str, float]] | None = None,
    monitor: str = "val_NDCG@10",
    patience: int | None = 5,
    eval_every: int = 1,
    max_grad_norm: float | None = None,
    callbacks: Sequence[Callback] = (),
    progress: bool = True,
    n_batches: int | None = None,
) -> TrainingResult:
    """Train for up to ``epochs`` epochs with early stopping on a validation metric.

    ``make_batches(epoch)`` returns the batches of one epoch (epochs count from 1).
    ``validate()`` returns metrics keyed like ``"val_NDCG@10"``; it runs after every
    ``eval_every``-th epoch and after the last one. Higher ``monitor`` is better. Training stops
    after ``patience`` validations in a row without improvement (``None`` turns early
    stopping off), or at the first NaN or infinite loss, with a ``TrainingWarning``. At the
    end the module gets the state of the best validated epoch back.

    Each callback is called with one dict per event:

    - ``{"event": "batch", "epoch", "batch", "n_batches", "loss"}`` after each optimizer step
      (``n_batches`` is None when unknown);
    - ``{"event": "epoch", "epoch", "train_loss", "grad_norm", "seconds", "finite",
      "best_epoch", "val_NDCG@10", ...}`` after each epoch, with the validation keys only on
      epochs that were validated;
    - ``{"event": "end", "best_epoch", "best_value", "stop_reason", "epochs_run"}`` once;
    - ``{"event": "error", "error", "best_epoch", "epochs_run"}`` instead of ``"end"`` when
      training raises (a KeyboardInterrupt included). The exception then propagates.

    The ``history`` of the result contains the epoch dicts without the ``"event"`` key.
    """
    if epochs < 0:
        raise ConfigError(f"epochs={epochs} is invalid; pass 0 or more.")
    if eval_every < 1:
        raise ConfigError(f"eval_every={eval_every} is invalid; pass 1 or more.")

    result = TrainingResult()
    best_state: dict[str, torch.Tensor] | None = None
    evaluations_without_gain = 0
    bar = _progress_bar(epochs, progress)

    def notify(event: dict) -> None:
        for callback in callbacks:
            callback(event)

    try:
        for epoch in range(1, epochs + 1):

            def on_batch(index: int, loss: float, epoch: int = epoch) -> None:
                notify({"event": "batch", "epoch": epoch, "batch": index + 1, "n_batches": n_batches, "loss": loss})

            stats = train_epoch(
                module,
                make_batches(epoch),
                optimizer,
                loss_fn,
                device,
                autocast,
                max_grad_norm=max_grad_norm,
                on_batch=on_batch if callbacks else None,
            )
            record = {
                "epoch": epoch,
                "train_loss": stats.train_loss,
                "grad_norm": stats.grad_norm,
                "seconds": stats.seconds,
                "finite": stats.finite,
            }

            if not stats.finite:
                kept = (
                    f"the model gets the state of epoch {result.best_epoch} back"
                    if best_state is not None
                    else "the model keeps its parameters from before the failing batch"
                )
                warnings.warn(
                    f"training loss became {stats.train_loss} in epoch {epoch} at batch {stats.n_batches}; "
                    f"training stopped and {kept}. "
                    "Lower the learning rate, or raise the dropout or weight decay.",
                    TrainingWarning,
                    stacklevel=3,
                )
                result.stop_reason = "non-finite loss"
                record["best_epoch"] = result.best_epoch
                result.history.append(record)
                notify({"event": "epoch", **record})
                break

            validated = validate is not None and (epoch % eval_every == 0 or epoch == epochs)
            if validated:
                metrics = validate()
                record.update(metrics)
                value = metrics.get(monitor)
                if value is None:
                    raise ConfigError(
                        f"validation returned no {monitor!r}; it returned {sorted(metrics)}. "
                        "Pass a monitor name that validation produces."
                    )
                if result.best_value is None or value > result.best_value:
                    result.best_value = float(value)
                    result.best_epoch = epoch
                    best_state = state_snapshot(module)
                    evaluations_without_gain = 0
                else:
                    evaluations_without_gain += 1
            elif validate is None:
                # Without validation the last finite epoch counts as best, so a later
                # non-finite loss can roll back to it.
                result.best_epoch = epoch
                best_state = state_snapshot(module)

            record["best_epoch"] = result.best_epoch
            result.history.append(record)
            notify({"event": "epoch", **record})
            logger.debug("epoch %d: %s", epoch, record)

            if bar is not None:
                postfix = {"loss": f"{stats.train_loss:.4f}"}
                if validated:
                    postfix[monitor] = f"{record[monitor]:.4f}"
                bar.set_postfix(postfix)
                bar.update(1)

            if validated and patience is not None and evaluations_without_gain >= patience:
                result.stop_reason = "early stopping"
                logger.info(
                    "early stopping after epoch %d: %s has not improved on %.4f (epoch %d) for %d validation(s)",
                    epoch,
                    monitor,
                    result.best_value,
                    result.best_epoch,
                    patience,
                )
                break
    except BaseException as error:
        # Without this event a live TrainingMonitor would show "training" forever.
        _notify_failure(callbacks, error, result)
        raise
    finally:
        if bar is not None:
            bar.close()

    if best_state is not None:
        module.load_state_dict(best_state)

    notify(
        {
            "event": "end",
            "best_epoch": result.best_epoch,
            "best_value": result.best_value,
            "stop_reason": result.stop_reason,
            "epochs_run": len(result.history),
        }
    )
    return result
