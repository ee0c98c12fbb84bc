"""Plant known faults into a clean setup, so that each detector can be tested against its fault.

A :class:`Setup` bundles a log, a split, models and evaluation results. ``clean_setup``
trains a tiny SASRec and the baselines on a split. Every ``plant_*`` function takes a
clean setup and returns a faulty copy. Its ``expected`` field is the finding id that
``diagnose`` must emit at warning level or above. ``also`` lists ids that may fire
alongside, because the fault really causes them (a model that ranks by popularity also
never lists long-tail items, for example).

Models are kept small so that the whole fault suite runs on a CPU in a few minutes.
"""

from __future__ import annotations

import copy
import logging
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field, replace

import numpy as np
import pandas as pd
import torch

from recwidgets.data.log import InteractionLog
from recwidgets.data.split import EvalSet, Split, temporal
from recwidgets.errors import ProtocolWarning
from recwidgets.models.base import pad_histories

logger = logging.getLogger(__name__)

#: A SASRec small enough to train on a few thousand events in seconds on one CPU thread.
TINY_SASREC = {
    "hidden": 32,
    "layers": 1,
    "heads": 1,
    "max_len": 50,
    "dropout": 0.2,
    "lr": 3e-3,
    "epochs": 20,
    "patience": 3,
}

#: Settings of the overfitting fault: a larger model without dropout, far too many epochs on
#: a tiny log and no early stopping. On the 150-user synthetic log (seed 0) validation NDCG@10
#: peaks at epoch 15 and the last three epochs average 32% below the peak.
OVERFIT_SASREC = {
    "hidden": 64,
    "layers": 2,
    "heads": 2,
    "max_len": 50,
    "dropout": 0.0,
    "lr": 3e-3,
    "epochs": 60,
    "patience": None,
}

#: A learning rate at which the first epochs of TINY_SASREC overflow to a NaN loss.
DIVERGING_LR = 20.0

#: A learning rate too small to move the weights within a few epochs.
FROZEN_LR = 1e-7


@dataclass
class Setup:
    """A log, a split, trained models and their results, and the fault planted into them.

    ``expected`` is the finding id the planted fault must raise (None for a clean setup).
    ``also`` lists ids that the fault may legitimately raise too.
    """

    name: str
    log: InteractionLog
    split: Split
    models: dict = field(default_factory=dict)
    results: dict = field(default_factory=dict)
    expected: str | None = None
    also: tuple[str, ...] = ()
    description: str = ""

    def diagnose(self, **options):
        """Run ``recwidgets.diagnose.diagnose`` on this setup."""
        from recwidgets.diagnose.engine import diagnose

        return diagnose(split=self.split, models=self.models, results=self.results, log=self.log, **options)

    def derive(self, name: str, expected: str | None, description: str, also: tuple[str, ...] = (), **changes) -> "Setup":
        """Return a copy with a new name, expected id, description and any changed fields."""
        return replace(self, name=name, expected=expected, also=tuple(also), description=description, **changes)


# ---------------------------------------------------------------------------------------
# Training and evaluation helpers


def train_sasrec(split: Split, *, seed: int = 0, **options):
    """Fit a SASRec with ``TINY_SASREC`` settings (overridden by ``options``) on the CPU."""
    from recwidgets.models import SASRec

    settings = {**TINY_SASREC, **options}
    model = SASRec(seed=seed, **settings)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model.fit(split, device="cpu", progress=False)
    return model


def evaluate_models(models: dict, split: Split, **options) -> dict:
    """Evaluate every model on ``split`` without bootstrap; ``options`` go to ``evaluate``."""
    from recwidgets.evaluation import evaluate

    options.setdefault("n_bootstrap", 0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ProtocolWarning)
        return {name: evaluate(model, split, **options) for name, model in models.items()}


