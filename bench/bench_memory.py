"""Peak memory and time of memory-bounded full ranking (``chunked_rank_users``) on synthetic data.

Each size runs in a fresh process, so its peak resident set size (``ru_maxrss``) is its own.
A run generates a synthetic log (``recwidgets.synthetic.synthetic_arrays``, mean history
length 20, seed 0), takes each user's last item as the target and the items before it as
the history, draws seeded float32 factors (dimension 64) and runs ``evaluate_sharded``
in one process with the chunked ranker (``FactorScorer``; users in batches of
``--user-batch``, the catalog in chunks of ``--item-chunk``, seen items excluded), all
metrics at k = 5, 10, 20 and ``--bootstrap`` resamples.

Memory has two parts. The per-user part (log arrays, histories, factors, top-k lists,
ranks, per-user metrics) grows with users. The block part is a few (user_batch x
item_chunk) arrays and does not grow with users or items. So the default sizes are:

- 1,000,000 users x 2,000 items: the full user count, measured (peak RSS at full size);
- 25,000 / 50,000 / 100,000 users x 100,000 items: the full catalog, for time per
  (user, item) pair and for the block part.

The report extrapolates the 1M x 100k size from them, and labels it so, unless ``--sizes``
includes it: ``--sizes 1000000x100000`` runs it, about 1e11 scored pairs.

Run: ``python bench/bench_memory.py [--sizes 1000000x2000,100000x100000]``. Writes
``bench/results/memory.md``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path

for _name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_name, "1")

HERE = Path(__file__).resolve().parent
DEFAULT_SIZES = "1000000x2000,25000x100000,50000x100000,100000x100000"
FULL_USERS, FULL_ITEMS = 1_000_000, 100_000
DIMS = 64


def peak_rss_mib() -> float:
    """Return this process's peak resident set size in MiB (Linux reports ru_maxrss in KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def child(args) -> None:
    import numpy as np
    import torch

    torch.set_num_threads(1)
    from recwidgets.data.split import EvalSet
    from recwidgets.distributed import FactorScorer, chunked_rank_users, evaluate_sharded, peak_block_bytes
    from recwidgets.synthetic import synthetic_arrays

    n_users, n_items = args.users, args.items
    stages: dict[str, float] = {}
    baseline = peak_rss_mib()

    clock = time.perf_counter()
    arrays = synthetic_arrays(n_users, n_items, mean_length=20.0, seed=0)
    users, items = arrays["user"], arrays["item"]
    n_events = len(items)
    del arrays
    bounds = np.searchsorted(users, np.arange(1, n_users + 2))
    del users
    histories = [items[bounds[u] : bounds[u + 1] - 1] for u in range(n_users)]
    targets = [items[bounds[u + 1] - 1 : bounds[u + 1]] for u in range(n_users)]
    popularity = np.bincount(items, minlength=n_items + 1)
    stages["data_seconds"] = time.perf_counter() - clock
    stages["rss_after_data_mib"] = peak_rss_mib()

    rng = np.random.default_rng(1)
    scorer = FactorScorer(
        rng.standard_normal((n_users, DIMS), dtype=np.float32), rng.standard_normal((n_items + 1, DIMS), dtype=np.float32)
    )

    class FactorModel:
        name = "factors"
        max_len = None
        device = torch.device("cpu")

        def __init__(self):
            self.n_items = n_items

        def score(self, histories):
            raise NotImplementedError

    def ranker(model, histories, targets, *, k, exclude_seen, negatives, users):
        return chunked_rank_users(
            scorer,
            histories,
            targets,
            k=k,
            exclude_seen=exclude_seen,
            user_batch=args.user_batch,
            item_chunk=args.item_chunk,
            rows=users - 1,
        )

    timings: dict = {}
    clock = time.perf_counter()
    cpu = time.process_time()
    result = evaluate_sharded(
        FactorModel(),
        EvalSet(np.arange(1, n_users + 1), histories, targets),
        k=(5, 10, 20),
        train_popularity=popularity,
        n_bootstrap=args.bootstrap,
        batch_size=args.user_batch,
        ranker=ranker,
        timings=timings,
    )
    stages["evaluate_seconds"] = time.perf_counter() - clock
    stages["evaluate_cpu_seconds"] = time.process_time() - cpu
    stages["rank_seconds"] = timings["rank_seconds"]
    stages["metric_seconds"] = timings["metric_seconds"]
    print(
        json.dumps(
            {
                "users": n_users,
                "items": n_items,
                "events": int(n_events),
                "user_batch": args.user_batch,
                "item_chunk": args.item_chunk,
                "bootstrap": args.bootstrap,
                "block_estimate_mib": peak_block_bytes(args.user_batch, args.item_chunk) / 2**20,
                "baseline_rss_mib": baseline,
                "peak_rss_mib": peak_rss_mib(),
                "ndcg10": result.value("NDCG@10"),
                "load_average": round(os.getloadavg()[0], 2),
                **stages,
            }
        )
    )


