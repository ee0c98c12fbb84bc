"""What a model must offer to be updated online, the SASRec adapter, and table growth.

``OnlineUpdater`` needs more than the scoring protocol of ``recwidgets.models.base``. It
needs the torch module to optimise, a loss on a batch of next-item windows, and the
parameters whose rows belong to items (and users). New ids grow those tables, and the
sparse mode masks their rows. :class:`OnlineTrainable` states that contract, and
``as_trainable`` wraps a fitted ``SASRec`` into it.

New rows start at the mean of the existing real rows (the padding row 0 is left out) plus
seeded Gaussian noise of ``noise_scale`` times the per-column standard deviation of those
rows. At the mean, a new item scores like an average item for every user: it neither
jumps to the top of every list nor drops to the bottom before it has any gradient, which a
draw from the model's initial distribution would not guarantee once training has moved the
trained rows far from that distribution. The noise keeps several new items apart, so they
do not share one embedding and one score. Existing rows and the padding row are copied
unchanged.
"""

from __future__ import annotations

import logging
from typing import Protocol, runtime_checkable

import torch
from torch import nn

from recwidgets.errors import ConfigError
from recwidgets.training.losses import full_softmax_loss, sampled_bce_loss

logger = logging.getLogger(__name__)

#: Scale of the noise added to new rows, relative to the per-column standard deviation of the existing rows.
NOISE_SCALE = 0.1


@runtime_checkable
class OnlineTrainable(Protocol):
    """A recommender that ``OnlineUpdater`` can train, grow and snapshot.

    Besides the scoring protocol (``name``, ``n_items``, ``max_len``, ``device``,
    ``score``) it has:

    - ``module``: the ``torch.nn.Module`` holding every trainable parameter; its
      ``state_dict`` is what snapshots copy;
    - ``n_users``: rows of the user tables minus the padding row, or ``None`` without them;
    - ``batch_loss(inputs, targets, users, generator)``: a scalar loss on (B, L) left-padded
      input windows and their (B, L) next-item targets (0 = no target), with the (B,)
      user ids of the rows; ``generator`` seeds any sampling inside the loss;
    - ``item_tables()`` / ``user_tables()``: the parameters whose row ``i`` belongs to item
      (user) ``i``, row 0 being padding: the input embedding, and the output layer too when
      it is not tied to it;
    - ``set_sizes(n_items, n_users)``: update the model's own bookkeeping after the updater
      has resized those parameters in place.
    """

    name: str
    n_items: int
    max_len: int | None
    device: torch.device

    @property
    def module(self) -> nn.Module: ...

    @property
    def n_users(self) -> int | None: ...

    def score(self, histories: torch.Tensor) -> torch.Tensor: ...

    def batch_loss(
        self, inputs: torch.Tensor, targets: torch.Tensor, users: torch.Tensor, generator: torch.Generator | None
    ) -> torch.Tensor: ...

    def item_tables(self) -> dict[str, nn.Parameter]: ...

    def user_tables(self) -> dict[str, nn.Parameter]: ...

    def set_sizes(self, n_items: int, n_users: int | None) -> None: ...


class SASRecTrainable:
    """A fitted ``SASRec`` behind :class:`OnlineTrainable`.

    SASRec has no user table: it reads each user from the history, so a new user needs no
    new row and ``n_users`` is ``None``. Its output layer is tied to the item embedding, so
    ``item_tables`` returns that one matrix. The loss is the model's own (``config.loss``):
    full-catalog cross-entropy or the sampled binary loss.
    """

    def __init__(self, model):
        if getattr(model, "module", None) is None:
            raise ConfigError("the SASRec model is not fitted; call fit(split) or SASRec.load(path) before updating it.")
        self.model = model

    @property
    def name(self) -> str:
        return self.model.name

    @property
    def n_items(self) -> int:
        return self.model.n_items

    @property
    def max_len(self) -> int | None:
        return self.model.max_len

    @property
    def device(self) -> torch.device:
        return self.model.device

    @property
    def module(self) -> nn.Module:
        return self.model.module

    @property
    def n_users(self) -> int | None:
        return None

    def score(self, histories) -> torch.Tensor:
        return self.model.score(histories)

    def batch_loss(
        self, inputs: torch.Tensor, targets: torch.Tensor, users: torch.Tensor, generator: torch.Generator | None
    ) -> torch.Tensor:
        module = self.model.module
        hidden = module(inputs.to(self.device))
        weight = module.item_embedding.weight
        targets = targets.to(self.device)
        if self.model.config.loss == "ce":
            return full_softmax_loss(hidden, targets, weight)
        return sampled_bce_loss(hidden, targets, weight, self.model.config.n_negatives, generator)

    def item_tables(self) -> dict[str, nn.Parameter]:
        return {"item_embedding.weight": self.model.module.item_embedding.weight}

    def user_tables(self) -> dict[str, nn.Parameter]:
        return {}

    def set_sizes(self, n_items: int, n_users: int | None) -> None:
        module = self.model.module
        module.n_items = int(n_items)
        module.item_embedding.num_embeddings = int(n_items) + 1
        self.model.n_items = int(n_items)


def as_trainable(model) -> OnlineTrainable:
    """Return ``model`` as an :class:`OnlineTrainable`: a fitted SASRec is wrapped, a conforming object passes."""
    from recwidgets.models.sasrec import SASRec

    if isinstance(model, SASRec):
        return SASRecTrainable(model)
    if isinstance(model, OnlineTrainable):
        return model
    missing = [
        name
        for name in ("module", "n_users", "batch_loss", "item_tables", "user_tables", "set_sizes", "score", "n_items")
        if not hasattr(model, name)
    ]
    raise ConfigError(
        f"{type(model).__name__} cannot be updated online: it lacks {missing}. Pass a fitted SASRec, or an object "
        "with the members of recwidgets.online.OnlineTrainable."
    )


def new_rows(table: torch.Tensor, count: int, generator: torch.Generator, noise_scale: float = NOISE_SCALE) -> torch.Tensor:
    """Return ``count`` rows for ``table`` (rows, ...): the mean of its real rows plus scaled seeded noise.

    Row 0 (padding) is left out of the mean and the standard deviation. With a single real
    row the spread is 0, so new rows copy it; with none, new rows are 0.
    """
    real = table[1:].detach().to("cpu", torch.float32)
    if len(real) == 0:
        return torch.zeros((count, *table.shape[1:]), dtype=table.dtype, device=table.device)
    mean = real.mean(dim=0)
    spread = real.std(dim=0, unbiased=False) if len(real) > 1 else torch.zeros_like(mean)
    noise = torch.randn((count, *table.shape[1:]), generator=generator, dtype=torch.float32)
    rows = mean + noise_scale * spread * noise
    return rows.to(table.device, table.dtype)


def resize_rows(parameter: nn.Parameter, n_rows: int, generator: torch.Generator, noise_scale: float = NOISE_SCALE) -> int:
    """Resize ``parameter`` in place to ``n_rows`` rows and return the old row count.

    Growing appends :func:`new_rows`; shrinking (restoring an older snapshot) drops the last
    rows. The Parameter object stays the same, so optimizers and modules keep referring to it.
    """
    old = parameter.data
    n_old = old.shape[0]
    if n_rows == n_old:
        return n_old
    parameter.grad = None
    if n_rows < n_old:
        parameter.data = old[:n_rows].clone()
    else:
        parameter.data = torch.cat([old, new_rows(old, n_rows - n_old, generator, noise_scale)])
    return n_old

