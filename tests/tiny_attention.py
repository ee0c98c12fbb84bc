"""A hand-checkable self-attention recommender for attention tests.

Head ``h`` of every layer has the fixed logit ``-slopes[h] * (q - k)`` for query ``q`` and
key ``k``, so the weights can be worked out on paper. With the default slopes:

* head 0 (slope 0) spreads its weight uniformly over the keys a query may attend to: 1/3
  each for 3 keys;
* head 1 (slope ln 2) halves the weight per step back in time: for 3 visible keys the
  last query gives 1/7, 2/7, 4/7 (oldest to newest).

Scores are the last query's weighted mean of item embeddings (averaged over the heads in
``score_heads``) against the embedding table. ``causal=False``, ``mask_padding=False`` and
a non-zero padding embedding plant the faults that the attention checks look for;
``score_heads=(0,)`` makes the scores ignore order (a bag of items).
"""

from __future__ import annotations

import math

import torch


class TinyAttention:
    """Fixed-weight attention model following the model protocol plus ``attention``."""

    name = "tiny-attention"

    def __init__(
        self,
        n_items: int = 20,
        *,
        max_len: int = 6,
        layers: int = 1,
        causal: bool = True,
        mask_padding: bool = True,
        slopes: tuple[float, ...] = (0.0, math.log(2.0)),
        score_heads: tuple[int, ...] = (0, 1),
        padding_embedding: float = 0.0,
        dim: int = 8,
    ):
        self.n_items = n_items
        self.max_len = max_len
        self.layers = layers
        self.causal = causal
        self.mask_padding = mask_padding
        self.slopes = torch.tensor(slopes, dtype=torch.float32)
        self.score_heads = score_heads
        self.device = torch.device("cpu")
        generator = torch.Generator().manual_seed(0)
        self.embeddings = torch.randn(n_items + 1, dim, generator=generator)
        self.embeddings[0] = padding_embedding

    def _weights(self, histories: torch.Tensor) -> torch.Tensor:
        """Return (B, H, L, L) weights; rows of padding queries are all 0."""
        width = histories.shape[1]
        valid = histories != 0
        positions = torch.arange(width)
        distance = (positions[:, None] - positions[None, :]).float()  # (L, L): q - k
        logits = -self.slopes[:, None, None] * distance  # (H, L, L)

        allowed = torch.ones(histories.shape[0], 1, width, width, dtype=torch.bool)
        if self.mask_padding:
            allowed = allowed & valid[:, None, None, :]
        if self.causal:
            allowed = allowed & (distance >= 0)
        scores = logits[None].masked_fill(~allowed, float("-inf"))
        has_key = allowed.any(dim=-1, keepdim=True)
        weights = torch.softmax(torch.where(has_key, scores, torch.zeros_like(scores)), dim=-1)
        return weights * has_key * valid[:, None, :, None]

    def attention(self, histories: torch.Tensor) -> list[torch.Tensor]:
        weights = self._weights(histories)
        return [weights.clone() for _ in range(self.layers)]

    def score(self, histories: torch.Tensor) -> torch.Tensor:
        weights = self._weights(histories)[:, list(self.score_heads), -1, :].mean(dim=1)  # (B, L)
        context = torch.einsum("bl,bld->bd", weights, self.embeddings[histories])
        return context @ self.embeddings.T

    def item_embeddings(self) -> torch.Tensor:
        return self.embeddings.clone()
