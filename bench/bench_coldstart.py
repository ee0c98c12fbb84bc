"""Cold-start curve on ML-100K: NDCG@10 against revealed interactions n for every strategy.

20% of the users (seed 0) are held out of training. SASRec (hidden 64, 2 blocks, 2 heads,
max_len 50, full-softmax cross-entropy) trains on the remaining users with leave-last-out
validation and early stopping. Each cold user then reveals the first n interactions
(n = 1, 2, 3, 5, 10, 20) and the (n + 1)-th is the target, ranked against the full catalog
with the revealed items excluded. Strategies:

* ``none`` - the plain model;
* ``finetune`` - per-user adapter (scale and shift of the final hidden state) trained with
  5 SGD steps on the revealed prefix, starting from the identity;
* ``meta`` - the same adapter and steps, starting from values meta-learned with first-order
  MAML on prefixes of the training users;
* ``meta start only`` - the meta-learned start values with 0 adaptation steps, an ablation
  that separates the learned start from the per-user steps;
* ``popularity`` and ``genre`` - most-popular and the genre-profile fallback.

The adaptation settings are the package defaults (``AdaptationConfig()``), fixed before
this run and not tuned on these cold users. The report states how the genre fallback's
smoothing was picked.

Run: ``python bench/bench_coldstart.py`` (about 8 minutes on one CPU thread of a shared
2-core machine). Prints a Markdown report and writes it to ``bench/results/coldstart.md``.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from dataclasses import replace
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np
import pandas as pd
import torch

from recwidgets.coldstart import (
    AdaptationConfig,
    AdaptedRecommender,
    coldstart_curve,
    coldstart_finding,
    coldstart_items_finding,
    coldstart_split,
    meta_train,
)
from recwidgets.datasets import load_ml100k
from recwidgets.models import SASRec

ROOT = Path(__file__).resolve().parents[1]
ML100K = ROOT.parent / "shared" / "datasets" / "ml-100k"
RESULTS = ROOT / "bench" / "results" / "coldstart.md"
NS = (1, 2, 3, 5, 10, 20)
STRATEGY_ORDER = ("none", "finetune", "meta", "meta start only", "popularity", "genre")


def paired_interval(a: np.ndarray, b: np.ndarray, *, resamples: int = 1000, seed: int = 0) -> tuple[float, float, float]:
    """Return (mean of a - b, 2.5% and 97.5% percentile bounds) over users resampled with replacement."""
    difference = a - b
    rng = np.random.default_rng(seed)
    means = difference[rng.integers(0, len(difference), size=(resamples, len(difference)))].mean(axis=1)
    low, high = np.percentile(means, [2.5, 97.5])
    return float(difference.mean()), float(low), float(high)


def estimate_text(value: float, low: float, high: float) -> str:
    return f"{value:.4f} [{low:.4f}, {high:.4f}]"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--epochs", type=int, default=20, help="maximum SASRec epochs (early stopping, patience 3)")
    parser.add_argument("--meta-steps", type=int, default=AdaptationConfig().meta_steps, help="outer meta-training steps")
    parser.add_argument("--bootstrap", type=int, default=1000, help="bootstrap resamples of users per estimate")
    parser.add_argument("--seed", type=int, default=0, help="seed of the cold users, training and meta-training")
    parser.add_argument("--out", type=Path, default=RESULTS, help="Markdown file to write")
    args = parser.parse_args()
    torch.set_num_threads(1)

    timings = {}
    start = time.perf_counter()
    cold = coldstart_split(load_ml100k(ML100K), user_share=0.2, seed=args.seed)
    model = SASRec(hidden=64, layers=2, heads=2, max_len=50, epochs=args.epochs, patience=3, seed=args.seed)
    model.fit(cold.split, device="cpu", progress=False)
    timings["SASRec training"] = time.perf_counter() - start

    start = time.perf_counter()
    config = AdaptationConfig(meta_steps=args.meta_steps, seed=args.seed)
    meta = meta_train(model, cold.split, config)
    timings["meta-training"] = time.perf_counter() - start

    start = time.perf_counter()
    strategies = {
        "none": "none",
        "finetune": "finetune",
        "meta": "meta",
        "meta start only": AdaptedRecommender(model, start=meta.start, config=replace(config, steps=0), name="sasrec+meta-start"),
        "popularity": "popularity",
        "genre": "genre",
    }
    result = coldstart_curve(
        model, cold, strategies=strategies, ns=NS, k=(10,), n_bootstrap=args.bootstrap, seed=args.seed, adaptation=config, meta=meta
    )
    timings["curve (6 strategies x 6 n)"] = time.perf_counter() - start

    report = build_report(args, cold, model, meta, result, timings)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(report, encoding="utf-8")
    print(report)


def build_report(args, cold, model, meta, result, timings) -> str:
    ndcg = result.curve[result.curve["metric"] == "NDCG@10"].set_index(["strategy", "n"])
    lines = [
        "# Cold start on ML-100K: NDCG@10 against revealed interactions n",
        "",
        f"Produced by `python bench/bench_coldstart.py --epochs {args.epochs} --meta-steps {args.meta_steps} "
        f"--bootstrap {args.bootstrap} --seed {args.seed}`.",
        f"Machine: {platform.machine()}, {platform.system()}, {os.cpu_count()} CPU cores shared with other jobs, "
        f"one torch thread; Python {platform.python_version()}, torch {torch.__version__}, numpy {np.__version__}, "
        f"pandas {pd.__version__}.",
        "",
        f"Split: {cold.card.split}; {len(cold.split.train)} training interactions. Cold users never reach training, "
        "validation or early stopping. At each n the first n interactions of a cold user are revealed and "
        "interaction n + 1 is the target; full ranking, revealed items excluded, pessimistic ties.",
        f"SASRec: hidden 64, 2 blocks, 2 heads, max_len 50, CE loss, best epoch {model.best_epoch} "
        f"({model.stop_reason}).",
        f"Adaptation: {meta.config.steps} SGD steps of lr {meta.config.lr} on a scale and shift of the final hidden "
        f"state; meta-training {meta.config.meta_method}, {meta.config.meta_steps} steps of {meta.config.meta_batch} "
        f"tasks (prefixes of 1 to {meta.config.max_prefix} items of the {meta.n_tasks_users} training users).",
        f"Intervals: 95% percentile bootstrap over users, {args.bootstrap} resamples.",
        "The adaptation settings are the package defaults, fixed before this run. The genre fallback's smoothing "
        "(1.0) was picked after an exploratory look at these cold users with an earlier SASRec: mean NDCG@10 over n "
        "was 0.082 at 0.3, 0.098 at 1.0 and 0.104 at 3.0, against 0.103 for popularity.",
        "",
        "| n | users | " + " | ".join(STRATEGY_ORDER) + " |",
        "| ---: | ---: | " + " | ".join("---" for _ in STRATEGY_ORDER) + " |",
    ]
    for n in result.ns:
        cells = [estimate_text(*ndcg.loc[(name, n), ["value", "ci_low", "ci_high"]]) for name in STRATEGY_ORDER]
        lines.append(f"| {n} | {int(ndcg.loc[('none', n), 'n_users'])} | " + " | ".join(cells) + " |")
    skipped = {n: int(ndcg.loc[("none", n), "n_skipped"]) for n in result.ns if ndcg.loc[("none", n), "n_skipped"]}
    if skipped:
        lines.append("")
        lines.append(
            "Users left out (n or fewer interactions, no target at n): "
            + ", ".join(f"n = {n}: {count}" for n, count in skipped.items())
            + "."
        )

    lines += [
        "",
        "Paired differences in NDCG@10 on the same users (mean and 95% bootstrap interval):",
        "",
        "| n | finetune - none | meta - none | meta - finetune | meta start only - none |",
        "| ---: | --- | --- | --- | --- |",
    ]
    per_user = result.per_user
    pairs = [("finetune", "none"), ("meta", "none"), ("meta", "finetune"), ("meta start only", "none")]
    above: dict[tuple[str, str], list[int]] = {pair: [] for pair in pairs}
    below: dict[tuple[str, str], list[int]] = {pair: [] for pair in pairs}
    for n in result.ns:
        at_n = per_user[per_user["n"] == n].pivot(index="user", columns="strategy", values="NDCG@10")
        intervals = [paired_interval(at_n[a].to_numpy(), at_n[b].to_numpy(), seed=args.seed) for a, b in pairs]
        for pair, (_, low, high) in zip(pairs, intervals):
            if low > 0:
                above[pair].append(n)
            if high < 0:
                below[pair].append(n)
        lines.append(f"| {n} | " + " | ".join(estimate_text(*interval) for interval in intervals) + " |")
    lines.append("")
    for a, b in pairs:
        lines.append(
            f"- {a} - {b}: interval above 0 at n = {above[(a, b)] or 'none'}, below 0 at n = {below[(a, b)] or 'none'}."
        )
    lines.append(
        f"- Of the {len(pairs) * len(result.ns)} intervals, about {0.05 * len(pairs) * len(result.ns):.1f} would exclude 0 "
        "by chance at the 95% level, and they are not corrected for multiple comparisons."
    )

    history = meta.history
    first = history.head(max(1, len(history) // 10))
    last = history.tail(max(1, len(history) // 10))
    lines += [
        "",
        "Meta-training query loss (cross-entropy of item n + 1 on training-user tasks; mean of the first and last 10% "
        "of outer steps):",
        "",
        "| steps | loss at the start values | loss after adaptation |",
        "| --- | ---: | ---: |",
        f"| first 10% | {first['query_loss_start'].mean():.4f} | {first['query_loss_adapted'].mean():.4f} |",
        f"| last 10% | {last['query_loss_start'].mean():.4f} | {last['query_loss_adapted'].mean():.4f} |",
        "",
        f"Meta-training lowered the query loss at the start values by "
        f"{first['query_loss_start'].mean() - last['query_loss_start'].mean():.4f} nats, and at the end the per-user "
        f"steps lowered it by a further {last['query_loss_start'].mean() - last['query_loss_adapted'].mean():.4f} nats. "
        "The tasks are prefixes of training users, whose next items were targets when SASRec trained, so the "
        "network already fits them. That is a possible reason why these tasks reward per-user steps so little.",
        "",
    ]

    users_finding = coldstart_finding(result, max_n=5)
    items_finding = coldstart_items_finding(result)
    lines.append(f"Finding `coldstart.users` (max_n = 5): {users_finding.title if users_finding else 'none (silent)'}.")
    lines.append(f"Finding `coldstart.items`: {items_finding.title if items_finding else 'none (silent)'}.")
    items = result.items[result.items["strategy"] == "none"].groupby("bucket", sort=False)[["slots", "n_targets", "hits"]].sum()
    lines.append(
        "Items by training count, plain model pooled over n (top-10 slots / targets / hits): "
        + "; ".join(f"{bucket}: {row.slots} / {row.n_targets} / {row.hits}" for bucket, row in items.iterrows())
        + "."
    )
    lines += ["", "Wall time (seconds): " + ", ".join(f"{name} {seconds:.0f}" for name, seconds in timings.items()) + "."]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(main())
