"""Faithfulness of attributions: deletion and insertion curves over a user's history.

An attribution method orders the history items from most to least important. The
*deletion* curve removes items in that order, most important first, and re-scores the
target after each removal. The *insertion* curve starts from an empty history and adds
the items back in the same order (Petsiuk, Das and Saenko, "RISE: Randomized Input
Sampling for Explanation of Black-box Models", BMVC 2018, for images; Samek et al.,
"Evaluating the visualization of what a deep neural network has learned", IEEE TNNLS 2017).
A faithful order makes the deletion curve fall fast (low area under it) and the insertion
curve rise fast (high area). Absent items are hidden by the same rule as in the Shapley
value function (``absence="remove"`` re-packs the history, ``"pad"`` pads in place).

Methods compared here:

- ``shap``: Shapley values of the same output (:mod:`recwidgets.explain.shap_values`).
- ``attention``: weights of the last layer's last query, averaged over heads, for models
  with ``attention(histories) -> list of (B, H, L, L)``.
- ``gradient``: gradient x input on the item embeddings, summed over the embedding
  dimension (Shrikumar et al., "Not Just a Black Box", 2016), for models whose torch
  module exposes an item ``nn.Embedding`` and a differentiable forward.
- ``random``: a seeded random order, the baseline every method should beat.

The area under a curve is normalised by its length: the trapezoid rule over the fraction
of history items removed (or inserted), from 0 to 1, so it is the mean output along the
curve, in output units.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping, Sequence
from statistics import NormalDist

import numpy as np
import pandas as pd
import torch
from torch import nn

from recwidgets.errors import ConfigError
from recwidgets.explain.shap_values import ABSENCE_MODES, OUTPUTS, HistoryValueFunction, ShapExplainer

logger = logging.getLogger(__name__)

METHODS = ("shap", "attention", "gradient", "random")
CURVES = ("deletion", "insertion")

__all__ = [
    "METHODS",
    "AttributionUnavailable",
    "attention_attribution",
    "curve_auc",
    "deletion_insertion_curves",
    "faithfulness_curves",
    "faithfulness_table",
    "gradient_attribution",
]


class AttributionUnavailable(ConfigError):
    """An attribution method cannot run on this model (no attention weights, no embeddings)."""


# ---------------------------------------------------------------------------------------
# Attribution methods other than Shapley values
# ---------------------------------------------------------------------------------------


def attention_attribution(model, value_fn: HistoryValueFunction) -> np.ndarray:
    """Return the last layer's attention from the last query to each player, mean over heads: (P,).

    The attention is read on the full history, the input of the explained output.
    """
    if not callable(getattr(model, "attention", None)):
        raise AttributionUnavailable(
            f"{type(model).__name__} has no attention(histories) method, so there are no attention weights "
            "to rank history items by."
        )
    players = value_fn.n_players
    histories = value_fn.histories(np.ones((1, players), dtype=bool))
    with torch.no_grad():
        weights = model.attention(histories)
    last = weights[-1]  # a list of layers or a stacked (layers, B, H, L, L) tensor
    if last.dim() != 4:
        raise AttributionUnavailable(
            f"{type(model).__name__}.attention returned a layer of shape {tuple(last.shape)}; expected "
            "(batch, heads, length, length)."
        )
    row = last[0, :, -1, :].double().mean(dim=0).cpu().numpy()  # (L,): last query, mean over heads
    return row[value_fn.player_columns()]


def _item_embedding(module: nn.Module, n_items: int) -> nn.Embedding | None:
    embedding = getattr(module, "item_embedding", None)
    if isinstance(embedding, nn.Embedding):
        return embedding
    candidates = [m for m in module.modules() if isinstance(m, nn.Embedding) and m.num_embeddings == n_items + 1]
    return candidates[0] if len(candidates) == 1 else None


def _differentiable_forward(model):
    """Return (module, forward) where forward maps (B, L) ids to (B, n_items + 1) scores with autograd."""
    module = getattr(model, "module", None)
    if isinstance(module, nn.Module):
        if callable(getattr(module, "score_last", None)):
            return module, module.score_last
        return module, module
    if isinstance(model, nn.Module):
        return model, model
    return None, None


def gradient_attribution(model, value_fn: HistoryValueFunction) -> np.ndarray:
    """Return gradient x input on the item embeddings of the full history, summed over dimensions: (P,).

    The gradient is that of the explained output (``value_fn.output_tensor``). The item
    embedding's output is replaced by a leaf tensor through a forward hook, so frozen
    weights work too. The module runs in eval mode and its training flag is restored.
    """
    module, forward = _differentiable_forward(model)
    if module is None:
        raise AttributionUnavailable(
            f"{type(model).__name__} exposes no torch module (a .module attribute or the model itself), so "
            "gradients with respect to item embeddings cannot be taken."
        )
    embedding = _item_embedding(module, model.n_items)
    if embedding is None:
        raise AttributionUnavailable(
            f"{type(module).__name__} has no item embedding (an nn.Embedding named item_embedding, or a single "
            f"nn.Embedding with n_items + 1 = {model.n_items + 1} rows), so gradient x input has no input."
        )

    captured: dict[str, torch.Tensor] = {}

    def replace_output(_module, _inputs, output):
        leaf = output.detach().requires_grad_(True)
        captured["embeddings"] = leaf
        return leaf

    histories = value_fn.histories(np.ones((1, value_fn.n_players), dtype=bool))
    was_training = module.training
    handle = embedding.register_forward_hook(replace_output)
    try:
        module.eval()
        with torch.enable_grad():
            scores = forward(histories)
            value = value_fn.output_tensor(scores).sum()
            if not value.requires_grad:
                raise AttributionUnavailable(
                    f"the output of {type(module).__name__} does not depend on its item embeddings through "
                    "autograd (is the forward run under torch.no_grad?)."
                )
            value.backward()
    finally:
        handle.remove()
        module.train(was_training)
    leaf = captured["embeddings"]  # (1, L, D)
    contribution = (leaf.grad * leaf.detach()).sum(dim=-1)[0].double().cpu().numpy()  # (L,)
    return contribution[value_fn.player_columns()]


def _attributions(
    method: str, model, value_fn: HistoryValueFunction, history, explainer: ShapExplainer, rng: np.random.Generator
) -> np.ndarray:
    if method == "shap":
        explanation = explainer.explain(history, value_fn.target, versus=value_fn.versus, progress=False)
        return np.asarray(explanation.values)[value_fn.real]
    if method == "attention":
        return attention_attribution(model, value_fn)
    if method == "gradient":
        return gradient_attribution(model, value_fn)
    return rng.random(value_fn.n_players)


# ---------------------------------------------------------------------------------------
# Curves
# ---------------------------------------------------------------------------------------


def _order(attributions: np.ndarray) -> np.ndarray:
    """Return player indices from the largest attribution to the smallest; ties go to the more recent item."""
    players = len(attributions)
    return np.lexsort((-np.arange(players), -np.asarray(attributions, dtype=np.float64)))


def deletion_insertion_curves(value_fn: HistoryValueFunction, order: Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
    """Return the deletion and insertion curves for one order of the players, each of shape (P + 1,).

    Point k of the deletion curve scores the history without the first k players of
    ``order``, and point k of the insertion curve scores the history with only them. Both
    curves come from one batched evaluation of 2 (P + 1) coalitions.
    """
    order = np.asarray(order, dtype=np.int64)
    players = value_fn.n_players
    if sorted(order.tolist()) != list(range(players)):
        raise ConfigError(f"order must be a permutation of the {players} players; got {order.tolist()[:10]}.")
    ranks = np.empty(players, dtype=np.int64)
    ranks[order] = np.arange(players)
    steps = np.arange(players + 1)[:, None]
    inserted = ranks[None, :] < steps  # (P + 1, P): first k players present
    values = value_fn(np.concatenate([~inserted, inserted]))
    return values[: players + 1], values[players + 1 :]


def curve_auc(curve: Sequence[float]) -> float:
    """Return the area under a curve over the fraction 0..1 of players, by the trapezoid rule.

    A one-point curve (no players) has the area of its single value.
    """
    curve = np.asarray(curve, dtype=np.float64)
    if len(curve) == 1:
        return float(curve[0])
    return float(np.trapezoid(curve, dx=1.0 / (len(curve) - 1)))


def _check_options(methods: Sequence[str], output: str, absence: str) -> tuple[str, ...]:
    if isinstance(methods, str):
        methods = (methods,)
    unknown = [method for method in methods if method not in METHODS]
    if unknown or not methods:
        raise ConfigError(f"methods={list(methods)!r} is invalid; use a non-empty subset of {METHODS}.")
    if output not in OUTPUTS:
        raise ConfigError(f"output={output!r} is invalid; use one of {OUTPUTS}.")
    if absence not in ABSENCE_MODES:
        raise ConfigError(f"absence={absence!r} is invalid; use one of {ABSENCE_MODES}.")
    return tuple(methods)


def faithfulness_curves(
    model,
    histories: Sequence,
    *,
    users: Sequence[int] | None = None,
    targets: Sequence[int | None] | None = None,
    methods: Sequence[str] = METHODS,
    output: str = "log_prob",
    absence: str = "remove",
    seed: int = 0,
    shap_options: Mapping | None = None,
    progress: bool | None = None,
) -> tuple[pd.DataFrame, dict[str, str]]:
    """Compute deletion and insertion curves of several attribution methods for many histories.

    ``targets[i]`` is the item explained for ``histories[i]`` (None: its top-1
    recommendation, seen items excluded). ``shap_options`` go to :class:`ShapExplainer`;
    the default is a fixed 32 antithetic pairs, because an order needs less precision
    than values do. A method that cannot run on the model is skipped.

    Returns ``(curves, skipped)``: ``curves`` has one row per point, with columns ``user``,
    ``target``, ``method``, ``curve`` (``"deletion"`` or ``"insertion"``), ``step`` (items
    removed or inserted), ``fraction`` (step / history length) and ``value`` (the output);
    ``skipped`` maps each skipped method to the reason. Histories without items are left out.
    """
    methods = _check_options(methods, output, absence)
    if users is None:
        users = list(range(len(histories)))
    if targets is None:
        targets = [None] * len(histories)
    if not len(users) == len(targets) == len(histories):
        raise ConfigError(
            f"histories, users and targets differ in length ({len(histories)}, {len(users)}, {len(targets)}); "
            "pass one user id and one target (or None) per history."
        )
    options = {"n_pairs": 32, **dict(shap_options or {})}
    explainer = ShapExplainer(model, output=output, absence=absence, seed=seed, **options)
    skipped: dict[str, str] = {}
    rows: list[pd.DataFrame] = []

    from tqdm.auto import tqdm

    show = len(histories) >= 10 if progress is None else progress
    for index in tqdm(range(len(histories)), desc="faithfulness", disable=not show, leave=False):
        value_fn = explainer.value_function(histories[index], targets[index])
        players = value_fn.n_players
        if players == 0:
            continue
        rng = np.random.default_rng([seed, index])
        for method in methods:
            if method in skipped:
                continue
            try:
                attributions = _attributions(method, model, value_fn, histories[index], explainer, rng)
            except AttributionUnavailable as reason:
                skipped[method] = str(reason)
                logger.info("faithfulness: method %r skipped: %s", method, reason)
                continue
            deletion, insertion = deletion_insertion_curves(value_fn, _order(attributions))
            steps = np.arange(players + 1)
            for name, curve in zip(CURVES, (deletion, insertion)):
                rows.append(
                    pd.DataFrame(
                        {
                            "user": int(users[index]),
                            "target": value_fn.target,
                            "method": method,
                            "curve": name,
                            "step": steps,
                            "fraction": steps / players,
                            "value": curve,
                        }
                    )
                )
    columns = ["user", "target", "method", "curve", "step", "fraction", "value"]
    frame = pd.concat(rows, ignore_index=True) if rows else pd.DataFrame(columns=columns)
    return frame, skipped


def faithfulness_table(
    model,
    split,
    users: int | Sequence[int] = 100,
    *,
    part: str = "test",
    target: str = "top1",
    methods: Sequence[str] = METHODS,
    output: str = "log_prob",
    absence: str = "remove",
    seed: int = 0,
    confidence: float = 0.95,
    shap_options: Mapping | None = None,
    progress: bool | None = None,
) -> pd.DataFrame:
    """Compare attribution methods by deletion and insertion AUC over many users of a split.

    ``users`` is a count (that many users of ``split.part(part)``, drawn with ``seed``
    among those with a non-empty history) or a list of internal user ids. ``target`` is
    ``"top1"`` (each user's top-1 recommendation, seen items excluded) or ``"next"`` (the
    held-out item).

    Returns one row per method with ``method``, ``n_users``, ``deletion_auc`` and
    ``deletion_ci`` (the mean over users and the half-width of its normal ``confidence``
    interval, lower is more faithful), ``insertion_auc`` and ``insertion_ci`` (higher is
    more faithful), and ``note`` (why a method was skipped).
    """
    if target not in ("top1", "next"):
        raise ConfigError(f"target={target!r} is invalid; use 'top1' or 'next'.")
    if not isinstance(confidence, float) or not 0.0 < confidence < 1.0:
        raise ConfigError(f"confidence={confidence!r} is invalid; pass a float in (0, 1) such as 0.95.")
    methods = _check_options(methods, output, absence)
    evalset = split.part(part)
    eligible = np.array([len(history) > 0 and (target == "top1" or len(goal) > 0)
                         for history, goal in zip(evalset.histories, evalset.targets)])
    rows = _select_users(evalset, eligible, users, seed, part)

    histories = [evalset.histories[row] for row in rows]
    targets = [None if target == "top1" else int(evalset.targets[row][0]) for row in rows]
    curves, skipped = faithfulness_curves(
        model,
        histories,
        users=[int(evalset.users[row]) for row in rows],
        targets=targets,
        methods=methods,
        output=output,
        absence=absence,
        seed=seed,
        shap_options=shap_options,
        progress=progress,
    )
    return _summarise(curves, methods, skipped, confidence)


def _select_users(evalset, eligible: np.ndarray, users, seed: int, part: str) -> np.ndarray:
    if isinstance(users, (int, np.integer)) and not isinstance(users, bool):
        if users < 1:
            raise ConfigError(f"users={users!r} is invalid; pass a count >= 1 or a list of user ids.")
        candidates = np.flatnonzero(eligible)
        count = min(int(users), len(candidates))
        return np.sort(np.random.default_rng(seed).choice(candidates, size=count, replace=False))
    index = {int(user): row for row, user in enumerate(evalset.users)}
    rows = []
    for user in users:
        if int(user) not in index:
            raise ConfigError(f"user {user!r} is not in the {part} part; pick users from split.{part}.users.")
        if eligible[index[int(user)]]:
            rows.append(index[int(user)])
        else:
            logger.info("faithfulness: user %s has an empty history or no target; left out", user)
    return np.asarray(rows, dtype=np.int64)


def _summarise(curves: pd.DataFrame, methods, skipped: Mapping[str, str], confidence: float) -> pd.DataFrame:
    z = NormalDist().inv_cdf(0.5 + confidence / 2.0)
    aucs = (
        curves.groupby(["method", "curve", "user"], sort=False)["value"].apply(curve_auc).rename("auc").reset_index()
        if len(curves)
        else pd.DataFrame(columns=["method", "curve", "user", "auc"])
    )
    table = []
    for method in methods:
        row = {"method": method, "n_users": 0, "note": skipped.get(method, "")}
        for name in CURVES:
            values = aucs.loc[(aucs["method"] == method) & (aucs["curve"] == name), "auc"].to_numpy(dtype=float)
            row["n_users"] = len(values)
            mean = float(values.mean()) if len(values) else math.nan
            half = float(z * values.std(ddof=1) / math.sqrt(len(values))) if len(values) > 1 else math.nan
            row[f"{name}_auc"], row[f"{name}_ci"] = mean, half
        table.append(row)
    columns = ["method", "n_users", "deletion_auc", "deletion_ci", "insertion_auc", "insertion_ci", "note"]
    return pd.DataFrame(table, columns=columns)