def clean_setup(
    log: InteractionLog,
    split: Split | None = None,
    *,
    name: str = "clean",
    sasrec: bool = True,
    ease: bool = True,
    seed: int = 0,
    **sasrec_options,
) -> Setup:
    """Train SASRec (tiny), Popularity and optionally EASE on ``split`` (default: temporal at 0.8)."""
    from recwidgets.models import EASE, Popularity

    split = split if split is not None else temporal(log)
    models = {}
    if sasrec:
        models["sasrec"] = train_sasrec(split, seed=seed, **sasrec_options)
    models["popularity"] = Popularity().fit(split)
    if ease:
        models["ease"] = EASE().fit(split)
    results = evaluate_models(models, split)
    return Setup(name=name, log=log, split=split, models=models, results=results, description="no fault planted")


class ScoreTransform:
    """A model-protocol wrapper that changes another model's scores, to build faulty models.

    ``transform(histories, scores)`` gets the (B, L) padded input and the wrapped model's
    (B, n_items + 1) scores and returns new scores of the same shape.
    """

    def __init__(self, base, transform: Callable[[torch.Tensor, torch.Tensor], torch.Tensor], name: str):
        self.base = base
        self.transform = transform
        self.name = name
        self.n_items = base.n_items
        self.max_len = base.max_len
        self.device = base.device

    @torch.no_grad()
    def score(self, histories: torch.Tensor) -> torch.Tensor:
        return self.transform(histories, self.base.score(histories))


class ConstantModel:
    """A model that gives every item the same score, whatever the history."""

    def __init__(self, n_items: int, name: str = "constant"):
        self.name = name
        self.n_items = int(n_items)
        self.max_len = 50
        self.device = torch.device("cpu")

    def score(self, histories: torch.Tensor) -> torch.Tensor:
        return torch.zeros(histories.shape[0], self.n_items + 1)


def standardise_scores(scores: torch.Tensor) -> torch.Tensor:
    """Return each row of (B, n_items + 1) scores shifted and scaled to mean 0, std 1 over real items."""
    real = scores[:, 1:]
    return (scores - real.mean(dim=1, keepdim=True)) / (real.std(dim=1, keepdim=True) + 1e-9)


# ---------------------------------------------------------------------------------------
# A careless evaluator, for the protocol faults that recwidgets.evaluate does not support


