"""Content fallback for cold users: popularity re-weighted by the genres of the revealed prefix."""

from __future__ import annotations

import logging
import math

import numpy as np
import torch

from recwidgets.data.log import PAD
from recwidgets.data.split import Split
from recwidgets.errors import ConfigError, DataError
from recwidgets.models.baselines import _as_batch
from recwidgets.training.trainer import resolve_device

logger = logging.getLogger(__name__)


class GenrePopularity:
    """Score items by training popularity times the share of the history's genres they carry.

    With ``X`` the binary item-by-genre matrix, the genre profile of a history is
    ``p = sum_i X_i / sum_i |X_i|`` over its items (genre shares summing to 1). An item's
    affinity is the mean profile share over its own genres, ``a_j = X_j . p / |X_j|`` in
    [0, 1], and its score is ``count_j * (smoothing + a_j)``. An empty history, or one
    without genres, gives plain popularity, and items without genres get only the
    smoothing term. Genres come from ``split.log.items["genres"]`` (tuples of str).
    """

    name = "genre-popularity"
    max_len = None

    def __init__(self, *, smoothing: float = 1.0, device: str | torch.device = "cpu"):
        if isinstance(smoothing, bool) or not isinstance(smoothing, (int, float)) or not (
            math.isfinite(smoothing) and smoothing >= 0
        ):
            raise ConfigError(f"GenrePopularity smoothing={smoothing!r} is invalid; pass a number >= 0 such as 0.1.")
        self.smoothing = float(smoothing)
        self.device = resolve_device(device)
        self.n_items = 0
        self.genres: list[str] = []
        self.counts: torch.Tensor | None = None
        self.item_genres: torch.Tensor | None = None

    def fit(self, split: Split) -> "GenrePopularity":
        """Read genres from the log's item table and count training interactions; return ``self``."""
        items = split.log.items
        if items is None or "genres" not in items.columns:
            raise DataError(
                f"the log {split.log.name!r} has no item genres (log.items['genres']); the genre fallback needs "
                "them. Load a data set with genres (ML-100K, ml-latest-small) or leave 'genre' out of the strategies."
            )
        n_items = split.log.n_items
        per_item = [() for _ in range(n_items + 1)]
        for item, genres in items["genres"].items():
            if 0 < int(item) <= n_items and isinstance(genres, (tuple, list)):
                per_item[int(item)] = tuple(str(genre) for genre in genres)
        self.genres = sorted({genre for genres in per_item for genre in genres})
        if not self.genres:
            raise DataError(f"no item of the log {split.log.name!r} has a genre; the genre fallback needs them.")
        column = {genre: index for index, genre in enumerate(self.genres)}
        matrix = np.zeros((n_items + 1, len(self.genres)), dtype=np.float32)
        for item, genres in enumerate(per_item):
            for genre in genres:
                matrix[item, column[genre]] = 1.0

        counts = split.train_popularity().astype(np.float32)
        counts[PAD] = 0.0
        self.counts = torch.from_numpy(counts).to(self.device)
        self.item_genres = torch.from_numpy(matrix).to(self.device)
        self.n_items = n_items
        logger.info("fitted the genre fallback on %d items and %d genres", n_items, len(self.genres))
        return self

    @torch.no_grad()
    def score(self, histories) -> torch.Tensor:
        """Return float32 scores (B, n_items + 1); padding ids in the histories are ignored."""
        if self.counts is None or self.item_genres is None:
            raise ConfigError("this GenrePopularity model is not fitted; call fit(split) first.")
        batch = _as_batch(histories, self.device)
        genre_rows = self.item_genres[batch]  # (B, L, G); padding rows are all 0
        totals = genre_rows.sum(dim=(1, 2), keepdim=False)  # (B,)
        profile = genre_rows.sum(dim=1) / totals.clamp(min=1.0)[:, None]  # (B, G)
        per_item = self.item_genres.sum(dim=1).clamp(min=1.0)  # (N + 1,)
        affinity = (profile @ self.item_genres.t()) / per_item[None, :]  # (B, N + 1)
        scores = self.counts[None, :] * (self.smoothing + affinity)
        scores[:, PAD] = 0.0
        return scores
