"""Command line for distributed jobs; launch it with ``torchrun``.

    torchrun --nproc_per_node=2 -m recwidgets.distributed train --data ml-100k --epochs 20 --out run/
    torchrun --nproc_per_node=2 -m recwidgets.distributed evaluate --run run/ --data ml-100k

``train`` trains SASRec with DDP, evaluates the test part sharded over the ranks with seen
items excluded and kept, and has rank 0 write a run folder (see ``recwidgets.distributed.runs``)
that ``load_run`` opens. ``evaluate`` re-evaluates the checkpoint of a run folder. Under
plain ``python -m recwidgets.distributed`` both run in one process.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
from collections.abc import Sequence

import torch

from recwidgets.errors import RecwidgetsError

logger = logging.getLogger("recwidgets")


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid integer {text!r}; pass a whole number such as 10") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"invalid value {value}; it must be a positive integer")
    return value


def _k_list(text: str) -> tuple[int, ...]:
    try:
        values = tuple(int(part) for part in text.split(",") if part.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid k list {text!r}; pass comma-separated cutoffs such as 5,10,20") from None
    if not values:
        raise argparse.ArgumentTypeError(f"invalid k list {text!r}; pass comma-separated cutoffs such as 5,10,20")
    return values


def _add_common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data", required=True, help="dataset name (ml-100k, ml-latest-small) or a path to a log")
    parser.add_argument("--split", default="leave-last-out", choices=("leave-last-out", "temporal"), help="evaluation split")
    parser.add_argument("--k", type=_k_list, default=(5, 10, 20), help="list cutoffs, comma-separated (default: 5,10,20)")
    parser.add_argument("--bootstrap", type=int, default=1000, help="bootstrap resamples for the 95%% CIs; 0 disables them")
    parser.add_argument("--eval-batch-size", type=_positive_int, default=256, help="users scored at once per rank (default: 256)")
    parser.add_argument("--backend", default="auto", choices=("auto", "gloo", "nccl"), help="process group backend (default: nccl on GPUs, else gloo)")
    parser.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"), help="torch device (default: cuda:LOCAL_RANK when available)")
    parser.add_argument("--threads", type=_positive_int, default=None, help="torch threads per process (default: OMP_NUM_THREADS or 1)")
    parser.add_argument("--seed", type=int, default=2020, help="seed of training and bootstrap (default: 2020)")


def build_parser() -> argparse.ArgumentParser:
    """Build the argument parser of ``python -m recwidgets.distributed``."""
    parser = argparse.ArgumentParser(
        prog="python -m recwidgets.distributed",
        description="Distributed SASRec training and sharded full-ranking evaluation (launch with torchrun).",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log progress at INFO level")
    commands = parser.add_subparsers(dest="command", required=True)

    train = commands.add_parser("train", help="train SASRec with DDP, evaluate sharded, write a run folder")
    _add_common(train)
    train.add_argument("--epochs", type=_positive_int, default=None, help="maximum training epochs (default: the model's)")
    train.add_argument("--batch-size", type=_positive_int, default=128, help="global training batch size (default: 128)")
    train.add_argument("--hidden", type=_positive_int, default=64, help="hidden size (default: 64)")
    train.add_argument("--layers", type=_positive_int, default=2, help="attention blocks (default: 2)")
    train.add_argument("--heads", type=_positive_int, default=2, help="attention heads (default: 2)")
    train.add_argument("--max-len", type=_positive_int, default=50, help="history length read by the model (default: 50)")
    train.add_argument("--lr", type=float, default=1e-3, help="learning rate (default: 0.001)")
    train.add_argument("--patience", type=_positive_int, default=5, help="validations without gain before stopping (default: 5)")
    train.add_argument("--no-validate", action="store_true", help="train without validation and early stopping")
    train.add_argument("--out", required=True, help="run folder to write (rank 0)")

    evaluate = commands.add_parser("evaluate", help="evaluate the checkpoint of a run folder, sharded over ranks")
    _add_common(evaluate)
    evaluate.add_argument("--run", required=True, help="run folder with model.pt; results are added to it")
    return parser


def _load_split(args):
    from recwidgets.data.split import split as make_split
    from recwidgets.report import load_log

    log = load_log(args.data)
    return make_split(log, args.split)


def _evaluate_both(model, split, args, context) -> tuple[dict, dict]:
    """Evaluate the test part with seen items excluded and kept; results exist on rank 0 only."""
    from recwidgets.distributed.sharding import evaluate_sharded

    results, seconds = {}, {}
    for name, exclude_seen in (("test", True), ("test, seen items kept", False)):
        timings: dict = {}
        clock = time.perf_counter()
        result = evaluate_sharded(
            model,
            split,
            part="test",
            k=args.k,
            exclude_seen=exclude_seen,
            batch_size=args.eval_batch_size,
            n_bootstrap=args.bootstrap,
            seed=args.seed,
            context=context,
            dst=0,
            timings=timings,
        )
        seconds[name] = {"total": time.perf_counter() - clock, **timings}
        if result is not None:
            results[name] = result
    return results, seconds


def run(args) -> int:
    """Run one parsed command in this process (one rank of the group)."""
    from recwidgets.distributed.context import init_distributed
    from recwidgets.distributed.runs import read_run_info, save_run

    threads = args.threads or int(os.environ.get("OMP_NUM_THREADS", "1"))
    torch.set_num_threads(threads)
    context = init_distributed(args.backend, args.device)
    try:
        clock = time.perf_counter()
        split = _load_split(args)
        info = {
            "command": " ".join(sys.argv),
            "world_size": context.world_size,
            "backend": context.backend or "none",
            "device": str(context.device),
            "threads_per_process": threads,
            "data": args.data,
            "split": args.split,
            "seconds": {"load": time.perf_counter() - clock},
        }

        if args.command == "train":
            from recwidgets.distributed.ddp import fit_distributed

            clock = time.perf_counter()
            model = fit_distributed(
                split,
                epochs=args.epochs,
                seed=args.seed,
                context=context,
                validate=not args.no_validate,
                progress=context.is_root,
                eval_batch_size=args.eval_batch_size,
                batch_size=args.batch_size,
                hidden=args.hidden,
                layers=args.layers,
                heads=args.heads,
                max_len=args.max_len,
                lr=args.lr,
                patience=args.patience,
            )
            info["seconds"]["train"] = time.perf_counter() - clock
            info["best_epoch"] = model.best_epoch
            info["stop_reason"] = model.stop_reason
            results, eval_seconds = _evaluate_both(model, split, args, context)
            info["seconds"]["evaluate"] = eval_seconds
            out = args.out
        else:
            from recwidgets.distributed.runs import load_run

            read_run_info(args.run)
            model, _ = load_run(args.run, device=str(context.device))
            results, eval_seconds = _evaluate_both(model, split, args, context)
            info["seconds"]["evaluate"] = eval_seconds
            out = args.run

        if context.is_root:
            if args.command == "evaluate":
                # Keep the results already in the folder and replace same-named ones.
                from recwidgets.distributed.runs import load_run

                _, existing = load_run(out, device="cpu")
                results = {**existing, **results}
            save_run(out, model, results, info)
            summary = {name: result.to_dict().get("NDCG@10", {}) for name, result in results.items()}
            print(json.dumps({"out": str(out), "world_size": context.world_size, "NDCG@10": summary}, indent=2))
        context.barrier()
    finally:
        context.close()
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Parse ``argv`` and run; return the process exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
    )
    try:
        return run(args)
    except (RecwidgetsError, FileNotFoundError) as error:
        print(f"recwidgets.distributed: error: {error}", file=sys.stderr)
        return 2
