"""The CLI's HTML report opened from file:// in Chromium with no network at all."""

from __future__ import annotations

import pytest


def open_offline(browser, path):
    """Open ``path`` from file:// with every non-file request recorded and aborted."""
    context = browser.new_context(viewport={"width": 1280, "height": 900}, service_workers="block")
    requests: list[str] = []
    dialogs: list[str] = []
    errors: list[str] = []

    def route(route):
        url = route.request.url
        if url.startswith(("file:", "data:", "blob:", "about:")):
            route.continue_()
            return
        requests.append(url)
        route.abort("blockedbyclient")

    context.route("**/*", route)
    page = context.new_page()
    page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.goto(path.as_uri())
    return context, page, requests, dialogs, errors


def drawn_size(locator) -> float:
    box = locator.bounding_box()
    return 0.0 if box is None else box["width"] * box["height"]


@pytest.mark.browser
def test_report_renders_offline(browser, demo_report):
    context, page, requests, dialogs, errors = open_offline(browser, demo_report / "report.html")
    try:
        # Every widget and chart on the page is drawn, not only present in the DOM.
        page.wait_for_selector('[data-testid="metric-cell"]')
        page.wait_for_selector('[data-testid="bar"]')
        page.wait_for_selector('[data-testid="curve"]')
        page.wait_for_selector('[data-testid="vega-chart"] svg, [data-testid="vega-chart"] canvas')

        charts = page.locator('[data-testid="vega-chart"]')
        assert charts.count() == 2
        for index in range(charts.count()):
            drawing = charts.nth(index).locator("svg, canvas").first
            assert drawn_size(drawing) > 10_000, f"Vega chart {index} has no visible drawing"
            assert charts.nth(index).locator("svg path, svg rect, canvas").count() > 0

        models = set(page.locator('[data-testid="metric-cell"]').evaluate_all("cells => cells.map(c => c.dataset.model)"))
        assert models == {"sasrec", "popularity", "ease"}
        assert drawn_size(page.locator('[data-testid="metric-panel-chart"]').first) > 10_000
        assert page.locator('[data-testid="curve"]').count() >= 1
        assert "pessimistic" in page.locator('[data-testid="metric-panel-card"]').inner_text()

        page.screenshot(path=str(demo_report / "report.png"), full_page=True)
    finally:
        context.close()

    assert requests == []
    assert dialogs == []
    assert errors == []
