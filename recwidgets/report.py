"""The main job: load, split, train, evaluate, diagnose and write one offline HTML report."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from recwidgets.errors import ConfigError, RecwidgetsError

logger = logging.getLogger(__name__)

MODEL_NAMES = ("sasrec", "popularity", "ease")


@dataclass
class ReportSummary:
    """Outputs of ``run_report``: the report path, the protocol card, NDCG@10 per model and timings."""

    out: Path
    card: dict
    ndcg10: dict = field(default_factory=dict)
    seconds: dict = field(default_factory=dict)
    findings: list = field(default_factory=list)
    html_bytes: int = 0

    def __str__(self) -> str:
        lines = [f"Report written to {self.out} ({self.html_bytes / 1e6:.2f} MB)"]
        for name, (value, low, high) in self.ndcg10.items():
            lines.append(f"  {name:<11} NDCG@10 = {value:.4f}  95% CI [{low:.4f}, {high:.4f}]")
        if self.findings:
            serious = [finding for finding in self.findings if finding.severity in ("warning", "error")]
            lines.append(f"  diagnosis: {len(self.findings)} finding(s), {len(serious)} at warning level or above")
        return "\n".join(lines)


def _requested_models(model: str) -> tuple[str, ...]:
    if model == "all":
        return MODEL_NAMES
    if model not in MODEL_NAMES:
        raise ConfigError(f"unknown model {model!r}; use one of {MODEL_NAMES + ('all',)}.")
    return (model,)


def load_log(
    data: str,
    *,
    items: str | None = None,
    user_col: str | None = None,
    item_col: str | None = None,
    time_col: str | None = None,
    rating_col: str | None = None,
    sep: str | None = None,
    implicit_threshold: float | None = None,
    kcore: int | None = None,
):
    """Load ``data`` (a dataset name or a path) with the CLI's column mapping options."""
    from recwidgets import datasets

    table_options = {
        name: value
        for name, value in {
            "items": items,
            "user_col": user_col,
            "item_col": item_col,
            "time_col": time_col,
            "rating_col": rating_col,
            "sep": sep,
        }.items()
        if value is not None
    }
    return datasets.load(data, implicit_threshold=implicit_threshold, kcore=kcore, **table_options)


def train_models(split, names, *, epochs, device, seed, progress, callbacks=()):
    """Fit each named model on ``split`` and return ``{name: (model, seconds)}``."""
    from recwidgets.models import EASE, Popularity, SASRec
    from recwidgets.models.sasrec import DEMO_OVERRIDES

    fitted = {}
    for name in names:
        started = time.perf_counter()
        if name == "sasrec":
            # The report caps training (40 epochs, patience 10) so the main job stays within minutes on a CPU.
            overrides = dict(DEMO_OVERRIDES)
            if epochs is not None:
                overrides["epochs"] = epochs
            model = SASRec(seed=seed, **overrides)
            model.fit(split, device=device, seed=seed, progress=progress, callbacks=list(callbacks))
        elif name == "popularity":
            model = Popularity().fit(split)
        else:
            model = EASE().fit(split)
        fitted[name] = (model, time.perf_counter() - started)
        logger.info("trained %s in %.1f s", name, fitted[name][1])
    return fitted


