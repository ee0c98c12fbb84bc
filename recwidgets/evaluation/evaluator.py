"""The ``evaluate`` entry point: rank, compute every metric, bootstrap, segment and fill the card."""

from __future__ import annotations

import hashlib
import logging
import warnings
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
import pandas as pd

from recwidgets.data.split import EvalSet, ProtocolCard, Split
from recwidgets.errors import ConfigError, DataError, ProtocolWarning
from recwidgets.evaluation.bootstrap import bootstrap_intervals
from recwidgets.evaluation.metrics import (
    ACCURACY_METRICS,
    LIST_METRICS,
    METRIC_ORDER,
    catalog_coverage,
    gini_index,
    rank_matrix,
)
from recwidgets.evaluation.ranking import Ranking, rank_users, unique_targets
from recwidgets.evaluation.result import EvaluationResult, metric_label
from recwidgets.evaluation.sampling import check_negatives, sample_negatives
from recwidgets.evaluation.segments import segment_table

logger = logging.getLogger(__name__)

PARTS = ("validation", "test")
MODEL_ATTRIBUTES = ("name", "n_items", "max_len", "device", "score")


def check_cutoffs(k, n_items: int) -> tuple[int, ...]:
    """Return the cutoffs ``k`` (an int or an iterable of ints) as a sorted tuple without repeats.

    Raises ConfigError naming the value when one is not an integer, is below 1 or is larger
    than the catalog size ``n_items``.
    """
    values = [k] if isinstance(k, (int, np.integer)) else k
    if not isinstance(values, Iterable) or isinstance(values, (str, bytes)):
        raise ConfigError(f"k={k!r} is invalid; pass an integer cutoff or a list of them, such as k=(5, 10, 20).")
    values = list(values)
    if not values:
        raise ConfigError("k=() is empty; pass at least one cutoff, such as k=(10,).")
    for value in values:
        if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
            raise ConfigError(f"cutoff k={value!r} is invalid; every cutoff must be an integer, such as 10.")
        if value < 1:
            raise ConfigError(f"cutoff k={value} is invalid; every cutoff must be at least 1, such as 10.")
        if value > n_items:
            raise ConfigError(
                f"cutoff k={value} is larger than the catalog of {n_items} items; pass cutoffs of at most {n_items}."
            )
    return tuple(sorted({int(value) for value in values}))


