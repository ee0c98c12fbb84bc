"""Per-user adaptation of a frozen SASRec: fine-tuning and first-order meta-learning of a small adapter.

A cold user reveals a short prefix of interactions. Instead of retraining the network,
only a small per-user parameter set is adapted: a feature-wise scale and shift of the
final hidden state (a FiLM-style adapter, Perez et al., "FiLM: Visual Reasoning with a
General Conditioning Layer", AAAI 2018)::

    h' = h * (1 + scale) + shift        scale, shift in R^D

The scores are ``h' @ E^T`` with the model's (tied) item embedding table ``E``. Adaptation
takes ``steps`` plain gradient steps on the next-item cross-entropy of the revealed prefix,
where every prefix item is predicted from the items before it. The first item is predicted
from an empty context, whose hidden state is zero, so only ``shift`` learns from it.

- ``finetune`` starts the adapter at the identity (``scale = shift = 0``).
- ``meta`` starts it at initial values meta-learned across the training users, so that a
  few steps on a short prefix adapt well. Tasks are short prefixes of training users: the
  first ``n`` items are the support set and item ``n + 1`` the query. The outer update is
  first-order MAML (Finn et al., "Model-Agnostic Meta-Learning for Fast Adaptation of Deep
  Networks", ICML 2017, section 5.2) or Reptile (Nichol et al., "On First-Order
  Meta-Learning Algorithms", 2018). Meta-learning a user-level initialisation for
  recommendation follows MeLU (Lee et al., "MeLU: Meta-Learned User Preference Estimator
  for Cold-Start Recommendation", KDD 2019).

The shared network is only read: hidden states come from a forward pass in eval mode under
``torch.no_grad``, the item table is detached, and each user's adapter parameters are
separate tensors applied with ``torch.func.functional_call``. Users of one batch adapt in
parallel. Their losses are summed and share no parameter, so each user's gradient is
exactly that of the user's own loss.
"""

from __future__ import annotations

import logging
import math
from dataclasses import asdict, dataclass, replace

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call

from recwidgets.data.log import PAD
from recwidgets.data.split import Split
from recwidgets.errors import ConfigError, DataError
from recwidgets.models.base import pad_histories

logger = logging.getLogger(__name__)

META_METHODS = ("fomaml", "reptile")


