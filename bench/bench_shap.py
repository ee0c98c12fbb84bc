"""Time to explain one recommendation to +-0.01, ours against shap.KernelExplainer, and faithfulness.

Part 1 (``bench/results/shap.md``): one ML-100K user (the first test user, by internal id,
whose history fills SASRec's 50 positions), the top-1 item's score. Absent items are padded
in place (``absence="pad"``, not the library default ``"remove"``), which needs 5 to 20
times fewer forward passes for the same precision (part 1b) and keeps the reference run
to minutes. Every method explains the same value function on one torch thread:

* ``reference``: our permutation estimator at ``--reference-tolerance`` (default 0.005),
  the truth the others are measured against;
* ``ours``: our paired Kernel SHAP (the default beyond 14 players) and our permutation
  estimator (with single-player refinement), each at tolerance 0.01 (every player within
  0.01 at 95% joint confidence, judged by its own standard errors);
* ``ours, permutations only`` (``--plain``): the permutation estimator without refinement;
* ``KernelExplainer``: ``shap.KernelExplainer`` on the value function (coalitions as binary
  features, an all-absent background row, ``l1_reg=False`` so all 50 features are
  estimated), with ``nsamples`` doubled from 2,000 until its max abs error against the
  reference is at most 0.01. Kernel SHAP has no error estimate of its own, so this gives
  it an oracle-chosen budget. The time reported is that of the passing run alone, and
  both of our estimators are then also run at that same budget without a stopping rule.
* ``equal budgets``: KernelExplainer, our Kernel SHAP and our permutation estimator at fixed
  budgets from 4,002 to 64,002 forward passes, three seeds each, so the estimators are
  compared without any stopping rule or oracle.

Part 1b (``bench/results/shap_absence.md``): the spread of the per-pair contributions
(standard error x sqrt(pairs), from 16 antithetic pairs) for three 50-item users under
each absence mode. Passes to a given precision grow with its square.

Part 1c (``bench/results/shap_methods.md``): the largest and the median standard error of
our Kernel SHAP and of our permutation estimator at the same budget (16,002 and 15,977
passes) for six 50-item users under each absence mode. ``method="auto"`` picks its
adaptive estimator from this table.

Part 2 (``bench/results/faithfulness.md``): deletion and insertion AUCs of SHAP, attention,
gradient x input and a random order for the top-1 item's log-probability, 100 seeded test
users, both absence modes.

The SASRec model is trained on the leave-last-out split (default config, early stopping on
validation NDCG@10) and cached at ``--checkpoint``; a later run loads it.

Run: ``python bench/bench_shap.py [--checkpoint PATH] [--plain] [--skip-speed] [--skip-absence]
[--skip-methods] [--skip-faithfulness]``.
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
SWEEP_BUDGETS = (4_002, 8_002, 16_002, 32_002, 64_002)
SWEEP_SEEDS = (0, 1, 2)
SWEEP_METHODS = ("KernelExplainer", "kernel", "permutation")
METHOD_USERS = 6


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


def kernel_run(value_fn, n_players: int, nsamples: int, seed: int = 0) -> np.ndarray:
    import shap

    # KernelExplainer samples coalitions with numpy's global generator.
    np.random.seed(seed)
    explainer = shap.KernelExplainer(lambda coalitions: value_fn(coalitions > 0.5), np.zeros((1, n_players)))
    values = explainer.shap_values(np.ones((1, n_players)), nsamples=nsamples, l1_reg=False, silent=True)
    return np.asarray(values).reshape(-1)


def bench_speed(model, split, args) -> str:
    lengths = np.array([len(history) for history in split.test.histories])
    row = int(np.flatnonzero(lengths >= model.max_len)[0])
    user, history = int(split.test.users[row]), split.test.histories[row]
    titles = split.log.item_titles()

    reference_explainer = ShapExplainer(
        model,
        method="permutation",
        absence="pad",
        tolerance=args.reference_tolerance,
        max_evals=20_000_000,
        titles=titles,
        progress=False,
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
        if "n_pairs" in options:
            stop = "fixed budget"
        else:
            stop = "own 95% bound" if explanation.meta.converged else f"max_evals={explainer.max_evals:,}"
        rows.append(
            (label, explanation.meta.n_evals, seconds, error, explanation.meta.max_standard_error, stop, error <= TOLERANCE)
        )
        print(f"{label}: {explanation.meta.n_evals:,} passes, {seconds:.1f} s, max abs error {error:.4f}", flush=True)
        return seconds, error, stop

    adaptive = {
        "our Kernel SHAP": ours("ours: kernel, the default (tolerance 0.01)"),
        "our permutation estimator": ours("ours: permutation (tolerance 0.01, refinement)", method="permutation"),
    }
    if args.plain:
        ours("ours: permutation (tolerance 0.01, permutations only)", method="permutation", refine=False, max_evals=5_000_000)

    nsamples = KERNEL_START_SAMPLES
    kernel_seconds = kernel_error = None
    while nsamples <= KERNEL_MAX_SAMPLES:
        value_fn.n_evals = 0
        values, seconds = timed(lambda: kernel_run(value_fn, players, nsamples))
        error = float(np.abs(values - reference.values).max())
        print(f"KernelExplainer nsamples={nsamples:,}: {value_fn.n_evals:,} passes, {seconds:.1f} s, max abs error {error:.4f}", flush=True)
        rows.append(
            (f"KernelExplainer (nsamples={nsamples:,})", value_fn.n_evals, seconds, error, float("nan"), "budget", error <= TOLERANCE)
        )
        if error <= TOLERANCE:
            kernel_seconds, kernel_error = seconds, error
            break
        nsamples *= 2

    if kernel_seconds is not None:
        # Our estimators given KernelExplainer's passing budget, without their stopping rule:
        # whole permutation pairs, and Kernel SHAP pairs, of that many forward passes.
        budget = nsamples + 2
        ours(f"ours: permutation, fixed budget {budget:,}", method="permutation", n_pairs=(budget - 2) // (2 * (players - 1)))
        ours(f"ours: kernel, fixed budget {budget:,}", method="kernel", n_pairs=(budget - 2) // 2)

    sweep = budget_sweep(model, history, user, target, value_fn, reference.values, titles)
    lines = [
        "# Shapley values of one recommendation: ours against shap.KernelExplainer",
        "",
        f"Produced by `python bench/bench_shap.py`. Machine: {machine()}.",
        f"Model: SASRec ({model.config.layers} layers, {model.config.heads} heads, hidden {model.config.hidden}, "
        f"max_len {model.max_len}) trained on ML-100K leave-last-out, kept epoch {model.best_epoch} "
        f"(training stopped: {model.stop_reason}).",
        f"Explained: score of the top-1 item {titles[target]!r} (id {target}) for user {user}, {players} history "
        "positions as players, absent items padded in place.",
        f"Reference: our permutation estimator at tolerance {args.reference_tolerance} ({reference.meta.n_evals:,} forward passes, "
        f"{reference_seconds:.0f} s, max standard error {reference.meta.max_standard_error:.4f}).",
        "Errors are max abs differences from the reference over the 50 players, so they include the reference's own "
        "error. Times vary with load on a shared machine; pass counts do not (seeded).",
        f"Largest reference values: {top_values(reference)}; the values sum to "
        f"{reference.values.sum():.3f} (score with the whole history minus score with none).",
        "",
        "| method | forward passes | seconds | max abs error | max standard error | stopped by | error within 0.01 |",
        "| --- | ---: | ---: | ---: | ---: | --- | --- |",
    ]
    for label, passes, seconds, error, standard_error, stop, ok in rows:
        shown_error = "n/a" if np.isnan(standard_error) else f"{standard_error:.4f}"
        lines.append(
            f"| {label} | {passes:,} | {seconds:.1f} | {error:.4f} | {shown_error} | {stop} | {'yes' if ok else 'no'} |"
        )
    lines.append("")
    if kernel_seconds is not None:
        for name, (seconds, error, stop) in adaptive.items():
            if error <= TOLERANCE:
                lines.append(
                    f"Time ratio KernelExplainer / {name} at +-0.01: {kernel_seconds / seconds:.2f} (KernelExplainer "
                    f"error {kernel_error:.4f} at the first passing budget, which was chosen against the reference; "
                    f"ours stopped by {stop})."
                )
            else:
                lines.append(f"{name.capitalize()} did not come within 0.01 (error {error:.4f}, stopped by {stop}).")
            lines.append("")
    else:
        lines.append(f"KernelExplainer did not reach +-0.01 within nsamples={KERNEL_MAX_SAMPLES:,}.")
    lines += [
        "",
        "## Error at equal budgets",
        "",
        f"Max abs error against the reference over the {players} players, at fixed budgets without a stopping rule, "
        f"for seeds {', '.join(str(seed) for seed in SWEEP_SEEDS)}: the mean over seeds, and the worst seed in brackets.",
        "",
        "| forward passes | KernelExplainer | ours: kernel | ours: permutation |",
        "| ---: | ---: | ---: | ---: |",
    ]
    for budget, errors in sweep:
        cells = [f"{np.mean(errors[name]):.4f} ({np.max(errors[name]):.4f})" for name in SWEEP_METHODS]
        lines.append(f"| {budget:,} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def top_values(explanation, count: int = 3) -> str:
    """Describe the ``count`` largest absolute values with their history positions (1 = oldest)."""
    values = np.asarray(explanation.values)
    order = np.argsort(-np.abs(values))[:count]
    return ", ".join(f"position {index + 1} of {len(values)} {values[index]:.3f}" for index in order)


def budget_sweep(model, history, user, target, value_fn, reference, titles) -> list[tuple[int, dict]]:
    """Max abs error of each estimator at equal fixed budgets, over a few seeds."""
    players = value_fn.n_players
    sweep = []
    for budget in SWEEP_BUDGETS:
        errors: dict[str, list[float]] = {name: [] for name in SWEEP_METHODS}
        for seed in SWEEP_SEEDS:
            errors["KernelExplainer"].append(
                float(np.abs(kernel_run(value_fn, players, budget - 2, seed=seed) - reference).max())
            )
            for name, options in (
                ("kernel", {"method": "kernel", "n_pairs": (budget - 2) // 2}),
                ("permutation", {"n_pairs": (budget - 2) // (2 * (players - 1))}),
            ):
                explainer = ShapExplainer(model, absence="pad", seed=seed, titles=titles, progress=False, **options)
                values = explainer.explain(history, target, user=user).values
                errors[name].append(float(np.abs(values - reference).max()))
        print(f"budget {budget:,}: " + ", ".join(f"{name} {np.mean(errors[name]):.4f}" for name in SWEEP_METHODS), flush=True)
        sweep.append((budget, errors))
    return sweep


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


def bench_methods(model, split) -> str:
    lengths = np.array([len(history) for history in split.test.histories])
    rows = np.flatnonzero(lengths >= model.max_len)[:METHOD_USERS]
    players = model.max_len
    settings = (
        ("kernel", {"method": "kernel", "n_pairs": 8_000}),
        ("permutation", {"method": "permutation", "n_pairs": 16_000 // (2 * (players - 1))}),
    )
    lines = [
        "# Kernel SHAP against permutation sampling at equal budgets",
        "",
        f"Produced by `python bench/bench_shap.py`. Machine: {machine()}.",
        f"Model: SASRec ({model.config.layers} layers, {model.config.heads} heads, hidden {model.config.hidden}, "
        f"max_len {model.max_len}) trained on ML-100K leave-last-out. Score of each user's top-1 item, "
        f"{players} history positions as players, seed 0. Each estimator's own standard errors; forward passes "
        "to a given precision grow with their square.",
        "",
        "| user | absence | kernel passes | kernel max SE | kernel median SE | permutation passes | "
        "permutation max SE | permutation median SE | max SE ratio |",
        "| ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    ratios = []
    for absence in ("pad", "remove"):
        for row in rows:
            user, history = int(split.test.users[row]), split.test.histories[row]
            cells = []
            maxima = []
            for _, options in settings:
                explainer = ShapExplainer(model, absence=absence, seed=0, progress=False, **options)
                explanation = explainer.explain(history, user=user)
                maxima.append(explanation.meta.max_standard_error)
                cells.append(
                    f"{explanation.meta.n_evals:,} | {explanation.meta.max_standard_error:.4f} | "
                    f"{np.median(explanation.error_std):.4f}"
                )
            ratios.append(maxima[1] / maxima[0])
            lines.append(f"| {user} | {absence} | {cells[0]} | {cells[1]} | {ratios[-1]:.1f} |")
            print(lines[-1], flush=True)
    lines += [
        "",
        f"Max SE ratio (permutation / kernel): {min(ratios):.1f} to {max(ratios):.1f} over {len(ratios)} runs.",
        "",
    ]
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
    parser.add_argument("--skip-methods", action="store_true", help="Skip part 1c.")
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
    if not args.skip_methods:
        text = bench_methods(model, split)
        (RESULTS / "shap_methods.md").write_text(text, encoding="utf-8")
        print(text)
    if not args.skip_faithfulness:
        text = bench_faithfulness(model, split, args)
        (RESULTS / "faithfulness.md").write_text(text, encoding="utf-8")
        print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
