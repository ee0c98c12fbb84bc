"""Checks for information that crosses from the test side into training or into the input.

- ``leakage.global_timeline``: test targets that happen before the latest training event.
  With a per-user split (leave-last-out) the training data contains other users' later
  events, so the model is trained on the future of the test interaction (Ji et al., ACM
  TOIS 2023). A global temporal split gives exactly 0.
- ``leakage.train_test_overlap``: test (user, item) pairs found in the same user's
  training data more often than that log's repeat-consumption rate explains.
- ``leakage.target_in_history``: the target is the last item of its own input history,
  the off-by-one of slicing ``sequence[:]`` instead of ``sequence[:-1]``.
- ``leakage.implausible_metrics``: full-ranking accuracy too high for next-item data.
"""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd

from recwidgets.data.split import EvalSet, Split
from recwidgets.diagnose._common import percent, record
from recwidgets.diagnose.catalog import make_finding
from recwidgets.diagnose.finding import Finding

logger = logging.getLogger(__name__)

#: Share of test targets before the latest training event that raises a warning. A
#: global temporal split gives exactly 0; 1% tolerates a few clock-skewed events.
#: Leave-last-out on ML-100K gives about 0.99.
GLOBAL_TIMELINE_WARN_FRACTION = 0.01

#: Share of test pairs that also occur in training before a warning is possible.
OVERLAP_WARN_FRACTION = 0.01

#: A legitimate overlap comes from repeat consumption, so the overlap must also exceed this
#: multiple of the log's repeat rate (share of events whose pair occurred before for that user).
OVERLAP_REPEAT_MULTIPLE = 3.0

#: Share of test users whose target equals the last history item before a warning.
TARGET_IN_HISTORY_WARN_FRACTION = 0.01

#: The same share must also exceed this multiple of the consecutive-repeat rate of the
#: training sequences (how often an item directly follows itself in clean data).
TARGET_IN_HISTORY_REPEAT_MULTIPLE = 3.0

#: Full-ranking NDCG@10 above this is not credible for next-item prediction. In the fault
#: suite the tiny SASRec reaches 0.05 on ML-100K (temporal split) and 0.34 on the synthetic
#: log, whose ceiling is about its follow probability (0.3 by default).
#: NOTE: an estimate with a wide margin, not a published bound; a log with strong repeat
#: patterns, evaluated without excluding seen items, can legitimately exceed it.
IMPLAUSIBLE_NDCG10 = 0.6

#: Full-ranking HR@1 above this means most targets sit at rank 1, also not credible.
IMPLAUSIBLE_HR1 = 0.5


def _round(value: float, digits: int = 4) -> float:
    return float(round(float(value), digits))


def target_pairs(eval_set: EvalSet) -> tuple[np.ndarray, np.ndarray]:
    """Return the flattened (user, item) target pairs of an evaluation set, as int64 arrays."""
    lengths = np.array([len(target) for target in eval_set.targets], dtype=np.int64)
    users = np.repeat(np.asarray(eval_set.users, dtype=np.int64), lengths)
    items = (
        np.concatenate([np.asarray(target, dtype=np.int64) for target in eval_set.targets])
        if len(eval_set.targets)
        else np.zeros(0, dtype=np.int64)
    )
    return users, items


