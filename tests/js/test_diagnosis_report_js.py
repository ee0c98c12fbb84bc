"""DiagnosisReport ESM in Chromium: model to DOM, clicks to model, cleanup, and the offline export."""

from __future__ import annotations

import re

import pytest

from recwidgets.diagnose import Diagnosis, Finding
from recwidgets.widgets.diagnosis_report import DiagnosisReport

from .hand_results import INJECTION

LOCAL_SCHEMES = ("file:", "blob:", "data:", "about:")


@pytest.fixture
def report():
    findings = Diagnosis(
        [
            Finding("bias.popularity", "info", "lists 1.8x as popular", {"model": "sasrec", "arp_ratio": 1.8}),
            Finding(
                "protocol.ties",
                "error",
                f"{INJECTION}: ties favour the target",
                {"model": INJECTION, "ties": "optimistic", "ok": False},
                fix="Break ties pessimistically.",
                view={"widget": "MetricPanel", "model": INJECTION},
            ),
            Finding(
                "coldstart.users",
                "warning",
                "sasrec: worse than most-popular for short histories",
                {"model": "sasrec", "difference_ci": [-0.2, -0.08], "n_cold_users": 82},
                fix="Fall back to popularity for short histories.",
                reference="none",
                view={"widget": "MetricPanel", "segment_by": "activity", "model": "sasrec"},
            ),
        ],
        skipped=[("embedding (ease)", "the model has no item_embeddings()")],
    )
    return DiagnosisReport(findings)


def finding(widget_page, key):
    return widget_page.page.locator(f'[data-testid="finding"][data-key="{key}"]')


def test_groups_and_evidence_rendered(widget_page, report):
    widget_page.mount(report)

    groups = widget_page.page.locator('[data-testid="diagnosis-group"]')
    assert [groups.nth(i).get_attribute("data-severity") for i in range(groups.count())] == ["error", "warning", "info"]
    assert widget_page.text("diagnosis-summary") == "1 error(s), 1 warning(s), 1 info"
    card = finding(widget_page, "coldstart.users:sasrec")
    assert card.locator('[data-testid="evidence-row"][data-name="difference_ci"] td').text_content() == "[-0.2000, -0.0800]"
    assert card.locator('[data-testid="evidence-row"][data-name="n_cold_users"] td').text_content() == "82"
    assert card.locator('[data-testid="finding-link"]').text_content() == (
        "Show in MetricPanel (segment_by: activity, model: sasrec)"
    )
    assert widget_page.count('[data-testid="skipped-check"]') == 1


def test_link_click_selects_finding(widget_page, report):
    widget_page.mount(report)

    finding(widget_page, "coldstart.users:sasrec").locator('[data-testid="finding-link"]').click()

    assert widget_page.model_get("selected_finding") == "coldstart.users:sasrec"
    assert widget_page.saves() == 1
    assert finding(widget_page, "coldstart.users:sasrec").get_attribute("aria-selected") == "true"
    assert "report.selected_view" in widget_page.text("diagnosis-selection")

    # A second click clears the selection.
    finding(widget_page, "coldstart.users:sasrec").locator('[data-testid="finding-link"]').click()
    assert widget_page.model_get("selected_finding") == ""


def test_python_selection_redraws(widget_page, report):
    widget_page.mount(report)

    report.selected_finding = "bias.popularity:sasrec"
    widget_page.py_update(report, "selected_finding")

    assert finding(widget_page, "bias.popularity:sasrec").get_attribute("aria-selected") == "true"


def test_min_severity_filter(widget_page, report):
    widget_page.mount(report)

    widget_page.page.locator('[data-testid="diagnosis-min-severity"]').select_option("warning")

    assert widget_page.model_get("min_severity") == "warning"
    assert widget_page.count('[data-testid="finding"]') == 2
    widget_page.page.locator('[data-testid="diagnosis-min-severity"]').select_option("error")
    assert widget_page.count('[data-testid="finding"]') == 1


def test_names_stay_text(widget_page, report):
    widget_page.mount(report)

    title = finding(widget_page, f"protocol.ties:{INJECTION}").locator('[data-testid="finding-title"]')
    assert title.text_content().startswith(INJECTION)
    assert widget_page.count("img") == 0


def test_python_error_shown(widget_page, report):
    widget_page.mount(report)

    widget_page.set_raw({"python_error": "ConfigError: selected_finding='x' is not a finding"})

    assert "selected_finding='x'" in widget_page.text("rw-python-error")


def test_cleanup_removes_listeners(widget_page, report):
    widget_page.mount(report)
    assert widget_page.listener_count() > 0

    widget_page.cleanup()

    assert widget_page.listener_count() == 0


def test_offline_export_selects_without_kernel(chromium_context, report, tmp_path):
    path = tmp_path / "diagnosis.html"
    report.to_html(path)
    page = chromium_context.new_page()
    requests = []
    page.on("request", lambda request: None if request.url.startswith(LOCAL_SCHEMES) else requests.append(request.url))
    page.route(re.compile(r"^(?!file:|blob:|data:)"), lambda route: route.abort())
    try:
        page.goto(path.as_uri())
        page.wait_for_selector("html[data-recwidgets-ready='true']", timeout=30_000)
        assert page.locator('[data-testid="finding"]').count() == 3
        page.locator('[data-testid="finding"][data-key="coldstart.users:sasrec"] [data-testid="finding-link"]').click()
        card = page.locator('[data-testid="finding"][data-key="coldstart.users:sasrec"]')
        assert card.get_attribute("aria-selected") == "true"
        assert "running kernel" in page.locator('[data-testid="diagnosis-selection"]').text_content()
        assert requests == []
    finally:
        page.close()
