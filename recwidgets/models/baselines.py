"""Non-sequential baselines behind the model protocol: most-popular items and EASE."""

from __future__ import annotations

import logging
import math

import numpy as np
import torch

from recwidgets.data.log import PAD
from recwidgets.data.split import Split, require_split
from recwidgets.errors import ConfigError, DataError
from recwidgets.training.trainer import resolve_device

logger = logging.getLogger(__name__)


def _as_batch(histories, device: torch.device) -> torch.Tensor:
    """Accept a (B, L) tensor or a list of item-id arrays; return a (B, L) int64 tensor on ``device``."""
    from recwidgets.models.base import pad_histories

    if isinstance(histories, torch.Tensor):
        if histories.dim() == 1:
            histories = histories.unsqueeze(0)
        return histories.to(device, dtype=torch.long)
    return pad_histories(list(histories), None, device)


class Popularity:
    """Score every item by its number of training interactions, whatever the history.

    Scores are the counts themselves as float32, and column 0 (padding) is 0. Items with
    equal counts get equal scores, which the evaluation's tie rule orders. No random
    tie-break is added, so results are deterministic.
    """

    name = "popularity"
    max_len = None

    def __init__(self, *, device: str | torch.device = "cpu"):
        self.device = resolve_device(device)
        self.n_items = 0
        self.counts: torch.Tensor | None = None

    def fit(self, split: Split) -> "Popularity":
        """Count training interactions per item and return ``self``."""
        require_split(split, "Popularity.fit")
        counts = split.train_popularity().astype(np.float32)
        counts[PAD] = 0.0
        self.counts = torch.from_numpy(counts).to(self.device)
        self.n_items = split.log.n_items
        return self

    @torch.no_grad()
    def score(self, histories) -> torch.Tensor:
        """Return the (B, n_items + 1) training counts, one identical row per history."""
        if self.counts is None:
            raise ConfigError("this Popularity model is not fitted; call fit(split) first.")
        batch = _as_batch(histories, self.device)
        return self.counts.unsqueeze(0).expand(batch.shape[0], -1).clone()


#: Default memory budget for EASE's dense item-by-item matrices, in bytes (4 GiB).
EASE_MEMORY_BUDGET = 4 * 2**30


class EASE:
    """Embarrassingly Shallow Autoencoder (Steck, "Embarrassingly Shallow Autoencoders for
    Sparse Data", WWW 2019).

    From the binary user-by-item training matrix X, the item-by-item weights are the closed
    form ``B = I - P diag(1 / diag(P))`` with ``P = (X^T X + lambda I)^-1``, which makes
    ``diag(B) = 0`` so no item predicts itself. A history's scores are its multi-hot vector
    times B. ``regularization`` is lambda (default 500).

    The fit needs about three dense n_items x n_items matrices at once. A catalog that would
    need more than ``memory_budget`` bytes for them raises ``ConfigError`` before any
    allocation.
    ``dtype`` is the precision of the fit and the stored weights.
    """

    name = "ease"
    max_len = None

    def __init__(
        self,
        regularization: float = 500.0,
        *,
        memory_budget: int = EASE_MEMORY_BUDGET,
        dtype: torch.dtype = torch.float32,
        device: str | torch.device = "cpu",
    ):
        if isinstance(regularization, bool) or not isinstance(regularization, (int, float)) or not (
            math.isfinite(regularization) and regularization > 0
        ):
            raise ConfigError(f"EASE regularization={regularization!r} is invalid; pass a positive number such as 500.")
        if dtype not in (torch.float32, torch.float64):
            raise ConfigError(f"EASE dtype={dtype!r} is invalid; use torch.float32 or torch.float64.")
        self.regularization = float(regularization)
        self.memory_budget = int(memory_budget)
        self.dtype = dtype
        self.device = resolve_device(device)
        self.n_items = 0
        self.weights: torch.Tensor | None = None

    def required_bytes(self, n_items: int) -> int:
        """Estimate the peak memory of a fit: three dense (n_items + 1)^2 matrices."""
        itemsize = torch.finfo(self.dtype).bits // 8
        return 3 * (n_items + 1) ** 2 * itemsize

    def fit(self, split: Split) -> "EASE":
        """Compute the item-by-item weights from the training interactions and return ``self``."""
        require_split(split, "EASE.fit")
        n_items = split.log.n_items
        needed = self.required_bytes(n_items)
        if needed > self.memory_budget:
            raise ConfigError(
                f"EASE on {n_items} items needs about {needed / 2**30:.1f} GiB for its dense item-by-item "
                f"matrices, over memory_budget={self.memory_budget / 2**30:.1f} GiB. Filter rare items "
                "(a higher k-core) or raise memory_budget if the machine has the memory."
            )
        if len(split.train) == 0:
            raise DataError("the split has no training interactions; EASE needs at least one.")

        gram = self._gram(split.train["user"].to_numpy(), split.train["item"].to_numpy(), n_items)

        # P = (X^T X + lambda I)^-1 over real items; B = I - P diag(1 / diag(P)), so diag(B) = 0.
        gram.diagonal().add_(self.regularization)
        weights = torch.linalg.inv(gram)
        del gram
        weights.div_(-weights.diagonal().clone().unsqueeze(0))  # in place: -P_ij / P_jj
        weights.diagonal().zero_()

        full = torch.zeros(n_items + 1, n_items + 1, dtype=self.dtype, device=self.device)
        full[1:, 1:] = weights  # row and column 0 stay 0 for padding
        self.weights = full
        self.n_items = n_items
        logger.info("fitted EASE on %d items with regularization %.1f", n_items, self.regularization)
        return self

    def _gram(self, users: np.ndarray, items: np.ndarray, n_items: int) -> torch.Tensor:
        """Return the dense (n_items, n_items) matrix X^T X of the binary user-by-item matrix X."""
        pairs = np.unique(np.stack([users, items - 1], axis=1), axis=0)  # repeat interactions count once
        user_index = np.unique(pairs[:, 0], return_inverse=True)[1].reshape(-1)
        n_users = int(user_index.max()) + 1
        gram = torch.zeros(n_items, n_items, dtype=self.dtype, device=self.device)

        # Dense blocks of users bound the size of X held at once to chunk x n_items.
        chunk = max(1, min(n_users, 2**22 // max(n_items, 1)))
        order = np.argsort(user_index, kind="stable")
        user_index, columns = user_index[order], pairs[order, 1]
        bounds = np.searchsorted(user_index, np.arange(0, n_users + chunk, chunk))
        for start, stop in zip(bounds[:-1], bounds[1:]):
            if stop <= start:
                continue
            rows = torch.from_numpy(user_index[start:stop] - user_index[start]).to(self.device)
            block = torch.zeros(int(rows.max()) + 1, n_items, dtype=self.dtype, device=self.device)
            block[rows, torch.from_numpy(columns[start:stop]).to(self.device)] = 1.0
            gram.addmm_(block.t(), block)
        return gram

    @torch.no_grad()
    def score(self, histories) -> torch.Tensor:
        """Return float32 scores (B, n_items + 1): each history's multi-hot vector times B."""
        if self.weights is None:
            raise ConfigError("this EASE model is not fitted; call fit(split) first.")
        batch = _as_batch(histories, self.device)
        multi_hot = torch.zeros(batch.shape[0], self.n_items + 1, dtype=self.dtype, device=self.device)
        multi_hot.scatter_(1, batch, 1.0)
        multi_hot[:, PAD] = 0.0
        return (multi_hot @ self.weights).float()