def careless_evaluate(
    model,
    split: Split,
    *,
    part: str = "test",
    k: tuple[int, ...] = (5, 10, 20),
    ties: str = "optimistic",
    average_empty: bool = False,
    exclude_seen: bool = True,
):
    """Evaluate the way a careless script would, and return a result with an honest card.

    ``ties="optimistic"`` ranks a target before every item it ties with (rank = 1 + the
    number of strictly higher candidates); ``"pessimistic"`` ranks it after them, like
    ``recwidgets.evaluate``. ``average_empty`` keeps users without a target as rows whose
    metrics are 0, so they pull every mean down. The card records both choices, which is
    what the protocol detectors read.
    """
    from recwidgets.evaluation.metrics import ACCURACY_METRICS, rank_matrix
    from recwidgets.evaluation.result import EvaluationResult
    from recwidgets.evaluation.segments import activity_segments, popularity_buckets

    evalset = split.part(part)
    keep = np.ones(len(evalset), dtype=bool) if average_empty else evalset.has_target()
    evalset = evalset.subset(keep)
    k_max = max(k)
    ranks: list[np.ndarray] = []
    topk = np.zeros((len(evalset), k_max), dtype=np.int64)
    for start in range(0, len(evalset), 256):
        histories = evalset.histories[start : start + 256]
        with torch.no_grad():
            scores = model.score(pad_histories(histories, model.max_len, model.device)).cpu().double().numpy()
        for offset, (history, target) in enumerate(zip(histories, evalset.targets[start : start + 256])):
            row = scores[offset].copy()
            candidates = np.ones(len(row), dtype=bool)
            candidates[0] = False
            if exclude_seen:
                candidates[np.asarray(history, dtype=np.int64)] = False
            target = np.unique(np.asarray(target, dtype=np.int64))
            candidates[target] = True
            masked = np.where(candidates, row, -np.inf)
            higher = np.array([(masked > row[item]).sum() for item in target], dtype=np.int64)
            if ties == "optimistic":
                ranks.append(1 + higher)
            else:
                equal = np.array([(masked == row[item]).sum() - 1 for item in target], dtype=np.int64)
                ranks.append(1 + higher + equal)
            order = np.lexsort((np.arange(len(masked)), -masked))[:k_max]
            topk[start + offset] = np.where(np.isfinite(masked[order]), order, 0)

    matrix = rank_matrix(ranks)
    per_user = {"user": np.asarray(evalset.users, dtype=np.int64)}
    for name in ("HR", "NDCG"):
        for cutoff in k:
            values = ACCURACY_METRICS[name](matrix, cutoff)
            if average_empty:
                values = np.nan_to_num(values, nan=0.0)
            per_user[f"{name}@{cutoff}"] = values
    per_user = pd.DataFrame(per_user)
    labels = [column for column in per_user.columns if column != "user"]
    metrics = pd.DataFrame(
        {
            "value": [float(per_user[label].mean()) for label in labels],
            "ci_low": np.nan,
            "ci_high": np.nan,
            "n_users": len(per_user),
        },
        index=pd.Index(labels, name="metric"),
    )
    buckets = popularity_buckets(split.train_popularity())
    segments = pd.DataFrame(
        {
            "user": per_user["user"],
            "activity": activity_segments(np.array([len(history) for history in evalset.histories])),
            "target_popularity": [buckets[int(target[0])] if len(target) else "" for target in evalset.targets],
        }
    )
    card = split.card.with_evaluation(
        part=part,
        ranking="full",
        exclude_seen=exclude_seen,
        ties=ties,
        k=tuple(k),
        max_history_len=model.max_len,
        n_evaluated_users=len(per_user),
        users_without_test=int((~evalset.has_target()).sum()),
        model=model.name,
    )
    return EvaluationResult(
        metrics=metrics,
        per_user=per_user,
        topk=topk,
        target_ranks=ranks,
        users=np.asarray(evalset.users, dtype=np.int64),
        segments=segments,
        card=card,
        model_name=str(model.name),
        k=tuple(k),
    )


# ---------------------------------------------------------------------------------------
# Leakage faults


def _with_interactions(log: InteractionLog, frame: pd.DataFrame) -> InteractionLog:
    """Return ``log`` with new internal-id interactions, re-sorted by user and time, ids kept."""
    frame = frame.sort_values(["user", "timestamp"], kind="stable").reset_index(drop=True)
    return replace(log, interactions=frame)


def plant_shifted_targets(clean: Setup, *, fraction: float = 0.2, seed: int = 0) -> Setup:
    """Move the target events of ``fraction`` of the test users to before the training cutoff.

    The split keeps its train, validation and test sets. Only the log's timestamps of those
    target events change, as when a log was split on a clock that disagrees with the event
    times. Models and results are unchanged.
    """
    rng = np.random.default_rng(seed)
    split = clean.split
    latest = int(split.train["timestamp"].max())
    chosen = rng.random(len(split.test)) < fraction
    frame = clean.log.interactions.copy()
    width = clean.log.n_items + 1
    keys = frame["user"].to_numpy() * width + frame["item"].to_numpy()
    for row in np.flatnonzero(chosen):
        user = int(split.test.users[row])
        for item in split.test.targets[row]:
            rows = np.flatnonzero(keys == int(user) * width + int(item))
            # From one hour to ten days before the latest training event.
            frame.loc[rows, "timestamp"] = latest - rng.integers(3_600, 10 * 86_400, len(rows))
    log = _with_interactions(clean.log, frame)
    return clean.derive(
        "shifted test targets",
        "leakage.global_timeline",
        f"{int(chosen.sum())} test targets moved before the training cutoff",
        log=log,
        split=replace(split, log=log),
    )