def run_report(
    *,
    data: str,
    out: str | Path,
    items: str | None = None,
    user_col: str | None = None,
    item_col: str | None = None,
    time_col: str | None = None,
    rating_col: str | None = None,
    sep: str | None = None,
    implicit_threshold: float | None = None,
    kcore: int | None = None,
    model: str = "all",
    split: str = "leave-last-out",
    short_users: str = "raise",
    cutoff: float | int | None = None,
    epochs: int | None = None,
    device: str = "auto",
    seed: int = 2020,
    k: tuple[int, ...] = (5, 10, 20),
    n_bootstrap: int = 1000,
    metrics_json: str | Path | None = None,
    findings_json: str | Path | None = None,
    checkpoint: str | Path | None = None,
    progress: bool = True,
) -> ReportSummary:
    """Run the main job and write the HTML report (plus optional JSON files).

    Every requested model is evaluated on the same split with full ranking, seen items
    excluded and pessimistic ties. The report shows them side by side with the protocol card.
    """
    from recwidgets.data.split import split as make_split
    from recwidgets.evaluation import check_cutoffs, evaluate

    names = _requested_models(model)
    out = Path(out)
    # Fail on an unwritable destination before minutes of training, not after.
    outputs = {"--out": out, "--metrics-json": metrics_json, "--findings-json": findings_json, "--checkpoint": checkpoint}
    for target in outputs.values():
        if target is not None:
            _check_writable(Path(target))
    _check_distinct(outputs, {"--data": data, "--items": items})
    if sep == "":
        raise ConfigError("sep='' is invalid; pass the field separator, such as ',' or '\\t', or leave it out.")
    if cutoff is not None and split != "temporal":
        raise ConfigError(
            f"cutoff={cutoff} applies only to the temporal split, but split={split!r}; add --split temporal "
            "(split='temporal') or drop --cutoff."
        )

    log = load_log(
        data,
        items=items,
        user_col=user_col,
        item_col=item_col,
        time_col=time_col,
        rating_col=rating_col,
        sep=sep,
        implicit_threshold=implicit_threshold,
        kcore=kcore,
    )
    # Invalid cutoffs or bootstrap counts must fail before training, not after it.
    k = check_cutoffs(k, log.n_items)
    if n_bootstrap < 0:
        raise ConfigError(f"n_bootstrap={n_bootstrap} is invalid; pass 0 to disable CIs or a positive count such as 1000.")
    split_options = {}
    if split == "leave-last-out":
        split_options["short_users"] = short_users
    elif cutoff is not None:
        split_options["cutoff"] = cutoff
    data_split = make_split(log, split, **split_options)

    from recwidgets.widgets import TrainingMonitor

    monitor = TrainingMonitor()
    fitted = train_models(
        data_split, names, epochs=epochs, device=device, seed=seed, progress=progress, callbacks=(monitor,)
    )

    results = {}
    for name, (fitted_model, _) in fitted.items():
        results[name] = evaluate(fitted_model, data_split, k=k, n_bootstrap=n_bootstrap, seed=seed)

    if checkpoint is not None and "sasrec" in fitted:
        with _keeping(fitted, None, "the checkpoint"):
            fitted["sasrec"][0].save(checkpoint)

    from recwidgets.diagnose import diagnose

    findings = diagnose(split=data_split, models={name: m for name, (m, _) in fitted.items()}, results=results)

    from recwidgets.report_html import write_report_html

    with _keeping(fitted, checkpoint, "the HTML report"):
        html_bytes = write_report_html(
            out,
            log=log,
            split=data_split,
            models={name: fitted_model for name, (fitted_model, _) in fitted.items()},
            results=results,
            findings=findings,
            monitor=monitor if "sasrec" in fitted else None,
        )

    card = next(iter(results.values())).card.to_dict()
    if metrics_json is not None:
        payload = {"protocol": card, "models": {name: result.to_dict() for name, result in results.items()}}
        with _keeping(fitted, checkpoint, "the metrics JSON", written=out):
            Path(metrics_json).write_text(json.dumps(payload, indent=2, default=_json_default))
    if findings_json is not None:
        rows = [
            {"id": f.id, "severity": f.severity, "title": f.title, "evidence": f.evidence, "fix": f.fix}
            for f in findings
        ]
        with _keeping(fitted, checkpoint, "the findings JSON", written=out):
            Path(findings_json).write_text(json.dumps(rows, indent=2, default=_json_default))

    return ReportSummary(
        out=out,
        card=card,
        ndcg10={
            name: (result.value("NDCG@10"), *result.ci("NDCG@10"))
            for name, result in results.items()
            if "NDCG@10" in result.metrics.index
        },
        seconds={name: seconds for name, (_, seconds) in fitted.items()},
        findings=findings,
        html_bytes=html_bytes,
    )


def _check_distinct(outputs: dict, inputs: dict) -> None:
    """Raise ConfigError when two outputs, or an output and an input, are the same file."""
    seen: dict[Path, str] = {}
    for flag, path in list(inputs.items()) + list(outputs.items()):
        if path is None:
            continue
        resolved = Path(path).expanduser().resolve()
        if resolved in seen:
            raise ConfigError(
                f"{flag} {path} is the same file as {seen[resolved]}, so one would overwrite the other; "
                f"pass a different path for {flag}."
            )
        seen[resolved] = flag


@contextlib.contextmanager
def _keeping(fitted: dict, checkpoint, output_name: str, written: Path | None = None):
    """Turn a failed write after training into an error that names where the trained model is.

    Training can take minutes, so when no checkpoint was written, SASRec is saved to a
    temporary file before the error is raised.
    """
    try:
        yield
    except OSError as error:
        saved_paths = []
        if written is not None:
            saved_paths.append(f"the report is at {written}")
        if "sasrec" in fitted:
            if checkpoint is not None and Path(checkpoint).exists():
                saved_paths.append(f"the SASRec checkpoint is at {checkpoint}")
            else:
                handle, fallback = tempfile.mkstemp(prefix="recwidgets-sasrec-", suffix=".pt")
                os.close(handle)
                try:
                    fitted["sasrec"][0].save(fallback)
                    saved_paths.append(f"the trained SASRec was saved to {fallback} (load it with SASRec.load)")
                except OSError as second:
                    logger.error("saving SASRec to %s failed too: %s", fallback, second)
        logger.error("writing %s failed: %s", output_name, error)
        detail = "; ".join(saved_paths) if saved_paths else "nothing was saved"
        raise RecwidgetsError(
            f"writing {output_name} failed: {error}. {detail[0].upper() + detail[1:]}. Free space or pick another path, "
            "then rerun."
        ) from None


def _check_writable(target: Path) -> None:
    """Raise ConfigError unless ``target`` can be created or overwritten as a file."""
    path = target.expanduser()
    if path.is_dir():
        raise ConfigError(f"output path {target} is a folder; pass a file name such as {path / 'report.html'}.")
    folder = path.resolve().parent
    if not folder.is_dir():
        raise ConfigError(f"output folder of {target} does not exist; create it first or pick another path.")
    if not os.access(folder, os.W_OK) or (path.exists() and not os.access(path, os.W_OK)):
        raise ConfigError(f"output path {target} is not writable; pick a folder you can write to.")


def _json_default(value):
    """Convert numpy scalars and arrays for ``json.dumps``."""
    import numpy as np

    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"cannot serialise {type(value).__name__} to JSON")
