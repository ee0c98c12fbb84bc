"""Command-line interface: ``recwidgets report`` runs the main job end to end."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence

from recwidgets.errors import RecwidgetsError

logger = logging.getLogger("recwidgets")

MODEL_CHOICES = ("sasrec", "popularity", "ease", "all")


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid integer {text!r}; pass a whole number such as 10") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"invalid value {value}; it must be a positive integer")
    return value


def _k_list(text: str) -> tuple[int, ...]:
    parts = [part.strip() for part in text.split(",") if part.strip()]
    if not parts:
        raise argparse.ArgumentTypeError(f"invalid k list {text!r}; pass comma-separated cutoffs such as 5,10,20")
    values = []
    for part in parts:
        try:
            values.append(int(part))
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"invalid cutoff {part!r} in --k; pass comma-separated whole numbers such as 5,10,20"
            ) from None
    return tuple(values)


def _cutoff(text: str) -> float | int:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"invalid cutoff {text!r}; pass a quantile such as 0.8 or a unix time in seconds such as 1700000000"
        ) from None
    if 0.0 < value < 1.0:
        return value
    if value >= 1.0 and value == int(value):
        return int(value)
    raise argparse.ArgumentTypeError(
        f"invalid cutoff {text!r}; pass a quantile in (0, 1) such as 0.8 or a whole unix time in seconds"
    )


def build_parser() -> argparse.ArgumentParser:
    """Build the argument parser for every subcommand."""
    parser = argparse.ArgumentParser(
        prog="recwidgets",
        description="Train, evaluate and diagnose sequential recommenders, and write offline HTML reports.",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log progress at INFO level")
    commands = parser.add_subparsers(dest="command", required=True)

    report = commands.add_parser(
        "report",
        help="load data, split, train, evaluate and write one self-contained HTML report",
        description=(
            "Load an interaction log, split it, train the requested models, evaluate them with full "
            "ranking and bootstrap confidence intervals, diagnose the setup, and write one HTML file "
            "that opens offline."
        ),
    )
    report.add_argument(
        "--data",
        required=True,
        help="dataset name (ml-100k, ml-latest-small) or a path to a folder, a CSV/TSV or a Parquet file",
    )
    report.add_argument("--items", help="item metadata file (CSV/Parquet with item_id,title,genres; genres pipe-separated)")
    report.add_argument("--user-col", default=None, help="user id column of a CSV/Parquet log (default: user_id)")
    report.add_argument("--item-col", default=None, help="item id column of a CSV/Parquet log (default: item_id)")
    report.add_argument("--time-col", default=None, help="timestamp column, unix seconds or ISO dates (default: timestamp)")
    report.add_argument("--rating-col", default=None, help="rating column, if any (default: none)")
    report.add_argument("--sep", default=None, help="field separator of a CSV/TSV log (default: from the file suffix)")
    report.add_argument(
        "--implicit-threshold",
        type=float,
        default=None,
        help="keep only interactions with rating >= this value (default: every rating is an interaction)",
    )
    report.add_argument("--kcore", type=_positive_int, default=None, help="keep users and items with at least this many interactions")
    report.add_argument("--model", default="all", choices=MODEL_CHOICES, help="model(s) to train and compare (default: all)")
    report.add_argument(
        "--split", default="leave-last-out", choices=("leave-last-out", "temporal"), help="evaluation split (default: leave-last-out)"
    )
    report.add_argument(
        "--short-users",
        default="raise",
        choices=("raise", "drop", "train"),
        help="leave-last-out only: what to do with users with fewer than 3 interactions "
        "(raise an error, drop them, or keep them for training only; default: raise)",
    )
    report.add_argument(
        "--cutoff",
        type=_cutoff,
        default=None,
        help="temporal split only: the test cutoff, a quantile of the timestamps in (0, 1) or a unix time "
        "in seconds (default: 0.8)",
    )
    report.add_argument("--epochs", type=_positive_int, default=None, help="maximum SASRec training epochs (default: 40, with early stopping after 10 epochs without improvement)")
    report.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"), help="torch device (default: auto, CUDA when available)")
    report.add_argument(
        "--threads",
        type=_positive_int,
        default=None,
        help="CPU threads for torch (default: torch's choice). On small shared machines 1 is often fastest, "
        "because threads competing with other processes for cores slow each other down",
    )
    report.add_argument("--seed", type=int, default=2020, help="random seed for training, sampling and bootstrap (default: 2020)")
    report.add_argument("--k", type=_k_list, default=(5, 10, 20), help="list cutoffs, comma-separated (default: 5,10,20)")
    report.add_argument("--bootstrap", type=int, default=1000, help="bootstrap resamples for the 95%% CIs; 0 disables them (default: 1000)")
    report.add_argument("--out", required=True, help="path of the HTML report to write")
    report.add_argument("--metrics-json", default=None, help="also write the metrics with CIs and the protocol card as JSON here")
    report.add_argument("--findings-json", default=None, help="also write the diagnosis findings as a JSON list here")
    report.add_argument("--checkpoint", default=None, help="also save the trained SASRec checkpoint here")
    report.add_argument("--no-progress", action="store_true", help="hide the training progress bar")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the process exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
    )

    if args.command == "report":
        from recwidgets.report import run_report

        if args.threads is not None:
            import torch

            torch.set_num_threads(args.threads)

        try:
            summary = run_report(
                data=args.data,
                items=args.items,
                user_col=args.user_col,
                item_col=args.item_col,
                time_col=args.time_col,
                rating_col=args.rating_col,
                sep=args.sep,
                implicit_threshold=args.implicit_threshold,
                kcore=args.kcore,
                model=args.model,
                split=args.split,
                short_users=args.short_users,
                cutoff=args.cutoff,
                epochs=args.epochs,
                device=args.device,
                seed=args.seed,
                k=args.k,
                n_bootstrap=args.bootstrap,
                out=args.out,
                metrics_json=args.metrics_json,
                findings_json=args.findings_json,
                checkpoint=args.checkpoint,
                progress=not args.no_progress,
            )
        except (RecwidgetsError, FileNotFoundError) as error:
            print(f"recwidgets: error: {error}", file=sys.stderr)
            return 2
        print(summary)
        return 0

    parser.error(f"unknown command {args.command!r}")
    return 2


if __name__ == "__main__":
    sys.exit(main())
