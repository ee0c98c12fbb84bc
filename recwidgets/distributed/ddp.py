"""Data-parallel SASRec training with ``torch.nn.parallel.DistributedDataParallel``.

Each rank keeps a full replica. Every rank draws the same permutation of the training
windows of ``next_item_windows`` per epoch from the shared seed. The permutation is padded to
a multiple of the world size by repeating its first windows and dealt out by rank
(``order[rank::world_size]``), as ``torch.utils.data.DistributedSampler`` does. DDP
averages the gradients, so the replicas stay equal. Validation runs sharded over the ranks
(``evaluate_sharded``), and every rank gets the same value, so early stopping stops all
ranks at the same epoch.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Sequence
from dataclasses import replace

import numpy as np
import pandas as pd
import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from recwidgets.data.split import Split
from recwidgets.distributed.context import DistContext, current_context
from recwidgets.distributed.sharding import evaluate_sharded
from recwidgets.errors import ConfigError, DataError
from recwidgets.models.sasrec import SASRec, SASRecConfig, SASRecModule
from recwidgets.training.losses import full_softmax_loss, sampled_bce_loss
from recwidgets.training.sequences import next_item_windows
from recwidgets.training.trainer import fit_loop, seed_everything

logger = logging.getLogger(__name__)


class NextItemLoss(nn.Module):
    """Wraps a ``SASRecModule`` so that ``forward(inputs, targets)`` returns the training loss.

    DDP hooks the gradients of everything that ``forward`` uses. Computing the loss inside
    ``forward`` keeps the tied output embedding inside the wrapped call.
    """

    def __init__(self, network: SASRecModule, loss: str = "ce", n_negatives: int = 1, generator=None):
        super().__init__()
        self.network = network
        self.loss = loss
        self.n_negatives = n_negatives
        self.generator = generator

    def forward(self, inputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        hidden = self.network(inputs)
        weight = self.network.item_embedding.weight
        if self.loss == "ce":
            return full_softmax_loss(hidden, targets, weight)
        return sampled_bce_loss(hidden, targets, weight, self.n_negatives, self.generator)


def shard_order(n_windows: int, epoch: int, seed: int, rank: int, world_size: int) -> np.ndarray:
    """Return this rank's window indices for one epoch (same length on every rank).

    All ranks share one permutation per (seed, epoch). It is padded by wrapping around to
    a multiple of ``world_size``, and rank ``r`` takes every ``world_size``-th index
    starting at ``r``. With ``world_size=1`` this is a plain seeded shuffle.
    """
    order = np.random.default_rng([int(seed), int(epoch)]).permutation(n_windows)
    total = math.ceil(n_windows / world_size) * world_size
    if total > n_windows:
        order = np.concatenate([order, order[: total - n_windows]])
    return order[rank::world_size]


def rank_batches(inputs: np.ndarray, targets: np.ndarray, order: np.ndarray, batch_size: int):
    """Yield (inputs, targets) CPU tensor pairs of ``batch_size`` rows in ``order``."""
    for start in range(0, len(order), batch_size):
        index = order[start : start + batch_size]
        yield torch.from_numpy(inputs[index]), torch.from_numpy(targets[index])


def _mean_over_ranks(loss: torch.Tensor, context: DistContext) -> torch.Tensor:
    """Return ``loss`` whose value is the mean over ranks but whose gradient is the local one.

    ``train_epoch`` checks each loss for NaN and stops the epoch on it. Every rank must make
    the same decision, or one rank would wait forever in the next gradient all-reduce.
    """
    if not context.distributed:
        return loss
    value = loss.detach().float().clone()
    dist.all_reduce(value)
    value /= context.world_size
    return loss + (value.to(loss.dtype) - loss.detach())


def fit_distributed(
    split: Split,
    config: SASRecConfig | None = None,
    *,
    epochs: int | None = None,
    seed: int | None = None,
    context: DistContext | None = None,
    validate: bool = True,
    progress: bool = True,
    callbacks: Sequence[Callable[[dict], None]] = (),
    per_rank_batch_size: int | None = None,
    eval_batch_size: int = 256,
    **overrides,
) -> SASRec:
    """Train SASRec on ``split`` with DDP over the ranks of ``context`` and return the model.

    Every rank must call this with the same split and arguments; each returns an equal
    model (the same parameters, history and best epoch). ``per_rank_batch_size`` defaults
    to ``ceil(config.batch_size / world_size)``, so the global batch stays about
    ``batch_size``. Parameters start equal on every rank (same seed; DDP also broadcasts
    rank 0's), and dropout draws from ``seed + rank``. ``progress`` and ``callbacks`` act
    on rank 0 only. Without a process group this trains in one process with the same
    data order, which differs from ``SASRec.fit`` (its batches come from another shuffle).

    NOTE: DDP averages per-rank mean losses, so when ranks hold different numbers of
    non-padding target positions, the gradient weights positions slightly unequally
    compared with one process on the global batch.
    """
    context = context or current_context()
    model = SASRec(config, **overrides)
    config = model.config
    epochs = config.epochs if epochs is None else epochs
    if isinstance(epochs, bool) or not isinstance(epochs, (int, np.integer)) or epochs < 1:
        raise ConfigError(f"epochs={epochs!r} is invalid; pass an int >= 1.")
    seed = config.seed if seed is None else int(seed)
    device = context.device
    batch_size = per_rank_batch_size or math.ceil(config.batch_size / context.world_size)
    if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
        raise ConfigError(f"per_rank_batch_size={batch_size!r} is invalid; pass an int >= 1.")

    seed_everything(seed)
    n_items = split.log.n_items
    if n_items < 2:
        raise DataError(f"the catalog has {n_items} item(s); SASRec needs at least 2.")
    inputs, targets = next_item_windows(split.train_sequences(), config.max_len, config.windows)
    if len(inputs) == 0:
        raise DataError(
            "no training user has 2 or more interactions, so there is no next-item target to learn; "
            "use a log with longer user sequences."
        )

    network = SASRecModule(
        n_items,
        max_len=config.max_len,
        hidden=config.hidden,
        layers=config.layers,
        heads=config.heads,
        dropout=config.dropout,
        causal=config.causal,
    ).to(device)
    # Equal initial parameters come from the shared seed; dropout masks differ per rank.
    torch.manual_seed(seed + context.rank)
    generator = torch.Generator().manual_seed(seed + context.rank)
    wrapper = NextItemLoss(network, config.loss, config.n_negatives, generator).to(device)
    if context.distributed:
        device_ids = [device.index] if device.type == "cuda" else None
        trainable: nn.Module = DistributedDataParallel(wrapper, device_ids=device_ids)
    else:
        trainable = wrapper
    model.module, model.n_items, model.device = network, int(n_items), device

    optimizer = torch.optim.AdamW(trainable.parameters(), lr=config.lr, betas=(0.9, 0.98), weight_decay=config.weight_decay)
    n_batches = math.ceil(math.ceil(len(inputs) / context.world_size) / batch_size)
    if context.is_root:
        logger.info(
            "DDP training of SASRec on %d windows over %d rank(s), %d batches of %d per rank and epoch",
            len(inputs),
            context.world_size,
            n_batches,
            batch_size,
        )

    def make_batches(epoch: int):
        order = shard_order(len(inputs), epoch, seed, context.rank, context.world_size)
        return rank_batches(inputs, targets, order, batch_size)

    def loss_fn(module: nn.Module, batch) -> torch.Tensor:
        batch_inputs, batch_targets = (tensor.to(device, non_blocking=True) for tensor in batch)
        return _mean_over_ranks(module(batch_inputs, batch_targets), context)

    validator = None
    if validate and split.validation.has_target().any():

        def validator() -> dict[str, float]:
            result = evaluate_sharded(
                model, split, part="validation", k=(10,), n_bootstrap=0, batch_size=eval_batch_size, context=context
            )
            return {f"val_{label}": float(value) for label, value in result.metrics["value"].items()}

    result = fit_loop(
        trainable,
        make_batches,
        loss_fn,
        optimizer,
        epochs=int(epochs),
        device=device,
        autocast=True,
        validate=validator,
        monitor="val_NDCG@10",
        patience=config.patience,
        eval_every=config.eval_every,
        max_grad_norm=config.max_grad_norm,
        callbacks=callbacks if context.is_root else (),
        progress=progress and context.is_root,
        n_batches=n_batches,
    )
    network.eval()
    model.history = pd.DataFrame(result.history)
    model.best_epoch = result.best_epoch
    model.stop_reason = result.stop_reason
    model.config = replace(config, seed=seed)
    return model


def parameters_digest(module: nn.Module) -> float:
    """Return a float summary of all parameters (sum of |p| * position weight), to compare replicas."""
    total = 0.0
    for index, tensor in enumerate(module.state_dict().values()):
        if tensor.is_floating_point():
            total += float(tensor.detach().double().abs().sum()) * (index + 1)
    return total