def _check_count(name: str, value, minimum: int) -> int:
    """Return ``value`` as an int, raising ConfigError unless it is an integer >= ``minimum``."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ConfigError(f"{name}={value!r} is invalid; pass an integer of at least {minimum}.")
    return int(value)


def _check_model(model) -> None:
    """Raise ConfigError unless ``model`` has the attributes of the model protocol."""
    missing = [name for name in MODEL_ATTRIBUTES if not hasattr(model, name)]
    if missing:
        raise ConfigError(
            f"{type(model).__name__} lacks {missing} of the model protocol (name, n_items, max_len, device, "
            "score); wrap a torch module with recwidgets.models.base.TorchModuleRecommender."
        )


def _custom_card(evalset: EvalSet, n_items: int, train_popularity: np.ndarray) -> ProtocolCard:
    """Build a minimal protocol card for an EvalSet that comes without a split."""
    has_target = evalset.has_target()
    n_train = int(np.asarray(train_popularity)[1:].sum())
    return ProtocolCard(
        dataset="custom",
        variant={},
        split="custom EvalSet",
        targets="given",
        validation="n/a",
        n_users=len(evalset),
        n_items=n_items,
        n_interactions=n_train,
        n_train_interactions=n_train,
        n_test_users=int(has_target.sum()),
        users_without_test=int((~has_target).sum()),
        short_users="n/a",
    )


def _resolve_inputs(split, part, train_popularity, card, n_items):
    """Return (EvalSet, training popularity, base card) from a Split or an EvalSet."""
    if part not in PARTS:
        raise ConfigError(f"part={part!r} is invalid; use 'validation' or 'test'.")
    if isinstance(split, Split):
        if split.log.n_items != n_items:
            raise ConfigError(
                f"the model scores {n_items} items but the split has {split.log.n_items}; "
                "fit the model on this split (or on a log with the same item vocabulary)."
            )
        popularity = split.train_popularity() if train_popularity is None else train_popularity
        base_card = split.card if card is None else card
        evalset = split.part(part)
    elif isinstance(split, EvalSet):
        if train_popularity is None:
            raise ConfigError(
                "evaluating an EvalSet needs train_popularity= (training counts per internal item id, "
                "shape (n_items + 1,)), for example split.train_popularity()."
            )
        popularity = train_popularity
        evalset = split
        base_card = card
    else:
        raise ConfigError(
            f"split has type {type(split).__name__}; pass a recwidgets Split (from leave_last_out or temporal) "
            "or an EvalSet with train_popularity=."
        )

    popularity = np.asarray(popularity)
    if popularity.shape != (n_items + 1,):
        raise ConfigError(
            f"train_popularity has shape {popularity.shape}; expected ({n_items + 1},), one count per internal "
            "item id including padding at index 0."
        )
    if base_card is None:
        base_card = _custom_card(evalset, n_items, popularity)
    return evalset, popularity.astype(np.float64), base_card


def _check_item_ids(name: str, arrays: list[np.ndarray], users: np.ndarray, n_items: int) -> None:
    """Raise DataError when an item id in ``arrays`` lies outside 1..n_items."""
    for row, items in enumerate(arrays):
        if len(items) and (np.min(items) < 1 or np.max(items) > n_items):
            bad = items[(items < 1) | (items > n_items)][0]
            raise DataError(
                f"the {name} of user {int(users[row])} contains item id {int(bad)}, outside 1..{n_items}; "
                "histories and targets must use the internal ids of the model's catalog."
            )


def _sampling_setup(sampled, negatives, sample_seed, histories, targets, users, n_items, ks):
    """Return (negatives, sampled) for sampled ranking, or (None, None) for full ranking.

    Reused ``negatives`` are checked; otherwise ``sampled`` negatives are drawn. Emits the
    ProtocolWarning that every sampled evaluation carries.
    """
    if negatives is not None:
        negatives = check_negatives(negatives, targets, n_items)
        if sampled is not None and sampled != negatives.shape[1]:
            raise ConfigError(
                f"sampled={sampled!r} disagrees with negatives of width {negatives.shape[1]}; "
                "pass only negatives=, or matching values."
            )
        sampled = negatives.shape[1]
    elif sampled is not None:
        sampled = _check_count("sampled", sampled, 1)
        negatives = sample_negatives(histories, targets, n_items, sampled, seed=sample_seed, users=users)
    else:
        return None, None

    if ks[-1] > sampled:
        raise ConfigError(
            f"cutoff k={ks[-1]} is larger than the sampled={sampled} negatives per user; "
            f"pass cutoffs of at most {sampled} or sample more negatives."
        )
    warnings.warn(
        f"sampled evaluation: each user's targets are ranked among {sampled} random negatives, not the full "
        "catalog. Sampled metrics are biased and can reorder models (Krichene and Rendle, KDD 2020), so "
        "they are labelled as sampled; use sampled=None for full ranking.",
        ProtocolWarning,
        stacklevel=3,
    )
    return negatives, sampled


def _metric_tables(ranking, users, popularity, n_items, ks, sampled, n_bootstrap, n_global, confidence, seed):
    """Return (per-user frame, metrics frame, coverage counts) from a ranking.

    Per-user metrics come from the target ranks (accuracy) or the top-k lists (Novelty,
    ARP); Coverage and Gini are computed once over all lists. Means skip NaN values.
    """
    ranks = rank_matrix(ranking.target_ranks)
    per_user = {"user": users}
    global_values: dict[str, float] = {}
    coverage_counts: dict[int, int] = {}
    labels: list[tuple[str, int, str]] = []
    for name in METRIC_ORDER:
        for cutoff in ks:
            label = metric_label(name, cutoff, sampled)
            labels.append((name, cutoff, label))
            if name in ACCURACY_METRICS:
                per_user[label] = ACCURACY_METRICS[name](ranks, cutoff)
            elif name in LIST_METRICS:
                per_user[label] = LIST_METRICS[name](ranking.topk, popularity, cutoff)
            elif name == "Coverage":
                global_values[label], coverage_counts[cutoff] = catalog_coverage(ranking.topk, n_items, cutoff)
            else:
                global_values[label] = gini_index(ranking.topk, n_items, cutoff)
    per_user_frame = pd.DataFrame(per_user)

    # Per-user means and global metrics share the same resamples.
    per_user_labels = [label for label in per_user_frame.columns if label != "user"]
    values = per_user_frame[per_user_labels].to_numpy(dtype=np.float64)
    low, high, global_intervals = bootstrap_intervals(
        values,
        topk=ranking.topk,
        n_items=n_items,
        ks=ks,
        n_resamples=n_bootstrap,
        n_resamples_global=n_global,
        confidence=confidence,
        seed=seed,
    )

    column = {label: index for index, label in enumerate(per_user_labels)}
    rows = {}
    for name, cutoff, label in labels:
        if label in column:
            index = column[label]
            finite = np.isfinite(values[:, index])
            mean = float(values[finite, index].mean()) if finite.any() else float("nan")
            rows[label] = (mean, float(low[index]), float(high[index]), int(finite.sum()))
        else:
            bounds = global_intervals[(name, cutoff)]
            rows[label] = (global_values[label], bounds[0], bounds[1], len(users))
    metrics = pd.DataFrame.from_dict(rows, orient="index", columns=["value", "ci_low", "ci_high", "n_users"])
    metrics.index.name = "metric"
    return per_user_frame, metrics, coverage_counts


def _evaluation_card(
    base_card,
    model,
    *,
    part,
    ks,
    exclude_seen,
    negatives,
    sample_seed,
    n_evaluated,
    n_without,
    n_bootstrap,
    n_global,
    confidence,
    seed,
) -> ProtocolCard:
    """Return ``base_card`` with the evaluation fields of one ``evaluate`` call set."""
    if n_bootstrap:
        bootstrap_record = {
            "method": "percentile",
            "unit": "user",
            "n_resamples": n_bootstrap,
            "n_resamples_global": n_global,
            "confidence": confidence,
            "seed": seed,
        }
    else:
        bootstrap_record = {"n_resamples": 0}

    sampled = negatives is not None
    extra = {}
    if sampled:
        # Equal digests show that two sampled results ranked against the same negatives.
        extra["negatives_digest"] = hashlib.sha1(np.ascontiguousarray(negatives).tobytes()).hexdigest()[:12]
    return base_card.with_evaluation(
        part=part,
        ranking="sampled" if sampled else "full",
        n_negatives=negatives.shape[1] if sampled else None,
        sample_seed=sample_seed if sampled else None,
        # Negatives never come from the history, so sampled ranking always excludes seen items.
        exclude_seen=True if sampled else bool(exclude_seen),
        ties="pessimistic",
        k=ks,
        max_history_len=model.max_len,
        n_evaluated_users=n_evaluated,
        users_without_test=n_without,
        bootstrap=bootstrap_record,
        model=model.name,
        **extra,
    )


def evaluate(
    model,
    split: Split | EvalSet,
    *,
    part: str = "test",
    k=(5, 10, 20),
    exclude_seen: bool = True,
    batch_size: int = 256,
    n_bootstrap: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
    sampled: int | None = None,
    negatives: np.ndarray | None = None,
    sample_seed: int = 0,
    train_popularity: np.ndarray | None = None,
    card: ProtocolCard | None = None,
    n_bootstrap_global: int = 0,
) -> EvaluationResult:
    """Evaluate ``model`` on one part of ``split`` with full (default) or sampled ranking.

    Every user of the part with at least one target item is ranked. The model scores the
    whole catalog from the user's history, and each target's rank among the candidates
    gives HR, Precision, Recall, NDCG, MRR and MAP at every cutoff in ``k``. The top-k lists
    give Coverage, Gini, Novelty and ARP. Ties count against the target (pessimistic), the
    padding item is never recommended, and with ``exclude_seen`` the items of the history
    are not candidates, except the user's own targets. See ``recwidgets.evaluation.ranking``.

    Args:
        model: anything with the model protocol (``name``, ``n_items``, ``max_len``,
            ``device``, ``score``).
        split: a ``Split``, or an ``EvalSet`` together with ``train_popularity``.
        part: ``"test"`` or ``"validation"``.
        k: one cutoff or several; each an integer from 1 to the catalog size.
        exclude_seen: leave the history's items out of the candidates (full ranking only;
            sampled negatives never come from the history).
        batch_size: users scored at once; memory grows with batch_size * n_items.
        n_bootstrap: resamples of users for the 95% (``confidence``) percentile intervals;
            0 turns intervals off (NaN bounds).
        n_bootstrap_global: resamples for the Coverage and Gini intervals; 0 (the default)
            leaves them NaN. Both are catalog-level values, not means over users: a resample
            holds fewer distinct users, so resampled Coverage is biased low and its interval
            can miss the value itself (on ML-100K, Coverage@10 0.486 had [0.429, 0.456]).
            Resampling also costs far more than for per-user means on large catalogs.
        seed: seed of the bootstrap.
        sampled: rank each user's targets among this many random negative items instead of
            the full catalog. Sampled numbers are biased relative to full ranking, so their
            labels say so (``"NDCG@10 (sampled, 100 negatives)"``), the card records
            ``ranking="sampled"`` and a ``ProtocolWarning`` is emitted.
        negatives: reuse the (U, N) negatives of an earlier sampled result
            (``result.negatives``) so that models see the same candidates; implies sampling.
        sample_seed: seed of the negative sampling; recorded on the card (also when
            ``negatives`` is given, so pass the seed they were drawn with).
        train_popularity: training counts per internal item id, needed with an EvalSet.
        card: protocol card to extend, for an EvalSet; a Split brings its own.

    Users without a target item are left out of every mean; their number is logged at INFO
    and stored on the card as ``users_without_test`` (for the evaluated part, so for
    ``part="validation"`` it counts users without a validation target).
    """
    prepared = prepare_evaluation(
        model,
        split,
        part=part,
        k=k,
        batch_size=batch_size,
        n_bootstrap=n_bootstrap,
        n_bootstrap_global=n_bootstrap_global,
        confidence=confidence,
        sampled=sampled,
        negatives=negatives,
        sample_seed=sample_seed,
        train_popularity=train_popularity,
        card=card,
    )

    ranking = rank_users(
        model,
        prepared.histories,
        prepared.targets,
        k=prepared.ks[-1],
        exclude_seen=exclude_seen,
        batch_size=prepared.batch_size,
        negatives=prepared.negatives,
        users=prepared.users,
    )

    result = finish_evaluation(prepared, model, ranking, exclude_seen=exclude_seen, seed=seed)
    logger.info(
        "evaluated %s on %d users of the %s part: %s = %.4f",
        model.name,
        len(prepared.users),
        part,
        prepared.headline,
        result.value(prepared.headline),
    )
    return result


@dataclass(frozen=True, eq=False)
class PreparedEvaluation:
    """Validated inputs of one evaluation: the users with targets and every setting.

    ``evaluate`` ranks them in one process; sharded evaluation ranks slices on several
    ranks and gathers the ranking before ``finish_evaluation``.
    """

    part: str
    n_items: int
    popularity: np.ndarray
    base_card: ProtocolCard
    ks: tuple[int, ...]
    n_bootstrap: int
    n_global: int
    batch_size: int
    confidence: float
    n_without: int
    users: np.ndarray
    histories: list[np.ndarray]
    targets: list[np.ndarray]
    negatives: np.ndarray | None
    sampled: int | None
    sample_seed: int

    @property
    def headline(self) -> str:
        """Label of the metric that logs report, NDCG@10 when 10 is a cutoff."""
        return metric_label("NDCG", 10 if 10 in self.ks else self.ks[0], self.sampled)


def prepare_evaluation(
    model,
    split: Split | EvalSet,
    *,
    part: str = "test",
    k=(5, 10, 20),
    batch_size: int = 256,
    n_bootstrap: int = 1000,
    n_bootstrap_global: int = 0,
    confidence: float = 0.95,
    sampled: int | None = None,
    negatives: np.ndarray | None = None,
    sample_seed: int = 0,
    train_popularity: np.ndarray | None = None,
    card: ProtocolCard | None = None,
) -> PreparedEvaluation:
    """Validate the arguments of ``evaluate`` and select the users that have a target.

    Raises ConfigError or DataError naming the invalid value. Negatives are drawn here, from
    ``sample_seed``, so every rank of a sharded evaluation draws the same ones.
    """
    _check_model(model)
    n_items = int(model.n_items)
    evalset, popularity, base_card = _resolve_inputs(split, part, train_popularity, card, n_items)
    ks = check_cutoffs(k, n_items)
    n_bootstrap = _check_count("n_bootstrap", n_bootstrap, 0)
    n_global = _check_count("n_bootstrap_global", n_bootstrap_global, 0) if n_bootstrap else 0
    batch_size = _check_count("batch_size", batch_size, 1)
    if not isinstance(confidence, (float, int)) or not 0.0 < float(confidence) < 1.0:
        raise ConfigError(f"confidence={confidence!r} is invalid; pass a level in (0, 1), such as 0.95.")

    # Users without targets are counted, not ranked.
    has_target = evalset.has_target()
    n_without = int((~has_target).sum())
    if n_without:
        logger.info(
            "%d of %d users of the %s part have no target item; they are left out of means",
            n_without,
            len(evalset),
            part,
        )
    if not has_target.any():
        raise DataError(f"no user of the {part} part has a target item, so there is nothing to evaluate.")
    evaluated = evalset.subset(has_target)
    users = np.asarray(evaluated.users, dtype=np.int64)
    histories = [np.asarray(history, dtype=np.int64) for history in evaluated.histories]
    targets = [unique_targets(target) for target in evaluated.targets]
    _check_item_ids("history", histories, users, n_items)
    _check_item_ids("targets", targets, users, n_items)

    negatives, sampled = _sampling_setup(sampled, negatives, sample_seed, histories, targets, users, n_items, ks)

    return PreparedEvaluation(
        part=part,
        n_items=n_items,
        popularity=popularity,
        base_card=base_card,
        ks=ks,
        n_bootstrap=n_bootstrap,
        n_global=n_global,
        batch_size=batch_size,
        confidence=float(confidence),
        n_without=n_without,
        users=users,
        histories=histories,
        targets=targets,
        negatives=negatives,
        sampled=sampled,
        sample_seed=sample_seed,
    )


def finish_evaluation(
    prepared: PreparedEvaluation, model, ranking: Ranking, *, exclude_seen: bool, seed: int
) -> EvaluationResult:
    """Turn the ranking of ``prepared.users`` into metrics, intervals, segments and the card."""
    per_user, metrics, coverage_counts = _metric_tables(
        ranking,
        prepared.users,
        prepared.popularity,
        prepared.n_items,
        prepared.ks,
        prepared.sampled,
        prepared.n_bootstrap,
        prepared.n_global,
        prepared.confidence,
        seed,
    )

    lengths = np.array([len(history) for history in prepared.histories])
    segments = segment_table(prepared.users, lengths, prepared.targets, prepared.popularity)

    result_card = _evaluation_card(
        prepared.base_card,
        model,
        part=prepared.part,
        ks=prepared.ks,
        exclude_seen=exclude_seen,
        negatives=prepared.negatives,
        sample_seed=prepared.sample_seed,
        n_evaluated=len(prepared.users),
        n_without=prepared.n_without,
        n_bootstrap=prepared.n_bootstrap,
        n_global=prepared.n_global,
        confidence=prepared.confidence,
        seed=seed,
    )

    return EvaluationResult(
        metrics=metrics,
        per_user=per_user,
        topk=ranking.topk,
        target_ranks=ranking.target_ranks,
        users=prepared.users,
        segments=segments,
        card=result_card,
        model_name=str(model.name),
        k=prepared.ks,
        negatives=prepared.negatives,
        coverage_counts=coverage_counts,
        n_users_without_targets=prepared.n_without,
        n_bootstrap=prepared.n_bootstrap,
        confidence=prepared.confidence,
        seed=seed,
    )
