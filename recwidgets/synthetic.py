"""Seeded synthetic interaction logs with popularity skew and learnable sequential structure.

The generator mimics the shape of public logs such as MovieLens at any size, so tests and
benchmarks can run without downloads, and the diagnosis suite can plant faults into a log
whose clean state is known:

- item popularity follows a power law (Zipf weight ``(rank + 1) ** -popularity_exponent``);
- items belong to latent clusters (exposed as genres). A user's next cluster comes from a
  Markov chain over clusters: stay with ``stay_prob``, move to the next cluster in a fixed
  cyclic order with ``drift_prob``, otherwise jump to a cluster drawn by popularity;
- with ``follow_prob`` the next item is the fixed successor of the previous item (a
  "sequel"), which a next-item model can learn and a popularity model cannot;
- user activity is heavy-tailed (log-normal lengths with mean about ``mean_length``);
- timestamps increase strictly within a user: short in-session gaps (exponential, mean
  3 minutes) mixed with long gaps between sessions (log-normal, median 2 days), and users
  start at times spread over ``span_days``, so a global temporal cutoff finds users with
  events on both sides.

``synthetic_arrays`` returns plain numpy arrays and is fast enough for 1M users x 100k items
(about 20M events); ``synthetic_log`` wraps a small log as an ``InteractionLog``.
"""

from __future__ import annotations

import logging
import numbers

import numpy as np
import pandas as pd

from recwidgets.data.log import InteractionLog
from recwidgets.errors import ConfigError

logger = logging.getLogger(__name__)

#: Start of the synthetic timeline (2020-09-13, unix seconds); any fixed value works.
DEFAULT_START = 1_600_000_000

#: Mean gap between two events of one session, in seconds.
SESSION_GAP_MEAN = 180.0

#: Median gap between sessions, in seconds (2 days); the log-normal sigma below spreads it.
BREAK_GAP_MEDIAN = 2 * 86_400.0
BREAK_GAP_SIGMA = 1.0

#: Probability that the next event continues the current session.
SESSION_CONTINUE_PROB = 0.7

#: Spread (sigma) of the log-normal user length distribution; 1.0 gives a long right tail
#: similar to MovieLens, where the most active users have 20-30 times the median length.
LENGTH_SIGMA = 1.0

#: Number of recent items per user checked for repeats while generating (without ``repeats``).
RECENT_WINDOW = 24

#: Redraws of an item that repeats one of the recent items, before the repeat is accepted
#: and later dropped.
REDRAWS = 6

#: Over-generation factor so that dropping repeated (user, item) pairs still leaves each
#: user about the requested length.
_OVERDRAW = 1.15


