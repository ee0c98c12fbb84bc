"""The diagnosis engine: run every detector that has its inputs and collect the findings."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Mapping

import numpy as np
import pandas as pd

from recwidgets.data.log import InteractionLog
from recwidgets.data.split import Split
from recwidgets.diagnose._common import collecting_measurements, is_popularity_baseline
from recwidgets.diagnose.bias_checks import check_bias
from recwidgets.diagnose.coldstart_checks import check_coldstart
from recwidgets.diagnose.data_checks import check_data
from recwidgets.diagnose.embedding_checks import check_embeddings
from recwidgets.diagnose.finding import SEVERITIES, Finding
from recwidgets.diagnose.fit_checks import check_divergence, check_overfitting, check_underfitting
from recwidgets.diagnose.leakage_checks import check_leakage
from recwidgets.diagnose.protocol_checks import check_protocol
from recwidgets.errors import ConfigError

logger = logging.getLogger(__name__)

#: Detector groups that ``diagnose(checks=...)`` accepts.
CHECK_GROUPS = ("data", "leakage", "protocol", "fit", "bias", "coldstart", "embedding", "attention")

_SEVERITY_ORDER = {"error": 0, "warning": 1, "info": 2}


class Diagnosis(list):
    """The findings of one ``diagnose`` run, errors first, plus what was skipped and measured.

    It is a plain ``list`` of :class:`Finding`, so existing code can iterate it.
    ``skipped`` lists ``(check, reason)`` pairs for detectors that lacked an input.
    ``measurements`` lists the evidence every detector measured, including the ones that
    raised nothing, as dicts with an ``id`` key.
    """

    def __init__(self, findings: Iterable[Finding] = (), *, skipped=(), measurements=()):
        super().__init__(sorted(findings, key=lambda finding: _SEVERITY_ORDER[finding.severity]))
        self.skipped: list[tuple[str, str]] = list(skipped)
        self.measurements: list[dict] = list(measurements)

    def ids(self, min_severity: str = "info") -> set[str]:
        """Return the ids of findings at ``min_severity`` or above."""
        if min_severity not in SEVERITIES:
            raise ConfigError(f"min_severity={min_severity!r} is invalid; use one of {SEVERITIES}.")
        limit = _SEVERITY_ORDER[min_severity]
        return {finding.id for finding in self if _SEVERITY_ORDER[finding.severity] <= limit}

    @property
    def serious(self) -> list[Finding]:
        """The findings at warning level or above."""
        return [finding for finding in self if finding.at_least_warning]

    def frame(self) -> pd.DataFrame:
        """Return one row per finding: id, severity, title, model, widget, fix and reference."""
        rows = [
            {
                "id": finding.id,
                "severity": finding.severity,
                "title": finding.title,
                "model": finding.evidence.get("model"),
                "widget": finding.view.get("widget"),
                "fix": finding.fix,
                "reference": finding.reference,
            }
            for finding in self
        ]
        return pd.DataFrame(rows, columns=["id", "severity", "title", "model", "widget", "fix", "reference"])

    def to_dict(self) -> dict:
        """Return findings, skipped checks and measurements as JSON-serialisable data."""
        return {
            "findings": [finding.to_dict() for finding in self],
            "skipped": [{"check": check, "reason": reason} for check, reason in self.skipped],
            "measurements": self.measurements,
        }

    def to_json(self, **options) -> str:
        """Return ``to_dict()`` as a JSON string; ``options`` go to ``json.dumps`` (default indent 2)."""
        options.setdefault("indent", 2)
        return json.dumps(self.to_dict(), default=_json_default, **options)

    def __repr__(self) -> str:
        counts = {severity: sum(finding.severity == severity for finding in self) for severity in ("error", "warning", "info")}
        listed = ", ".join(f"{finding.severity}:{finding.id}" for finding in self)
        return f"Diagnosis({counts['error']} error, {counts['warning']} warning, {counts['info']} info: [{listed}])"


def _json_default(value):
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise TypeError(f"cannot serialise {type(value).__name__} to JSON")


def _named(items, what: str) -> dict:
    """Accept a mapping, a sequence of objects with ``name``/``model_name``, or None."""
    if items is None:
        return {}
    if isinstance(items, Mapping):
        return dict(items)
    named = {}
    for item in items:
        name = getattr(item, "model_name", None) or getattr(item, "name", None)
        if name is None:
            raise ConfigError(f"{what} must be a dict of name -> object, or objects with a name; got {type(item).__name__}.")
        base, index = str(name), 2
        while name in named:
            name = f"{base} #{index}"
            index += 1
        named[str(name)] = item
    return named


class _References:
    """Most-popular baseline results, computed once per evaluation protocol and reused."""

    def __init__(self, split: Split | None, models: dict, results: dict):
        self.split = split
        self.cache: dict = {}
        for name, result in results.items():
            if is_popularity_baseline(name, models.get(name), result):
                self.cache.setdefault(self._key(result), result)

    @staticmethod
    def _key(result) -> tuple:
        card = result.card
        digest = card.extra.get("negatives_digest") if isinstance(card.extra, dict) else None
        return (card.part, card.ranking, card.exclude_seen, card.n_negatives, digest)

    def for_result(self, result):
        """Return the baseline evaluated like ``result``, or None when it cannot be computed."""
        key = self._key(result)
        if key in self.cache:
            return self.cache[key]
        if self.split is None:
            return None
        from recwidgets.evaluation import evaluate
        from recwidgets.models import Popularity

        card = result.card
        baseline = Popularity().fit(self.split)
        options = {"part": card.part or "test", "k": tuple(result.k), "n_bootstrap": 0}
        if card.ranking == "sampled" and getattr(result, "negatives", None) is not None:
            options["negatives"] = result.negatives
            options["sample_seed"] = card.sample_seed or 0
        else:
            options["exclude_seen"] = bool(card.exclude_seen) if card.exclude_seen is not None else True
        import warnings

        from recwidgets.errors import ProtocolWarning

        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ProtocolWarning)
            reference = evaluate(baseline, self.split, **options)
        logger.info("evaluated the most-popular baseline for comparison (%s)", key)
        self.cache[key] = reference
        return reference


def _run(name: str, skipped: list, function, *args, **kwargs) -> list[Finding]:
    """Call one detector; a detector that crashes is logged and recorded as skipped."""
    try:
        return list(function(*args, **kwargs))
    except Exception as error:  # noqa: BLE001 - one broken detector must not hide the others
        logger.warning("diagnosis check %s failed: %s: %s", name, type(error).__name__, error)
        skipped.append((name, f"failed: {type(error).__name__}: {error}"))
        return []


def diagnose(
    split: Split | None = None,
    models=None,
    results=None,
    *,
    log: InteractionLog | None = None,
    attention: bool = True,
    seed: int = 0,
    popularity=None,
    checks: Iterable[str] | None = None,
    coldstart_curve=None,
) -> Diagnosis:
    """Run every detector that has its inputs and return the findings, errors first.

    Args:
        split: the split the models were trained and evaluated on; needed by the leakage,
            order, bias and cold-start checks and to compute the most-popular baseline.
        models: ``{name: model}`` (or a list of models, named by ``model.name``). Training
            checks read ``model.history``; embedding checks need ``item_embeddings()``;
            attention checks need ``attention()``.
        results: ``{name: EvaluationResult}`` under the same names as ``models``.
        log: the interaction log; defaults to ``split.log``.
        attention: run ``recwidgets.diagnose.attention_checks`` on models with attention.
        seed: seed of the bootstrap intervals and of the attention checks' user sample.
        popularity: a most-popular baseline result to compare with; by default one is taken
            from ``results`` or computed on ``split`` (cheap: one count per item).
        checks: detector groups to run (default all): ``data``, ``leakage``, ``protocol``,
            ``fit``, ``bias``, ``coldstart``, ``embedding``, ``attention``.
        coldstart_curve: a ``recwidgets.coldstart.ColdStartResult``; when given, the
            ``coldstart.users`` and ``coldstart.items`` findings also come from the curve
            (the model against popularity for users revealed at most 5 interactions).

    Detectors without their inputs are skipped with a logged reason, kept in
    ``Diagnosis.skipped``. A detector that raises is logged and skipped too, so one broken
    input cannot hide the other findings.
    """
    groups = set(CHECK_GROUPS if checks is None else checks)
    unknown = groups - set(CHECK_GROUPS)
    if unknown:
        raise ConfigError(f"unknown check group(s) {sorted(unknown)}; use any of {CHECK_GROUPS}.")
    if split is not None and not isinstance(split, Split):
        raise ConfigError(f"split has type {type(split).__name__}; pass a recwidgets Split or None.")
    models = _named(models, "models")
    results = _named(results, "results")
    if log is None and split is not None:
        log = split.log
    skipped: list[tuple[str, str]] = []
    findings: list[Finding] = []

    def skip(check: str, reason: str) -> None:
        logger.info("diagnosis check %s skipped: %s", check, reason)
        skipped.append((check, reason))

    with collecting_measurements() as measurements:
        if "data" in groups:
            if log is None and split is None:
                skip("data", "no log or split given")
            else:
                findings += _run("data", skipped, check_data, log, split.train if split is not None else None)

        if "leakage" in groups:
            if split is None:
                skip("leakage.split", "no split given")
            findings += _run("leakage", skipped, check_leakage, split, results)

        if "protocol" in groups:
            if not results:
                skip("protocol", "no evaluation results given")
            else:
                findings += _run("protocol", skipped, check_protocol, results, split)

        references = _References(split, models, results)
        reference_for = {}
        for name, result in results.items():
            if popularity is not None:
                reference_for[name] = popularity
            else:
                reference_for[name] = _run_value(f"popularity reference for {name}", skipped, references.for_result, result)

        if "fit" in groups:
            findings += _fit_checks(models, results, reference_for, seed, skip, skipped)

        train_popularity = split.train_popularity() if split is not None else None
        if "bias" in groups:
            if not results or train_popularity is None:
                skip("bias", "needs evaluation results and a split")
            for name, result in results.items() if train_popularity is not None else ():
                findings += _run(
                    f"bias ({name})", skipped, check_bias, {name: result}, train_popularity, split,
                    reference=reference_for.get(name), models=models,
                )  # fmt: skip

        if "coldstart" in groups:
            if not results or split is None:
                skip("coldstart", "needs evaluation results and a split")
            for name, result in results.items() if split is not None else ():
                findings += _run(
                    f"coldstart ({name})", skipped, check_coldstart, {name: result}, train_popularity, split,
                    reference=reference_for.get(name), seed=seed,
                )  # fmt: skip
            if coldstart_curve is not None:
                findings += _run("coldstart (curve)", skipped, _curve_findings, coldstart_curve)

        if "embedding" in groups:
            for name, model in models.items():
                if not hasattr(model, "item_embeddings"):
                    skip(f"embedding ({name})", "the model has no item_embeddings()")
                    continue
                findings += _run(f"embedding ({name})", skipped, check_embeddings, name, model, train_popularity)

        if "attention" in groups and attention:
            findings += _attention_checks(models, split, seed, skip, skipped)

    return Diagnosis(findings, skipped=skipped, measurements=measurements)


def _curve_findings(curve) -> list[Finding]:
    from recwidgets.coldstart.evaluation import coldstart_finding, coldstart_items_finding

    found = [coldstart_finding(curve, max_n=5), coldstart_items_finding(curve)]
    return [finding for finding in found if finding is not None]


def _run_value(name: str, skipped: list, function, *args):
    try:
        return function(*args)
    except Exception as error:  # noqa: BLE001 - a missing baseline only disables comparisons
        logger.warning("diagnosis step %s failed: %s: %s", name, type(error).__name__, error)
        skipped.append((name, f"failed: {type(error).__name__}: {error}"))
        return None


def _fit_checks(models: dict, results: dict, reference_for: dict, seed: int, skip, skipped: list) -> list[Finding]:
    findings: list[Finding] = []
    for name in list(models) + [name for name in results if name not in models]:
        model = models.get(name)
        result = results.get(name)
        if is_popularity_baseline(name, model, result):
            continue
        if model is not None:
            if isinstance(getattr(model, "history", None), pd.DataFrame) and len(model.history):
                findings += _run(f"fit.divergence ({name})", skipped, check_divergence, name, model)
                findings += _run(f"fit.overfitting ({name})", skipped, check_overfitting, name, model)
            else:
                skip(f"fit.history ({name})", "the model has no training history")
        reference = reference_for.get(name)
        if result is None and model is None:
            continue
        if result is not None and reference is None:
            skip(f"fit.underfitting ({name})", "no most-popular baseline to compare with (give a split)")
        findings += _run(
            f"fit.underfitting ({name})", skipped, check_underfitting, name, model, result, reference, seed=seed
        )
    return findings


def _attention_checks(models: dict, split, seed: int, skip, skipped: list) -> list[Finding]:
    try:
        from recwidgets.diagnose.attention_checks import check_attention
    except ImportError as error:
        skip("attention", f"recwidgets.diagnose.attention_checks is unavailable ({error})")
        return []
    findings: list[Finding] = []
    for name, model in models.items():
        if not callable(getattr(model, "attention", None)):
            skip(f"attention ({name})", "the model has no attention()")
            continue
        if split is None:
            skip(f"attention ({name})", "needs a split to draw histories from")
            continue
        model_findings = _run(f"attention ({name})", skipped, check_attention, model, split, seed=seed)
        for finding in model_findings:
            if "model" not in finding.evidence:
                finding.evidence["model"] = name
        findings += model_findings
    return findings
