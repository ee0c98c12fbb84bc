"""A first-order next-item model with user and item tables: the smallest OnlineTrainable.

It exists to show the contract of :class:`~recwidgets.online.OnlineTrainable` on a model
with every kind of row table (an input item embedding, an untied output layer with bias,
and a user embedding), and to test table growth on them quickly.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from recwidgets.data.log import PAD


class FirstOrderModule(nn.Module):
    """Logits for the next item from the current item's embedding, plus the user's embedding in training.

    ``score`` gets no user ids because the model protocol passes histories only, so it reads
    the last item alone. Training adds the user's row to every position.
    """

    def __init__(self, n_items: int, n_users: int, hidden: int = 8):
        super().__init__()
        self.item_embedding = nn.Embedding(n_items + 1, hidden, padding_idx=PAD)
        self.user_embedding = nn.Embedding(n_users + 1, hidden, padding_idx=PAD)
        self.output = nn.Linear(hidden, n_items + 1)

    def forward(self, items: torch.Tensor, users: torch.Tensor | None = None) -> torch.Tensor:
        """Return logits (..., n_items + 1) for ``items`` of shape (...), with (B,) ``users`` for (B, L) items."""
        hidden = self.item_embedding(items)
        if users is not None:
            hidden = hidden + self.user_embedding(users).unsqueeze(1)  # (B, 1, D) onto (B, L, D)
        return self.output(torch.tanh(hidden))


class FirstOrderModel:
    """A seeded, randomly initialised :class:`FirstOrderModule` behind the OnlineTrainable contract."""

    name = "first-order"

    def __init__(self, n_items: int, n_users: int, *, hidden: int = 8, max_len: int = 20, seed: int = 0):
        generator_state = torch.random.get_rng_state()
        torch.manual_seed(seed)
        self.module = FirstOrderModule(n_items, n_users, hidden).eval()
        torch.random.set_rng_state(generator_state)
        self.n_items = int(n_items)
        self._n_users = int(n_users)
        self.max_len = int(max_len)
        self.device = torch.device("cpu")

    @property
    def n_users(self) -> int | None:
        return self._n_users

    @torch.no_grad()
    def score(self, histories: torch.Tensor) -> torch.Tensor:
        """Return (B, n_items + 1) scores from each left-padded history's last item."""
        self.module.eval()
        return self.module(histories[:, -1]).float()

    def batch_loss(
        self, inputs: torch.Tensor, targets: torch.Tensor, users: torch.Tensor, generator: torch.Generator | None
    ) -> torch.Tensor:
        """Return the mean cross-entropy over every non-padding target of the (B, L) batch."""
        logits = self.module(inputs, users)  # (B, L, n_items + 1)
        valid = targets != PAD
        selected = logits[valid]
        selected[:, PAD] = float("-inf")
        return F.cross_entropy(selected, targets[valid])

    def item_tables(self) -> dict[str, nn.Parameter]:
        module = self.module
        return {
            "item_embedding.weight": module.item_embedding.weight,
            "output.weight": module.output.weight,
            "output.bias": module.output.bias,
        }

    def user_tables(self) -> dict[str, nn.Parameter]:
        return {"user_embedding.weight": self.module.user_embedding.weight}

    def set_sizes(self, n_items: int, n_users: int | None) -> None:
        module = self.module
        module.item_embedding.num_embeddings = int(n_items) + 1
        module.output.out_features = int(n_items) + 1
        module.user_embedding.num_embeddings = int(n_users) + 1
        self.n_items = int(n_items)
        self._n_users = int(n_users)