def _check_positive_int(name: str, value, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < minimum:
        raise ConfigError(f"{name}={value!r} is invalid; pass an int >= {minimum}.")
    return int(value)


def _check_probability(name: str, value) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not 0.0 <= value <= 1.0:
        raise ConfigError(f"{name}={value!r} is invalid; pass a probability in [0, 1].")
    return float(value)


class _ClusterSampler:
    """Draw items by popularity within a cluster, for many clusters at once, in O(1) per draw.

    Each cluster gets a Walker alias table (Vose's construction): pick a slot of the cluster
    uniformly, keep its own item with probability ``accept[slot]``, else take ``alias[slot]``.
    """

    def __init__(self, weights: np.ndarray, clusters: np.ndarray, n_clusters: int):
        self.order = np.argsort(clusters, kind="stable")
        bounds = np.searchsorted(clusters[self.order], np.arange(n_clusters + 1))
        self.first = bounds[:-1]
        self.size = bounds[1:] - bounds[:-1]
        self.accept = np.ones(len(weights))
        self.alias = np.arange(len(weights))
        for cluster in range(n_clusters):
            low, high = int(bounds[cluster]), int(bounds[cluster + 1])
            if high > low:
                self._build(weights[self.order[low:high]], low)

    def _build(self, weights: np.ndarray, offset: int) -> None:
        scaled = weights * (len(weights) / weights.sum())
        small = [i for i, value in enumerate(scaled) if value < 1.0]
        large = [i for i, value in enumerate(scaled) if value >= 1.0]
        while small and large:
            less, more = small.pop(), large.pop()
            self.accept[offset + less] = scaled[less]
            self.alias[offset + less] = offset + more
            scaled[more] -= 1.0 - scaled[less]
            (small if scaled[more] < 1.0 else large).append(more)
        # Leftovers are 1 up to rounding error.
        for index in small + large:
            self.accept[offset + index] = 1.0

    def draw(self, cluster: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """Return one item index (0-based) per entry of ``cluster``."""
        slot = self.first[cluster] + (rng.random(len(cluster)) * self.size[cluster]).astype(np.int64)
        slot = np.minimum(slot, self.first[cluster] + self.size[cluster] - 1)
        slot = np.where(rng.random(len(cluster)) < self.accept[slot], slot, self.alias[slot])
        return self.order[slot]


def synthetic_arrays(
    n_users: int,
    n_items: int,
    mean_length: float = 20.0,
    *,
    n_clusters: int | None = None,
    popularity_exponent: float = 1.0,
    follow_prob: float = 0.3,
    stay_prob: float = 0.6,
    drift_prob: float = 0.3,
    min_length: int = 5,
    max_length: int | None = None,
    repeats: bool = False,
    span_days: float = 60.0,
    start: int = DEFAULT_START,
    seed: int = 0,
) -> dict[str, np.ndarray]:
    """Generate a log as arrays sorted by user, then time.

    Returns a dict with ``user`` (int64, 1..n_users), ``item`` (int64, 1..n_items),
    ``timestamp`` (int64 unix seconds, strictly increasing within a user), and per item
    ``item_cluster`` (int64, shape (n_items + 1,), -1 at the padding index 0),
    ``item_weight`` (float64 popularity weight, 0 at index 0) and ``successor`` (the
    item that ``follow_prob`` moves to, 0 at index 0). Items that nobody consumed still have
    an id, so ``item`` may skip some ids for small logs.

    Lengths are ``min_length`` plus a log-normal draw, with mean about ``mean_length``, cut
    at ``max_length`` (default ``50 * mean_length``). Without ``repeats`` a user never
    consumes the same item twice, as in MovieLens; a user whose draws repeat often (a small
    catalog or cluster) can end up shorter than requested, with at least one event.
    """
    n_users = _check_positive_int("n_users", n_users)
    n_items = _check_positive_int("n_items", n_items, minimum=2)
    min_length = _check_positive_int("min_length", min_length)
    if isinstance(mean_length, bool) or not isinstance(mean_length, numbers.Real) or mean_length < min_length:
        raise ConfigError(f"mean_length={mean_length!r} is invalid; pass a number >= min_length={min_length}.")
    for name, value in (("follow_prob", follow_prob), ("stay_prob", stay_prob), ("drift_prob", drift_prob)):
        _check_probability(name, value)
    if stay_prob + drift_prob > 1.0:
        raise ConfigError(
            f"stay_prob + drift_prob = {stay_prob + drift_prob:g} exceeds 1; lower one of them."
        )
    if n_clusters is None:
        n_clusters = max(2, int(round(np.sqrt(n_items) / 2)))
    n_clusters = _check_positive_int("n_clusters", min(n_clusters, n_items))
    if max_length is None:
        max_length = int(50 * mean_length)
    max_length = _check_positive_int("max_length", max_length, minimum=min_length)
    rng = np.random.default_rng(seed)

    # Popularity: a random item order gets Zipf weights, so item ids carry no popularity signal.
    rank = rng.permutation(n_items)
    weights = (rank + 1.0) ** -float(popularity_exponent)
    clusters = rng.integers(0, n_clusters, n_items)
    # Every cluster needs at least one item; the first n_clusters items of a random order fill gaps.
    clusters[rng.permutation(n_items)[:n_clusters]] = np.arange(n_clusters)
    sampler = _ClusterSampler(weights, clusters, n_clusters)
    cluster_weights = np.bincount(clusters, weights=weights, minlength=n_clusters)
    cluster_cumulative = np.cumsum(cluster_weights) / cluster_weights.sum()

    # Each item's sequel is a popularity draw from its own cluster, fixed for the whole log.
    successor = sampler.draw(clusters, rng)

    # Lengths: log-normal with the requested mean, drawn with headroom for dropped repeats.
    excess = max(float(mean_length) - min_length, 0.5)
    mu = np.log(excess) - LENGTH_SIGMA**2 / 2
    lengths = min_length + np.floor(rng.lognormal(mu, LENGTH_SIGMA, n_users)).astype(np.int64)
    lengths = np.minimum(lengths, max_length)
    drawn = lengths.copy() if repeats else np.ceil(lengths * _OVERDRAW).astype(np.int64) + 1
    offsets = np.concatenate([[0], np.cumsum(drawn)])
    total = int(offsets[-1])
    items = np.empty(total, dtype=np.int64)
    users = np.repeat(np.arange(1, n_users + 1, dtype=np.int64), drawn)

    # Step t of every still-active user at once: the active users are those with drawn > t,
    # which is a prefix of the users sorted by descending length.
    by_length = np.argsort(-drawn, kind="stable")
    sorted_lengths = drawn[by_length]
    state_cluster = np.searchsorted(cluster_cumulative, rng.random(n_users), side="right").clip(0, n_clusters - 1)
    state_item = sampler.draw(state_cluster[by_length], rng)
    state_cluster = state_cluster[by_length]
    items[offsets[by_length]] = state_item
    longest = int(sorted_lengths[0]) if n_users else 0
    # Without repeats, the last RECENT_WINDOW items of each active user are kept in a ring
    # buffer and a draw that hits one of them is redrawn; older repeats are dropped below.
    window = 1 if repeats else RECENT_WINDOW
    recent = np.full((n_users, window), -1, dtype=np.int64)
    recent[:, 0] = state_item
    for step in range(1, longest):
        n_active = int(np.searchsorted(-sorted_lengths, -step, side="left"))
        cluster = state_cluster[:n_active]
        previous = state_item[:n_active]

        move = rng.random(n_active)
        jumped = np.searchsorted(cluster_cumulative, rng.random(n_active), side="right").clip(0, n_clusters - 1)
        cluster = np.where(
            move < stay_prob, cluster, np.where(move < stay_prob + drift_prob, (cluster + 1) % n_clusters, jumped)
        )
        fresh = sampler.draw(cluster, rng)
        follow = rng.random(n_active) < follow_prob
        chosen = np.where(follow, successor[previous], fresh)

        if not repeats:
            seen = recent[:n_active]
            clash = np.flatnonzero((seen == chosen[:, None]).any(axis=1))
            for attempt in range(REDRAWS):
                if len(clash) == 0:
                    break
                # Later attempts leave the cluster, whose popular items the user may have used up.
                if attempt >= REDRAWS // 2:
                    cluster[clash] = np.searchsorted(cluster_cumulative, rng.random(len(clash)), side="right").clip(
                        0, n_clusters - 1
                    )
                chosen[clash] = sampler.draw(cluster[clash], rng)
                still = (seen[clash] == chosen[clash, None]).any(axis=1)
                clash = clash[still]
            recent[:n_active, step % window] = chosen
        cluster = clusters[chosen]

        state_item[:n_active] = chosen
        state_cluster[:n_active] = cluster
        items[offsets[by_length[:n_active]] + step] = chosen

    keep = np.ones(total, dtype=bool)
    if not repeats:
        # First occurrence of each (user, item) pair wins; later draws of the pair are dropped.
        key = users * (n_items + 1) + items
        _, first = np.unique(key, return_index=True)
        keep[:] = False
        keep[first] = True
        # Then cut each user back to the requested length.
        kept_rank = np.cumsum(keep) - 1
        user_start = np.concatenate([[0], np.cumsum(keep)])[offsets[:-1]]
        position = kept_rank - np.repeat(user_start, drawn)
        keep &= position < np.repeat(lengths, drawn)
    users = users[keep]
    items = items[keep] + 1

    timestamps = _timestamps(users, n_users, float(span_days), int(start), rng)
    item_cluster = np.concatenate([[-1], clusters]).astype(np.int64)
    item_weight = np.concatenate([[0.0], weights])
    successor_ids = np.concatenate([[0], successor + 1]).astype(np.int64)
    logger.info("synthetic log: %d users, %d items, %d events", n_users, n_items, len(users))
    return {
        "user": users,
        "item": items,
        "timestamp": timestamps,
        "item_cluster": item_cluster,
        "item_weight": item_weight,
        "successor": successor_ids,
    }


def _timestamps(users: np.ndarray, n_users: int, span_days: float, start: int, rng: np.random.Generator) -> np.ndarray:
    """Return strictly increasing times per user: session gaps mixed with longer breaks."""
    n_events = len(users)
    in_session = rng.random(n_events) < SESSION_CONTINUE_PROB
    short = 1.0 + rng.exponential(SESSION_GAP_MEAN, n_events)
    long = rng.lognormal(np.log(BREAK_GAP_MEDIAN), BREAK_GAP_SIGMA, n_events)
    gaps = np.where(in_session, short, long).astype(np.int64) + 1

    # The first event of each user gets its start time instead of a gap.
    first = np.ones(n_events, dtype=bool)
    first[1:] = users[1:] != users[:-1]
    starts = start + (rng.random(n_users + 1) * span_days * 86_400).astype(np.int64)
    gaps[first] = starts[users[first]]

    # A cumulative sum restarted at each user's first event.
    total = np.cumsum(gaps)
    base = np.where(first, total - gaps, 0)
    base = np.maximum.accumulate(base)
    return (total - base).astype(np.int64)


def synthetic_log(
    n_users: int = 500,
    n_items: int = 300,
    mean_length: float = 20.0,
    *,
    metadata: bool = True,
    name: str = "synthetic",
    seed: int = 0,
    **options,
) -> InteractionLog:
    """Generate a synthetic ``InteractionLog``; ``options`` go to ``synthetic_arrays``.

    With ``metadata`` the item table has ``title`` (``"Item 17"``), ``genres`` (the latent
    cluster as a one-element tuple such as ``("topic-03",)``), ``cluster`` and the popularity
    ``weight`` of the generator. Items that no user consumed are not part of the log, so
    internal ids are re-packed by ``InteractionLog.from_frame``. Ratings are NaN.
    """
    arrays = synthetic_arrays(n_users, n_items, mean_length, seed=seed, **options)
    frame = pd.DataFrame({"user": arrays["user"], "item": arrays["item"], "timestamp": arrays["timestamp"]})
    items = None
    if metadata:
        ids = np.arange(1, len(arrays["item_cluster"]))
        clusters = arrays["item_cluster"][1:]
        items = pd.DataFrame(
            {
                "title": [f"Item {item}" for item in ids],
                "genres": [(f"topic-{cluster:02d}",) for cluster in clusters],
                "cluster": clusters,
                "weight": arrays["item_weight"][1:],
            },
            index=pd.Index(ids, name="item_id"),
        )
    variant = {"generator": "recwidgets.synthetic", "seed": int(seed), "n_users": int(n_users), "n_items": int(n_items)}
    return InteractionLog.from_frame(frame, items=items, name=name, variant=variant)
