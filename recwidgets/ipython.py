"""IPython extension: ``%load_ext recwidgets`` makes recwidgets results display as widgets.

After loading, a bare expression in a notebook cell renders:

* a fitted :class:`~recwidgets.models.SASRec` with a training history as a
  :class:`~recwidgets.widgets.TrainingMonitor` of that history;
* a fitted :class:`~recwidgets.models.Popularity`, :class:`~recwidgets.models.EASE` or
  :class:`~recwidgets.models.TorchModuleRecommender` as a short HTML summary;
* an :class:`~recwidgets.evaluation.EvaluationResult` as a :class:`~recwidgets.widgets.MetricPanel`;
* a :class:`~recwidgets.diagnose.Diagnosis`, or a non-empty list of
  :class:`~recwidgets.diagnose.Finding`, as a :class:`~recwidgets.widgets.DiagnosisReport`.

Anything else, including an unfitted model, keeps its usual display. The printers are
registered on IPython's ``mimebundle_formatter``, so a widget's bundle (widget view, HTML
and text fallbacks) goes out exactly as if the widget itself were displayed.
``%unload_ext recwidgets`` restores the printers that were registered before.
"""

from __future__ import annotations

import html
import logging
from collections.abc import Callable
from typing import Any

from recwidgets.diagnose import Diagnosis, Finding
from recwidgets.evaluation import EvaluationResult
from recwidgets.models import EASE, Popularity, SASRec, TorchModuleRecommender

logger = logging.getLogger(__name__)

Bundle = tuple[dict, dict]

# The printer each type had before loading (None when it had none), per shell.
_previous: dict[int, dict[type, Callable | None]] = {}


def _widget_bundle(widget: Any) -> Bundle:
    return widget._repr_mimebundle_()


def _summary_bundle(title: str, rows: list[tuple[str, Any]]) -> Bundle:
    """Return a small two-column table as text/plain and escaped text/html."""
    width = max(len(label) for label, _ in rows)
    text = "\n".join([title] + [f"  {label.ljust(width)}  {value}" for label, value in rows])
    cells = "".join(
        f"<tr><th style='text-align:left'>{html.escape(label)}</th><td style='text-align:left'>{html.escape(str(value))}</td></tr>"
        for label, value in rows
    )
    markup = f"<div class='recwidgets-summary'><strong>{html.escape(title)}</strong><table>{cells}</table></div>"
    return {"text/plain": text, "text/html": markup}, {}


def sasrec_bundle(model: SASRec) -> Bundle | None:
    """Return a TrainingMonitor bundle of a fitted SASRec's history, a summary without one, or None unfitted."""
    if model.module is None:
        return None
    if model.history is not None and not model.history.empty and "epoch" in model.history.columns:
        from recwidgets.widgets import TrainingMonitor

        monitor = TrainingMonitor.from_history(model.history, best_epoch=model.best_epoch or None, stop_reason=model.stop_reason)
        return _widget_bundle(monitor)
    config = model.config
    return _summary_bundle(
        "SASRec (no training history)",
        [
            ("items", model.n_items),
            ("layers x heads", f"{config.layers} x {config.heads}"),
            ("hidden size", config.hidden),
            ("max history length", config.max_len),
            ("device", model.device),
        ],
    )


def popularity_bundle(model: Popularity) -> Bundle | None:
    """Return a summary of a fitted most-popular baseline, or None when it is not fitted."""
    if model.counts is None:
        return None
    counts = model.counts.detach().cpu()
    top = counts.argsort(descending=True)[:5].tolist()
    return _summary_bundle(
        "Popularity baseline",
        [
            ("items", model.n_items),
            ("training interactions", int(counts.sum().item())),
            ("items never seen in training", int((counts[1:] == 0).sum().item())),
            ("top 5 internal item ids", ", ".join(str(item) for item in top)),
        ],
    )


def ease_bundle(model: EASE) -> Bundle | None:
    """Return a summary of a fitted EASE model, or None when it is not fitted."""
    if model.weights is None:
        return None
    return _summary_bundle(
        "EASE",
        [
            ("items", model.n_items),
            ("regularization (lambda)", f"{model.regularization:g}"),
            ("weights", f"{tuple(model.weights.shape)} {str(model.dtype).replace('torch.', '')}"),
            ("weight memory", f"{model.weights.numel() * model.weights.element_size() / 2**20:.1f} MiB"),
            ("device", model.device),
        ],
    )


def torch_module_bundle(model: TorchModuleRecommender) -> Bundle:
    """Return a summary of a wrapped torch module: name, catalog size, parameters and device."""
    n_parameters = sum(parameter.numel() for parameter in model.module.parameters())
    return _summary_bundle(
        f"TorchModuleRecommender {model.name!r}",
        [
            ("module", type(model.module).__name__),
            ("items", model.n_items),
            ("max history length", model.max_len if model.max_len is not None else "no limit"),
            ("parameters", f"{n_parameters:,}"),
            ("device", model.device),
        ],
    )


def evaluation_bundle(result: EvaluationResult) -> Bundle:
    """Return the MetricPanel bundle of one evaluation result."""
    from recwidgets.widgets import MetricPanel

    return _widget_bundle(MetricPanel(result))


def diagnosis_bundle(findings: list) -> Bundle | None:
    """Return a DiagnosisReport bundle of a Diagnosis or a list of Findings; None for other lists."""
    if not isinstance(findings, Diagnosis):
        if not findings or not all(isinstance(item, Finding) for item in findings):
            return None
    from recwidgets.widgets import DiagnosisReport

    return _widget_bundle(DiagnosisReport(findings))


#: Types and the printers registered for them.
PRINTERS: dict[type, Callable[[Any], Bundle | None]] = {
    SASRec: sasrec_bundle,
    Popularity: popularity_bundle,
    EASE: ease_bundle,
    TorchModuleRecommender: torch_module_bundle,
    EvaluationResult: evaluation_bundle,
    Diagnosis: diagnosis_bundle,
    # Plain lists reach this printer too; it returns None unless every item is a Finding.
    list: diagnosis_bundle,
}


def load_ipython_extension(ipython) -> None:
    """Register the recwidgets printers on ``ipython``'s mimebundle formatter (``%load_ext recwidgets``)."""
    formatter = ipython.display_formatter.mimebundle_formatter
    if id(ipython) in _previous:
        logger.info("the recwidgets display printers are already registered")
        return
    previous = {}
    for cls, printer in PRINTERS.items():
        # Only a printer registered for exactly this class is restored later, not an inherited one.
        previous[cls] = formatter.type_printers.get(cls)
        formatter.for_type(cls, printer)
    _previous[id(ipython)] = previous
    logger.info("registered recwidgets display printers for %s", ", ".join(cls.__name__ for cls in PRINTERS))


def unload_ipython_extension(ipython) -> None:
    """Remove the recwidgets printers and restore earlier ones (``%unload_ext recwidgets``)."""
    formatter = ipython.display_formatter.mimebundle_formatter
    previous = _previous.pop(id(ipython), None)
    if previous is None:
        return
    for cls, printer in previous.items():
        if printer is None:
            formatter.pop(cls, None)
        else:
            formatter.for_type(cls, printer)
    logger.info("removed the recwidgets display printers")