def plant_train_test_overlap(clean: Setup, *, fraction: float = 0.5, seed: int = 0) -> Setup:
    """Copy the target events of ``fraction`` of the test users into the training data.

    The most-popular baseline is refitted on the leaky training data; SASRec is kept as
    trained, because the detector reads only the split and retraining costs seconds.
    """
    rng = np.random.default_rng(seed)
    split = clean.split
    chosen = np.flatnonzero(rng.random(len(split.test)) < fraction)
    frame = clean.log.interactions
    width = clean.log.n_items + 1
    target_keys = [int(split.test.users[row]) * width + int(item) for row in chosen for item in split.test.targets[row]]
    keys = frame["user"].to_numpy() * width + frame["item"].to_numpy()
    copied = frame[np.isin(keys, target_keys)]
    train = pd.concat([split.train, copied]).sort_values(["user", "timestamp"], kind="stable").reset_index(drop=True)
    leaky = replace(split, train=train, card=replace(split.card, n_train_interactions=len(train)))
    from recwidgets.models import Popularity

    models = {"sasrec": clean.models["sasrec"], "popularity": Popularity().fit(leaky)}
    return clean.derive(
        "test pairs copied into training",
        "leakage.train_test_overlap",
        f"{len(copied)} test target events copied into the training data",
        # Training now contains events from after the cutoff, so every other target precedes it.
        also=("leakage.global_timeline",),
        split=leaky,
        models=models,
        results=evaluate_models(models, leaky),
    )


def plant_target_in_history(clean: Setup) -> Setup:
    """Append each test user's target to their own input history (the off-by-one slice)."""
    split = clean.split
    histories = [
        np.concatenate([history, target[:1]]) if len(target) else history
        for history, target in zip(split.test.histories, split.test.targets)
    ]
    test = EvalSet(split.test.users, histories, split.test.targets)
    leaky = replace(split, test=test)
    models = {name: clean.models[name] for name in ("sasrec", "popularity")}
    return clean.derive(
        "target inside its history",
        "leakage.target_in_history",
        "test histories end with the test target",
        # With tied embeddings the last input item scores high, so the copied target often ranks first.
        also=("leakage.implausible_metrics",),
        split=leaky,
        models=models,
        results=evaluate_models(models, leaky),
    )


class PeekingModel:
    """A model that reads the test targets: it scores each test user's target far above the rest.

    Histories are matched by their items, so any padding width works. Histories that occur
    for several test users get the targets of the last of them.
    """

    def __init__(self, base, split: Split):
        self.base = base
        self.name = "peeking"
        self.n_items, self.max_len, self.device = base.n_items, base.max_len, base.device
        self.answers = {
            self._key(np.asarray(history, dtype=np.int64)): np.asarray(target, dtype=np.int64)
            for history, target in zip(split.test.histories, split.test.targets)
        }

    def _key(self, history: np.ndarray) -> bytes:
        items = history[history != 0]
        if self.max_len is not None:
            items = items[-self.max_len :]
        return items.astype(np.int64).tobytes()

    @torch.no_grad()
    def score(self, histories: torch.Tensor) -> torch.Tensor:
        scores = self.base.score(histories).clone()
        for row, history in enumerate(histories.cpu().numpy()):
            target = self.answers.get(self._key(history))
            if target is not None and len(target):
                scores[row, torch.from_numpy(target)] += 1e3
        return scores


def plant_peeking_model(clean: Setup) -> Setup:
    """Evaluate a model that looks up the test targets of the histories it is given."""
    model = PeekingModel(clean.models["sasrec"], clean.split)
    models = {"peeking": model, "popularity": clean.models["popularity"]}
    return clean.derive(
        "model reads the test targets",
        "leakage.implausible_metrics",
        "the scores of each test target get a large bonus",
        models=models,
        results=evaluate_models(models, clean.split),
    )


