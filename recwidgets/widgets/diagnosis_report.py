"""DiagnosisReport: the findings of ``recwidgets.diagnose`` grouped by severity, with links to their views."""

from __future__ import annotations

import json
import logging
from typing import Any

import numpy as np
import pandas as pd
import traitlets

from recwidgets.diagnose.finding import SEVERITIES, Finding
from recwidgets.errors import ConfigError
from recwidgets.widgets.base import RecWidget, validator

logger = logging.getLogger(__name__)

_SEVERITY_ORDER = {"error": 0, "warning": 1, "info": 2}


class DiagnosisReport(RecWidget):
    """Diagnosis findings grouped by severity, each with evidence, a fix and a link to its view.

    Pass findings (a ``Diagnosis`` or any list of ``Finding``), or pass ``split``,
    ``models`` and ``results`` to run :func:`recwidgets.diagnose.diagnose` here. Each
    finding gets a unique ``key`` (its id, plus the model name when the evidence names
    one). Clicking a finding's "Show in ..." button, or setting ``selected_finding`` to a
    key, selects it. ``selected_view`` then contains its ``view`` dict (the widget name and
    the trait values that show the evidence), which a dashboard can follow. Selection
    works in the offline export too; only following the link needs the kernel.

    Example::

        report = DiagnosisReport(split=split, models={"sasrec": model}, results={"sasrec": result})
        report.selected_finding = report.finding_keys()[0]
        report.selected_view  # {"widget": "TrainingMonitor", "model": "sasrec", ...}
    """

    _esm_name = "diagnosis_report"

    findings = traitlets.List(
        traitlets.Dict(),
        help="Findings as {key, id, severity, title, evidence, fix, reference, view}, errors first. Evidence "
        "values are JSON scalars or short lists.",
    ).tag(sync=True)
    skipped = traitlets.List(
        traitlets.List(), help="Checks that did not run, as [check, reason] pairs."
    ).tag(sync=True)
    min_severity = traitlets.Unicode(
        "info", help='Lowest severity shown: "info" (all), "warning" or "error".'
    ).tag(sync=True)
    selected_finding = traitlets.Unicode("", help="Key of the selected finding; empty when none.").tag(sync=True)
    selected_view = traitlets.Dict(
        help="View of the selected finding, such as {'widget': 'MetricPanel', 'segment_by': 'activity'}; "
        "empty when none."
    ).tag(sync=True)

    def __init__(
        self,
        findings: Any = None,
        *,
        split=None,
        models=None,
        results=None,
        min_severity: str = "info",
        **diagnose_options: Any,
    ):
        if findings is None:
            from recwidgets.diagnose import diagnose

            findings = diagnose(split=split, models=models, results=results, **diagnose_options)
        elif split is not None or models is not None or results is not None or diagnose_options:
            raise ConfigError(
                "DiagnosisReport got both findings and diagnose inputs; pass findings, or split/models/results "
                "to diagnose here, not both."
            )
        items = _as_findings(findings)
        skipped = list(getattr(findings, "skipped", []))
        self._findings = sorted(items, key=lambda finding: _SEVERITY_ORDER[finding.severity])
        self._keys = _keys(self._findings)

        super().__init__()
        with self.hold_sync():
            self.findings = [_payload(key, finding) for key, finding in zip(self._keys, self._findings)]
            self.skipped = [[str(check), str(reason)] for check, reason in skipped]
            self.min_severity = min_severity
        self.observe_guarded(self._on_selection, names=["selected_finding"])

    # -- validation ----------------------------------------------------------------------

    @validator("min_severity")
    def _check_min_severity(self, proposal: dict) -> str:
        value = proposal["value"]
        if value not in SEVERITIES:
            raise ConfigError(f"min_severity={value!r} is invalid; use one of {SEVERITIES}.")
        return value

    # -- selection -----------------------------------------------------------------------

    def finding_keys(self) -> list[str]:
        """Return the keys of the findings, in display order (errors first)."""
        return list(self._keys)

    def _on_selection(self, change: dict) -> None:
        key = change["new"]
        if not key:
            self.selected_view = {}
            return
        # Checked here, not in a validator, so a bad key from the front end shows in python_error.
        if key not in self._keys:
            self.selected_view = {}
            raise ConfigError(f"selected_finding={key!r} is not a finding of this report; use one of {self._keys}.")
        finding = self._findings[self._keys.index(key)]
        self.selected_view = _plain(dict(finding.view))
        logger.debug("finding %s selected; view %s", key, finding.view)

    def selected(self) -> Finding | None:
        """Return the selected Finding, or None."""
        if not self.selected_finding:
            return None
        return self._findings[self._keys.index(self.selected_finding)]

    # -- data ----------------------------------------------------------------------------

    def findings_data(self) -> pd.DataFrame:
        """Return one row per finding: key, id, severity, title, model, widget, evidence (JSON), fix, reference."""
        rows = [
            {
                "key": key,
                "id": finding.id,
                "severity": finding.severity,
                "title": finding.title,
                "model": finding.evidence.get("model"),
                "widget": finding.view.get("widget"),
                "evidence": json.dumps(_plain(finding.evidence), sort_keys=True),
                "fix": finding.fix,
                "reference": finding.reference,
            }
            for key, finding in zip(self._keys, self._findings)
        ]
        columns = ["key", "id", "severity", "title", "model", "widget", "evidence", "fix", "reference"]
        return pd.DataFrame(rows, columns=columns)

    def data(self) -> pd.DataFrame:
        return self.findings_data()

    def _fallback_frame(self) -> pd.DataFrame:
        frame = self.findings_data()
        shown = frame["severity"].map(_SEVERITY_ORDER) <= _SEVERITY_ORDER[self.min_severity]
        return frame.loc[shown, ["severity", "id", "title", "fix"]].reset_index(drop=True)

    def _fallback_title(self) -> str:
        counts = {severity: sum(finding.severity == severity for finding in self._findings) for severity in SEVERITIES}
        return f"DiagnosisReport: {counts['error']} error(s), {counts['warning']} warning(s), {counts['info']} info"


def _as_findings(findings: Any) -> list[Finding]:
    items = list(findings)
    for item in items:
        if not isinstance(item, Finding):
            raise ConfigError(
                f"DiagnosisReport needs Finding objects (from recwidgets.diagnose.diagnose); got {type(item).__name__}."
            )
    return items


def _keys(findings: list[Finding]) -> list[str]:
    """Return a unique key per finding: the id, with the model name when the evidence names one."""
    keys: list[str] = []
    for finding in findings:
        model = finding.evidence.get("model")
        base = f"{finding.id}:{model}" if model else finding.id
        key, index = base, 2
        while key in keys:
            key = f"{base}#{index}"
            index += 1
        keys.append(key)
    return keys


def _plain(value: Any) -> Any:
    """Return ``value`` with numpy scalars and arrays converted, and non-finite floats as None."""
    if isinstance(value, dict):
        return {str(key): _plain(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(item) for item in value]
    if isinstance(value, np.ndarray):
        return [_plain(item) for item in value.tolist()]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not np.isfinite(value):
        return None
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    return str(value)


def _payload(key: str, finding: Finding) -> dict:
    return {
        "key": key,
        "id": finding.id,
        "severity": finding.severity,
        "title": finding.title,
        "evidence": _plain(finding.evidence),
        "fix": finding.fix,
        "reference": finding.reference,
        "view": _plain(finding.view),
    }
