"""Exported HTML opened from file:// in Chromium with every network request blocked.

Checks that the page makes no request outside file:// (and the blob: URLs of its own
modules), draws charts and tables, keeps k switching without a kernel, and shows
injected names as text without running them.
"""

from __future__ import annotations

import re
from pathlib import Path

import altair as alt
import pytest

from js.hand_results import INJECTION, make_result, training_events
from recwidgets.export import Heading, save_html
from recwidgets.widgets import MetricPanel, TrainingMonitor

ARTIFACTS_DIR = Path(__file__).resolve().parents[2] / "test-artifacts" / "export"

LOCAL_SCHEMES = ("file:", "blob:", "data:", "about:")


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """Write one page with both widgets, an Altair chart and injected names; return (path, panel, monitor)."""
    panel = MetricPanel({"SASRec": make_result("SASRec", seed=1), INJECTION: make_result("Popularity", seed=2)})
    monitor = TrainingMonitor(min_interval_s=0)
    for event in training_events(n_epochs=5, best_epoch=4):
        monitor(event)
    path = tmp_path_factory.mktemp("export") / "report.html"
    save_html(path, Heading(INJECTION), panel, monitor, panel.chart(), title=f"Report {INJECTION}")
    return path, panel, monitor


@pytest.fixture
def offline_page(browser, request):
    """A page in a fresh context: requests outside file:// are recorded and aborted, dialogs recorded."""
    context = browser.new_context(viewport={"width": 1200, "height": 900}, service_workers="block")
    page = context.new_page()
    record = {"requests": [], "dialogs": [], "console_errors": []}

    def on_request(request):
        if not request.url.startswith(LOCAL_SCHEMES):
            record["requests"].append(request.url)

    page.on("request", on_request)
    page.on("dialog", lambda dialog: (record["dialogs"].append(dialog.message), dialog.dismiss()))
    page.on("console", lambda message: record["console_errors"].append(message.text) if message.type == "error" else None)
    page.route(re.compile(r"^(?!file:|blob:|data:)"), lambda route: route.abort())
    page.record = record
    yield page

    report = getattr(request.node, "rep_call", None)
    if report is not None and report.failed:
        ARTIFACTS_DIR.mkdir(parents=True, exist_ok=True)
        name = re.sub(r"[^\w.\-]+", "_", request.node.name)
        page.screenshot(path=str(ARTIFACTS_DIR / f"{name}.png"), full_page=True)
        (ARTIFACTS_DIR / f"{name}.txt").write_text(f"{record}\n")
    context.close()


def open_page(page, path):
    page.goto(path.as_uri())
    page.wait_for_selector("html[data-recwidgets-ready='true']", timeout=30_000)


def test_export_makes_no_network_request(offline_page, exported):
    path, _, _ = exported

    open_page(offline_page, path)

    assert offline_page.record["requests"] == []
    assert offline_page.record["console_errors"] == []
    assert offline_page.get_attribute("html", "data-recwidgets-errors") == "0"


def test_export_draws_charts_and_tables(offline_page, exported):
    path, panel, monitor = exported

    open_page(offline_page, path)

    bars = offline_page.locator('[data-testid="metric-panel-chart"] [data-testid="bar"]')
    assert bars.count() == 2 * len(panel.ks)
    for index in range(bars.count()):
        box = bars.nth(index).bounding_box()
        assert box["width"] > 0
        assert box["height"] > 0
    assert offline_page.locator('[data-testid="metric-cell"]').count() == 2 * len(panel.metric_names)
    curve = offline_page.locator('[data-testid="training-monitor-loss-chart"] polyline[data-series="train_loss"]')
    assert curve.bounding_box()["width"] > 0
    assert offline_page.locator('[data-testid="training-monitor-summary"]').text_content() == monitor.summary
    vega = offline_page.locator('[data-testid="vega-chart"] svg')
    assert vega.count() == 1
    assert vega.bounding_box()["height"] > 0


def test_export_k_switch_without_kernel(offline_page, exported):
    path, panel, _ = exported
    frame = panel.metrics_data()
    row = frame[(frame.model == "SASRec") & (frame.metric == "NDCG") & (frame.k == 20) & (frame.segment_by == "")].iloc[0]

    open_page(offline_page, path)
    offline_page.select_option('[data-testid="metric-panel-k"]', "20")

    cell = offline_page.locator('[data-testid="metric-cell"][data-model="SASRec"][data-metric="NDCG"]')
    assert cell.text_content() == f"{row.value:.4f} [{row.ci_low:.4f}, {row.ci_high:.4f}]"
    assert offline_page.locator('tr[data-metric="NDCG"] td').first.text_content() == "NDCG@20"


def test_export_segment_selection_offline(offline_page, exported):
    path, _, _ = exported

    open_page(offline_page, path)
    offline_page.select_option('[data-testid="metric-panel-segment-by"]', "activity")
    offline_page.click('tr[data-testid="segment-row"][data-segment="Q2 (11-20)"]')

    selection = offline_page.locator('[data-testid="metric-panel-selection"]').text_content()
    assert '"Q2 (11-20)": 10 users' in selection
    assert "need a running kernel" in selection


def test_export_injection_stays_text(offline_page, exported):
    path, _, _ = exported

    open_page(offline_page, path)

    assert offline_page.title() == f"Report {INJECTION}"
    assert offline_page.locator("h2").first.text_content() == INJECTION
    headers = offline_page.locator('[data-testid="metric-panel-table"] th[data-model]').all_text_contents()
    assert headers == ["SASRec", INJECTION]
    assert offline_page.locator("img").count() == 0
    assert offline_page.record["dialogs"] == []
