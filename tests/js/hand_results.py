"""Small hand-built evaluation results and training events for widget tests.

The results are real ``EvaluationResult`` objects over made-up per-user values, so the
widgets see the same interface as with ``evaluate`` output, without training a model.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from recwidgets.data.split import ProtocolCard
from recwidgets.evaluation.result import EvaluationResult

INJECTION = "</script><img src=x onerror=alert(1)>"
KS = (5, 10, 20)


def make_result(name: str, *, seed: int = 0, n_users: int = 40, dataset: str = "ml-100k") -> EvaluationResult:
    """Return a result with HR, NDCG and Coverage at k = 5, 10, 20 for ``n_users`` users.

    Users 1..n are spread evenly over four activity quartiles and the head/mid/tail
    target buckets (user u is in quartile (u - 1) % 4 and bucket (u - 1) % 3).
    """
    rng = np.random.default_rng(seed)
    users = np.arange(1, n_users + 1, dtype=np.int64)
    per_user = pd.DataFrame({"user": users})
    rows = {}
    for k in KS:
        hits = (rng.random(n_users) < 0.15 * (k / 5) ** 0.5).astype(np.float64)
        gains = hits * rng.uniform(0.2, 0.6, n_users)
        per_user[f"HR@{k}"] = hits
        per_user[f"NDCG@{k}"] = gains
        for label, column in ((f"HR@{k}", hits), (f"NDCG@{k}", gains)):
            mean = float(column.mean())
            rows[label] = {"value": mean, "ci_low": max(0.0, mean - 0.04), "ci_high": mean + 0.04, "n_users": n_users}
        rows[f"Coverage@{k}"] = {"value": 0.02 * k, "ci_low": 0.02 * k - 0.01, "ci_high": 0.02 * k + 0.01, "n_users": n_users}
    metrics = pd.DataFrame.from_dict(rows, orient="index")

    quartile = (users - 1) % 4
    segments = pd.DataFrame(
        {
            "user": users,
            "activity": [f"Q{q + 1} ({10 * q + 1}-{10 * q + 10})" for q in quartile],
            "target_popularity": np.array(["head", "mid", "tail"], dtype=object)[(users - 1) % 3],
        }
    )
    card = ProtocolCard(
        dataset=dataset,
        variant={"kcore": 5},
        split="leave_last_out",
        targets="last item",
        validation="second to last item",
        n_users=n_users,
        n_items=100,
        n_interactions=1000,
        n_train_interactions=900,
        n_test_users=n_users,
        users_without_test=0,
        model=name,
    )
    return EvaluationResult(
        metrics=metrics,
        per_user=per_user,
        topk=np.zeros((n_users, max(KS)), dtype=np.int64),
        target_ranks=[np.array([1.0])] * n_users,
        users=users,
        segments=segments,
        card=card,
        model_name=name,
        k=KS,
        n_bootstrap=50,
        seed=0,
    )


def training_events(n_epochs: int = 5, n_batches: int = 8, best_epoch: int = 4) -> list[dict]:
    """Return the batch, epoch and end events of a made-up run in ``fit_loop``'s format."""
    events = []
    for epoch in range(1, n_epochs + 1):
        for batch in range(1, n_batches + 1):
            events.append(
                {"event": "batch", "epoch": epoch, "batch": batch, "n_batches": n_batches, "loss": 6.0 - 0.5 * epoch - 0.02 * batch}
            )
        events.append(
            {
                "event": "epoch",
                "epoch": epoch,
                "train_loss": 6.0 - 0.5 * epoch,
                "grad_norm": 1.0 / epoch,
                "seconds": 0.5,
                "finite": True,
                "best_epoch": min(epoch, best_epoch),
                "val_NDCG@10": 0.05 * min(epoch, best_epoch) - 0.01 * max(0, epoch - best_epoch),
                "val_HR@10": 0.1 * min(epoch, best_epoch),
            }
        )
    events.append({"event": "end", "best_epoch": best_epoch, "best_value": 0.05 * best_epoch, "stop_reason": "max epochs", "epochs_run": n_epochs})
    return events
