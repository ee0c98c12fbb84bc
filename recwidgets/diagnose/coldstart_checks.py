"""Cold-start checks: the least active users and the long-tail items.

- ``coldstart.users``: per-user NDCG@10 of the users with the shortest histories, against
  the most-popular baseline on the same users. Popularity is the natural fallback for a
  user with little history, so a sequential model should not be significantly worse there.
- ``coldstart.items``: the long tail (items that together hold at most 20% of the training
  interactions, plus untrained items, as ``recwidgets.evaluation.popularity_buckets``
  defines it). Accuracy-trained models list few tail items, which is only an info finding;
  the warning is for a model that ranks the tail items users do consume lower than plain
  most-popular ranking does, a structural blind spot such as a mask on rare items.
"""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd

from recwidgets.diagnose._common import (
    aligned_metric,
    headline_label,
    history_lengths,
    is_popularity_baseline,
    paired_difference,
    record,
    rounded,
)
from recwidgets.diagnose.bias_checks import popularity_profile
from recwidgets.diagnose.catalog import make_finding
from recwidgets.diagnose.finding import Finding

logger = logging.getLogger(__name__)

#: Share of evaluated users, by shortest history, that forms the cold-start group.
COLD_USER_QUANTILE = 0.25

#: Fewer cold users than this give no usable interval, so the check is skipped.
MIN_COLD_USERS = 20

#: Share of test targets that must be tail items before a tail blind spot matters.
COLD_ITEM_MIN_TARGET_SHARE = 0.05

#: Tail share of list slots, as a fraction of the tail share of the targets, below which an
#: info finding reports a weak tail. Accuracy-trained models legitimately list few tail
#: items: on the suite's clean setups EASE measures 0.002-0.015 of the target share and
#: SASRec 0.01-0.2.
COLD_ITEM_INFO_RATIO = 0.05

#: The warning compares where the model ranks the tail items that users consume with where
#: the most-popular baseline ranks them, as a share of the candidates (0 = top, 1 = bottom).
#: It fires when the model ranks them lower than popularity does by more than this margin,
#: with a 95% paired interval above 0. On the suite's clean setups (seeds 0 and 1) the mean
#: position was 0.18-0.65 for SASRec and 0.51-0.57 for EASE, against 0.65-0.72 for popularity.
#: So every clean model ranked the tail at least as high as popularity did. A model that
#: masks the tail gives 1.0.
COLD_ITEM_RANK_MARGIN = 0.1

#: Fewer consumed tail targets than this give no usable comparison.
MIN_TAIL_TARGETS = 10


def check_cold_users(name: str, result, reference, split, *, seed: int = 0) -> list[Finding]:
    """Flag a model significantly worse than the most-popular baseline for its least active users."""
    if is_popularity_baseline(name, None, result) or reference is None or split is None:
        return []
    label = headline_label(result)
    if label is None or label not in reference.per_user.columns:
        return []
    lengths = history_lengths(split, result)
    if len(lengths) == 0:
        return []
    limit = float(np.quantile(lengths, COLD_USER_QUANTILE))
    cold_users = np.asarray(result.users)[lengths <= limit]
    if len(cold_users) < MIN_COLD_USERS:
        logger.info("cold-start users check skipped for %s: %d cold users", name, len(cold_users))
        return []

    users, model_values, reference_values = aligned_metric(result, reference, label)
    cold = np.isin(users, cold_users)
    mean, low, high = paired_difference(model_values[cold], reference_values[cold], seed=seed)
    warm_model = float(np.nanmean(model_values[~cold])) if (~cold).any() else float("nan")
    evidence = {
        "model": name,
        "metric": label,
        "max_history_length": int(limit),
        "n_cold_users": int(cold.sum()),
        "model_cold": rounded(np.nanmean(model_values[cold])),
        "popularity_cold": rounded(np.nanmean(reference_values[cold])),
        "model_other_users": rounded(warm_model),
        "difference": rounded(mean),
        "difference_ci": [rounded(low), rounded(high)],
    }
    record("coldstart.users", evidence)
    if not high < 0:
        return []
    return [
        make_finding(
            "coldstart.users",
            "warning",
            f"{name}: for users with at most {int(limit)} history items, {label} is "
            f"{evidence['model_cold']:.4f} vs {evidence['popularity_cold']:.4f} for most-popular",
            evidence,
            "Fall back to (or blend with) popularity for short histories, train with short windows "
            "as well, or check that short or all-padding inputs are handled.",
            view={"model": name},
        )
    ]