# ---------------------------------------------------------------------------------------
# Protocol faults


def plant_sampled_metrics(clean: Setup, *, n_negatives: int = 100) -> Setup:
    """Evaluate with ``n_negatives`` sampled negatives instead of full ranking."""
    models = {name: clean.models[name] for name in ("sasrec", "popularity")}
    return clean.derive(
        "sampled negatives",
        "protocol.sampled_metrics",
        f"metrics over {n_negatives} sampled negatives",
        models=models,
        results=evaluate_models(models, clean.split, sampled=n_negatives),
    )


def plant_seen_items(clean: Setup) -> Setup:
    """Evaluate without excluding the items of each user's history."""
    models = {name: clean.models[name] for name in ("sasrec", "popularity")}
    return clean.derive(
        "seen items kept",
        "protocol.seen_items",
        "history items stay candidates on a log without repeats",
        models=models,
        results=evaluate_models(models, clean.split, exclude_seen=False),
    )


def plant_optimistic_ties(clean: Setup) -> Setup:
    """Evaluate a constant model with ties broken in the target's favour.

    ``recwidgets.evaluate`` has no option for other tie rules, so the result comes from
    ``careless_evaluate``; a constant score then ranks every target first.
    """
    model = ConstantModel(clean.split.log.n_items)
    return clean.derive(
        "optimistic ties",
        "protocol.ties",
        "a constant model evaluated with optimistic ties",
        # Every target at rank 1 is also an implausible result.
        also=("leakage.implausible_metrics",),
        models={"constant": model},
        results={"constant": careless_evaluate(model, clean.split, ties="optimistic")},
    )


def plant_empty_test_users(clean: Setup, *, share: float = 0.3, seed: int = 0) -> Setup:
    """Add users without a test target to the test set and average them in as zeros."""
    rng = np.random.default_rng(seed)
    split = clean.split
    in_test = set(int(user) for user in split.test.users)
    candidates = np.array([user for user in range(1, clean.log.n_users + 1) if user not in in_test])
    extra = rng.choice(candidates, size=min(len(candidates), max(1, int(share * len(split.test)))), replace=False)
    sequences = split.train_sequences()
    users = np.concatenate([split.test.users, extra]).astype(np.int64)
    histories = list(split.test.histories) + [sequences[int(user)] for user in extra]
    targets = list(split.test.targets) + [np.zeros(0, dtype=np.int64) for _ in extra]
    test = EvalSet(users, histories, targets)
    faulty = replace(split, test=test, card=replace(split.card, users_without_test=len(extra)))
    model = clean.models["sasrec"]
    return clean.derive(
        "users without targets averaged in",
        "protocol.empty_test_users",
        f"{len(extra)} users without a test target counted as zeros",
        split=faulty,
        models={"sasrec": model, "popularity": clean.models["popularity"]},
        results={"sasrec": careless_evaluate(model, faulty, ties="pessimistic", average_empty=True)},
    )


# ---------------------------------------------------------------------------------------
# Training faults


def plant_overfitting(clean: Setup, *, n_users: int = 150, seed: int = 0) -> Setup:
    """Train a large SASRec far too long on a tiny synthetic log, without early stopping."""
    from recwidgets.models import Popularity
    from recwidgets.synthetic import synthetic_log

    log = synthetic_log(n_users, 300, seed=seed)
    split = temporal(log)
    models = {"sasrec": train_sasrec(split, seed=seed, **OVERFIT_SASREC), "popularity": Popularity().fit(split)}
    return clean.derive(
        "overfitting",
        "fit.overfitting",
        f"{OVERFIT_SASREC['epochs']} epochs on {n_users} users, no dropout, no early stopping",
        log=log,
        split=split,
        models=models,
        results=evaluate_models(models, split),
    )


