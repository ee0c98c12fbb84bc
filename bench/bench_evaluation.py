"""Full-ranking evaluation: recwidgets against RecBole 1.2.1's full-sort evaluator and against ranx.

Part 1, full ranking. Synthetic log of 100,000 users x 20,000 items
(``recwidgets.synthetic.synthetic_arrays``, seed 0): each user's last item is the target
and the items before it are the history. Scores are ``U @ V.T`` for seeded float32 factors
(dimension 32), computed in batches of 1,024 users with the same torch build on both sides,
so both evaluate bitwise equal scores. Both exclude each user's history from the ranking.

- recwidgets: ``evaluate_sharded`` (one process) with the chunked ranker
  (``chunked_rank_users`` + ``FactorScorer``), all metrics at k = 5, 10, 20 (HR, Precision,
  Recall, NDCG, MRR, MAP, Coverage, Gini, Novelty, ARP), segments and 1,000-resample
  bootstrap CIs; timed again without CIs.
- RecBole: what ``Trainer.evaluate`` does in full-sort mode. It sets history scores to
  -inf, calls ``Collector.eval_batch_collect`` per batch and then ``Evaluator.evaluate``,
  for Hit, Precision, Recall, NDCG, MRR, MAP, ItemCoverage, GiniIndex and
  AveragePopularity at the same k. RecBole computes no intervals.

Part 2, metrics from top-k lists. The 100,000 top-20 lists from part 1 and one relevant
item per user, 5 metrics at k = 10 (hit rate, precision, recall, NDCG, MRR), each side in a
fresh process, timed from process start (imports and ranx's numba JIT included) to the
last metric. ranx's numba cache is cleared first, so its first process compiles. A second
process then reuses the on-disk cache.

Every side runs alone, one torch or numba thread (``OMP_NUM_THREADS=1``,
``NUMBA_NUM_THREADS=1``). RecBole and ranx run in their own venv
(``bench/setup_recbole_venv.sh``) as subprocesses of this script (``--worker``).

Run: ``python bench/bench_evaluation.py [--users 100000 --items 20000]``. Writes
``bench/results/evaluation.md``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

for _name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS"):
    os.environ.setdefault(_name, "1")

import numpy as np

HERE = Path(__file__).resolve().parent
DEFAULT_VENV = Path(os.environ.get("RECBOLE_VENV", "/work/recbole-venv"))
BATCH = 1024
DIMS = 32
KS = (5, 10, 20)


def load_average() -> float:
    return round(os.getloadavg()[0], 2)


def factors(n_users: int, n_items: int, seed: int = 1):
    """Return seeded float32 user factors (U, D) and item factors (n_items + 1, D)."""
    rng = np.random.default_rng(seed)
    users = rng.standard_normal((n_users, DIMS), dtype=np.float32)
    items = rng.standard_normal((n_items + 1, DIMS), dtype=np.float32)
    return users, items


def unpack_histories(flat: np.ndarray, offsets: np.ndarray) -> list[np.ndarray]:
    return [flat[offsets[row] : offsets[row + 1]] for row in range(len(offsets) - 1)]


# ---------------------------------------------------------------------------------------
# Workers that run in the RecBole venv


def recbole_worker(args) -> None:
    import collections

    import torch

    torch.set_num_threads(1)
    import recbole
    from recbole.config import Config
    from recbole.evaluator import Collector, Evaluator

    data = np.load(args.data_file)
    histories = unpack_histories(data["history_flat"], data["history_offsets"])
    targets = data["targets"]
    popularity = data["popularity"]
    n_items = int(data["n_items"])
    user_factors, item_factors = factors(len(targets), n_items)
    item_t = torch.from_numpy(item_factors).t().contiguous()

    work = Path(args.work_dir)
    os.chdir(work)
    config = Config(
        model="SASRec",
        dataset="ml-100k",
        config_dict={
            "data_path": str(Path(recbole.__file__).parent / "dataset_example"),
            "metrics": ["Hit", "Precision", "Recall", "NDCG", "MRR", "MAP", "ItemCoverage", "GiniIndex", "AveragePopularity"],
            "topk": list(KS),
            "eval_args": {"split": {"LS": "valid_and_test"}, "order": "TO", "mode": "full", "group_by": "user"},
            "train_neg_sample_args": None,
            "device": "cpu",
            "use_gpu": False,
            "state": "ERROR",
        },
    )
    torch.set_num_threads(1)

    clock = time.perf_counter()
    cpu = time.process_time()
    collector = Collector(config)
    collector.data_struct.set("data.num_items", n_items + 1)
    collector.data_struct.set("data.count_items", collections.Counter({i: int(c) for i, c in enumerate(popularity) if c}))
    evaluator = Evaluator(config)
    for start in range(0, len(targets), BATCH):
        stop = min(start + BATCH, len(targets))
        scores = torch.from_numpy(user_factors[start:stop]) @ item_t  # (B, n_items + 1)
        # Trainer._full_sort_batch_eval: padding and history items get -inf.
        scores[:, 0] = -np.inf
        lengths = [len(histories[row]) for row in range(start, stop)]
        history_rows = torch.from_numpy(np.repeat(np.arange(stop - start), lengths))
        history_items = torch.from_numpy(np.concatenate(histories[start:stop]))
        scores[history_rows, history_items] = -np.inf
        positive_u = torch.arange(stop - start)
        positive_i = torch.from_numpy(targets[start:stop])
        collector.eval_batch_collect(scores, None, positive_u, positive_i)
    collect_seconds = time.perf_counter() - clock
    # In RecBole 1.2.1, Collector.get_data_struct calls .cpu() on every entry and fails on the
    # int and Counter entries above. The tensors are on the CPU already, so the struct is evaluated as is.
    result = evaluator.evaluate(collector.data_struct)
    total = time.perf_counter() - clock
    Path(args.out_file).write_text(
        json.dumps(
            {
                "seconds": total,
                "cpu_seconds": time.process_time() - cpu,
                "collect_seconds": collect_seconds,
                "metrics": {key: float(value) for key, value in result.items()},
                "versions": f"recbole {recbole.__version__}, torch {torch.__version__}, numpy {np.__version__}",
                "load_average": load_average(),
            }
        )
    )


def ranx_worker(args) -> None:
    start = float(args.started)
    import pandas as pd
    import ranx
    from ranx import Qrels, Run, evaluate

    data = np.load(args.data_file)
    topk, targets = data["topk"], data["targets"]
    imported = time.time() - start

    n_users, width = topk.shape
    queries = np.repeat(np.arange(n_users).astype(str), width)
    run = Run.from_df(
        pd.DataFrame({"q_id": queries, "doc_id": topk.ravel().astype(str), "score": np.tile(np.arange(width, 0, -1.0), n_users)}),
        q_id_col="q_id",
        doc_id_col="doc_id",
        score_col="score",
    )
    qrels = Qrels.from_df(
        pd.DataFrame({"q_id": np.arange(n_users).astype(str), "doc_id": targets.astype(str), "score": np.ones(n_users, dtype=int)}),
        q_id_col="q_id",
        doc_id_col="doc_id",
        score_col="score",
    )
    built = time.time() - start
    metrics = ["hit_rate@10", "precision@10", "recall@10", "ndcg@10", "mrr@10"]
    first = evaluate(qrels, run, metrics, make_comparable=True)
    done = time.time() - start
    cpu_total = time.process_time()
    clock = time.perf_counter()
    evaluate(qrels, run, metrics, make_comparable=True)
    warm = time.perf_counter() - clock
    Path(args.out_file).write_text(
        json.dumps(
            {
                "import_seconds": imported,
                "build_seconds": built - imported,
                "first_evaluate_seconds": done - built,
                "total_seconds": done,
                "total_cpu_seconds": cpu_total,
                "warm_evaluate_seconds": warm,
                "metrics": {key: float(value) for key, value in first.items()},
                "version": getattr(ranx, "__version__", "0.3.21"),
                "load_average": load_average(),
            }
        )
    )


def ours_topk_worker(args) -> None:
    start = float(args.started)
    from recwidgets.evaluation.metrics import hit_ratio, ndcg, precision, recall, reciprocal_rank

    data = np.load(args.data_file)
    topk, targets = data["topk"], data["targets"]
    imported = time.time() - start

    def compute():
        # A target's rank is its place in the list; a miss ranks just below the list (any rank > 10
        # gives the same metrics at k = 10, and inf would mean "user without target").
        hits = topk == targets[:, None]
        found = hits.any(axis=1)
        ranks = np.where(found, hits.argmax(axis=1) + 1.0, topk.shape[1] + 1.0)[:, None]
        return {
            "HR@10": float(np.nanmean(hit_ratio(ranks, 10))),
            "Precision@10": float(np.nanmean(precision(ranks, 10))),
            "Recall@10": float(np.nanmean(recall(ranks, 10))),
            "NDCG@10": float(np.nanmean(ndcg(ranks, 10))),
            "MRR@10": float(np.nanmean(reciprocal_rank(ranks, 10))),
        }

    metrics = compute()
    done = time.time() - start
    cpu_total = time.process_time()
    clock = time.perf_counter()
    compute()
    warm = time.perf_counter() - clock
    Path(args.out_file).write_text(
        json.dumps(
            {
                "import_seconds": imported,
                "first_evaluate_seconds": done - imported,
                "total_seconds": done,
                "total_cpu_seconds": cpu_total,
                "warm_evaluate_seconds": warm,
                "metrics": metrics,
                "load_average": load_average(),
            }
        )
    )


# ---------------------------------------------------------------------------------------
# recwidgets side and orchestration


class _FactorModel:
    """The model-protocol attributes ``evaluate_sharded`` checks; the ranker does the scoring."""

    name = "factors"
    max_len = None

    def __init__(self, n_items: int):
        import torch

        self.n_items = n_items
        self.device = torch.device("cpu")

    def score(self, histories):
        raise NotImplementedError("scores come from the FactorScorer in the ranker")


def ours_full(histories, targets, popularity, n_items, n_bootstrap: int, n_bootstrap_global: int = 0) -> dict:
    import torch

    torch.set_num_threads(1)
    from recwidgets.data.split import EvalSet
    from recwidgets.distributed import FactorScorer, chunked_rank_users, evaluate_sharded

    user_factors, item_factors = factors(len(targets), n_items)
    scorer = FactorScorer(user_factors, item_factors)

    def ranker(model, histories, targets, *, k, exclude_seen, negatives, users):
        return chunked_rank_users(
            scorer, histories, targets, k=k, exclude_seen=exclude_seen, user_batch=BATCH, item_chunk=8192, rows=users - 1
        )

    evalset = EvalSet(np.arange(1, len(targets) + 1), histories, [np.array([t]) for t in targets])
    timings: dict = {}
    clock = time.perf_counter()
    cpu = time.process_time()
    result = evaluate_sharded(
        _FactorModel(n_items),
        evalset,
        k=KS,
        train_popularity=popularity,
        n_bootstrap=n_bootstrap,
        n_bootstrap_global=n_bootstrap_global,
        batch_size=BATCH,
        ranker=ranker,
        timings=timings,
    )
    return {
        "seconds": time.perf_counter() - clock,
        "cpu_seconds": time.process_time() - cpu,
        "rank_seconds": timings["rank_seconds"],
        "metric_seconds": timings["metric_seconds"],
        "metrics": {label: float(value) for label, value in result.metrics["value"].items()},
        "topk": result.topk,
        "load_average": load_average(),
    }


def run_worker(python: Path, worker: str, data_file: Path, work: Path) -> dict:
    out_file = work / f"{worker}.json"
    command = [
        str(python), __file__, "--worker", worker, "--data-file", str(data_file), "--work-dir", str(work),
        "--out-file", str(out_file), "--started", repr(time.time()),
    ]
    subprocess.run(command, check=True, env={**os.environ, "OMP_NUM_THREADS": "1", "NUMBA_NUM_THREADS": "1"})
    return json.loads(out_file.read_text())


def clear_ranx_cache(python: Path) -> int:
    """Delete numba's cached compilations of ranx in ``python``'s environment; return the file count."""
    found = subprocess.run(
        [str(python), "-c", "import ranx, os; print(os.path.dirname(ranx.__file__))"],
        capture_output=True, text=True, check=True,
    ).stdout.strip()
    removed = 0
    for path in Path(found).rglob("*"):
        if path.suffix in (".nbi", ".nbc"):
            path.unlink()
            removed += 1
    return removed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--users", type=int, default=100_000, help="synthetic users (default: 100000)")
    parser.add_argument("--items", type=int, default=20_000, help="synthetic items (default: 20000)")
    parser.add_argument("--bootstrap", type=int, default=1000, help="bootstrap resamples on our side (default: 1000)")
    parser.add_argument("--venv", type=Path, default=DEFAULT_VENV, help="RecBole/ranx venv (default: /work/recbole-venv)")
    parser.add_argument("--out", type=Path, default=HERE / "results" / "evaluation.md", help="report path")
    parser.add_argument("--worker", choices=("recbole", "ranx", "ours-topk"), help=argparse.SUPPRESS)
    parser.add_argument("--data-file", help=argparse.SUPPRESS)
    parser.add_argument("--work-dir", help=argparse.SUPPRESS)
    parser.add_argument("--out-file", help=argparse.SUPPRESS)
    parser.add_argument("--started", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker == "recbole":
        return recbole_worker(args)
    if args.worker == "ranx":
        return ranx_worker(args)
    if args.worker == "ours-topk":
        return ours_topk_worker(args)

    import torch

    from recwidgets.synthetic import synthetic_arrays

    python_ext = args.venv / "bin" / "python"
    lines_meta = {
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, "
        f"{os.sysconf('SC_PAGE_SIZE') * os.sysconf('SC_PHYS_PAGES') / 2**30:.0f} GiB",
        "versions": f"python {platform.python_version()}, torch {torch.__version__}, numpy {np.__version__}",
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
    }

    clock = time.perf_counter()
    arrays = synthetic_arrays(args.users, args.items, mean_length=20.0, seed=0)
    users, items = arrays["user"], arrays["item"]
    bounds = np.searchsorted(users, np.arange(1, args.users + 2))
    histories = [items[bounds[u] : bounds[u + 1] - 1] for u in range(args.users)]
    targets = np.array([items[bounds[u + 1] - 1] for u in range(args.users)], dtype=np.int64)
    popularity = np.bincount(np.concatenate(histories), minlength=args.items + 1)
    print(f"synthetic data: {len(items)} events in {time.perf_counter() - clock:.1f} s", flush=True)

    results: dict = {"meta": lines_meta}
    with tempfile.TemporaryDirectory() as work_name:
        work = Path(work_name)
        data_file = work / "data.npz"
        flat = np.concatenate(histories)
        offsets = np.concatenate([[0], np.cumsum([len(h) for h in histories])])
        np.savez(data_file, history_flat=flat, history_offsets=offsets, targets=targets, popularity=popularity, n_items=args.items)

        print("recwidgets, full ranking with CIs", flush=True)
        results["ours_ci"] = ours_full(histories, targets, popularity, args.items, args.bootstrap, args.bootstrap)
        print("recwidgets, full ranking with CIs, 100 resamples for Coverage and Gini", flush=True)
        results["ours_ci_light"] = ours_full(histories, targets, popularity, args.items, args.bootstrap, 100)
        results["ours_ci_light"].pop("topk")
        print("recwidgets, full ranking without CIs", flush=True)
        results["ours_plain"] = ours_full(histories, targets, popularity, args.items, 0)
        print("RecBole full-sort evaluator", flush=True)
        results["recbole"] = run_worker(python_ext, "recbole", data_file, work)

        topk_file = work / "topk.npz"
        np.savez(topk_file, topk=results["ours_ci"].pop("topk"), targets=targets)
        results["ours_plain"].pop("topk")
        print("metrics from top-k lists: ours, ranx (cold numba cache), ranx (warm cache)", flush=True)
        results["ours_topk"] = run_worker(Path(sys.executable), "ours-topk", topk_file, work)
        results["ranx_cache_files_removed"] = clear_ranx_cache(python_ext)
        results["ranx_cold"] = run_worker(python_ext, "ranx", topk_file, work)
        results["ranx_warm"] = run_worker(python_ext, "ranx", topk_file, work)

    text = report(results, args)
    print(text)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text + "\n")
    args.out.with_suffix(".json").write_text(json.dumps(results, indent=1, default=float))


def report(results: dict, args) -> str:
    ours_ci, ours_plain, recbole = results["ours_ci"], results["ours_plain"], results["recbole"]
    ours_light = results["ours_ci_light"]
    ours_topk, ranx_cold, ranx_warm = results["ours_topk"], results["ranx_cold"], results["ranx_warm"]
    meta = results["meta"]
    agreement = []
    for ours_label, recbole_label in (("NDCG@10", "ndcg@10"), ("HR@10", "hit@10"), ("MRR@10", "mrr@10"), ("Coverage@10", "itemcoverage@10")):
        agreement.append(f"{ours_label} {ours_ci['metrics'][ours_label]:.4f} vs {recbole['metrics'].get(recbole_label, float('nan')):.4f}")
    ranx_agreement = ", ".join(
        f"{label} {ours_topk['metrics'][label]:.4f} vs {ranx_cold['metrics'][name]:.4f}"
        for label, name in (("NDCG@10", "ndcg@10"), ("MRR@10", "mrr@10"), ("HR@10", "hit_rate@10"))
    )
    lines = [
        f"# Evaluation speed: {args.users:,} users x {args.items:,} items",
        "",
        f"Machine: {meta['machine']}. Versions: {meta['versions']}; RecBole venv: {recbole['versions']}, "
        f"ranx {ranx_cold['version']}. One thread per side.",
        f"Command: `{meta['command']}`.",
        "",
        "## Full ranking: scores -> top-k with history exclusion -> metrics",
        "",
        "| side | wall s | CPU s | of which ranking s | metrics (+CIs) s | load avg |",
        "| --- | --- | --- | --- | --- | --- |",
        f"| recwidgets, 30 metric values + 1000-resample CIs + segments | {ours_ci['seconds']:.1f} | "
        f"{ours_ci['cpu_seconds']:.1f} | {ours_ci['rank_seconds']:.1f} | {ours_ci['metric_seconds']:.1f} | {ours_ci['load_average']} |",
        f"| recwidgets, same, Coverage and Gini CIs from 100 resamples | {ours_light['seconds']:.1f} | "
        f"{ours_light['cpu_seconds']:.1f} | {ours_light['rank_seconds']:.1f} | {ours_light['metric_seconds']:.1f} | "
        f"{ours_light['load_average']} |",
        f"| recwidgets, same without CIs | {ours_plain['seconds']:.1f} | {ours_plain['cpu_seconds']:.1f} | "
        f"{ours_plain['rank_seconds']:.1f} | {ours_plain['metric_seconds']:.1f} | {ours_plain['load_average']} |",
        f"| RecBole Collector + Evaluator, 27 metric values, no CIs | {recbole['seconds']:.1f} | "
        f"{recbole['cpu_seconds']:.1f} | {recbole['collect_seconds']:.1f} | "
        f"{recbole['seconds'] - recbole['collect_seconds']:.1f} | {recbole['load_average']} |",
        "",
        f"Ratio (CPU s, RecBole / recwidgets): {recbole['cpu_seconds'] / ours_ci['cpu_seconds']:.2f}x with our CIs, "
        f"{recbole['cpu_seconds'] / ours_light['cpu_seconds']:.2f}x with 100 Coverage/Gini resamples, "
        f"{recbole['cpu_seconds'] / ours_plain['cpu_seconds']:.2f}x without. "
        f"Wall: {recbole['seconds'] / ours_ci['seconds']:.2f}x and {recbole['seconds'] / ours_plain['seconds']:.2f}x.",
        f"Same numbers on both sides (ours vs RecBole): {'; '.join(agreement)}. RecBole's ItemCoverage "
        "divides by n_items + 1 because its item count includes the padding token.",
        "",
        f"## Metrics from top-k lists, fresh process each ({args.users:,} top-20 lists, 5 metrics at k = 10)",
        "",
        "| side | imports s | building inputs s | first evaluation s | total from process start: wall s | CPU s "
        "| warm evaluation s | load avg |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
        f"| recwidgets | {ours_topk['import_seconds']:.2f} | - | {ours_topk['first_evaluate_seconds']:.2f} | "
        f"{ours_topk['total_seconds']:.2f} | {ours_topk['total_cpu_seconds']:.2f} | "
        f"{ours_topk['warm_evaluate_seconds']:.3f} | {ours_topk['load_average']} |",
        f"| ranx, numba cache cleared ({results['ranx_cache_files_removed']} files) | {ranx_cold['import_seconds']:.2f} | "
        f"{ranx_cold['build_seconds']:.2f} | {ranx_cold['first_evaluate_seconds']:.2f} | {ranx_cold['total_seconds']:.2f} | "
        f"{ranx_cold['total_cpu_seconds']:.2f} | {ranx_cold['warm_evaluate_seconds']:.3f} | {ranx_cold['load_average']} |",
        f"| ranx, numba cache warm | {ranx_warm['import_seconds']:.2f} | {ranx_warm['build_seconds']:.2f} | "
        f"{ranx_warm['first_evaluate_seconds']:.2f} | {ranx_warm['total_seconds']:.2f} | "
        f"{ranx_warm['total_cpu_seconds']:.2f} | {ranx_warm['warm_evaluate_seconds']:.3f} | {ranx_warm['load_average']} |",
        "",
        f"Ratio (CPU s from process start, ranx / recwidgets): cold "
        f"{ranx_cold['total_cpu_seconds'] / ours_topk['total_cpu_seconds']:.1f}x, warm cache "
        f"{ranx_warm['total_cpu_seconds'] / ours_topk['total_cpu_seconds']:.1f}x; wall: cold "
        f"{ranx_cold['total_seconds'] / ours_topk['total_seconds']:.1f}x, "
        f"warm cache {ranx_warm['total_seconds'] / ours_topk['total_seconds']:.1f}x; warm evaluation only "
        f"{ranx_cold['warm_evaluate_seconds'] / ours_topk['warm_evaluate_seconds']:.1f}x.",
        f"Same numbers (ours vs ranx): {ranx_agreement}.",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
