"""Checks of how a result was computed, read from its protocol card and per-user rows.

- ``protocol.sampled_metrics``: ranks among sampled negatives (Krichene & Rendle, KDD 2020
  show that sampled metrics are inconsistent with full ranking and can reorder models).
- ``protocol.seen_items``: history items left in the ranking on a log where users rarely
  consume an item twice, so the model wastes list slots on items the user already has.
- ``protocol.ties``: ties not broken against the target, so a constant model looks good.
- ``protocol.empty_test_users``: users without a target averaged in as zeros.
"""

from __future__ import annotations

import logging

import numpy as np

from recwidgets.diagnose._common import record, rounded
from recwidgets.diagnose.catalog import make_finding
from recwidgets.diagnose.finding import Finding

logger = logging.getLogger(__name__)

#: Repeat-consumption rate (share of events whose (user, item) pair occurred earlier for
#: that user) below which keeping seen items in the ranking is a mistake. ML-100K and the
#: synthetic log have 0; music or grocery logs with real repeats reach 0.3 and more.
SEEN_ITEMS_MAX_REPEAT_RATE = 0.05

#: Tie rules that count a tie against the target. Anything else flatters tied scores.
PESSIMISTIC_TIES = ("pessimistic",)

#: Tie rules whose expected value is honest but whose single run is noisy: info only.
RANDOM_TIES = ("random",)


def _repeat_rate(split) -> float | None:
    if split is None:
        return None
    frame = split.log.interactions
    return float(frame.duplicated(["user", "item"], keep="first").mean()) if len(frame) else 0.0


def check_sampled(name: str, result) -> list[Finding]:
    """Flag a result ranked among sampled negatives instead of the whole catalog."""
    card = result.card
    sampled = card.ranking == "sampled" or getattr(result, "negatives", None) is not None
    record("protocol.sampled_metrics", {"model": name, "ranking": card.ranking, "n_negatives": card.n_negatives})
    if not sampled:
        return []
    n_negatives = card.n_negatives
    if n_negatives is None and getattr(result, "negatives", None) is not None:
        n_negatives = int(result.negatives.shape[1])
    evidence = {
        "model": name,
        "ranking": card.ranking,
        "n_negatives": n_negatives,
        "n_items": int(card.n_items),
        "candidate_share": rounded((n_negatives or 0) / max(card.n_items, 1)),
    }
    return [
        make_finding(
            "protocol.sampled_metrics",
            "warning",
            f"{name}: metrics rank the target among {n_negatives} sampled negatives of {card.n_items} items",
            evidence,
            "Evaluate with full ranking (evaluate(..., sampled=None)); sampled metrics are biased, "
            "inconsistent with full ranking, and can change which model looks best.",
            view={"model": name},
        )
    ]


def check_seen_items(name: str, result, split=None) -> list[Finding]:
    """Flag full ranking that keeps history items as candidates on a log with few repeats."""
    card = result.card
    if card.exclude_seen is None or card.exclude_seen or card.ranking == "sampled":
        record("protocol.seen_items", {"model": name, "exclude_seen": card.exclude_seen})
        return []
    repeat_rate = _repeat_rate(split)
    evidence = {"model": name, "exclude_seen": False, "log_repeat_rate": rounded(repeat_rate) if repeat_rate is not None else None}

    # How many list slots go to items the user already has.
    if split is not None and len(result.topk):
        part = split.part(card.part or "test")
        histories = dict(zip(np.asarray(part.users).tolist(), part.histories))
        width = min(10, result.topk.shape[1])
        seen_slots = 0
        total_slots = 0
        for user, row in zip(np.asarray(result.users).tolist(), result.topk[:, :width]):
            history = histories.get(user)
            listed = row[row > 0]
            total_slots += len(listed)
            if history is not None and len(history):
                seen_slots += int(np.isin(listed, history).sum())
        evidence["seen_share_of_top10"] = rounded(seen_slots / max(total_slots, 1))
    evidence["threshold"] = SEEN_ITEMS_MAX_REPEAT_RATE
    record("protocol.seen_items", evidence)

    if repeat_rate is not None and repeat_rate >= SEEN_ITEMS_MAX_REPEAT_RATE:
        return [
            make_finding(
                "protocol.seen_items",
                "info",
                f"{name}: seen items stay in the ranking; the log's repeat rate {repeat_rate:.0%} supports that",
                evidence,
                "Keep it if re-consumption is what you want to predict; report it on the card.",
                view={"model": name},
            )
        ]
    rate_text = f"{repeat_rate:.1%}" if repeat_rate is not None else "unknown"
    return [
        make_finding(
            "protocol.seen_items",
            "warning",
            f"{name}: items the user already has stay in the ranking (repeat rate {rate_text})",
            evidence,
            "Evaluate with exclude_seen=True on logs without repeat consumption; otherwise metrics "
            "punish every model that (correctly) avoids re-recommending seen items.",
            view={"model": name},
        )
    ]


def check_ties(name: str, result) -> list[Finding]:
    """Flag a tie rule that does not count ties against the target."""
    ties = result.card.ties
    record("protocol.ties", {"model": name, "ties": ties})
    if ties is None or ties in PESSIMISTIC_TIES:
        return []
    evidence = {"model": name, "ties": ties}
    if ties in RANDOM_TIES:
        return [
            make_finding(
                "protocol.ties",
                "info",
                f"{name}: ties are broken at random",
                evidence,
                "Random tie-breaking is unbiased on average but adds noise; pessimistic ties are reproducible.",
                view={"model": name},
            )
        ]
    return [
        make_finding(
            "protocol.ties",
            "error",
            f"{name}: tied scores are ranked in the target's favour (ties={ties!r})",
            evidence,
            "Break ties pessimistically (a tied target ranks after every item it ties with), as "
            "recwidgets.evaluate does; otherwise a model that gives every item the same score reaches "
            "perfect metrics.",
            view={"model": name},
        )
    ]


def check_empty_test_users(name: str, result, split=None) -> list[Finding]:
    """Flag per-user rows of users without a target, which pull the means towards 0."""
    empty_rows = np.array([len(ranks) == 0 for ranks in result.target_ranks], dtype=bool)
    n_rows = len(result.target_ranks)
    n_empty = int(empty_rows.sum())
    if split is not None and result.card.part is not None:
        part = split.part(result.card.part)
        without = {int(user) for user, target in zip(part.users, part.targets) if len(target) == 0}
        if without:
            n_empty = max(n_empty, int(np.isin(np.asarray(result.users), list(without)).sum()))
    n_evaluated = result.card.n_evaluated_users
    evidence = {
        "model": name,
        "n_rows": int(n_rows),
        "n_rows_without_target": n_empty,
        "share_without_target": rounded(n_empty / max(n_rows, 1)),
        "n_evaluated_users_on_card": n_evaluated,
    }
    record("protocol.empty_test_users", evidence)
    if n_empty == 0:
        return []
    return [
        make_finding(
            "protocol.empty_test_users",
            "error",
            f"{name}: {n_empty} users without a test target are averaged into the metrics",
            evidence,
            "Leave users without a target out of the means (recwidgets.evaluate does) and report their "
            "number on the protocol card; averaging them in lowers every accuracy metric by their share.",
            view={"model": name},
        )
    ]


def check_protocol(results: dict, split=None) -> list[Finding]:
    """Run every protocol check on every result."""
    findings: list[Finding] = []
    for name, result in results.items():
        findings += check_sampled(name, result)
        findings += check_seen_items(name, result, split)
        findings += check_ties(name, result)
        findings += check_empty_test_users(name, result, split)
    return findings
