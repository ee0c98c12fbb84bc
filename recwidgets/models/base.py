"""The model protocol: the one interface that evaluation, explanation and widgets need."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, runtime_checkable

import numpy as np
import torch

from recwidgets.data.log import PAD


@runtime_checkable
class Recommender(Protocol):
    """Anything that scores the whole catalog for a batch of histories.

    ``name`` is a short label such as ``"sasrec"``. ``n_items`` is the catalog size without
    padding. ``max_len`` is the longest history the model reads (``None`` for no limit).
    ``score`` takes left-padded item ids of shape (B, L), padding id 0, on ``device``, and
    returns float scores of shape (B, n_items + 1) where column 0 (padding) is never
    recommended by evaluation.
    """

    name: str
    n_items: int
    max_len: int | None
    device: torch.device

    def score(self, histories: torch.Tensor) -> torch.Tensor: ...


def pad_histories(
    histories: Sequence[np.ndarray], max_len: int | None, device: torch.device | str = "cpu"
) -> torch.Tensor:
    """Left-pad histories to one (B, L) int64 tensor, keeping the last ``max_len`` items.

    L is ``max_len`` when given, else the longest history (at least 1, so an all-empty
    batch is one column of padding).
    """
    lengths = [len(history) for history in histories]
    width = max_len if max_len is not None else max(max(lengths, default=0), 1)
    batch = np.full((len(histories), width), PAD, dtype=np.int64)
    for row, history in enumerate(histories):
        tail = np.asarray(history[-width:] if width else history[:0], dtype=np.int64)
        if len(tail):
            batch[row, width - len(tail) :] = tail
    return torch.from_numpy(batch).to(device)


class TorchModuleRecommender:
    """Adapter that wraps a user's own ``torch.nn.Module`` into the model protocol.

    ``module(histories)`` must map a (B, L) int64 tensor of left-padded item ids to
    (B, n_items + 1) scores. The module is put in eval mode and called under
    ``torch.no_grad`` by ``score``.
    """

    def __init__(self, module: torch.nn.Module, n_items: int, *, name: str = "custom", max_len: int | None = 50):
        self.module = module
        self.n_items = int(n_items)
        self.name = name
        self.max_len = max_len
        parameter = next(module.parameters(), None)
        self.device = parameter.device if parameter is not None else torch.device("cpu")

    @torch.no_grad()
    def score(self, histories: torch.Tensor) -> torch.Tensor:
        self.module.eval()
        scores = self.module(histories.to(self.device))
        if scores.shape != (histories.shape[0], self.n_items + 1):
            raise ValueError(
                f"{type(self.module).__name__} returned scores of shape {tuple(scores.shape)}; "
                f"expected (batch, n_items + 1) = ({histories.shape[0]}, {self.n_items + 1})."
            )
        return scores.float()
