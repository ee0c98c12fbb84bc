"""The offline HTML of every executed walkthrough notebook, opened from file:// in Chromium.

Every request that is not file:, blob: or data: is recorded and aborted. Each page must
render every widget output of its notebook (a chart, canvas or table drawn by the widget's
own code) without an error box, make no network request and log no console error.

The notebooks are executed by ``tests/test_notebooks.py`` (imported here for its cached
runner, so a session that runs both files executes each notebook once).
"""

from __future__ import annotations

import re

import pytest

from test_notebooks import ARTIFACTS_DIR, NOTEBOOK_NAMES, executed_notebook, view_model_ids, widget_names, widget_states

LOCAL_SCHEMES = ("file:", "blob:", "data:", "about:")

#: Per widget front end: an element that only exists once the widget has drawn its data.
DRAWN = {
    "metric_panel": '[data-testid="metric-cell"]',
    "training_monitor": '[data-testid="curve"]',
    "attention_heatmap": 'canvas[data-testid="attention-canvas"]',
    "shap_explorer": '[data-testid="shap-chart"] rect',
    "online_update_panel": '[data-testid="online-card"]',
    "cold_start_curve": '[data-testid="coldstart-line"]',
    "diagnosis_report": '[data-testid="finding"]',
    "dashboard": '[data-testid="dashboard-metric-cell"]',
}

#: Drawn content of a widget front end that has no entry in DRAWN.
ANY_DRAWING = "svg rect, svg path, svg polyline, svg circle, canvas, table td"

pytestmark = pytest.mark.slow


@pytest.fixture
def offline_page(browser, request):
    """A page in a fresh context: requests outside file:// are recorded and aborted, dialogs and errors recorded."""
    context = browser.new_context(viewport={"width": 1280, "height": 1000}, service_workers="block")
    page = context.new_page()
    record = {"requests": [], "dialogs": [], "console_errors": []}

    def on_request(request):
        if not request.url.startswith(LOCAL_SCHEMES):
            record["requests"].append(request.url)

    def on_console(message):
        if message.type == "error":
            record["console_errors"].append(message.text)

    page.on("request", on_request)
    page.on("console", on_console)
    page.on("pageerror", lambda error: record["console_errors"].append(str(error)))
    page.on("dialog", lambda dialog: (record["dialogs"].append(dialog.message), dialog.dismiss()))
    page.route(re.compile(r"^(?!file:|blob:|data:)"), lambda route: route.abort())
    page.record = record
    yield page

    report = getattr(request.node, "rep_call", None)
    if report is not None and report.failed:
        folder = ARTIFACTS_DIR / "browser"
        folder.mkdir(parents=True, exist_ok=True)
        name = re.sub(r"[^\w.\-]+", "_", request.node.name)
        page.screenshot(path=str(folder / f"{name}.png"), full_page=True)
        (folder / f"{name}.txt").write_text(f"{record}\n")
    context.close()


def open_page(page, path):
    page.goto(path.as_uri())
    page.wait_for_selector("html[data-recwidgets-ready='true']", timeout=60_000)


@pytest.mark.parametrize("name", NOTEBOOK_NAMES)
def test_notebook_page_offline(offline_page, name):
    run = executed_notebook(name)

    open_page(offline_page, run.html_path)

    assert offline_page.record["requests"] == []
    assert offline_page.record["console_errors"] == []
    assert offline_page.record["dialogs"] == []
    assert offline_page.get_attribute("html", "data-recwidgets-errors") == "0"
    assert offline_page.locator('[data-testid="rw-export-error"]').count() == 0


@pytest.mark.parametrize("name", NOTEBOOK_NAMES)
def test_notebook_widgets_draw_offline(offline_page, name):
    run = executed_notebook(name)
    states = widget_states(run.notebook)
    names = widget_names()
    views = view_model_ids(run.notebook)

    open_page(offline_page, run.html_path)

    containers = offline_page.locator("div.rw-view")
    assert containers.count() == len(views)
    for index, model_id in enumerate(views):
        view = containers.nth(index)
        assert view.get_attribute("data-model-id") == model_id
        widget = names.get(states[model_id]["state"].get("_esm"), "")
        drawn = view.locator(DRAWN.get(widget, ANY_DRAWING))
        assert drawn.count() > 0, f"{widget or 'widget'} {model_id} drew nothing"
        box = drawn.first.bounding_box()
        assert box is not None
        assert box["width"] > 0
        assert box["height"] > 0
        for error_box in ('[data-testid="rw-error"]', '[data-testid="rw-python-error"]'):
            assert view.locator(f"{error_box}:visible").count() == 0


def test_notebook_controls_disabled_offline(offline_page):
    run = executed_notebook("04_online_updates")

    open_page(offline_page, run.html_path)

    apply_button = offline_page.locator('.rw-view [data-testid="online-apply"]')
    assert apply_button.count() == 1
    assert apply_button.is_disabled()