def tail_target_positions(result, split, train_popularity: np.ndarray) -> pd.DataFrame:
    """Return one row per (user, tail target item) with the target's rank as a share of the candidates.

    ``position`` is (rank - 1) / (candidates - 1): 0 at the top of the list, 1 at the
    bottom. Candidates follow the result's card: every item, minus the history when seen
    items are excluded, and the user's targets always count.
    """
    from recwidgets.evaluation.segments import popularity_buckets

    buckets = popularity_buckets(train_popularity)
    part = split.part(result.card.part or "test")
    by_user = {int(user): (history, target) for user, history, target in zip(part.users, part.histories, part.targets)}
    exclude_seen = result.card.exclude_seen is not False
    n_items = len(train_popularity) - 1
    rows = []
    for user, ranks in zip(np.asarray(result.users).tolist(), result.target_ranks):
        if user not in by_user or len(ranks) == 0:
            continue
        history, target = by_user[user]
        target = np.asarray(target, dtype=np.int64)
        _, first = np.unique(target, return_index=True)
        ordered = target[np.sort(first)]
        n_candidates = n_items - (len(np.setdiff1d(np.asarray(history), ordered)) if exclude_seen else 0)
        for item, rank in zip(ordered, ranks):
            if buckets[int(item)] == "tail":
                position = (float(rank) - 1.0) / max(n_candidates - 1, 1)
                rows.append({"user": user, "item": int(item), "rank": int(rank), "position": position})
    return pd.DataFrame(rows, columns=["user", "item", "rank", "position"])


def check_cold_items(name: str, result, train_popularity: np.ndarray, split, reference=None, *, seed: int = 0) -> list[Finding]:
    """Flag a model that ranks the long-tail items users consume lower than most-popular ranking does."""
    if is_popularity_baseline(name, None, result) or split is None or result.card.ranking == "sampled":
        return []
    profile = popularity_profile(result, train_popularity, split)
    target_share = profile.get("tail_target_share", float("nan"))
    slot_share = profile["tail_slot_share"]
    evidence = {
        "model": name,
        "tail_target_share": rounded(target_share),
        "tail_slot_share": rounded(slot_share),
        "n_tail_slots": int(profile["tail_slots"]),
        "slot_to_target_ratio": rounded(slot_share / target_share) if target_share else None,
    }
    positions = tail_target_positions(result, split, train_popularity)
    evidence["n_tail_targets"] = int(len(positions))
    if len(positions):
        evidence["tail_hit_rate"] = rounded(float((positions["rank"] <= 10).mean()))
        evidence["tail_position"] = rounded(float(positions["position"].mean()))

    warn = False
    if reference is not None and len(positions) >= MIN_TAIL_TARGETS:
        baseline = tail_target_positions(reference, split, train_popularity)
        paired = positions.merge(baseline, on=["user", "item"], suffixes=("", "_popularity"))
        if len(paired) >= MIN_TAIL_TARGETS:
            mean, low, high = paired_difference(paired["position"], paired["position_popularity"], seed=seed)
            evidence["popularity_tail_position"] = rounded(float(paired["position_popularity"].mean()))
            evidence["popularity_tail_hit_rate"] = rounded(float((paired["rank_popularity"] <= 10).mean()))
            evidence["position_difference"] = rounded(mean)
            evidence["position_difference_ci"] = [rounded(low), rounded(high)]
            warn = mean > COLD_ITEM_RANK_MARGIN and low > 0
    evidence["threshold"] = COLD_ITEM_RANK_MARGIN
    record("coldstart.items", evidence)

    if warn:
        return [
            make_finding(
                "coldstart.items",
                "warning",
                f"{name}: long-tail items that users consume rank at {evidence['tail_position']:.0%} of the list "
                f"on average, below most-popular ranking ({evidence['popularity_tail_position']:.0%})",
                evidence,
                "Check that rare items get trained embeddings (no min-count filter on the catalog, no mask on "
                "rare items), lower popularity-dependent regularisation, or re-rank for long-tail exposure.",
                view={"model": name},
            )
        ]
    weak = np.isfinite(target_share) and target_share >= COLD_ITEM_MIN_TARGET_SHARE
    if weak and slot_share < COLD_ITEM_INFO_RATIO * target_share:
        return [
            make_finding(
                "coldstart.items",
                "info",
                f"{name}: {target_share:.0%} of test targets are long-tail items, but only {slot_share:.1%} "
                "of recommendation slots are",
                evidence,
                "Usual for accuracy-trained models; re-rank for long-tail exposure if the tail matters.",
                view={"model": name},
            )
        ]
    return []


def check_coldstart(results: dict, train_popularity: np.ndarray, split=None, reference=None, *, seed: int = 0) -> list[Finding]:
    """Run both cold-start checks on every result."""
    findings: list[Finding] = []
    for name, result in results.items():
        findings += check_cold_users(name, result, reference, split, seed=seed)
        findings += check_cold_items(name, result, train_popularity, split, reference, seed=seed)
    return findings