def target_times(split: Split, part: str = "test") -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Return (users, items, times) of the target events of ``part``.

    A target's time is the latest log event of its (user, item) pair. That is the target
    event itself for leave-last-out (the user's last event) and for logs without repeats.
    NOTE: with repeat consumption the latest event of a pair can come after the target, which
    can hide leakage but never invent it. Pairs missing from the log get NaN.
    """
    users, items = target_pairs(split.part(part))
    frame = split.log.interactions
    width = split.log.n_items + 1
    latest = frame.assign(key=frame["user"].to_numpy() * width + frame["item"].to_numpy()).groupby("key")[
        "timestamp"
    ].max()
    times = latest.reindex(users * width + items).to_numpy(dtype=np.float64)
    return users, items, times


def check_global_timeline(split: Split) -> list[Finding]:
    """Flag test targets that happen before the latest training interaction."""
    if len(split.train) == 0:
        return []
    latest_train = int(split.train["timestamp"].max())
    _, _, times = target_times(split, "test")
    known = np.isfinite(times)
    if not known.any():
        logger.info("global-timeline check skipped: no test target was found in the log")
        return []
    before = times[known] < latest_train
    fraction = float(before.mean())

    evidence = {
        "fraction_before_latest_training_event": _round(fraction),
        "n_targets": int(known.sum()),
        "n_targets_before": int(before.sum()),
        "latest_training_timestamp": latest_train,
        "split": split.card.split,
        "threshold": GLOBAL_TIMELINE_WARN_FRACTION,
    }
    if before.any():
        lead_days = (latest_train - times[known][before]) / 86_400.0
        evidence["median_days_training_extends_past_target"] = _round(float(np.median(lead_days)), 1)
    if split.validation.has_target().any():
        _, _, validation_times = target_times(split, "validation")
        validation_known = np.isfinite(validation_times)
        if validation_known.any():
            evidence["validation_fraction_before"] = _round(
                float((validation_times[validation_known] < latest_train).mean())
            )

    record("leakage.global_timeline", evidence)
    if fraction < GLOBAL_TIMELINE_WARN_FRACTION:
        if before.any():
            return [
                make_finding(
                    "leakage.global_timeline",
                    "info",
                    f"{int(before.sum())} test targets ({fraction:.2%}) happen before the latest training event",
                    evidence,
                    "Within tolerance; a global temporal split (recwidgets.temporal) removes them.",
                )
            ]
        return []
    return [
        make_finding(
            "leakage.global_timeline",
            "warning",
            f"{percent(fraction)} of test targets happen before the latest training event",
            evidence,
            "The model was trained on interactions from after the moment it is tested on. Use a global "
            "temporal split (recwidgets.temporal(log, cutoff=0.8)) for numbers that hold in deployment, "
            "or label the results as leave-last-out numbers that include future data.",
        )
    ]


def _repeat_rate(frame: pd.DataFrame) -> float:
    """Return the share of events whose (user, item) pair occurred earlier for that user."""
    if len(frame) == 0:
        return 0.0
    return float(frame.duplicated(["user", "item"], keep="first").mean())


def check_train_test_overlap(split: Split) -> list[Finding]:
    """Flag test pairs that also occur in the user's training data beyond the repeat rate."""
    users, items = target_pairs(split.test)
    if len(users) == 0 or len(split.train) == 0:
        return []
    width = split.log.n_items + 1
    train_keys = split.train["user"].to_numpy() * width + split.train["item"].to_numpy()
    in_train = np.isin(users * width + items, train_keys)
    fraction = float(in_train.mean())
    repeat_rate = _repeat_rate(split.log.interactions)

    # Exact copies: the target event itself, with its own timestamp, sits in training.
    _, _, times = target_times(split, "test")
    train_events = pd.MultiIndex.from_arrays(
        [split.train["user"].to_numpy(), split.train["item"].to_numpy(), split.train["timestamp"].to_numpy()]
    )
    known = np.isfinite(times)
    target_events = pd.MultiIndex.from_arrays([users[known], items[known], times[known].astype(np.int64)])
    exact = float(target_events.isin(train_events).mean()) if known.any() else 0.0

    evidence = {
        "overlap_fraction": _round(fraction),
        "exact_event_fraction": _round(exact),
        "log_repeat_rate": _round(repeat_rate),
        "n_test_pairs": int(len(users)),
        "n_overlapping": int(in_train.sum()),
        "threshold": OVERLAP_WARN_FRACTION,
    }
    record("leakage.train_test_overlap", evidence)
    if fraction == 0:
        return []
    leaked = (fraction >= OVERLAP_WARN_FRACTION and fraction > OVERLAP_REPEAT_MULTIPLE * repeat_rate) or (
        exact >= OVERLAP_WARN_FRACTION
    )
    if not leaked:
        return [
            make_finding(
                "leakage.train_test_overlap",
                "info",
                f"{fraction:.1%} of test pairs occur in training, in line with the repeat rate {repeat_rate:.1%}",
                evidence,
                "Nothing to do if repeat consumption is expected; otherwise exclude repeats from the targets.",
            )
        ]
    return [
        make_finding(
            "leakage.train_test_overlap",
            "warning",
            f"{percent(fraction)} of test (user, item) pairs also occur in that user's training data",
            evidence,
            "Remove test interactions from the training data: build the split with recwidgets.temporal or "
            "recwidgets.leave_last_out instead of concatenating or resampling frames by hand.",
        )
    ]


def _consecutive_repeat_rate(sequences: list[np.ndarray]) -> float:
    pairs = 0
    repeats = 0
    for sequence in sequences:
        if len(sequence) > 1:
            pairs += len(sequence) - 1
            repeats += int(np.sum(sequence[1:] == sequence[:-1]))
    return repeats / pairs if pairs else 0.0


def check_target_in_history(split: Split) -> list[Finding]:
    """Flag test users whose target is the last item of their own input history."""
    test = split.test
    has_target = test.has_target()
    if not has_target.any():
        return []

    last_equal = np.zeros(len(test), dtype=bool)
    anywhere = np.zeros(len(test), dtype=bool)
    for row, (history, target) in enumerate(zip(test.histories, test.targets)):
        if len(target) == 0 or len(history) == 0:
            continue
        last_equal[row] = int(history[-1]) in set(int(item) for item in target)
        anywhere[row] = bool(np.isin(target, history).any())

    n_users = int(has_target.sum())
    fraction = float(last_equal[has_target].mean())
    baseline = _consecutive_repeat_rate(split.train_sequences())
    evidence = {
        "last_item_is_target_fraction": _round(fraction),
        "target_anywhere_in_history_fraction": _round(float(anywhere[has_target].mean())),
        "consecutive_repeat_rate": _round(baseline),
        "n_test_users": n_users,
        "threshold": TARGET_IN_HISTORY_WARN_FRACTION,
    }
    record("leakage.target_in_history", evidence)

    if fraction == 0:
        return []
    flagged = fraction >= TARGET_IN_HISTORY_WARN_FRACTION and fraction > TARGET_IN_HISTORY_REPEAT_MULTIPLE * baseline
    if not flagged:
        return [
            make_finding(
                "leakage.target_in_history",
                "info",
                f"{fraction:.1%} of test targets repeat the last history item, as the data's repeat rate explains",
                evidence,
                "Nothing to do if consecutive repeats are real in this data.",
            )
        ]
    example = int(test.users[np.flatnonzero(last_equal)[0]])
    return [
        make_finding(
            "leakage.target_in_history",
            "error",
            f"{percent(fraction)} of test users have their target as the last item of their input history",
            evidence,
            "Cut the history before the target (sequence[:-1] for the last item); a model that copies "
            "its last input item then scores perfectly.",
            view={"user": example},
        )
    ]


def check_implausible_metrics(results: dict, split: Split | None = None) -> list[Finding]:
    """Flag full-ranking results whose NDCG@10 or HR@1 is too high to be credible."""
    findings: list[Finding] = []
    for name, result in results.items():
        card = result.card
        if card.ranking != "full" or getattr(result, "sampled", False):
            continue
        values = {}
        for label in ("NDCG@10", "HR@1"):
            if label in result.metrics.index:
                values[label] = float(result.metrics.loc[label, "value"])
        if "HR@1" not in values and len(result.target_ranks):
            first = np.array([ranks.min() if len(ranks) else np.inf for ranks in result.target_ranks])
            values["HR@1"] = float(np.mean(first <= 1))
        high_ndcg = values.get("NDCG@10", 0.0) > IMPLAUSIBLE_NDCG10
        high_hr1 = values.get("HR@1", 0.0) > IMPLAUSIBLE_HR1
        evidence = {
            "model": name,
            **{label: _round(value) for label, value in values.items()},
            "ndcg10_threshold": IMPLAUSIBLE_NDCG10,
            "hr1_threshold": IMPLAUSIBLE_HR1,
            "n_items": int(card.n_items),
            "n_evaluated_users": int(len(result.users)),
        }
        record("leakage.implausible_metrics", evidence)
        if not (high_ndcg or high_hr1):
            continue
        findings.append(
            make_finding(
                "leakage.implausible_metrics",
                "error",
                f"{name}: full-ranking NDCG@10 = {values.get('NDCG@10', float('nan')):.3f} is too high to be credible",
                evidence,
                "Look for a leak: targets inside the input, test data in training, a model or feature that "
                "reads the test targets, or a repeat-heavy log evaluated without excluding seen items.",
                view={"model": name},
            )
        )
    return findings


def check_leakage(split: Split | None = None, results: dict | None = None) -> list[Finding]:
    """Run the leakage checks that have their inputs."""
    findings: list[Finding] = []
    if split is not None:
        findings += check_global_timeline(split)
        findings += check_train_test_overlap(split)
        findings += check_target_in_history(split)
    if results:
        findings += check_implausible_metrics(results, split)
    return findings