def plant_underfitting(clean: Setup, *, seed: int = 0) -> Setup:
    """Train SASRec with a learning rate too small to move its weights (an untrained model)."""
    model = train_sasrec(clean.split, seed=seed, lr=FROZEN_LR, epochs=2, patience=None)
    models = {"sasrec": model, "popularity": clean.models["popularity"]}
    return clean.derive(
        "untrained model",
        "fit.underfitting",
        f"SASRec trained 2 epochs at lr={FROZEN_LR:g}",
        # A random ranking is worse than popularity for every user group.
        also=("coldstart.users",),
        models=models,
        results=evaluate_models(models, clean.split),
    )


def plant_divergence(clean: Setup, *, seed: int = 0) -> Setup:
    """Train SASRec with a huge learning rate, so the loss overflows to NaN."""
    model = train_sasrec(clean.split, seed=seed, lr=DIVERGING_LR, epochs=5, patience=None)
    models = {"sasrec": model, "popularity": clean.models["popularity"]}
    return clean.derive(
        "diverged training",
        "fit.divergence",
        f"SASRec trained at lr={DIVERGING_LR:g}",
        # The parameters kept from before the NaN are wrecked by the huge steps.
        also=(
            "fit.underfitting",
            "coldstart.users",
            "bias.popularity",
            "coldstart.items",
            "embedding.collapse",
            "attention.collapsed_heads",
            "attention.order_insensitive",
        ),
        models=models,
        results=evaluate_models(models, clean.split),
    )


def plant_non_causal(clean: Setup, *, seed: int = 0) -> Setup:
    """Train SASRec without the causal attention mask, so training reads the next item."""
    model = train_sasrec(clean.split, seed=seed, causal=False, epochs=5, patience=None)
    models = {"sasrec": model, "popularity": clean.models["popularity"]}
    return clean.derive(
        "non-causal attention",
        "attention.causal",
        "SASRec trained with causal=False",
        # Copying the visible next item teaches nothing usable at the last position.
        also=("fit.underfitting", "coldstart.users", "bias.popularity", "coldstart.items", "attention.order_insensitive"),
        models=models,
        results=evaluate_models(models, clean.split),
    )


# ---------------------------------------------------------------------------------------
# Bias, cold-start and embedding faults


def plant_popularity_collapse(clean: Setup, *, weight: float = 10.0) -> Setup:
    """Add ``weight`` standard deviations of log popularity to SASRec's standardised scores."""
    popularity = torch.log1p(torch.from_numpy(clean.split.train_popularity()).float())
    popularity = (popularity - popularity[1:].mean()) / popularity[1:].std()
    base = clean.models["sasrec"]
    model = ScoreTransform(base, lambda histories, scores: standardise_scores(scores) + weight * popularity, "sasrec-collapsed")
    models = {"sasrec-collapsed": model, "popularity": clean.models["popularity"]}
    return clean.derive(
        "popularity collapse",
        "bias.popularity",
        "scores dominated by item popularity",
        # Popularity lists leave the tail out and barely beat the baseline.
        also=("coldstart.items", "fit.underfitting", "coldstart.users"),
        models=models,
        results=evaluate_models(models, clean.split),
    )


