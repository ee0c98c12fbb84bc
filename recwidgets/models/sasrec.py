"""SASRec: self-attentive sequential recommendation.

Kang & McAuley, "Self-Attentive Sequential Recommendation", ICDM 2018. A stack of causal
self-attention blocks reads a left-padded item sequence. The hidden state at each position
is scored against the item embedding table (input and output embeddings are tied) to
predict the next item.
"""

from __future__ import annotations

import logging
import math
import os
import warnings
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch import nn

from recwidgets.data.log import PAD
from recwidgets.data.split import Split, require_split
from recwidgets.errors import ConfigError, DataError
from recwidgets.models.base import pad_histories
from recwidgets.training.checkpoint import history_from_plain, history_to_plain, load_checkpoint, save_checkpoint
from recwidgets.training.losses import full_softmax_loss, sampled_bce_loss
from recwidgets.training.sequences import WINDOW_POLICIES, iterate_batches, next_item_windows
from recwidgets.training.trainer import TrainingWarning, fit_loop, resolve_device, seed_everything

logger = logging.getLogger(__name__)

CHECKPOINT_FORMAT = "recwidgets.sasrec"
LOSSES = ("ce", "bce")

#: Overrides for a command-line demo that must finish in minutes on a CPU. Measured on
#: ML-100K leave-last-out, one torch thread, a 2-core VM and torch 2.13 CPU: an epoch took
#: 4 to 5 s of CPU time including validation. With seed 2020 validation NDCG@10 reached
#: 0.114 at epoch 39 (189 s CPU), against 0.124 at its best epoch 43. The cap of 40 epochs
#: trades that last gain for a bounded run. Patience 5 stopped seed 1 at epoch 23, so the
#: demo waits 10 validations.
DEMO_OVERRIDES = {"epochs": 40, "patience": 10}


# ---------------------------------------------------------------------------------------
# The torch module


