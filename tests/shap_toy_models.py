"""Tiny hand-checkable recommenders for the Shapley value and faithfulness tests."""

from __future__ import annotations

import torch
from torch import nn

from recwidgets.models.base import TorchModuleRecommender


class AdditiveModule(nn.Module):
    """Scores are a sum of per-item contributions: ``score[t] = bias[t] + sum_i table[h_i, t]``.

    The item embedding *is* the contribution table, so the exact Shapley value of the item
    at each position is ``table[item, target]`` under both absence modes, and gradient x
    input on the embeddings returns the same numbers.
    """

    def __init__(self, table: torch.Tensor, bias: torch.Tensor | None = None):
        super().__init__()
        n_rows = table.shape[0]
        self.item_embedding = nn.Embedding(n_rows, n_rows, padding_idx=0)
        with torch.no_grad():
            self.item_embedding.weight.copy_(table)
            self.item_embedding.weight[0].zero_()
        self.bias = nn.Parameter(torch.zeros(n_rows) if bias is None else bias.clone())

    def forward(self, histories: torch.Tensor) -> torch.Tensor:
        return self.item_embedding(histories).sum(dim=1) + self.bias


def additive_model(table: torch.Tensor, *, max_len: int = 12, bias: torch.Tensor | None = None):
    """Wrap an (n_items + 1, n_items + 1) contribution table into the model protocol."""
    return TorchModuleRecommender(AdditiveModule(table, bias), table.shape[0] - 1, name="additive", max_len=max_len)


class TripleInteractionModule(AdditiveModule):
    """The additive model plus ``strength`` whenever all three ``items`` are present.

    The Shapley value of each of the three is its additive contribution plus
    ``strength / 3``; every other item keeps its contribution. Only these three players
    vary across orderings, and even antithetic pairs do not cancel a three-way term (they
    cancel a two-way one exactly).
    """

    def __init__(self, table: torch.Tensor, items: tuple[int, int, int], strength: float):
        super().__init__(table)
        self.items, self.strength = items, strength

    def forward(self, histories: torch.Tensor) -> torch.Tensor:
        present = torch.stack([(histories == item).any(dim=1) for item in self.items]).all(dim=0)
        return super().forward(histories) + self.strength * present.float().unsqueeze(1)


def triple_interaction_model(table: torch.Tensor, items: tuple[int, int, int], strength: float, *, max_len: int = 60):
    """Wrap :class:`TripleInteractionModule` into the model protocol."""
    module = TripleInteractionModule(table, items, strength)
    return TorchModuleRecommender(module, table.shape[0] - 1, name="triple-interaction", max_len=max_len)


class TinyAttentionModule(nn.Module):
    """One causal self-attention layer with one head, learned positions and tied output weights.

    Small enough to check by hand, nonlinear enough that Shapley values are not additive.
    ``forward`` returns the hidden state of every position; ``score_last`` scores the last.
    """

    def __init__(self, n_items: int, *, hidden: int = 8, max_len: int = 12, seed: int = 0, scale: float = 0.5):
        super().__init__()
        generator = torch.Generator().manual_seed(seed)
        self.max_len = max_len
        self.item_embedding = nn.Embedding(n_items + 1, hidden, padding_idx=0)
        self.position_embedding = nn.Embedding(max_len, hidden)
        self.query = nn.Linear(hidden, hidden)
        self.key = nn.Linear(hidden, hidden)
        self.value = nn.Linear(hidden, hidden)
        with torch.no_grad():
            for parameter in self.parameters():
                parameter.copy_(torch.randn(parameter.shape, generator=generator) * scale)
            self.item_embedding.weight[0].zero_()

    def forward(self, histories: torch.Tensor, *, return_attention: bool = False):
        histories = histories[:, -self.max_len :]
        length = histories.shape[1]
        valid = histories != 0  # (B, L)
        positions = torch.arange(self.max_len - length, self.max_len)
        x = (self.item_embedding(histories) + self.position_embedding(positions)) * valid.unsqueeze(-1)
        logits = self.query(x) @ self.key(x).transpose(1, 2) / x.shape[-1] ** 0.5  # (B, L, L)
        allowed = valid[:, None, :] & torch.ones(length, length, dtype=torch.bool).tril()
        weights = torch.softmax(logits.masked_fill(~allowed, -1e9), dim=-1) * allowed
        hidden = torch.tanh(weights @ self.value(x) + x)
        if return_attention:
            return hidden, [weights.unsqueeze(1)]  # one layer of (B, H=1, L, L)
        return hidden

    def score_last(self, histories: torch.Tensor) -> torch.Tensor:
        return self.forward(histories)[:, -1, :] @ self.item_embedding.weight.t()


class TinyAttentionRecommender:
    """The model protocol around ``TinyAttentionModule``, with ``attention`` like SASRec's."""

    name = "tiny-attention"

    def __init__(self, n_items: int = 30, *, max_len: int = 12, seed: int = 0, scale: float = 0.5):
        self.module = TinyAttentionModule(n_items, max_len=max_len, seed=seed, scale=scale).eval()
        self.n_items = n_items
        self.max_len = max_len
        self.device = torch.device("cpu")

    @torch.no_grad()
    def score(self, histories: torch.Tensor) -> torch.Tensor:
        return self.module.score_last(histories)

    @torch.no_grad()
    def attention(self, histories: torch.Tensor) -> list[torch.Tensor]:
        return self.module(histories, return_attention=True)[1]


class ScoreOnly:
    """A recommender with nothing but ``score``: no attention, no torch module to differentiate."""

    name = "score-only"

    def __init__(self, inner):
        self.inner = inner
        self.n_items = inner.n_items
        self.max_len = inner.max_len
        self.device = inner.device

    def score(self, histories: torch.Tensor) -> torch.Tensor:
        return self.inner.score(histories)
