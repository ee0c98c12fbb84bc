"""Time to explain one recommendation to +-0.01, ours against shap.KernelExplainer, and faithfulness.

Part 1 (``bench/results/shap.md``): one ML-100K user (the first test user, by internal id,
whose history fills SASRec's 50 positions), the top-1 item's score. Absent items are padded
in place (``absence="pad"``, not the library default ``"remove"``), which needs 5 to 20
times fewer forward passes for the same precision (part 1b) and keeps the reference run
to minutes. Every method explains the same value function on one torch thread:

* ``reference``: our estimator at ``--reference-tolerance`` (default 0.005), the truth the
  others are measured against;
* ``ours``: our permutation estimator (with single-player refinement) and our paired
  Kernel SHAP, each at tolerance 0.01 (every player within 0.01 at 95% joint confidence,
  judged by its own standard errors);
* ``ours, permutations only`` (``--plain``): the permutation estimator without refinement;
* ``KernelExplainer``: ``shap.KernelExplainer`` on the value function (coalitions as binary
  features, an all-absent background row, ``l1_reg=False`` so all 50 features are
  estimated), with ``nsamples`` doubled from 2,000 until its max abs error against the
  reference is at most 0.01. Kernel SHAP has no error estimate of its own, so this gives
  it an oracle-chosen budget. The time reported is that of the passing run alone, and
  both of our estimators are then also run at that same budget without a stopping rule.

Part 1b (``bench/results/shap_absence.md``): the spread of the per-pair contributions
(standard error x sqrt(pairs), from 16 antithetic pairs) for three 50-item users under
each absence mode. Passes to a given precision grow with its square.

Part 2 (``bench/results/faithfulness.md``): deletion and insertion AUCs of SHAP, attention,
gradient x input and a random order for the top-1 item's log-probability, 100 seeded test
users, both absence modes.

The SASRec model is trained on the leave-last-out split (default config, early stopping on
validation NDCG@10) and cached at ``--checkpoint``; a later run loads it.

Run: ``python bench/bench_shap.py [--checkpoint PATH] [--plain] [--skip-speed] [--skip-absence]
[--skip-faithfulness]``.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np
import torch

from recwidgets.data import leave_last_out, load_ml100k
from recwidgets.explain.faithfulness import faithfulness_table
from recwidgets.explain.shap_values import ShapExplainer
from recwidgets.models import SASRec

ROOT = Path(__file__).resolve().parents[1]
ML100K = ROOT.parent / "shared" / "datasets" / "ml-100k"
RESULTS = ROOT / "bench" / "results"
DEFAULT_CHECKPOINT = Path(os.environ.get("TMPDIR", "/tmp")) / "recwidgets-bench-sasrec-ml100k.pt"

TOLERANCE = 0.01
KERNEL_START_SAMPLES = 2_000
KERNEL_MAX_SAMPLES = 512_000


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return (
        f"{cpu}, {os.cpu_count()} cores, torch {torch.__version__} with {torch.get_num_threads()} thread(s), "
        f"Python {platform.python_version()}"
    )


def load_model(split, checkpoint: Path) -> SASRec:
    if checkpoint.exists():
        print(f"loading SASRec from {checkpoint}", flush=True)
        return SASRec.load(checkpoint, device="cpu")
    print("training SASRec on ML-100K (leave-last-out); this takes several minutes", flush=True)
    model = SASRec().fit(split, device="cpu", progress=False)
    model.save(checkpoint)
    return model


def timed(function):
    started = time.perf_counter()
    result = function()
    return result, time.perf_counter() - started


def kernel_run(value_fn, n_players: int, nsamples: int) -> np.ndarray:
    import shap

    # KernelExplainer samples coalitions with numpy's global generator.
    np.random.seed(0)
    explainer = shap.KernelExplainer(lambda coalitions: value_fn(coalitions > 0.5), np.zeros((1, n_players)))
    values = explainer.shap_values(np.ones((1, n_players)), nsamples=nsamples, l1_reg=False, silent=True)
    return np.asarray(values).reshape(-1)


def bench_speed(model, split, args) -> str:
    lengths = np.array([len(history) for history in split.test.histories])
    row = int(np.flatnonzero(lengths >= model.max_len)[0])
    user, history = int(split.test.users[row]), split.test.histories[row]
    titles = split.log.item_titles()

    reference_explainer = ShapExplainer(
        model, absence="pad", tolerance=args.reference_tolerance, max_evals=20_000_000, titles=titles, progress=False
    )
    reference, reference_seconds = timed(lambda: reference_explainer.explain(history, user=user))
    target = reference.meta.target
    value_fn = reference_explainer.value_function(history, target)
    players = value_fn.n_players
    print(
        f"user {user}, {players} players, target {target} ({titles[target]}); reference: {reference.meta.n_evals:,} "
        f"passes in {reference_seconds:.1f} s, max standard error {reference.meta.max_standard_error:.4g}",
        flush=True,
    )

    rows = []

    def ours(label: str, **options):
        options = {"tolerance": TOLERANCE, "absence": "pad", **options}
        explainer = ShapExplainer(model, seed=1, titles=titles, progress=False, **options)
        explanation, seconds = timed(lambda: explainer.explain(history, target, user=user))
        error = float(np.abs(explanation.values - reference.values).max())
        rows.append((label, explanation.meta.n_evals, seconds, error, explanation.meta.max_standard_error, error <= TOLERANCE))
        print(f"{label}: {explanation.meta.n_evals:,} passes, {seconds:.1f} s, max abs error {error:.4f}", flush=True)
        return seconds

    ours_seconds = ours("ours: permutation (tolerance 0.01, refinement)")
    ours("ours: kernel (tolerance 0.01)", method="kernel")
    if args.plain:
        ours("ours: permutation (tolerance 0.01, permutations only)", refine=False, max_evals=5_000_000)

    nsamples = KERNEL_START_SAMPLES
    kernel_seconds = kernel_error = None
    while nsamples <= KERNEL_MAX_SAMPLES:
        value_fn.n_evals = 0
        values, seconds = timed(lambda: kernel_run(value_fn, players, nsamples))
        error = float(np.abs(values - reference.values).max())
        print(f"KernelExplainer nsamples={nsamples:,}: {value_fn.n_evals:,} passes, {seconds:.1f} s, max abs error {error:.4f}", flush=True)
        rows.append((f"KernelExplainer (nsamples={nsamples:,})", value_fn.n_evals, seconds, error, float("nan"), error <= TOLERANCE))
        if error <= TOLERANCE:
            kernel_seconds, kernel_error = seconds, error
            break
        nsamples *= 2

    if kernel_seconds is not None:
        # Our estimators given KernelExplainer's passing budget, without their stopping rule:
        # whole permutation pairs, and Kernel SHAP pairs, of that many forward passes.
        budget = nsamples + 2
        ours(f"ours: permutation, fixed budget {budget:,}", n_pairs=(budget - 2) // (2 * (players - 1)))
        ours(f"ours: kernel, fixed budget {budget:,}", method="kernel", n_pairs=(budget - 2) // 2)

    lines = [
        "# Shapley values of one recommendation: ours against shap.KernelExplainer",
        "",
        f"Produced by `python bench/bench_shap.py`. Machine: {machine()}.",
        f"Model: SASRec ({model.config.layers} layers, {model.config.heads} heads, hidden {model.config.hidden}, "
        f"max_len {model.max_len}) trained on ML-100K leave-last-out, kept epoch {model.best_epoch} "
        f"(training stopped: {model.stop_reason}).",
        f"Explained: score of the top-1 item {titles[target]!r} (id {target}) for user {user}, {players} history "
        "positions as players, absent items padded in place.",
        f"Reference: our estimator at tolerance {args.reference_tolerance} ({reference.meta.n_evals:,} forward passes, "
        f"{reference_seconds:.0f} s, max standard error {reference.meta.max_standard_error:.4f}).",
        "Errors are max abs differences from the reference over the 50 players, so they include the reference's own "
        "error. Times vary with load on a shared machine; pass counts do not (seeded).",
        "",
        "| method | forward passes | seconds | max abs error | max standard error | error within 0.01 |",
        "| --- | ---: | ---: | ---: | ---: | --- |",
    ]
    for label, passes, seconds, error, standard_error, ok in rows:
        shown_error = "n/a" if np.isnan(standard_error) else f"{standard_error:.4f}"
        lines.append(f"| {label} | {passes:,} | {seconds:.1f} | {error:.4f} | {shown_error} | {'yes' if ok else 'no'} |")
    lines.append("")
    if kernel_seconds is not None:
        lines.append(
            f"Time ratio KernelExplainer / ours (permutation) at +-0.01: {kernel_seconds / ours_seconds:.2f} "
            f"(KernelExplainer error {kernel_error:.4f} at the first passing budget)."
        )
    else:
        lines.append(f"KernelExplainer did not reach +-0.01 within nsamples={KERNEL_MAX_SAMPLES:,}.")
    return "\n".join(lines) + "\n"


def bench_absence(model, split) -> str:
    lengths = np.array([len(history) for history in split.test.histories])
    rows = np.flatnonzero(lengths >= model.max_len)[:3]
    pairs = 16
    lines = [
        "# Sampling spread of Shapley values under the two absence modes",
        "",
        f"Produced by `python bench/bench_shap.py`. Machine: {machine()}.",
        f"Model: SASRec ({model.config.layers} layers, {model.config.heads} heads, hidden {model.config.hidden}, "
        f"max_len {model.max_len}) trained on ML-100K leave-last-out. Score of each user's top-1 item; "
        f"{pairs} antithetic permutation pairs per user and mode (seed 0). Spread = standard error x sqrt(pairs), "
        "per player; forward passes to a given precision grow with its square.",
        "",
        "| user | absence | max spread | median spread | max abs value |",
        "| ---: | --- | ---: | ---: | ---: |",
    ]
    ratios = []
    for row in rows:
        user, history = int(split.test.users[row]), split.test.histories[row]
        spreads = {}
        for absence in ("pad", "remove"):
            explainer = ShapExplainer(model, absence=absence, n_pairs=pairs, progress=False)
            explanation = explainer.explain(history, user=user)
            spread = explanation.error_std * np.sqrt(pairs)
            spreads[absence] = spread.max()
            lines.append(
                f"| {user} | {absence} | {spread.max():.3f} | {np.median(spread):.3f} | "
                f"{np.abs(explanation.values).max():.3f} |"
            )
        ratios.append(spreads["remove"] / spreads["pad"])
    lines += ["", f"Max spread, remove / pad: {', '.join(f'{ratio:.1f}' for ratio in ratios)}.", ""]
    return "\n".join(lines)


def bench_faithfulness(model, split, args) -> str:
    lines = [
        "# Faithfulness of attributions for SASRec on ML-100K",
        "",
        f"Produced by `python bench/bench_shap.py`. Machine: {machine()}.",
        f"Model: SASRec ({model.config.layers} layers, {model.config.heads} heads, hidden {model.config.hidden}, "
        f"max_len {model.max_len}) trained on ML-100K leave-last-out, kept epoch {model.best_epoch} "
        f"(training stopped: {model.stop_reason}).",
        f"{args.users} test users drawn with seed 0; output: log-probability of each user's top-1 item (seen items "
        "excluded); SHAP: 32 antithetic permutation pairs per user. AUCs are means over users of the area under "
        "the curve over the fraction of history items removed (deletion, lower is better) or inserted "
        "(insertion, higher is better), with the half-width of a normal 95% interval.",
        "",
    ]
    for absence in ("pad", "remove"):
        table, seconds = timed(
            lambda: faithfulness_table(model, split, users=args.users, absence=absence, seed=0, progress=False)
        )
        print(f"faithfulness with absence={absence!r} took {seconds:.0f} s", flush=True)
        lines += [
            f"## Absent items: {absence} ({seconds:.0f} s)",
            "",
            "| method | users | deletion AUC | insertion AUC | note |",
            "| --- | ---: | ---: | ---: | --- |",
        ]
        for row in table.itertuples():
            lines.append(
                f"| {row.method} | {row.n_users} | {row.deletion_auc:.3f} +- {row.deletion_ci:.3f} | "
                f"{row.insertion_auc:.3f} +- {row.insertion_ci:.3f} | {row.note} |"
            )
        lines.append("")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", type=Path, default=DEFAULT_CHECKPOINT, help="SASRec checkpoint to load or write.")
    parser.add_argument("--reference-tolerance", type=float, default=0.005, help="Tolerance of the reference run, in score units.")
    parser.add_argument("--plain", action="store_true", help="Also time our estimator without single-player refinement.")
    parser.add_argument("--users", type=int, default=100, help="Users in the faithfulness table.")
    parser.add_argument("--skip-speed", action="store_true", help="Skip part 1.")
    parser.add_argument("--skip-absence", action="store_true", help="Skip part 1b.")
    parser.add_argument("--skip-faithfulness", action="store_true", help="Skip part 2.")
    args = parser.parse_args(argv)

    torch.set_num_threads(1)
    torch.manual_seed(0)
    split = leave_last_out(load_ml100k(ML100K))
    model = load_model(split, args.checkpoint)
    RESULTS.mkdir(parents=True, exist_ok=True)
    if not args.skip_speed:
        text = bench_speed(model, split, args)
        (RESULTS / "shap.md").write_text(text, encoding="utf-8")
        print(text)
    if not args.skip_absence:
        text = bench_absence(model, split)
        (RESULTS / "shap_absence.md").write_text(text, encoding="utf-8")
        print(text)
    if not args.skip_faithfulness:
        text = bench_faithfulness(model, split, args)
        (RESULTS / "faithfulness.md").write_text(text, encoding="utf-8")
        print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