def plant_cold_user_failure(clean: Setup) -> Setup:
    """Give users with short histories anti-popular scores (a broken short-input path)."""
    lengths = np.array([len(history) for history in clean.split.test.histories])
    limit = int(np.quantile(lengths, 0.25))
    anti = -torch.from_numpy(clean.split.train_popularity()).float()

    def transform(histories: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        short = (histories != 0).sum(dim=1) <= limit
        return torch.where(short[:, None], anti.expand_as(scores), scores)

    model = ScoreTransform(clean.models["sasrec"], transform, "sasrec-cold-broken")
    models = {"sasrec-cold-broken": model, "popularity": clean.models["popularity"]}
    return clean.derive(
        "short histories fail",
        "coldstart.users",
        f"histories of at most {limit} items get anti-popular scores",
        models=models,
        results=evaluate_models(models, clean.split),
    )


def plant_tail_blind_spot(clean: Setup) -> Setup:
    """Push every long-tail item to the bottom of SASRec's ranking."""
    from recwidgets.evaluation.segments import popularity_buckets

    tail = torch.from_numpy(popularity_buckets(clean.split.train_popularity()) == "tail")

    def transform(histories: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        return scores.masked_fill(tail[None, :], -1e6)

    model = ScoreTransform(clean.models["sasrec"], transform, "sasrec-no-tail")
    models = {"sasrec-no-tail": model, "popularity": clean.models["popularity"]}
    return clean.derive(
        "long tail masked",
        "coldstart.items",
        "tail items scored -1e6",
        models=models,
        results=evaluate_models(models, clean.split),
    )


def plant_rank_one_embeddings(clean: Setup) -> Setup:
    """Replace SASRec's item embedding table by its best rank-1 approximation."""
    model = copy.deepcopy(clean.models["sasrec"])
    with torch.no_grad():
        weight = model.module.item_embedding.weight
        u, s, vh = torch.linalg.svd(weight[1:], full_matrices=False)
        weight[1:] = s[0] * torch.outer(u[:, 0], vh[0])
    model.name = "sasrec-rank1"
    models = {"sasrec-rank1": model, "popularity": clean.models["popularity"]}
    return clean.derive(
        "rank-1 item embeddings",
        "embedding.collapse",
        "item embedding table replaced by its rank-1 approximation",
        # One direction ranks every user's items the same way whatever the order of the history.
        also=("fit.underfitting", "coldstart.users", "bias.popularity", "coldstart.items", "attention.order_insensitive"),
        models=models,
        results=evaluate_models(models, clean.split),
    )


def plant_norm_popularity(clean: Setup) -> Setup:
    """Rescale each item embedding row so that its norm is proportional to the item's count."""
    model = copy.deepcopy(clean.models["sasrec"])
    counts = torch.from_numpy(clean.split.train_popularity()).double()
    with torch.no_grad():
        weight = model.module.item_embedding.weight
        norms = weight[1:].norm(dim=1, keepdim=True).double()
        target = counts[1:, None] / counts[1:].mean() * norms.mean()
        weight[1:] = (weight[1:].double() / norms.clamp_min(1e-12) * target).float()
    model.name = "sasrec-norm-pop"
    models = {"sasrec-norm-pop": model, "popularity": clean.models["popularity"]}
    return clean.derive(
        "norm equals popularity",
        "embedding.norm_popularity",
        "item embedding norms set proportional to training counts",
        # Scores grow with the norm, so the lists drift to popular items whatever the history order.
        also=("bias.popularity", "coldstart.items", "fit.underfitting", "coldstart.users", "attention.order_insensitive"),
        models=models,
        results=evaluate_models(models, clean.split),
    )


# ---------------------------------------------------------------------------------------
# Data faults: the log or the training frame changes; no model is needed to see them


def _data_setup(clean: Setup, name: str, expected: str, description: str, log: InteractionLog, split: Split | None = None) -> Setup:
    split = split if split is not None else temporal(log)
    return clean.derive(name, expected, description, log=log, split=split, models={}, results={})


def plant_duplicates(clean: Setup, *, fraction: float = 0.05, seed: int = 0) -> Setup:
    """Repeat ``fraction`` of the events with identical user, item and timestamp."""
    frame = clean.log.interactions
    copies = frame.sample(frac=fraction, random_state=seed)
    log = _with_interactions(clean.log, pd.concat([frame, copies]))
    return _data_setup(clean, "duplicated events", "data.duplicates", f"{len(copies)} events logged twice", log)


def plant_timestamp_ties(clean: Setup) -> Setup:
    """Truncate every timestamp to the day, as a log exported with dates only would."""
    frame = clean.log.interactions.copy()
    frame["timestamp"] = frame["timestamp"] // 86_400 * 86_400
    log = _with_interactions(clean.log, frame)
    return _data_setup(clean, "day-resolution timestamps", "data.timestamp_ties", "timestamps cut to days", log)


def plant_unordered(clean: Setup, *, fraction: float = 0.3, seed: int = 0) -> Setup:
    """Reverse the training rows of ``fraction`` of the users, so their sequences run backwards."""
    rng = np.random.default_rng(seed)
    train = clean.split.train
    users = train["user"].unique()
    chosen = set(int(user) for user in users[rng.random(len(users)) < fraction])
    parts = [group.iloc[::-1] if int(user) in chosen else group for user, group in train.groupby("user", sort=True)]
    shuffled = pd.concat(parts).reset_index(drop=True)
    split = replace(clean.split, train=shuffled)
    return _data_setup(
        clean, "unordered sequences", "data.unordered", f"training rows of {len(chosen)} users reversed", clean.log, split
    )


def plant_single_interaction_users(clean: Setup, *, share: float = 0.2, seed: int = 0) -> Setup:
    """Add ``share`` x n_users new users, each with one event of an item drawn by popularity."""
    rng = np.random.default_rng(seed)
    frame = clean.log.interactions
    n_new = max(1, int(share * clean.log.n_users))
    popularity = clean.log.item_popularity().astype(np.float64)
    items = rng.choice(len(popularity), size=n_new, p=popularity / popularity.sum())
    times = rng.integers(int(frame["timestamp"].min()), int(frame["timestamp"].max()), n_new)
    extra = pd.DataFrame(
        {
            "user": np.arange(clean.log.n_users + 1, clean.log.n_users + 1 + n_new),
            "item": items,
            "timestamp": times,
            "rating": np.nan,
        }
    )
    raw = pd.concat([frame, extra], ignore_index=True)
    log = InteractionLog.from_frame(raw, name=clean.log.name, variant={**clean.log.variant, "planted": "single users"})
    return _data_setup(clean, "single-interaction users", "data.single_interaction", f"{n_new} one-event users added", log)


#: Every planting function with the id it must raise, in the suite's order.
FAULTS: dict[str, tuple[Callable[[Setup], Setup], str]] = {
    "shifted test targets": (plant_shifted_targets, "leakage.global_timeline"),
    "test pairs copied into training": (plant_train_test_overlap, "leakage.train_test_overlap"),
    "target inside its history": (plant_target_in_history, "leakage.target_in_history"),
    "model reads the test targets": (plant_peeking_model, "leakage.implausible_metrics"),
    "sampled negatives": (plant_sampled_metrics, "protocol.sampled_metrics"),
    "seen items kept": (plant_seen_items, "protocol.seen_items"),
    "optimistic ties": (plant_optimistic_ties, "protocol.ties"),
    "users without targets averaged in": (plant_empty_test_users, "protocol.empty_test_users"),
    "overfitting": (plant_overfitting, "fit.overfitting"),
    "untrained model": (plant_underfitting, "fit.underfitting"),
    "diverged training": (plant_divergence, "fit.divergence"),
    "non-causal attention": (plant_non_causal, "attention.causal"),
    "popularity collapse": (plant_popularity_collapse, "bias.popularity"),
    "short histories fail": (plant_cold_user_failure, "coldstart.users"),
    "long tail masked": (plant_tail_blind_spot, "coldstart.items"),
    "rank-1 item embeddings": (plant_rank_one_embeddings, "embedding.collapse"),
    "norm equals popularity": (plant_norm_popularity, "embedding.norm_popularity"),
    "duplicated events": (plant_duplicates, "data.duplicates"),
    "day-resolution timestamps": (plant_timestamp_ties, "data.timestamp_ties"),
    "unordered sequences": (plant_unordered, "data.unordered"),
    "single-interaction users": (plant_single_interaction_users, "data.single_interaction"),
}
