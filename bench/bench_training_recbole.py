"""Time to quality: recwidgets' SASRec against RecBole 1.2.1's SASRec on ML-100K, one thread each.

Both models use cross-entropy over the full catalog, history length 50, hidden size 64,
2 layers, 2 heads, dropout 0.2, learning rate 0.001 and seed 2020. What differs is each
library's own design. RecBole trains on every prefix of every training sequence (one
target per sample, batches of 2048) with a post-norm GELU transformer whose feed-forward
layer has 256 units (its default ``inner_size``). recwidgets trains on windows of 50 with
a target at every position (batches of 128) with a pre-norm ReLU transformer whose
feed-forward layer has 64 units.

Both models are evaluated on the same test set, the recwidgets leave-last-out split of
ML-100K (last interaction of each of the 943 users, history = everything before it),
after every epoch, by the same pessimistic full ranking, under both settings of seen-item
exclusion. RecBole's own full-sort evaluator excludes no history items for sequential
models (only padding), which is the "seen items kept" column. RecBole trains on its own
leave-one-out split of its bundled ML-100K atomic file (the same 100,000 ratings). Only
training time is clocked, in CPU seconds of the training process. Evaluation runs between
epochs with the clock stopped.

The sides run one after the other, never at the same time. RecBole runs in its own venv
(``bench/setup_recbole_venv.sh``), as a subprocess of this script with ``--worker recbole``.

Run: ``python bench/bench_training_recbole.py --budget-minutes 15``; the default budget is
15 minutes of training per side. Prints a Markdown report and writes it (and the per-epoch
records as JSON) to ``bench/results/training_recbole.md``.
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

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")

import numpy as np

HERE = Path(__file__).resolve().parent
DEFAULT_VENV = Path(os.environ.get("RECBOLE_VENV", "/work/recbole-venv"))
SEED = 2020


def load_average() -> float:
    """Return the 1-minute load average of the machine."""
    return round(os.getloadavg()[0], 2)


def pessimistic_ranks(scores: np.ndarray, targets: np.ndarray, seen: list[np.ndarray] | None) -> np.ndarray:
    """Return the rank of each row's target among real items (column 0 is padding).

    Candidates are every real item, minus the row's ``seen`` items when given (the target
    always stays); rank = 1 + candidates scoring higher + other candidates scoring equal.
    Used identically on both sides; imports only numpy so it runs in either venv.
    """
    scores = scores.astype(np.float64, copy=True)
    scores[:, 0] = -np.inf
    rows = np.arange(len(targets))
    target_scores = scores[rows, targets].copy()
    if seen is not None:
        for row, items in enumerate(seen):
            scores[row, items] = -np.inf
    scores[rows, targets] = -np.inf
    higher = (scores > target_scores[:, None]).sum(axis=1)
    equal = (scores == target_scores[:, None]).sum(axis=1)
    return 1 + higher + equal


def ndcg_at_10(ranks: np.ndarray) -> float:
    """Return mean NDCG@10 for one target per user."""
    return float(np.mean(np.where(ranks <= 10, 1.0 / np.log2(ranks + 1.0), 0.0)))


# ---------------------------------------------------------------------------------------
# RecBole side (runs in the RecBole venv)


def recbole_worker(args) -> None:
    import torch

    torch.set_num_threads(1)
    import recbole
    from recbole.config import Config
    from recbole.data import create_dataset, data_preparation
    from recbole.model.sequential_recommender import SASRec as RecBoleSASRec
    from recbole.trainer import Trainer
    from recbole.utils import init_seed

    test = np.load(args.test_file, allow_pickle=True)
    data_path = str(Path(recbole.__file__).parent / "dataset_example")
    work = Path(args.work_dir)
    os.chdir(work)
    config = Config(
        model="SASRec",
        dataset="ml-100k",
        config_dict={
            "data_path": data_path,
            "checkpoint_dir": str(work / "saved"),
            "loss_type": "CE",
            "train_neg_sample_args": None,
            "MAX_ITEM_LIST_LENGTH": 50,
            "hidden_size": 64,
            "inner_size": args.recbole_inner_size,
            "n_layers": 2,
            "n_heads": 2,
            "hidden_dropout_prob": 0.2,
            "attn_dropout_prob": 0.2,
            "learning_rate": 0.001,
            "seed": SEED,
            "reproducibility": True,
            "device": "cpu",
            "use_gpu": False,
            "show_progress": False,
            "state": "ERROR",
            "eval_args": {"split": {"LS": "valid_and_test"}, "order": "TO", "mode": "full", "group_by": "user"},
        },
    )
    init_seed(config["seed"], config["reproducibility"])
    dataset = create_dataset(config)
    train_data, _, _ = data_preparation(config, dataset)
    init_seed(config["seed"] + config["local_rank"], config["reproducibility"])
    model = RecBoleSASRec(config, train_data._dataset).to("cpu")
    trainer = Trainer(config, model)
    torch.set_num_threads(1)

    # Our raw item ids -> RecBole internal ids; RecBole tokens are the raw ids as strings.
    token_to_id = dataset.field2token_id["item_id"]
    raw_items = test["raw_items"]
    rb_of_ours = np.array([token_to_id.get(str(raw), -1) if raw is not None else 0 for raw in raw_items])
    missing = int((rb_of_ours[1:] < 0).sum())
    if missing:
        raise SystemExit(f"{missing} of our items are unknown to RecBole's ml-100k; the data sets differ.")
    histories = list(test["histories"])
    targets = test["targets"].astype(np.int64)

    @torch.no_grad()
    def evaluate() -> tuple[float, float]:
        model.eval()
        weight = model.item_embedding.weight
        ranks_excluded, ranks_kept = [], []
        for start in range(0, len(targets), 256):
            batch = histories[start : start + 256]
            seq = np.zeros((len(batch), 50), dtype=np.int64)
            lengths = np.zeros(len(batch), dtype=np.int64)
            for row, history in enumerate(batch):
                tail = rb_of_ours[np.asarray(history[-50:], dtype=np.int64)]
                seq[row, : len(tail)] = tail
                lengths[row] = len(tail)
            output = model.forward(torch.from_numpy(seq), torch.from_numpy(lengths))
            rb_scores = (output @ weight.t()).numpy()
            scores = rb_scores[:, rb_of_ours]  # columns in our item ids, column 0 -> RecBole padding
            batch_targets = targets[start : start + 256]
            seen = [np.asarray(history, dtype=np.int64) for history in batch]
            ranks_excluded.append(pessimistic_ranks(scores, batch_targets, seen))
            ranks_kept.append(pessimistic_ranks(scores, batch_targets, None))
        return ndcg_at_10(np.concatenate(ranks_excluded)), ndcg_at_10(np.concatenate(ranks_kept))

    # An untrained evaluation first: it checks the id mapping before minutes of training are spent.
    print(json.dumps({"epoch": 0, "untrained_ndcg10": evaluate()}), flush=True)
    records = []
    cpu, wall = 0.0, 0.0
    budget = args.budget_minutes * 60.0
    epoch = 0
    while cpu < budget and epoch < args.max_epochs:
        cpu_clock, wall_clock = time.process_time(), time.perf_counter()
        loss = trainer._train_epoch(train_data, epoch, show_progress=False)
        cpu += time.process_time() - cpu_clock
        wall += time.perf_counter() - wall_clock
        excluded, kept = evaluate()
        epoch += 1
        records.append(
            {
                "epoch": epoch,
                "train_seconds": cpu,
                "wall_seconds": wall,
                "loss": float(loss),
                "ndcg10_seen_excluded": excluded,
                "ndcg10_seen_kept": kept,
                "load_average": load_average(),
            }
        )
        print(json.dumps(records[-1]), flush=True)
    info = {
        "recbole": recbole.__version__,
        "torch": torch.__version__,
        "numpy": np.__version__,
        "train_samples": len(train_data._dataset),
        "batch_size": config["train_batch_size"],
        "inner_size": config["inner_size"],
    }
    Path(args.out_file).write_text(json.dumps({"records": records, "info": info}))


# ---------------------------------------------------------------------------------------
# recwidgets side and orchestration (project venv)


class BudgetReached(Exception):
    pass


def ours_side(split, budget_minutes: float, max_epochs: int) -> tuple[list[dict], dict]:
    import torch

    torch.set_num_threads(1)
    from recwidgets.evaluation import evaluate
    from recwidgets.models.sasrec import SASRec

    model = SASRec(
        loss="ce", max_len=50, hidden=64, layers=2, heads=2, dropout=0.2, lr=0.001, seed=SEED, patience=None
    )
    records: list[dict] = []
    cpu = [0.0, time.process_time()]  # training CPU seconds so far, CPU clock after the last evaluation
    wall = [0.0]

    def on_event(event: dict) -> None:
        if event["event"] != "epoch":
            return
        cpu[0] += time.process_time() - cpu[1]
        wall[0] += event["seconds"]
        excluded = evaluate(model, split, k=(10,), n_bootstrap=0).value("NDCG@10")
        kept = evaluate(model, split, k=(10,), n_bootstrap=0, exclude_seen=False).value("NDCG@10")
        records.append(
            {
                "epoch": event["epoch"],
                "train_seconds": cpu[0],
                "wall_seconds": wall[0],
                "loss": event["train_loss"],
                "ndcg10_seen_excluded": excluded,
                "ndcg10_seen_kept": kept,
                "load_average": load_average(),
            }
        )
        print(json.dumps(records[-1]), flush=True)
        cpu[1] = time.process_time()
        if cpu[0] >= budget_minutes * 60.0:
            raise BudgetReached

    try:
        model.fit(split, epochs=max_epochs, progress=False, validate=False, callbacks=[on_event], device="cpu")
    except BudgetReached:
        pass
    info = {"batch_size": model.config.batch_size, "windows": model.config.windows}
    return records, info


def time_to_reach(records: list[dict], key: str, target: float) -> float | None:
    """Return the training seconds of the first epoch whose ``key`` is at least ``target``."""
    for record in records:
        if record[key] >= target:
            return record["train_seconds"]
    return None


def best_within(records: list[dict], key: str, seconds: float) -> float | None:
    """Return the best ``key`` over the epochs that ended within ``seconds`` of training."""
    values = [record[key] for record in records if record["train_seconds"] <= seconds]
    return max(values) if values else None


def fmt(value, digits: int = 4) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"


def report(ours: list[dict], theirs: list[dict], meta: dict) -> str:
    lines = [
        "# Time to quality: recwidgets SASRec vs RecBole 1.2.1 SASRec (ML-100K, CE loss)",
        "",
        f"Machine: {meta['machine']}. Versions: {meta['versions']}. One torch thread per side, OMP_NUM_THREADS=1.",
        f"Command: `{meta['command']}`. Budget: {meta['budget_minutes']} min of training per side.",
        f"Load average (1 min) at start: {meta['load_start']}; each epoch row below records it too.",
        "",
        "Times are CPU seconds of the training process (`time.process_time`), which for one thread",
        "approximate wall time on an idle core; the budget is counted in them too. Wall seconds are in",
        "the per-epoch tables; on a shared machine they are larger by the load factor.",
        "",
    ]
    for key, label in (("ndcg10_seen_excluded", "seen items excluded"), ("ndcg10_seen_kept", "seen items kept")):
        recbole_best = max((record[key] for record in theirs), default=None)
        recbole_best_at = next((r["train_seconds"] for r in theirs if recbole_best is not None and r[key] == recbole_best), None)
        ours_time = time_to_reach(ours, key, recbole_best) if recbole_best is not None else None
        ours_best = max((record[key] for record in ours), default=None)
        lines += [
            f"## Test NDCG@10, {label}",
            "",
            "| | RecBole | recwidgets | ratio |",
            "| --- | --- | --- | --- |",
            f"| best NDCG@10 within the budget | {fmt(recbole_best)} | {fmt(ours_best)} | "
            f"{fmt(ours_best / recbole_best if recbole_best and ours_best else None, 2)}x |",
            f"| training CPU seconds to reach RecBole's best ({fmt(recbole_best)}) | {fmt(recbole_best_at, 1)} | "
            f"{fmt(ours_time, 1)} | "
            f"{fmt(recbole_best_at / ours_time if ours_time and recbole_best_at else None, 1)}x faster |",
            "",
        ]
    for name, records in (("RecBole", theirs), ("recwidgets", ours)):
        lines += [
            f"## Per epoch: {name}",
            "",
            "| epoch | training CPU s (cumulative) | training wall s | loss | NDCG@10 seen excluded "
            "| NDCG@10 seen kept | load avg |",
            "| --- | --- | --- | --- | --- | --- | --- |",
        ]
        step = max(1, len(records) // 40)
        shown = records[::step] + ([records[-1]] if records and (len(records) - 1) % step else [])
        for record in shown:
            lines.append(
                f"| {record['epoch']} | {record['train_seconds']:.1f} | {record['wall_seconds']:.1f} | "
                f"{record['loss']:.4f} | "
                f"{record['ndcg10_seen_excluded']:.4f} | {record['ndcg10_seen_kept']:.4f} | {record['load_average']} |"
            )
        lines.append("")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--budget-minutes", type=float, default=15.0, help="training CPU time per side, minutes (default: 15)"
    )
    parser.add_argument("--max-epochs", type=int, default=10_000, help="epoch cap per side (default: none in practice)")
    parser.add_argument("--venv", type=Path, default=DEFAULT_VENV, help="RecBole venv (default: /work/recbole-venv)")
    parser.add_argument("--recbole-inner-size", type=int, default=256, help="RecBole feed-forward size (default: its own 256)")
    parser.add_argument("--data", default=str(HERE.parent.parent / "shared" / "datasets" / "ml-100k"), help="ML-100K folder")
    parser.add_argument("--out", type=Path, default=HERE / "results" / "training_recbole.md", help="report path")
    parser.add_argument("--skip-recbole", action="store_true", help="run only the recwidgets side (for a quick check)")
    parser.add_argument("--worker", choices=("recbole",), help=argparse.SUPPRESS)
    parser.add_argument("--test-file", help=argparse.SUPPRESS)
    parser.add_argument("--work-dir", help=argparse.SUPPRESS)
    parser.add_argument("--out-file", help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.worker == "recbole":
        recbole_worker(args)
        return

    import torch

    from recwidgets.data.loaders import load_ml100k
    from recwidgets.data.split import leave_last_out

    log = load_ml100k(args.data)
    split = leave_last_out(log)
    test = split.test
    meta = {
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
        f"{os.sysconf('SC_PAGE_SIZE') * os.sysconf('SC_PHYS_PAGES') / 2**30:.0f} GiB",
        "versions": f"python {platform.python_version()}, torch {torch.__version__}, numpy {np.__version__}",
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "budget_minutes": args.budget_minutes,
        "load_start": load_average(),
    }

    theirs: list[dict] = []
    if not args.skip_recbole:
        with tempfile.TemporaryDirectory() as work:
            test_file = Path(work) / "test.npz"
            np.savez(
                test_file,
                raw_items=np.asarray(log.item_ids, dtype=object),
                histories=np.array([np.asarray(h, dtype=np.int64) for h in test.histories], dtype=object),
                targets=np.array([int(t[0]) for t in test.targets], dtype=np.int64),
            )
            out_file = Path(work) / "recbole.json"
            command = [
                str(args.venv / "bin" / "python"), __file__, "--worker", "recbole",
                "--test-file", str(test_file), "--work-dir", work, "--out-file", str(out_file),
                "--budget-minutes", str(args.budget_minutes), "--max-epochs", str(args.max_epochs),
                "--recbole-inner-size", str(args.recbole_inner_size),
            ]
            print("RecBole side:", " ".join(command), flush=True)
            subprocess.run(command, check=True, env={**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"})
            payload = json.loads(out_file.read_text())
            theirs = payload["records"]
            meta["versions"] += (
                f"; RecBole venv: recbole {payload['info']['recbole']}, torch {payload['info']['torch']}, "
                f"numpy {payload['info']['numpy']}"
            )
            meta["recbole"] = payload["info"]

    print("recwidgets side", flush=True)
    ours, ours_info = ours_side(split, args.budget_minutes, args.max_epochs)
    meta["recwidgets"] = ours_info
    text = report(ours, theirs, meta)
    print(text)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text + "\n")
    args.out.with_suffix(".json").write_text(json.dumps({"meta": meta, "recwidgets": ours, "recbole": theirs}, indent=1))


if __name__ == "__main__":
    main()
