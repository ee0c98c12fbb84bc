"""MetricPanel ESM in Chromium with a fake model: model to DOM, DOM to model, cleanup."""

from __future__ import annotations

import pytest

from js.hand_results import INJECTION, make_result
from recwidgets.widgets import MetricPanel


@pytest.fixture
def panel():
    return MetricPanel({"SASRec": make_result("SASRec", seed=1), INJECTION: make_result("Popularity", seed=2)})


def expected_cell(panel, model, metric, k, segment_by="", segment="All users"):
    frame = panel.metrics_data()
    row = frame[
        (frame["model"] == model)
        & (frame["metric"] == metric)
        & (frame["k"] == k)
        & (frame["segment_by"] == segment_by)
        & (frame["segment"] == segment)
    ].iloc[0]
    return f"{row['value']:.4f} [{row['ci_low']:.4f}, {row['ci_high']:.4f}]"


def cell_text(widget_page, model, metric):
    selector = f'[data-testid="metric-cell"][data-metric="{metric}"]'
    cells = widget_page.page.locator(selector)
    for index in range(cells.count()):
        cell = cells.nth(index)
        if cell.get_attribute("data-model") == model:
            return cell.text_content()
    raise AssertionError(f"no cell for {model} / {metric}")


def test_panel_renders_table_and_chart(widget_page, panel):
    widget_page.mount(panel)

    assert widget_page.count('[data-testid="metric-cell"]') == 3 * 2
    assert cell_text(widget_page, "SASRec", "NDCG") == expected_cell(panel, "SASRec", "NDCG", 10)
    bars = widget_page.page.locator('[data-testid="metric-panel-chart"] [data-testid="bar"]')
    assert bars.count() == 2 * 3
    heights = [float(bars.nth(index).get_attribute("height")) for index in range(bars.count())]
    assert all(height > 0 for height in heights)
    assert widget_page.count('[data-testid="error-bar"]') == 2 * 3
    assert widget_page.count('[data-testid="card-row"]') == len(panel.card_rows)


def test_panel_python_k_change_redraws(widget_page, panel):
    widget_page.mount(panel)

    panel.k = 20
    widget_page.py_update(panel, "k")

    assert widget_page.page.locator('[data-testid="metric-panel-k"]').input_value() == "20"
    assert cell_text(widget_page, "SASRec", "HR") == expected_cell(panel, "SASRec", "HR", 20)
    labels = widget_page.page.locator('[data-testid="metric-panel-table"] td:first-child').all_text_contents()
    assert labels == ["HR@20", "NDCG@20", "Coverage@20"]


def test_panel_k_select_sets_model(widget_page, panel):
    widget_page.mount(panel)

    widget_page.page.select_option('[data-testid="metric-panel-k"]', "5")

    assert widget_page.model_get("k") == 5
    assert widget_page.saves() == 1
    assert cell_text(widget_page, "SASRec", "NDCG") == expected_cell(panel, "SASRec", "NDCG", 5)


def test_panel_segment_click_sets_selection(widget_page, panel):
    widget_page.mount(panel)

    widget_page.page.select_option('[data-testid="metric-panel-segment-by"]', "target_popularity")
    assert widget_page.model_get("segment_by") == "target_popularity"
    rows = widget_page.page.locator('[data-testid="segment-row"]')
    assert rows.count() == 3
    assert widget_page.count('[data-testid="metric-panel-chart"] [data-testid="bar-group"]') == 3

    widget_page.page.click('[data-testid="segment-row"][data-segment="mid"]')

    assert widget_page.model_get("selected_segment") == "mid"
    selected = widget_page.page.locator('[data-testid="segment-row"][aria-selected="true"]')
    assert selected.get_attribute("data-segment") == "mid"
    # Users 2, 5, ..., 38 are in the mid bucket: 13 of 40.
    assert '"mid": 13 users' in widget_page.text("metric-panel-selection")


def test_panel_bar_group_click_selects_segment(widget_page, panel):
    panel.segment_by = "activity"
    widget_page.mount(panel)

    widget_page.page.click('[data-testid="bar-group"][data-group="Q3 (21-30)"]')

    assert widget_page.model_get("selected_segment") == "Q3 (21-30)"


def test_panel_names_stay_text(widget_page, panel):
    widget_page.mount(panel)

    headers = widget_page.page.locator('[data-testid="metric-panel-table"] th').all_text_contents()
    assert INJECTION in headers
    assert widget_page.count("img") == 0
    assert widget_page.dialogs == []


def test_panel_shows_python_error(widget_page, panel):
    widget_page.mount(panel)
    assert not widget_page.page.locator('[data-testid="rw-python-error"]').is_visible()

    widget_page.set_raw({"python_error": "ConfigError: selected_segment='x' is not a segment"})

    box = widget_page.page.locator('[data-testid="rw-python-error"]')
    assert box.is_visible()
    assert "selected_segment='x'" in box.text_content()


def test_panel_cleanup_removes_listeners(widget_page, panel):
    panel.segment_by = "activity"
    widget_page.mount(panel)
    assert widget_page.listener_count() > 0

    widget_page.cleanup()

    assert widget_page.listener_count() == 0
    widget_page.page.select_option('[data-testid="metric-panel-k"]', "20")
    widget_page.page.click('[data-testid="segment-row"][data-segment="Q1 (1-10)"]')
    widget_page.page.click('[data-testid="bar-group"][data-group="Q2 (11-20)"]')
    assert widget_page.model_get("k") == 10
    assert widget_page.model_get("selected_segment") == ""
    assert widget_page.saves() == 0