class SelfAttention(nn.Module):
    """Multi-head self-attention with a fused path and an explicit path that returns weights.

    Both paths take ``allowed`` of shape (B, 1, L, L), True where query ``i`` may attend to
    key ``j``. The explicit path gives exactly zero weight to disallowed keys, and all-zero
    rows for queries that may attend to no key (a plain softmax would give NaN there).
    """

    def __init__(self, hidden: int, heads: int, dropout: float):
        super().__init__()
        self.heads = heads
        self.head_dim = hidden // heads
        self.dropout = dropout
        self.qkv = nn.Linear(hidden, 3 * hidden)
        self.out = nn.Linear(hidden, hidden)

    def forward(
        self, x: torch.Tensor, allowed: torch.Tensor, *, return_weights: bool = False
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        batch, length, hidden = x.shape

        # (B, L, 3 * D) -> 3 x (B, H, L, D / H)
        qkv = self.qkv(x).view(batch, length, 3, self.heads, self.head_dim).permute(2, 0, 3, 1, 4)
        query, key, value = qkv[0], qkv[1], qkv[2]
        dropout = self.dropout if self.training else 0.0
        any_key = allowed.any(dim=-1, keepdim=True)  # (B, 1, L, 1)

        if return_weights:
            scores = (query @ key.transpose(-2, -1)) / math.sqrt(self.head_dim)  # (B, H, L, L)
            # A finite fill keeps rows without any allowed key finite (uniform), and the
            # multiplication by ``allowed`` then sets them, and every masked key, to exactly 0.
            scores = scores.masked_fill(~allowed, torch.finfo(scores.dtype).min)
            weights = torch.softmax(scores, dim=-1) * allowed
            context = F.dropout(weights, dropout, self.training) @ value  # (B, H, L, D / H)
        else:
            # Rows without an allowed key may attend everywhere here, so the fused kernel gets no
            # empty row. Their output is overwritten with 0 below, as in the explicit path.
            fused_mask = allowed | ~any_key
            context = F.scaled_dot_product_attention(query, key, value, attn_mask=fused_mask, dropout_p=dropout)
            weights = None

        context = context * any_key
        context = context.transpose(1, 2).reshape(batch, length, hidden)  # (B, L, D)
        return self.out(context), weights


class SASRecBlock(nn.Module):
    """One pre-norm block: ``x + Dropout(Attention(LayerNorm(x)))``, then the same with a
    point-wise feed-forward network ``ReLU(x W1 + b1) W2 + b2``, as in Kang & McAuley (2018)."""

    def __init__(self, hidden: int, heads: int, dropout: float):
        super().__init__()
        self.attention_norm = nn.LayerNorm(hidden)
        self.attention = SelfAttention(hidden, heads, dropout)
        self.feed_forward_norm = nn.LayerNorm(hidden)
        self.feed_forward = nn.Sequential(
            nn.Linear(hidden, hidden), nn.ReLU(), nn.Dropout(dropout), nn.Linear(hidden, hidden)
        )
        self.dropout = nn.Dropout(dropout)

    def forward(
        self, x: torch.Tensor, allowed: torch.Tensor, valid: torch.Tensor, *, return_weights: bool = False
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        attended, weights = self.attention(self.attention_norm(x), allowed, return_weights=return_weights)
        x = x + self.dropout(attended)
        x = x + self.dropout(self.feed_forward(self.feed_forward_norm(x)))

        # The timeline mask: padding positions carry no state into the next block.
        return x * valid.unsqueeze(-1), weights


class SASRecModule(nn.Module):
    """The SASRec network: item and learned position embeddings, attention blocks, a final norm.

    Input is a (B, L) int64 tensor of item ids, left-padded with 0; the last column is the
    most recent item. Inputs longer than ``max_len`` are cut to their last ``max_len``
    columns. Positions are numbered from the right, so column ``j`` of an input of width L
    gets position ``max_len - L + j`` and an item's embedding does not depend on how wide
    the batch was padded.

    ``causal=False`` lets every position attend to later positions too. That leaks the
    future into training and exists only to build a faulty model on purpose (for testing
    diagnostics); subclasses can instead override ``attention_mask``.
    """

    def __init__(
        self,
        n_items: int,
        *,
        max_len: int = 50,
        hidden: int = 64,
        layers: int = 2,
        heads: int = 2,
        dropout: float = 0.2,
        causal: bool = True,
    ):
        super().__init__()
        if hidden % heads:
            raise ConfigError(f"hidden={hidden} is not divisible by heads={heads}; pick hidden as a multiple of heads.")
        self.n_items = int(n_items)
        self.max_len = int(max_len)
        self.hidden = int(hidden)
        self.heads = int(heads)
        self.causal = bool(causal)

        self.item_embedding = nn.Embedding(self.n_items + 1, hidden, padding_idx=PAD)
        self.position_embedding = nn.Embedding(self.max_len, hidden)
        self.embedding_dropout = nn.Dropout(dropout)
        self.blocks = nn.ModuleList(SASRecBlock(hidden, heads, dropout) for _ in range(layers))
        self.final_norm = nn.LayerNorm(hidden)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Initialise embeddings and linear weights with Xavier normal, biases with 0."""
        for module in self.modules():
            if isinstance(module, (nn.Linear, nn.Embedding)):
                nn.init.xavier_normal_(module.weight)
            if isinstance(module, nn.Linear) and module.bias is not None:
                nn.init.zeros_(module.bias)
        with torch.no_grad():
            self.item_embedding.weight[PAD].zero_()

    def attention_mask(self, valid: torch.Tensor) -> torch.Tensor:
        """Return the (B, 1, L, L) boolean mask of keys each query may attend to.

        ``valid`` is (B, L), True at non-padding positions. Padding keys are always
        masked, and padding queries attend to nothing; with ``causal`` set, keys after the
        query are masked too.
        """
        length = valid.shape[1]
        allowed = valid[:, None, None, :] & valid[:, None, :, None]  # (B, 1, L, L)
        if self.causal:
            lower = torch.ones(length, length, dtype=torch.bool, device=valid.device).tril()
            allowed = allowed & lower
        return allowed

    def _clip(self, histories: torch.Tensor) -> torch.Tensor:
        if histories.dim() != 2:
            raise DataError(
                f"histories must be a (batch, length) tensor of item ids; got shape {tuple(histories.shape)}."
            )
        return histories[:, -self.max_len :]

    def forward(
        self, histories: torch.Tensor, *, return_attention: bool = False
    ) -> torch.Tensor | tuple[torch.Tensor, list[torch.Tensor]]:
        """Return hidden states (B, L, D), zero at padding positions.

        With ``return_attention`` the explicit attention path runs and the result is
        ``(hidden, weights)`` where ``weights`` has one (B, H, L, L) tensor per block.
        """
        histories = self._clip(histories)
        length = histories.shape[1]
        valid = histories != PAD  # (B, L)

        positions = torch.arange(self.max_len - length, self.max_len, device=histories.device)
        x = self.item_embedding(histories) * math.sqrt(self.hidden) + self.position_embedding(positions)
        x = self.embedding_dropout(x) * valid.unsqueeze(-1)  # (B, L, D)

        allowed = self.attention_mask(valid)
        weights: list[torch.Tensor] = []
        for block in self.blocks:
            x, layer_weights = block(x, allowed, valid, return_weights=return_attention)
            if return_attention:
                weights.append(layer_weights)

        hidden = self.final_norm(x) * valid.unsqueeze(-1)
        if return_attention:
            return hidden, weights
        return hidden

    def logits(self, hidden: torch.Tensor) -> torch.Tensor:
        """Score hidden states (..., D) against every item: (..., n_items + 1), tied weights."""
        return hidden @ self.item_embedding.weight.t()

    def score_last(self, histories: torch.Tensor) -> torch.Tensor:
        """Return (B, n_items + 1) scores for the item after each history's last position."""
        return self.logits(self.forward(histories)[:, -1, :])


# ---------------------------------------------------------------------------------------
# Configuration


@dataclass(frozen=True)
class SASRecConfig:
    """Hyper-parameters of SASRec and its training.

    ``loss="ce"`` is cross-entropy over the full catalog at every position. Klenitskiy &
    Vasilev ("Turning Dross Into Gold Loss: is BERT4Rec really better than SASRec?", RecSys
    2023) found it clearly stronger than ``"bce"``, the binary loss of the SASRec paper with
    ``n_negatives`` uniformly sampled negatives per position.

    ``windows`` selects how training sequences longer than ``max_len + 1`` are used (see
    ``next_item_windows``). ``"all"`` cuts them into windows so every training item is a
    target once, and ``"last"`` keeps the most recent window only.

    Early stopping watches validation NDCG@10, computed every ``eval_every`` epochs, and
    stops after ``patience`` validations without improvement (``None`` turns it off).
    ``max_grad_norm`` clips the global gradient norm when set. ``causal=False`` builds a
    faulty model that attends to the future, for testing diagnostics.
    """

    max_len: int = 50
    hidden: int = 64
    layers: int = 2
    heads: int = 2
    dropout: float = 0.2
    loss: str = "ce"
    n_negatives: int = 1
    lr: float = 1e-3
    weight_decay: float = 0.0
    batch_size: int = 128
    epochs: int = 200
    patience: int | None = 5
    eval_every: int = 1
    seed: int = 2020
    windows: str = "all"
    max_grad_norm: float | None = None
    causal: bool = True

    def __post_init__(self):
        for name in ("max_len", "hidden", "layers", "heads", "n_negatives", "batch_size", "epochs", "eval_every"):
            _check_int(name, getattr(self, name), minimum=1)
        _check_int("seed", self.seed, minimum=0)
        if self.patience is not None:
            _check_int("patience", self.patience, minimum=1, hint="or None to turn early stopping off")
        if self.hidden % self.heads:
            raise ConfigError(
                f"SASRecConfig.hidden={self.hidden} is not divisible by heads={self.heads}; "
                "pick hidden as a multiple of heads."
            )
        _check_float("dropout", self.dropout, low=0.0, high=1.0, high_open=True)
        _check_float("lr", self.lr, low=0.0, low_open=True)
        _check_float("weight_decay", self.weight_decay, low=0.0)
        if self.max_grad_norm is not None:
            _check_float("max_grad_norm", self.max_grad_norm, low=0.0, low_open=True)
        if self.loss not in LOSSES:
            raise ConfigError(f"SASRecConfig.loss={self.loss!r} is invalid; use one of {LOSSES}.")
        if self.windows not in WINDOW_POLICIES:
            raise ConfigError(f"SASRecConfig.windows={self.windows!r} is invalid; use one of {WINDOW_POLICIES}.")
        if not isinstance(self.causal, bool):
            raise ConfigError(f"SASRecConfig.causal={self.causal!r} is invalid; pass True or False.")

    def to_dict(self) -> dict:
        """Return the configuration as plain data."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "SASRecConfig":
        """Build a configuration from ``to_dict`` output, rejecting unknown keys."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ConfigError(f"unknown SASRecConfig field(s) {unknown}; valid fields are {sorted(known)}.")
        return cls(**data)


def _check_int(name: str, value, *, minimum: int, hint: str = "") -> None:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        extra = f" {hint}" if hint else ""
        raise ConfigError(f"SASRecConfig.{name}={value!r} is invalid; pass an int >= {minimum}{extra}.")


def _check_float(
    name: str, value, *, low: float, high: float | None = None, low_open: bool = False, high_open: bool = False
) -> None:
    ok = isinstance(value, (int, float, np.floating)) and not isinstance(value, bool) and math.isfinite(value)
    if ok:
        ok = value > low if low_open else value >= low
    if ok and high is not None:
        ok = value < high if high_open else value <= high
    if not ok:
        left = "(" if low_open else "["
        if high is None:
            right = "inf)"
        else:
            right = f"{high})" if high_open else f"{high}]"
        raise ConfigError(f"SASRecConfig.{name}={value!r} is invalid; pass a number in {left}{low}, {right}.")


# ---------------------------------------------------------------------------------------
# The recommender


class SASRec:
    """SASRec behind the model protocol: ``fit`` on a split, then ``score`` histories.

    Build it with a config, keyword overrides, or both: ``SASRec(hidden=32, epochs=20)``.
    After ``fit``, ``history`` is a DataFrame with one row per epoch (``epoch``,
    ``train_loss``, ``grad_norm``, ``seconds`` of training without validation, ``finite``,
    ``best_epoch`` and validation columns such as ``val_NDCG@10`` and ``val_HR@10``, NaN on
    epochs without validation),
    ``best_epoch`` is the epoch whose parameters the model has, and ``stop_reason`` records
    why training ended.
    """

    name = "sasrec"

    def __init__(self, config: SASRecConfig | None = None, **overrides):
        if config is not None and not isinstance(config, SASRecConfig):
            raise ConfigError(f"config must be a SASRecConfig; got {type(config).__name__}.")
        known = {f.name for f in fields(SASRecConfig)}
        unknown = sorted(set(overrides) - known)
        if unknown:
            raise ConfigError(f"unknown SASRec option(s) {unknown}; valid options are {sorted(known)}.")
        base = config if config is not None else SASRecConfig()
        self.config = replace(base, **overrides) if overrides else base
        self.module: SASRecModule | None = None
        self.n_items = 0
        self.device = torch.device("cpu")
        self.history = pd.DataFrame()
        self.best_epoch = 0
        self.stop_reason: str | None = None

    @property
    def max_len(self) -> int:
        """Maximum history length the model reads; longer histories are cut to their most recent items."""
        return self.config.max_len

    def __repr__(self) -> str:
        state = f"n_items={self.n_items}, best_epoch={self.best_epoch}" if self.module is not None else "not fitted"
        return f"SASRec({self.config}, {state})"

    # -- training ---------------------------------------------------------------------

    def fit(
        self,
        split: Split,
        *,
        epochs: int | None = None,
        device: str | torch.device = "auto",
        seed: int | None = None,
        progress: bool = True,
        callbacks: Sequence[Callable[[dict], None]] = (),
        validate: bool = True,
    ) -> "SASRec":
        """Train a fresh network on ``split.train_sequences()`` and return ``self``.

        ``epochs`` and ``seed`` override the config for this call. ``device="auto"`` uses
        CUDA when available, with bf16 autocast there. Python, numpy and torch are seeded
        and the data order comes from the seed, so two CPU fits with the same seed give
        equal parameters. With ``validate`` the model is evaluated on ``split.validation``
        (full ranking, seen items excluded, NDCG@10 and HR@10) every ``eval_every`` epochs,
        training stops early after ``patience`` validations without improvement, and the
        best validated parameters are restored at the end. Training also stops at a NaN or
        infinite loss, with a ``TrainingWarning`` and ``finite=False`` in ``history``.

        Each callback receives one dict per event, keyed by ``"event"``:

        - ``"batch"``: ``epoch``, ``batch`` (from 1), ``n_batches``, ``loss``;
        - ``"epoch"``: ``epoch``, ``train_loss``, ``grad_norm``, ``seconds``, ``finite``,
          ``best_epoch``, and on validated epochs ``val_NDCG@10``, ``val_HR@10`` and any
          other metric that evaluation returns, prefixed with ``val_``;
        - ``"end"``: ``best_epoch``, ``best_value`` (validation NDCG@10 or None),
          ``stop_reason`` (``"max epochs"``, ``"early stopping"`` or ``"non-finite loss"``),
          ``epochs_run``.
        """
        require_split(split, "SASRec.fit")
        config = self.config
        epochs = config.epochs if epochs is None else epochs
        if isinstance(epochs, bool) or not isinstance(epochs, (int, np.integer)) or epochs < 1:
            raise ConfigError(f"epochs={epochs!r} is invalid; pass an int >= 1.")
        seed = config.seed if seed is None else seed
        device = resolve_device(device)
        rng = seed_everything(seed)

        n_items = split.log.n_items
        if n_items < 2:
            raise DataError(f"the catalog has {n_items} item(s); SASRec needs at least 2.")
        inputs, targets = next_item_windows(split.train_sequences(), config.max_len, config.windows)
        if len(inputs) == 0:
            raise DataError(
                "no training user has 2 or more interactions, so there is no next-item target to learn; "
                "use a log with longer user sequences."
            )

        module = SASRecModule(
            n_items,
            max_len=config.max_len,
            hidden=config.hidden,
            layers=config.layers,
            heads=config.heads,
            dropout=config.dropout,
            causal=config.causal,
        ).to(device)
        self.module, self.n_items, self.device = module, int(n_items), device
        optimizer = torch.optim.AdamW(
            module.parameters(), lr=config.lr, betas=(0.9, 0.98), weight_decay=config.weight_decay
        )
        negatives_generator = torch.Generator().manual_seed(int(seed))
        n_batches = math.ceil(len(inputs) / config.batch_size)
        logger.info(
            "training SASRec on %d windows (%d batches per epoch) for up to %d epochs on %s",
            len(inputs),
            n_batches,
            epochs,
            device,
        )

        def loss_fn(network: SASRecModule, batch) -> torch.Tensor:
            batch_inputs, batch_targets = (tensor.to(device, non_blocking=True) for tensor in batch)
            hidden = network(batch_inputs)
            weight = network.item_embedding.weight
            if config.loss == "ce":
                return full_softmax_loss(hidden, batch_targets, weight)
            return sampled_bce_loss(hidden, batch_targets, weight, config.n_negatives, negatives_generator)

        result = fit_loop(
            module,
            lambda epoch: iterate_batches(inputs, targets, config.batch_size, rng),
            loss_fn,
            optimizer,
            epochs=int(epochs),
            device=device,
            autocast=True,
            validate=self._validator(split) if validate else None,
            monitor="val_NDCG@10",
            patience=config.patience,
            eval_every=config.eval_every,
            max_grad_norm=config.max_grad_norm,
            callbacks=callbacks,
            progress=progress,
            n_batches=n_batches,
        )
        module.eval()
        self.history = pd.DataFrame(result.history)
        self.best_epoch = result.best_epoch
        self.stop_reason = result.stop_reason
        return self

    def _validator(self, split: Split) -> Callable[[], dict[str, float]] | None:
        """Return a function that evaluates on the validation part, or None when it cannot."""
        if not split.validation.has_target().any():
            warnings.warn(
                "the split has no validation targets, so training runs without early stopping; "
                "pass validate=False to silence this.",
                TrainingWarning,
                stacklevel=3,
            )
            return None
        try:
            from recwidgets.evaluation import evaluate
        except ImportError as error:
            warnings.warn(
                f"recwidgets.evaluation is unavailable ({error}); training runs without validation.",
                TrainingWarning,
                stacklevel=3,
            )
            return None

        def validate() -> dict[str, float]:
            result = evaluate(self, split, part="validation", k=(10,), n_bootstrap=0)
            return {f"val_{label}": float(value) for label, value in result.metrics["value"].items()}

        return validate

    # -- inference --------------------------------------------------------------------

    def _fitted(self) -> SASRecModule:
        if self.module is None:
            raise ConfigError("this SASRec model is not fitted; call fit(split) or SASRec.load(path) first.")
        return self.module

    def _as_batch(self, histories) -> torch.Tensor:
        """Accept a (B, L) tensor or a list of item-id arrays; return a (B, L) tensor on the device."""
        if isinstance(histories, torch.Tensor):
            if histories.dim() == 1:
                histories = histories.unsqueeze(0)
            return histories.to(self.device, dtype=torch.long)
        return pad_histories(list(histories), self.max_len, self.device)

    @torch.no_grad()
    def score(self, histories) -> torch.Tensor:
        """Return float32 scores (B, n_items + 1) for the item after each left-padded history."""
        module = self._fitted()
        module.eval()
        return module.score_last(self._as_batch(histories)).float()

    @torch.no_grad()
    def hidden(self, histories) -> torch.Tensor:
        """Return the final hidden states (B, L, D), zero at padding positions (eval mode)."""
        module = self._fitted()
        module.eval()
        return module(self._as_batch(histories))

    @torch.no_grad()
    def attention(self, histories) -> list[torch.Tensor]:
        """Return attention weights, one (B, H, L, L) tensor per block, rows are queries (eval mode).

        Padding keys and, for the causal model, later keys get exactly 0; each non-padding
        query's row sums to 1; rows of padding queries are all 0.
        """
        module = self._fitted()
        module.eval()
        _, weights = module(self._as_batch(histories), return_attention=True)
        return weights

    @torch.no_grad()
    def item_embeddings(self) -> torch.Tensor:
        """Return the (n_items + 1, D) item embedding table; row 0 is padding and stays 0."""
        return self._fitted().item_embedding.weight.detach().clone()

    # -- persistence ------------------------------------------------------------------

    def save(self, path: str | os.PathLike) -> Path:
        """Write parameters, config, catalog size and training history to ``path``.

        The file contains plain data and tensors only, so ``SASRec.load`` reads it with
        ``torch.load(..., weights_only=True)``.
        """
        module = self._fitted()
        return save_checkpoint(
            path,
            {
                "config": self.config.to_dict(),
                "n_items": self.n_items,
                "state_dict": module.state_dict(),
                "history": history_to_plain(self.history),
                "best_epoch": self.best_epoch,
                "stop_reason": self.stop_reason,
            },
            kind=CHECKPOINT_FORMAT,
        )

    @classmethod
    def load(cls, path: str | os.PathLike, device: str | torch.device = "auto") -> "SASRec":
        """Read a model written by ``save`` onto ``device`` (``"auto"`` picks CUDA when available)."""
        data = load_checkpoint(path, kind=CHECKPOINT_FORMAT)
        model = cls(SASRecConfig.from_dict(data["config"]))
        device = resolve_device(device)
        config = model.config
        module = SASRecModule(
            int(data["n_items"]),
            max_len=config.max_len,
            hidden=config.hidden,
            layers=config.layers,
            heads=config.heads,
            dropout=config.dropout,
            causal=config.causal,
        )
        module.load_state_dict(data["state_dict"])
        module.to(device).eval()
        model.module, model.n_items, model.device = module, int(data["n_items"]), device
        model.history = history_from_plain(data.get("history"))
        model.best_epoch = int(data.get("best_epoch") or 0)
        model.stop_reason = data.get("stop_reason")
        return model
