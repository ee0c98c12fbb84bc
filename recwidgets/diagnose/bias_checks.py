"""Popularity bias of the recommendation lists (Abdollahpouri, Burke & Mobasher, FLAIRS 2019).

ARP@10 (average training popularity of the recommended items) is compared with two
anchors on the same users. The first is the mean training popularity of the items they
actually consume next (their test targets). The second is the ARP@10 of the most-popular
baseline, the most popularity-biased list possible. The position between the two anchors,

    popularity_collapse = (ARP_model - ARP_targets) / (ARP_popularity - ARP_targets),

is 0 for lists as popular as what users consume and 1 for lists as popular as the
most-popular baseline's. Coverage, Gini and the long-tail share of list slots are
reported as evidence.
"""

from __future__ import annotations

import logging

import numpy as np

from recwidgets.diagnose._common import is_popularity_baseline, record, rounded
from recwidgets.diagnose.catalog import make_finding
from recwidgets.diagnose.finding import Finding

logger = logging.getLogger(__name__)

#: Cutoff of the lists that the bias statistics read.
BIAS_K = 10

#: popularity_collapse above this is a warning, because the lists are nearly as popular as
#: the most-popular baseline's. On the suite's clean setups SASRec measured -0.07 to 0.62 and
#: EASE 0.50-0.68. A model whose scores are dominated by item counts measured 0.99.
COLLAPSE_WARN = 0.9

#: ARP ratio (ARP@10 over the targets' mean popularity) above which an info finding
#: reports the bias even without collapse.
ARP_RATIO_INFO = 1.5


def popularity_profile(result, train_popularity: np.ndarray, split=None, k: int = BIAS_K) -> dict:
    """Return the popularity statistics of a result's top-``k`` lists and of its users' targets."""
    from recwidgets.evaluation.segments import popularity_buckets

    popularity = np.asarray(train_popularity, dtype=np.float64)
    n_items = len(popularity) - 1
    top = np.asarray(result.topk)[:, :k]
    listed = top > 0
    per_user_arp = np.array(
        [popularity[row[mask]].mean() if mask.any() else np.nan for row, mask in zip(top, listed)]
    )
    buckets = popularity_buckets(popularity)
    items = top[listed]
    exposure = np.bincount(items, minlength=n_items + 1)[1:].astype(np.float64)
    ordered = np.sort(exposure)
    weights = 2.0 * np.arange(1, n_items + 1) - n_items - 1.0
    gini = float((ordered * weights).sum() / (n_items * ordered.sum())) if ordered.sum() > 0 else float("nan")

    profile = {
        "arp": float(np.nanmean(per_user_arp)) if len(per_user_arp) else float("nan"),
        "coverage": float((exposure > 0).sum() / max(n_items, 1)),
        "gini": gini,
        "tail_slot_share": float(np.mean(buckets[items] == "tail")) if len(items) else float("nan"),
        "tail_slots": int(np.sum(buckets[items] == "tail")),
        "head_slot_share": float(np.mean(buckets[items] == "head")) if len(items) else float("nan"),
    }

    # The users' own next items, from the split part the result was computed on.
    targets = _result_targets(result, split)
    if targets is not None:
        per_user_target = np.array([popularity[t].mean() if len(t) else np.nan for t in targets])
        flat = np.concatenate([t for t in targets if len(t)]) if any(len(t) for t in targets) else np.zeros(0, int)
        profile["target_arp"] = float(np.nanmean(per_user_target)) if len(per_user_target) else float("nan")
        profile["tail_target_share"] = float(np.mean(buckets[flat] == "tail")) if len(flat) else float("nan")
    return profile


def _result_targets(result, split) -> list[np.ndarray] | None:
    if split is None:
        return None
    part = split.part(result.card.part or "test")
    by_user = {int(user): np.asarray(target, dtype=np.int64) for user, target in zip(part.users, part.targets)}
    return [by_user.get(int(user), np.zeros(0, dtype=np.int64)) for user in np.asarray(result.users)]


def check_popularity_bias(
    name: str,
    result,
    train_popularity: np.ndarray,
    split=None,
    reference=None,
    model=None,
) -> list[Finding]:
    """Flag lists that collapse onto popular items, relative to the targets and the baseline.

    ``reference`` is the most-popular baseline's result on the same users. The baseline
    itself (and any model named like it) is skipped, because it is popular by design.
    """
    if is_popularity_baseline(name, model, result):
        return []
    if result.card.ranking == "sampled":
        # Sampled lists only contain the target and its negatives, so their popularity means nothing.
        return []
    profile = popularity_profile(result, train_popularity, split)
    evidence = {"model": name, **{key: rounded(value) for key, value in profile.items()}}
    target_arp = profile.get("target_arp")
    collapse = None
    if reference is not None and target_arp is not None and np.isfinite(target_arp):
        reference_arp = popularity_profile(reference, train_popularity, split)["arp"]
        evidence["popularity_baseline_arp"] = rounded(reference_arp)
        if reference_arp > target_arp:
            collapse = (profile["arp"] - target_arp) / (reference_arp - target_arp)
            evidence["popularity_collapse"] = rounded(collapse)
    ratio = profile["arp"] / target_arp if target_arp else None
    if ratio is not None and np.isfinite(ratio):
        evidence["arp_ratio"] = rounded(ratio)
    evidence["threshold"] = COLLAPSE_WARN
    record("bias.popularity", evidence)

    if collapse is not None and collapse > COLLAPSE_WARN:
        return [
            make_finding(
                "bias.popularity",
                "warning",
                f"{name}: recommendations are nearly as popular as the most-popular baseline's "
                f"(ARP@10 {profile['arp']:.0f} vs {evidence['popularity_baseline_arp']:.0f}; users consume {target_arp:.0f})",
                evidence,
                "Check that the model uses the history (a popularity-only model ignores it); counter the bias "
                "with popularity-aware negatives, a popularity penalty in re-ranking, or calibration.",
                view={"model": name},
            )
        ]
    if ratio is not None and ratio > ARP_RATIO_INFO:
        return [
            make_finding(
                "bias.popularity",
                "info",
                f"{name}: recommended items are {ratio:.1f}x as popular as the items users consume",
                evidence,
                "Usual for accuracy-trained models; watch coverage and the long-tail share if diversity matters.",
                view={"model": name},
            )
        ]
    return []


def check_bias(results: dict, train_popularity: np.ndarray, split=None, reference=None, models=None) -> list[Finding]:
    """Run the popularity-bias check on every result."""
    findings: list[Finding] = []
    models = models or {}
    for name, result in results.items():
        findings += check_popularity_bias(
            name, result, train_popularity, split, reference=reference, model=models.get(name)
        )
    return findings
