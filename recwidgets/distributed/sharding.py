"""Users split over ranks, per-rank results gathered back in the original order.

``shard_bounds`` gives each rank a contiguous block of users whose edges fall on multiples
of the scoring batch size. Every rank therefore scores exactly the batches that a single
process would score, with the same shapes, so CPU kernels produce bitwise equal scores and
the gathered ranks, top-k lists and metrics equal those of ``evaluate`` exactly.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence

import numpy as np
import pandas as pd
import torch.distributed as dist

from recwidgets.data.split import EvalSet, ProtocolCard, Split
from recwidgets.errors import ConfigError
from recwidgets.evaluation.evaluator import finish_evaluation, prepare_evaluation
from recwidgets.evaluation.ranking import Ranking, rank_users
from recwidgets.evaluation.result import EvaluationResult
from recwidgets.distributed.context import DistContext, current_context

logger = logging.getLogger(__name__)


def shard_bounds(n_users: int, rank: int, world_size: int, batch_size: int = 1) -> tuple[int, int]:
    """Return the [start, stop) block of ``n_users`` that ``rank`` of ``world_size`` handles.

    Users are cut into batches of ``batch_size`` and the batches are dealt out in
    contiguous runs, the first ``n_batches % world_size`` ranks taking one more. A rank can
    get an empty block when there are fewer batches than ranks.
    """
    if world_size < 1 or not 0 <= rank < world_size:
        raise ConfigError(f"rank={rank} of world_size={world_size} is invalid; need 0 <= rank < world_size.")
    if batch_size < 1:
        raise ConfigError(f"batch_size={batch_size} is invalid; pass 1 or more.")
    n_batches = -(-n_users // batch_size)
    base, extra = divmod(n_batches, world_size)
    first = rank * base + min(rank, extra)
    last = first + base + (1 if rank < extra else 0)
    return min(first * batch_size, n_users), min(last * batch_size, n_users)


def shard_users(users: Sequence, rank: int, world_size: int, batch_size: int = 1):
    """Return this rank's contiguous slice of ``users`` (see ``shard_bounds``)."""
    start, stop = shard_bounds(len(users), rank, world_size, batch_size)
    return users[start:stop]


def gather_objects(value, context: DistContext | None = None, dst: int | None = None) -> list | None:
    """Collect one picklable ``value`` per rank, in rank order.

    ``dst=None`` gives the list to every rank; with ``dst`` only that rank gets it and the
    others get None. A single process gets ``[value]``.
    """
    context = context or current_context()
    if not context.distributed:
        return [value]
    if dst is None:
        gathered: list = [None] * context.world_size
        dist.all_gather_object(gathered, value)
        return gathered
    gathered = [None] * context.world_size if context.rank == dst else None
    dist.gather_object(value, gathered, dst=dst)
    return gathered


def gather_frames(frame: pd.DataFrame, context: DistContext | None = None, dst: int | None = None) -> pd.DataFrame | None:
    """Concatenate one DataFrame per rank in rank order (on every rank, or on ``dst`` only)."""
    frames = gather_objects(frame, context, dst)
    if frames is None:
        return None
    return pd.concat(frames, ignore_index=True)


def gather_ranking(ranking: Ranking, context: DistContext | None = None, dst: int | None = None) -> Ranking | None:
    """Concatenate per-rank ``Ranking`` shards in rank order."""
    parts = gather_objects((ranking.target_ranks, ranking.topk, ranking.n_candidates), context, dst)
    if parts is None:
        return None
    ranks: list[np.ndarray] = []
    for part in parts:
        ranks.extend(part[0])
    return Ranking(
        target_ranks=ranks,
        topk=np.concatenate([part[1] for part in parts], axis=0),
        n_candidates=np.concatenate([part[2] for part in parts]),
    )


