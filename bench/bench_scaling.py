"""Evaluation throughput of ``evaluate_sharded`` with 1 and 2 processes (gloo, CPU).

A synthetic log (``recwidgets.synthetic.synthetic_arrays``, seed 0) is split leave-last-out,
and a SASRec of hidden size 64, 2 layers and 2 heads, with seeded random weights (the work
per user does not depend on training), is evaluated on the test part: full ranking, seen
items excluded, every metric at k = 5, 10, 20, and bootstrap CIs. For each process count
the script starts ``torchrun --nproc_per_node=N`` on 127.0.0.1. Every rank builds the same
data and model, ranks its block of users with one torch thread, and rank 0 gathers and
computes the metrics. Rank 0 checks that the result equals the 1-process result (top-k
lists and every metric value).

``--ranker chunked`` replaces ``rank_users`` with ``chunked_rank_users`` over
``SASRecScorer``. The GPU path (NCCL, one device per rank) is the same code with
``--backend nccl``; this script was not run on a GPU.

Run: ``python bench/bench_scaling.py [--users 20000 --items 10000 --procs 1,2]``. Writes
``bench/results/scaling.md``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

HERE = Path(__file__).resolve().parent


def worker(args) -> None:
    import numpy as np
    import pandas as pd
    import torch

    torch.set_num_threads(1)
    from recwidgets.data.log import InteractionLog
    from recwidgets.data.split import leave_last_out
    from recwidgets.distributed import SASRecScorer, chunked_rank_users, evaluate_sharded, init_distributed
    from recwidgets.models.sasrec import SASRec, SASRecModule
    from recwidgets.synthetic import synthetic_arrays

    context = init_distributed("gloo", "cpu")
    clock = time.perf_counter()
    arrays = synthetic_arrays(args.users, args.items, mean_length=20.0, seed=0)
    log = InteractionLog.from_frame(pd.DataFrame({key: arrays[key] for key in ("user", "item", "timestamp")}))
    split = leave_last_out(log, short_users="drop")
    model = SASRec(hidden=64, layers=2, heads=2, seed=0)
    torch.manual_seed(0)
    model.module = SASRecModule(log.n_items, max_len=50, hidden=64, layers=2, heads=2).eval()
    model.n_items = log.n_items
    setup_seconds = time.perf_counter() - clock

    ranker = None
    if args.ranker == "chunked":

        def ranker(model, histories, targets, *, k, exclude_seen, negatives, users):
            return chunked_rank_users(
                SASRecScorer(model, histories), histories, targets, k=k, exclude_seen=exclude_seen, user_batch=256
            )

    context.barrier()
    timings: dict = {}
    clock = time.perf_counter()
    result = evaluate_sharded(
        model,
        split,
        k=(5, 10, 20),
        n_bootstrap=args.bootstrap,
        batch_size=256,
        context=context,
        dst=0,
        ranker=ranker,
        timings=timings,
    )
    total = time.perf_counter() - clock
    if context.is_root:
        digest = hashlib.sha1(np.ascontiguousarray(result.topk).tobytes()).hexdigest()[:16]
        print(
            "RESULT "
            + json.dumps(
                {
                    "procs": context.world_size,
                    "users": len(result.users),
                    "items": log.n_items,
                    "setup_seconds": setup_seconds,
                    "seconds": total,
                    **timings,
                    "users_per_second": len(result.users) / total,
                    "topk_digest": digest,
                    "metrics": {label: float(value) for label, value in result.metrics["value"].items()},
                    "load_average": round(os.getloadavg()[0], 2),
                }
            ),
            flush=True,
        )
    context.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--users", type=int, default=20_000, help="synthetic users (default: 20000)")
    parser.add_argument("--items", type=int, default=10_000, help="synthetic items (default: 10000)")
    parser.add_argument("--procs", default="1,2", help="process counts, comma-separated (default: 1,2)")
    parser.add_argument("--bootstrap", type=int, default=200, help="bootstrap resamples (default: 200)")
    parser.add_argument("--ranker", choices=("rank_users", "chunked"), default="rank_users", help="ranking function")
    parser.add_argument("--out", type=Path, default=HERE / "results" / "scaling.md", help="report path")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        return worker(args)

    import torch

    from recwidgets.distributed import free_port

    rows = []
    for procs in (int(part) for part in args.procs.split(",")):
        command = [
            sys.executable, "-m", "torch.distributed.run", f"--nproc_per_node={procs}", "--master_addr=127.0.0.1",
            f"--master_port={free_port()}", __file__, "--worker", "--users", str(args.users), "--items", str(args.items),
            "--bootstrap", str(args.bootstrap), "--ranker", args.ranker,
        ]
        print("running", " ".join(command[1:]), flush=True)
        output = subprocess.run(command, check=True, capture_output=True, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"})
        line = next(line for line in output.stdout.splitlines() if line.startswith("RESULT "))
        rows.append(json.loads(line[len("RESULT ") :]))
        print(json.dumps(rows[-1]), flush=True)

    base = rows[0]
    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    lines = [
        "# Sharded evaluation throughput, gloo on CPU",
        "",
        f"Machine: {platform.machine()}, {os.cpu_count()} cores, {memory:.0f} GiB; python {platform.python_version()}, "
        f"torch {torch.__version__}; one torch thread per process.",
        f"Command: `{' '.join([Path(sys.executable).name, *sys.argv])}`. {base['users']:,} test users, "
        f"{base['items']:,} items, ranker {args.ranker}, {args.bootstrap} bootstrap resamples on rank 0.",
        "",
        "| processes | wall s | ranking s (rank 0) | gather s | metrics+CIs s (rank 0) | users/s | speed-up | same result as 1 process | load avg |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for row in rows:
        same = row["topk_digest"] == base["topk_digest"] and row["metrics"] == base["metrics"]
        lines.append(
            f"| {row['procs']} | {row['seconds']:.1f} | {row['rank_seconds']:.1f} | {row['gather_seconds']:.2f} | "
            f"{row['metric_seconds']:.1f} | {row['users_per_second']:.0f} | {base['seconds'] / row['seconds']:.2f}x | "
            f"{'yes' if same else 'NO'} | {row['load_average']} |"
        )
    lines += [
        "",
        "The metric and bootstrap step runs on rank 0 only, so it does not scale with processes.",
        "GPU path (NCCL): not measured, no GPU was available for this run.",
    ]
    text = "\n".join(lines)
    print(text)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text + "\n")
    args.out.with_suffix(".json").write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