@dataclass(frozen=True)
class AdaptationConfig:
    """Settings of per-user adaptation and of meta-training its initial values.

    ``steps`` gradient steps of size ``lr`` (plain SGD) adapt one user's adapter; the same
    values are used inside meta-training, so the meta-learned start suits them. With
    ``scale=False`` only the shift is adapted. Meta-training runs ``meta_steps`` outer
    updates (Adam, learning rate ``meta_lr``) over batches of ``meta_batch`` tasks, each a
    training user and a prefix length drawn uniformly from 1 to ``max_prefix`` (at most the
    user's length minus one). ``meta_method`` is ``"fomaml"`` (first-order MAML: the query
    loss gradient at the adapted parameters) or ``"reptile"`` (the mean step from the start
    to the adapted parameters, adapted on support and query together). ``seed`` fixes the
    task draws.
    """

    steps: int = 5
    lr: float = 1.0
    scale: bool = True
    meta_steps: int = 200
    meta_batch: int = 32
    meta_lr: float = 0.01
    meta_method: str = "fomaml"
    max_prefix: int = 20
    seed: int = 0

    def __post_init__(self):
        for name in ("steps", "meta_steps", "meta_batch", "max_prefix", "seed"):
            value = getattr(self, name)
            minimum = 0 if name in ("steps", "meta_steps", "seed") else 1
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
                raise ConfigError(f"AdaptationConfig.{name}={value!r} is invalid; pass an int >= {minimum}.")
        for name in ("lr", "meta_lr"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not (math.isfinite(value) and value > 0):
                raise ConfigError(f"AdaptationConfig.{name}={value!r} is invalid; pass a positive number.")
        if self.meta_method not in META_METHODS:
            raise ConfigError(f"AdaptationConfig.meta_method={self.meta_method!r} is invalid; use one of {META_METHODS}.")

    def to_dict(self) -> dict:
        """Return the settings as plain data."""
        return asdict(self)


class HiddenStateAdapter(nn.Module):
    """Feature-wise scale and shift of hidden states: ``h * (1 + scale) + shift``.

    The parameters have shape (D,) and start at 0 (the identity). Per-user copies of shape
    (B, D) passed through ``torch.func.functional_call`` adapt each row of a (B, T, D)
    batch separately.
    """

    def __init__(self, hidden: int):
        super().__init__()
        self.scale = nn.Parameter(torch.zeros(hidden))
        self.shift = nn.Parameter(torch.zeros(hidden))

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        """Map (B, T, D) hidden states with (D,) or per-row (B, D) parameters to (B, T, D)."""
        scale, shift = self.scale, self.shift
        if scale.dim() == 2:
            scale, shift = scale[:, None, :], shift[:, None, :]  # (B, D) -> (B, 1, D)
        return hidden * (1.0 + scale) + shift


def _sasrec_module(model) -> nn.Module:
    """Return the network of a fitted SASRec-like model; raise ConfigError otherwise."""
    module = getattr(model, "module", None)
    if module is None or not hasattr(module, "item_embedding") or not isinstance(module, nn.Module):
        raise ConfigError(
            f"{type(model).__name__} has no fitted SASRec network (.module with an item_embedding table); "
            "adaptation needs a fitted recwidgets SASRec. Fit it first, or leave 'finetune' and 'meta' out "
            "of the strategies."
        )
    return module


@torch.no_grad()
def prefix_states(module: nn.Module, histories: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Return (support states, support targets, last state) for left-padded histories.

    ``histories`` (B, L) is cut to the module's ``max_len``. The support states (B, L + 1, D)
    are a zero vector (the empty context) followed by the hidden state at every position.
    The support targets (B, L + 1) are the items these states should predict. The empty
    context predicts the first history item and each position the next history item.
    Padding and the last position get 0 (no target). The last state (B, D) is the hidden
    state after the whole history, the one that scores the next item.
    """
    module.eval()
    histories = histories[:, -module.max_len :]
    batch, length = histories.shape
    hidden = module(histories)  # (B, L, D)
    valid = histories != PAD

    # Position j predicts item j + 1; left padding means a valid position is followed by one.
    following = torch.zeros_like(histories)
    following[:, :-1] = histories[:, 1:]
    following = torch.where(valid, following, torch.zeros_like(following))

    lengths = valid.sum(dim=1)
    first_column = (length - lengths).clamp(max=length - 1)
    first_item = histories.gather(1, first_column[:, None]) * (lengths > 0)[:, None]  # (B, 1)

    empty_context = torch.zeros(batch, 1, hidden.shape[-1], dtype=hidden.dtype, device=hidden.device)
    states = torch.cat([empty_context, hidden], dim=1)  # (B, L + 1, D)
    targets = torch.cat([first_item, following], dim=1)  # (B, L + 1)
    return states, targets, hidden[:, -1, :]


def _next_item_loss(
    adapter: nn.Module, params: dict[str, torch.Tensor], states: torch.Tensor, targets: torch.Tensor, item_weight: torch.Tensor
) -> torch.Tensor:
    """Return the (B,) mean next-item cross-entropy per row over its non-padding targets (0 for none).

    ``states`` is (B, T, D), ``targets`` (B, T) with 0 = no target, ``item_weight`` (N + 1, D).
    """
    adapted = functional_call(adapter, params, (states,))  # (B, T, D)
    logits = adapted @ item_weight.t()  # (B, T, N + 1)
    padding = torch.zeros(logits.shape[-1], dtype=torch.bool, device=logits.device)
    padding[PAD] = True
    logits = logits.masked_fill(padding, float("-inf"))
    losses = F.cross_entropy(
        logits.reshape(-1, logits.shape[-1]), targets.reshape(-1), ignore_index=PAD, reduction="none"
    ).view(targets.shape)
    counts = (targets != PAD).sum(dim=1)
    return losses.sum(dim=1) / counts.clamp(min=1)


def adapt_parameters(
    adapter: HiddenStateAdapter,
    start: dict[str, torch.Tensor],
    states: torch.Tensor,
    targets: torch.Tensor,
    item_weight: torch.Tensor,
    config: AdaptationConfig,
) -> dict[str, torch.Tensor]:
    """Run ``config.steps`` SGD steps per row from ``start`` and return per-row parameters (B, D).

    ``start`` maps ``"scale"`` and ``"shift"`` to (D,) tensors; they are copied, never
    changed. Rows without a support target keep the start values. The returned tensors are
    detached.
    """
    batch = states.shape[0]
    params = {name: value.detach().expand(batch, -1).clone() for name, value in start.items()}
    trainable = ["scale", "shift"] if config.scale else ["shift"]
    item_weight = item_weight.detach()
    states = states.detach()
    for _ in range(config.steps):
        for name in trainable:
            params[name].requires_grad_(True)
        with torch.enable_grad():
            loss = _next_item_loss(adapter, params, states, targets, item_weight).sum()
            grads = torch.autograd.grad(loss, [params[name] for name in trainable])
        for name, grad in zip(trainable, grads):
            params[name] = (params[name] - config.lr * grad).detach()
    return {name: value.detach() for name, value in params.items()}


class AdaptedRecommender:
    """A SASRec whose final hidden state is adapted per history before scoring.

    ``score`` adapts a copy of the adapter from ``start`` (identity for fine-tuning, the
    meta-learned values for meta-learning) on each history with ``config.steps`` gradient
    steps, then scores the next item. The adaptation depends only on the history, so the
    object follows the model protocol and works with ``recwidgets.evaluation.evaluate``.
    The wrapped model's parameters are never changed. Histories longer than ``max_len``
    adapt on their last ``max_len`` items only.

    NOTE: each step holds (B, L + 1, n_items + 1) logits with their gradient, so on large
    catalogs pass a smaller ``batch_size`` to ``evaluate``.
    """

    def __init__(self, model, *, start: dict[str, torch.Tensor] | None = None, config: AdaptationConfig | None = None, name: str | None = None):
        self.base = model
        self.module = _sasrec_module(model)
        self.config = config or AdaptationConfig()
        hidden = int(self.module.item_embedding.weight.shape[1])
        self.adapter = HiddenStateAdapter(hidden).to(self.module.item_embedding.weight.device)
        if start is None:
            start = {name: value.detach().clone() for name, value in self.adapter.named_parameters()}
        missing = {"scale", "shift"} - set(start)
        if missing:
            raise ConfigError(f"start values lack {sorted(missing)}; pass a dict with 'scale' and 'shift' tensors of shape ({hidden},).")
        for key, value in start.items():
            if tuple(value.shape) != (hidden,):
                raise ConfigError(f"start value {key!r} has shape {tuple(value.shape)}; expected ({hidden},) for hidden size {hidden}.")
        self.start = {key: value.detach().clone().to(self.adapter.scale.device) for key, value in start.items()}
        self.name = name or f"{getattr(model, 'name', 'model')}+adapted"
        self.n_items = int(model.n_items)
        self.max_len = model.max_len
        self.device = model.device

    def adapted_parameters(self, histories) -> dict[str, torch.Tensor]:
        """Return the per-history adapter parameters (B, D) after adaptation."""
        batch = histories if isinstance(histories, torch.Tensor) else pad_histories(list(histories), self.max_len, self.device)
        states, targets, _ = prefix_states(self.module, batch.to(self.device))
        return adapt_parameters(self.adapter, self.start, states, targets, self.module.item_embedding.weight, self.config)

    def score(self, histories) -> torch.Tensor:
        """Return float32 scores (B, n_items + 1) after adapting on each history."""
        batch = histories if isinstance(histories, torch.Tensor) else pad_histories(list(histories), self.max_len, self.device)
        if batch.dim() == 1:
            batch = batch.unsqueeze(0)
        batch = batch.to(self.device, dtype=torch.long)
        states, targets, last = prefix_states(self.module, batch)
        item_weight = self.module.item_embedding.weight.detach()
        params = adapt_parameters(self.adapter, self.start, states, targets, item_weight, self.config)
        with torch.no_grad():
            adapted = functional_call(self.adapter, params, (last[:, None, :],))[:, 0, :]  # (B, D)
            return (adapted @ item_weight.t()).float()


@dataclass(frozen=True, eq=False)
class MetaTrainingResult:
    """Meta-learned adapter start values and the training record.

    ``start`` maps ``"scale"`` and ``"shift"`` to (D,) tensors. ``history`` has one row per
    outer step: ``step``, ``query_loss_start`` (query cross-entropy of the batch's tasks
    with the start values, no adaptation) and ``query_loss_adapted`` (after adaptation).
    """

    start: dict[str, torch.Tensor]
    history: pd.DataFrame
    config: AdaptationConfig
    n_tasks_users: int


def meta_train(model, split: Split, config: AdaptationConfig | None = None) -> MetaTrainingResult:
    """Meta-learn the adapter's start values on short prefixes of the training users of ``split``.

    Each outer step draws ``meta_batch`` tasks: a training user with at least two training
    interactions and a prefix length ``n`` from 1 to ``min(max_prefix, length - 1)``. The
    first ``n`` training items are the support set and item ``n + 1`` the query. The
    adapter is adapted on the support set exactly as at evaluation time, and the start
    values move by the first-order MAML or the Reptile rule (see the module docstring)
    with Adam. Task draws come from ``numpy.random.default_rng(config.seed)``, so two calls
    with the same model, split and config return equal start values (on the CPU).
    The model's parameters are never changed.

    NOTE: the tasks come from the users the model was trained on, whose next items were
    training targets, so per-user steps gain less on them than on new users. On ML-100K
    (bench/bench_coldstart.py) the learned start values account for most of the drop in
    query loss.
    """
    config = config or AdaptationConfig()
    module = _sasrec_module(model)
    device = module.item_embedding.weight.device
    sequences = [np.asarray(sequence) for sequence in split.train_sequences()]
    eligible = np.array([user for user, sequence in enumerate(sequences) if len(sequence) >= 2], dtype=np.int64)
    if len(eligible) == 0:
        raise DataError("no training user has 2 or more training interactions, so meta-training has no task.")

    adapter = HiddenStateAdapter(int(module.item_embedding.weight.shape[1])).to(device)
    start = dict(adapter.named_parameters())
    optimizer = torch.optim.Adam(start.values(), lr=config.meta_lr)
    item_weight = module.item_embedding.weight.detach()
    rng = np.random.default_rng(config.seed)
    max_len = int(module.max_len)

    records = []
    for step in range(config.meta_steps):
        users = rng.choice(eligible, size=config.meta_batch, replace=len(eligible) < config.meta_batch)
        limits = np.array([min(config.max_prefix, len(sequences[user]) - 1) for user in users])
        prefix_lengths = rng.integers(1, limits + 1)
        prefixes = [sequences[user][:n] for user, n in zip(users, prefix_lengths)]
        queries = torch.tensor([sequences[user][n] for user, n in zip(users, prefix_lengths)], device=device)

        states, targets, last = prefix_states(module, pad_histories(prefixes, max_len, device))
        query_targets = queries[:, None]  # (B, 1)
        fixed = {name: value.detach() for name, value in start.items()}
        with torch.no_grad():
            loss_start = _next_item_loss(adapter, fixed, last[:, None, :], query_targets, item_weight).mean()

        if config.meta_method == "fomaml":
            adapted = adapt_parameters(adapter, fixed, states, targets, item_weight, config)
            for value in adapted.values():
                value.requires_grad_(True)
            with torch.enable_grad():
                query_loss = _next_item_loss(adapter, adapted, last[:, None, :], query_targets, item_weight)
                grads = torch.autograd.grad(query_loss.mean(), list(adapted.values()))
            # First-order MAML: the query gradient at the adapted values, averaged over tasks,
            # replaces the gradient with respect to the start values.
            outer = {name: grad.mean(dim=0) for name, grad in zip(adapted, grads)}
            loss_adapted = float(query_loss.detach().mean())
        else:
            # Reptile adapts on the whole task (support and query), then moves the start toward
            # the mean adapted values: the outer "gradient" is start - mean(adapted).
            task_states = torch.cat([states, last[:, None, :]], dim=1)
            task_targets = torch.cat([targets, query_targets], dim=1)
            adapted = adapt_parameters(adapter, fixed, task_states, task_targets, item_weight, config)
            outer = {name: fixed[name] - adapted[name].mean(dim=0) for name in adapted}
            with torch.no_grad():
                support_only = adapt_parameters(adapter, fixed, states, targets, item_weight, config)
                loss_adapted = float(_next_item_loss(adapter, support_only, last[:, None, :], query_targets, item_weight).mean())

        optimizer.zero_grad(set_to_none=True)
        for name, parameter in start.items():
            if config.scale or name == "shift":
                parameter.grad = outer[name].detach().clone()
        optimizer.step()
        records.append({"step": step + 1, "query_loss_start": float(loss_start), "query_loss_adapted": loss_adapted})

    history = pd.DataFrame(records, columns=["step", "query_loss_start", "query_loss_adapted"])
    if len(history):
        tail = history.tail(max(1, len(history) // 10))
        logger.info(
            "meta-trained adapter (%s, %d steps): query loss %.4f at the start values, %.4f after adaptation (last 10%%)",
            config.meta_method,
            config.meta_steps,
            tail["query_loss_start"].mean(),
            tail["query_loss_adapted"].mean(),
        )
    learned = {name: value.detach().clone() for name, value in start.items()}
    return MetaTrainingResult(start=learned, history=history, config=replace(config), n_tasks_users=len(eligible))
