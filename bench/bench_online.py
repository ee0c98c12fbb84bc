"""Benchmark online updates of SASRec on ML-100K: plasticity, forgetting and seconds per window.

SASRec is trained on the interactions before a global temporal cutoff (leave-last-out on the
pre-cutoff log, so the last pre-cutoff item of each user, the forgetting target, is never a
training target). ``OnlineUpdater`` then replays the rest of the log in windows, committing
each update, once per (learning rate, replay fraction) setting, starting from the same
trained model every time. Updates run on the CPU with one torch thread.

Run from the repository root::

    python bench/bench_online.py            # prints the table, writes bench/results/online.md

The trained model is cached in ``--checkpoint`` so that reruns skip training.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np
import pandas as pd
import torch

from recwidgets.data import leave_last_out, load_ml100k
from recwidgets.models import SASRec
from recwidgets.online import OnlineUpdater, online_logs

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DATA = ROOT.parent / "shared" / "datasets" / "ml-100k"
DEFAULT_OUT = ROOT / "bench" / "results" / "online.md"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="ML-100K folder (with u.data).")
    parser.add_argument("--cutoff", type=float, default=0.8, help="Global cutoff as a quantile of the timestamps.")
    parser.add_argument("--window", default="7D", help="Update window: a pandas duration or a number of interactions.")
    parser.add_argument("--steps", type=int, default=10, help="Optimizer steps per window.")
    parser.add_argument("--lrs", type=float, nargs="+", default=[1e-4, 1e-3, 1e-2], help="Learning rates to compare.")
    parser.add_argument("--replays", type=float, nargs="+", default=[0.0, 0.5], help="Replay fractions to compare.")
    parser.add_argument("--epochs", type=int, default=30, help="Maximum training epochs (early stopping on validation).")
    parser.add_argument("--seed", type=int, default=0, help="Seed of training and of the updates.")
    parser.add_argument("--checkpoint", type=Path, default=Path(tempfile.gettempdir()) / "recwidgets-bench" / "sasrec_online.pt",
                        help="Where the trained SASRec is cached; delete it to retrain.")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="Markdown file to write.")
    return parser.parse_args(argv)


def trained_model(pre_cutoff, args: argparse.Namespace) -> tuple[SASRec, bool]:
    """Return SASRec trained on the pre-cutoff log and whether it came from the checkpoint cache."""
    if args.checkpoint.is_file():
        return SASRec.load(args.checkpoint, device="cpu"), True
    split = leave_last_out(pre_cutoff, short_users="train")
    model = SASRec(epochs=args.epochs, patience=3, seed=args.seed)
    model.fit(split, device="cpu", progress=False)
    args.checkpoint.parent.mkdir(parents=True, exist_ok=True)
    model.save(args.checkpoint)
    return model, False


def summarize(frame: pd.DataFrame, lr: float, replay: float) -> dict:
    """Return one table row for the committed updates of one setting."""
    label = "NDCG@10"
    final = frame.iloc[-1]
    plastic = frame.dropna(subset=[f"plasticity_{label}_after"])
    return {
        "lr": lr,
        "replay": replay,
        "windows": len(frame),
        f"next-window {label} original": plastic[f"plasticity_{label}_original"].mean(),
        f"next-window {label} updated": plastic[f"plasticity_{label}_after"].mean(),
        "plasticity gain": (plastic[f"plasticity_{label}_after"] - plastic[f"plasticity_{label}_original"]).mean(),
        f"earlier-users {label} original": final[f"forgetting_{label}_original"],
        f"earlier-users {label} final": final[f"forgetting_{label}_after"],
        "forgetting": final[f"forgetting_{label}_original"] - final[f"forgetting_{label}_after"],
        "top-k Jaccard (window users)": frame["jaccard_affected"].mean(),
        "drift L2 (window items)": frame["drift_l2_in"].mean(),
        "s / update": frame["seconds_update"].mean(),
        "s / measurement": frame["seconds_measure"].mean(),
    }


def machine() -> str:
    cpu = platform.processor() or "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{cpu}, {os.cpu_count()} logical cores, {platform.system()} {platform.release()}"


def markdown(table: pd.DataFrame, args: argparse.Namespace, info: dict) -> str:
    def cell(value) -> str:
        return f"{value:.4f}" if isinstance(value, float) else str(value)

    seconds = {column: table[column].map("{:.2f}".format) for column in table.columns if column.startswith("s /")}
    table = table.assign(lr=table["lr"].map("{:g}".format), replay=table["replay"].map("{:.2f}".format), **seconds)
    header = "| " + " | ".join(table.columns) + " |"
    rule = "|" + "|".join("---" for _ in table.columns) + "|"
    rows = ["| " + " | ".join(cell(value) for value in row) + " |" for row in table.itertuples(index=False)]
    table_text = "\n".join([header, rule, *rows])
    command = "python bench/bench_online.py " + " ".join(sys.argv[1:])
    return "\n".join(
        [
            "# Online updates of SASRec on ML-100K",
            "",
            f"Written by `bench/bench_online.py` on {info['date']}.",
            "",
            f"- Command: `{command.strip()}`",
            f"- Machine: {info['machine']}; torch threads: {torch.get_num_threads()}",
            f"- Versions: Python {platform.python_version()}, torch {torch.__version__}, numpy {np.__version__}, "
            f"pandas {pd.__version__}",
            f"- Data: ML-100K, global cutoff at the {args.cutoff} quantile of the timestamps "
            f"({info['cutoff']}); {info['pre_items']} items and {info['pre_users']} users before it, "
            f"{info['new_items']} new items and {info['new_users']} new users after it, "
            f"{info['stream_events']} interactions after it.",
            f"- Model: SASRec with default settings (hidden 64, 2 blocks, max_len 50, full-softmax loss), trained on "
            f"leave-last-out of the pre-cutoff log with early stopping; {info['train_note']}.",
            f"- Updates: window {args.window}, {args.steps} Adam steps of up to 128 window rows per window, fresh "
            f"optimizer state, dense (all parameters), seed {args.seed}; every update is committed.",
            "",
            table_text,
            "",
            "Columns:",
            "",
            "- *next-window NDCG@10*: after the update on window w, the model ranks each interaction of window w+1 "
            "given the user's full history (full ranking, seen items excluded); mean over windows that have a next "
            "window. *original* is the model before any update on the same cases; *plasticity gain* is updated minus "
            "original.",
            "- *earlier-users NDCG@10*: a frozen set of up to 500 users whose last pre-cutoff item is held out "
            "(never a training target, also not during updates); *final* is after the last window; *forgetting* "
            "is original minus final (positive means the updates lost accuracy there).",
            "- *top-k Jaccard*: mean Jaccard distance between a window user's top-10 list before and after the "
            "update; *drift L2*: mean L2 change of the item embeddings of items in the window.",
            "- *s / update*: seconds of one update (table growth, training rows, the optimizer steps); "
            "*s / measurement*: seconds of the measurements before and after it. Wall-clock on a shared machine, "
            "so they are estimates.",
            "",
        ]
    )


def main(argv: list[str] | None = None) -> pd.DataFrame:
    args = parse_args(argv)
    torch.set_num_threads(1)
    log = load_ml100k(args.data)
    logs = online_logs(log, args.cutoff)
    model, cached = trained_model(logs.pre_cutoff, args)
    history = model.history
    train_note = (
        f"best epoch {model.best_epoch} of {len(history)} ({model.stop_reason}), "
        f"{history['seconds'].sum():.0f} s of training on the CPU"
        + (", loaded from the checkpoint cache" if cached else "")
    )
    print(f"model ready: {train_note}", flush=True)

    updater = OnlineUpdater(model, logs.stream, cutoff=logs.cutoff, window=args.window, steps=args.steps, seed=args.seed)
    # The first optimizer step imports parts of torch; a throwaway update keeps that out of the timings.
    updater.apply(steps=1)
    updater.undo()

    rows = []
    for lr in args.lrs:
        for replay in args.replays:
            updater.reset()
            start = len(updater.records)
            updater.run(lr=lr, replay=replay)
            frame = updater.online_data().iloc[start:]
            rows.append(summarize(frame, lr, replay))
            print(pd.DataFrame(rows[-1:]).to_string(index=False), flush=True)
    table = pd.DataFrame(rows)

    info = {
        "date": dt.date.today().isoformat(),
        "machine": machine(),
        "cutoff": pd.Timestamp(logs.cutoff, unit="s").isoformat(),
        "pre_items": logs.pre_cutoff.n_items,
        "pre_users": logs.pre_cutoff.n_users,
        "new_items": logs.stream.n_items - logs.pre_cutoff.n_items,
        "new_users": logs.stream.n_users - logs.pre_cutoff.n_users,
        "stream_events": len(updater.stream) - updater.stream.first,
        "train_note": train_note,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(markdown(table, args, info))
    with pd.option_context("display.width", 200, "display.max_columns", 30):
        print(table.to_string(index=False))
    print(f"wrote {args.out}")
    return table


if __name__ == "__main__":
    main()