def evaluate_sharded(
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
    context: DistContext | None = None,
    dst: int | None = None,
    ranker=None,
    timings: dict | None = None,
) -> EvaluationResult | None:
    """Run ``recwidgets.evaluation.evaluate`` with the users split over the ranks of a process group.

    Every rank must call this with the same arguments. Each rank ranks its block of users
    (``shard_bounds`` with ``batch_size``), and the blocks are gathered. The metrics,
    bootstrap intervals, segments and card then come from the gathered arrays. So the
    result equals the single-process ``evaluate`` result exactly: the same users, ranks,
    top-k lists, metrics and intervals for the same ``seed``. ``dst=None`` returns the
    result on every rank (each computes the metrics); with ``dst`` only that rank computes
    and returns it, the others return None.

    ``ranker(model, histories, targets, k=..., exclude_seen=..., negatives=..., users=...)``
    replaces ``rank_users`` for the shard, for example a ``chunked_rank_users`` wrapper;
    it must return a ``Ranking``. ``timings``, when given, receives ``rank_seconds`` (this
    rank's ranking), ``gather_seconds`` and ``metric_seconds``.
    """
    context = context or current_context()

    # Every rank validates the same arguments and draws the same negatives from the same seed.
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
    users, histories, targets = prepared.users, prepared.histories, prepared.targets
    negatives, ks, batch_size = prepared.negatives, prepared.ks, prepared.batch_size

    start, stop = shard_bounds(len(users), context.rank, context.world_size, batch_size)
    clock = time.perf_counter()
    shard_negatives = None if negatives is None else negatives[start:stop]
    if ranker is None:
        shard = rank_users(
            model,
            histories[start:stop],
            targets[start:stop],
            k=ks[-1],
            exclude_seen=exclude_seen,
            batch_size=batch_size,
            negatives=shard_negatives,
            users=users[start:stop],
        )
    else:
        shard = ranker(
            model,
            histories[start:stop],
            targets[start:stop],
            k=ks[-1],
            exclude_seen=exclude_seen,
            negatives=shard_negatives,
            users=users[start:stop],
        )
    rank_seconds = time.perf_counter() - clock
    logger.debug("rank %d ranked users %d to %d in %.2f s", context.rank, start, stop, rank_seconds)

    clock = time.perf_counter()
    ranking = gather_ranking(shard, context, dst)
    gather_seconds = time.perf_counter() - clock
    if timings is not None:
        timings.update(rank_seconds=rank_seconds, gather_seconds=gather_seconds, metric_seconds=0.0)
    if ranking is None:
        return None

    clock = time.perf_counter()
    result = finish_evaluation(prepared, model, ranking, exclude_seen=exclude_seen, seed=seed)
    if timings is not None:
        timings["metric_seconds"] = time.perf_counter() - clock
    logger.info(
        "sharded evaluation of %s on %d users over %d rank(s): %s = %.4f",
        model.name,
        len(users),
        context.world_size,
        prepared.headline,
        result.value(prepared.headline),
    )
    return result


def explain_users_sharded(
    explainer,
    split: Split,
    users: Sequence[int],
    *,
    part: str = "test",
    target: str = "top1",
    context: DistContext | None = None,
    dst: int | None = None,
) -> pd.DataFrame | None:
    """Explain many users with SHAP over the ranks and gather one tidy frame.

    ``explainer`` is a ``recwidgets.explain.shap_values.ShapExplainer``. Each rank runs
    ``explainer.explain_users`` on its contiguous block of ``users`` and turns the
    explanations into ``shap_frame`` rows. The frames are concatenated in the order of
    ``users``. Each explanation draws its permutations from the explainer's own seed, so
    the frame equals the single-process ``shap_frame(explainer.explain_users(...))``.
    """
    from recwidgets.explain.shap_values import shap_frame

    context = context or current_context()
    users = list(users)
    mine = shard_users(users, context.rank, context.world_size)
    explanations = explainer.explain_users(split, mine, part=part, target=target, progress=False)
    return gather_frames(shap_frame(explanations), context, dst)
