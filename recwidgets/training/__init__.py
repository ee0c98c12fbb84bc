"""Training pieces shared by every trainable model: devices, seeding, epochs, losses, checkpoints."""

from recwidgets.training.checkpoint import load_checkpoint, save_checkpoint
from recwidgets.training.losses import full_softmax_loss, sampled_bce_loss
from recwidgets.training.sequences import iterate_batches, next_item_windows
from recwidgets.training.trainer import (
    EpochStats,
    TrainingResult,
    TrainingWarning,
    autocast_context,
    fit_loop,
    resolve_device,
    seed_everything,
    state_snapshot,
    train_epoch,
)

__all__ = [
    "EpochStats",
    "TrainingResult",
    "TrainingWarning",
    "autocast_context",
    "fit_loop",
    "full_softmax_loss",
    "iterate_batches",
    "load_checkpoint",
    "next_item_windows",
    "resolve_device",
    "sampled_bce_loss",
    "save_checkpoint",
    "seed_everything",
    "state_snapshot",
    "train_epoch",
]