def extrapolate(rows: list[dict]) -> dict | None:
    """Estimate peak RSS and time at 1M x 100k from the measured rows (see the module docstring)."""
    full_users = [row for row in rows if row["users"] == FULL_USERS]
    full_catalog = [row for row in rows if row["items"] == FULL_ITEMS]
    if not full_users or not full_catalog:
        return None
    biggest = max(full_catalog, key=lambda row: row["users"])
    # Time: ranking CPU is proportional to scored pairs; take the largest full-catalog run.
    rank_cpu_per_pair = biggest["rank_cpu_estimate"] / (biggest["users"] * (biggest["items"] + 1))
    rank_seconds = rank_cpu_per_pair * FULL_USERS * (FULL_ITEMS + 1)
    # Metric time grows with users only; take it from the full-user run.
    metric_seconds = full_users[0]["metric_seconds_cpu_estimate"]
    # Memory: the full-user run plus what the larger catalog adds (item factors, popularity,
    # the generator's per-item tables), read from two full-catalog runs of different user counts.
    per_item_bytes = DIMS * 4 + 8 * 6
    extra_mib = (FULL_ITEMS - full_users[0]["items"]) * per_item_bytes / 2**20
    return {
        "peak_rss_mib": full_users[0]["peak_rss_mib"] + extra_mib,
        "rank_cpu_seconds": rank_seconds,
        "metric_cpu_seconds": metric_seconds,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", default=DEFAULT_SIZES, help=f"USERSxITEMS list (default: {DEFAULT_SIZES})")
    parser.add_argument("--user-batch", type=int, default=1024, help="users per block (default: 1024)")
    parser.add_argument("--item-chunk", type=int, default=8192, help="items per block (default: 8192)")
    parser.add_argument("--bootstrap", type=int, default=100, help="bootstrap resamples (default: 100)")
    parser.add_argument("--out", type=Path, default=HERE / "results" / "memory.md", help="report path")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--users", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--items", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        return child(args)

    import torch

    rows = []
    for size in args.sizes.split(","):
        users, items = (int(part) for part in size.lower().split("x"))
        command = [
            sys.executable, __file__, "--child", "--users", str(users), "--items", str(items),
            "--user-batch", str(args.user_batch), "--item-chunk", str(args.item_chunk), "--bootstrap", str(args.bootstrap),
        ]
        print("running", " ".join(command[1:]), flush=True)
        output = subprocess.run(command, check=True, capture_output=True, text=True).stdout
        row = json.loads(output.strip().splitlines()[-1])
        # CPU estimates per stage: the child's CPU/wall ratio applied to each wall stage.
        ratio = row["evaluate_cpu_seconds"] / max(row["evaluate_seconds"], 1e-9)
        row["rank_cpu_estimate"] = row["rank_seconds"] * ratio
        row["metric_seconds_cpu_estimate"] = row["metric_seconds"] * ratio
        rows.append(row)
        print(json.dumps(row), flush=True)

    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    lines = [
        "# Memory-bounded full ranking: peak RSS and time",
        "",
        f"Machine: {platform.machine()}, {os.cpu_count()} cores, {memory:.0f} GiB; python {platform.python_version()}, "
        f"torch {torch.__version__}; one torch thread.",
        f"Command: `{' '.join([Path(sys.executable).name, *sys.argv])}`. Blocks of {args.user_batch} users x "
        f"{args.item_chunk} items; {args.bootstrap} bootstrap resamples; seen items excluded; k = 5, 10, 20.",
        "",
        "| users | items | events | peak RSS MiB | ranking wall s | ranking CPU s (est.) | metrics (+CIs) wall s "
        "| ns CPU per scored pair | load avg |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for row in rows:
        pairs = row["users"] * (row["items"] + 1)
        lines.append(
            f"| {row['users']:,} | {row['items']:,} | {row['events']:,} | {row['peak_rss_mib']:.0f} | "
            f"{row['rank_seconds']:.1f} | {row['rank_cpu_estimate']:.1f} | {row['metric_seconds']:.1f} | "
            f"{1e9 * row['rank_cpu_estimate'] / pairs:.2f} | {row['load_average']} |"
        )
    measured = [row for row in rows if row["users"] >= FULL_USERS and row["items"] >= FULL_ITEMS]
    estimate = None if measured else extrapolate(rows)
    if measured:
        row = measured[0]
        lines += [
            "",
            f"Measured at full size: {row['users']:,} users x {row['items']:,} items ranked in "
            f"{row['rank_seconds'] / 60:.1f} wall minutes ({row['rank_cpu_estimate'] / 60:.1f} CPU minutes, one "
            f"thread) with a peak RSS of {row['peak_rss_mib'] / 1024:.2f} GiB.",
        ]
    if estimate is not None:
        lines += [
            "",
            f"**Extrapolation, not a measurement**, to {FULL_USERS:,} users x {FULL_ITEMS:,} items: peak RSS about "
            f"{estimate['peak_rss_mib'] / 1024:.1f} GiB (the measured 1M-user run plus "
            f"{DIMS * 4 + 48} bytes per extra item), ranking about {estimate['rank_cpu_seconds'] / 60:.0f} CPU minutes on "
            f"one thread (CPU time per scored pair of the largest full-catalog run x 1e11 pairs), metrics about "
            f"{estimate['metric_cpu_seconds']:.0f} CPU seconds (from the 1M-user run).",
        ]
    text = "\n".join(lines)
    print(text)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text + "\n")
    args.out.with_suffix(".json").write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
