"""MetricPanel live in JupyterLab 4 and Notebook 7: rendering, segment clicks, k from Python, escaping.

The notebook evaluates Popularity and EASE on ML-100K (leave-last-out, full ranking, 20 bootstrap resamples),
which takes a few seconds in the kernel.
"""

from __future__ import annotations

import json

import pytest
from playwright.sync_api import expect

from .harness import open_notebook

pytestmark = pytest.mark.browser

SETUP_CELL = """
import json

import torch

torch.set_num_threads(1)

from recwidgets.data.split import leave_last_out
from recwidgets.datasets import load
from recwidgets.evaluation import evaluate
from recwidgets.models.baselines import EASE, Popularity
from recwidgets.widgets import MetricPanel

log = load(ML100K_DIR)
split = leave_last_out(log)
results = {
    "Popularity": evaluate(Popularity().fit(split), split, k=(5, 10, 20), n_bootstrap=20),
    "EASE": evaluate(EASE().fit(split), split, k=(5, 10, 20), n_bootstrap=20),
}


def users_in(column, label):
    # Users of one segment over all results, read from the evaluation's own segment table.
    chosen = set()
    for result in results.values():
        segments = result.segments
        chosen |= set(segments.loc[segments[column] == label, "user"].tolist())
    return chosen


def shown_value(model, metric, k):
    # The overall estimate as the panel prints it (4 decimals).
    table = panel_under_test.metrics_data()
    row = table[(table.model == model) & (table.metric == metric) & (table.k == k) & (table.segment_by == "")]
    return f"{float(row.value.iloc[0]):.4f}"
"""

PANEL_CELL = """
panel = MetricPanel(results, segment_by="activity")
panel_under_test = panel
panel
"""

HOSTILE_NAMES = ["<img src=x onerror=alert(1)>", "End </script><script>alert(2)</script>"]

HOSTILE_CELL = f"""
hostile = MetricPanel(
    {{{HOSTILE_NAMES[0]!r}: results["Popularity"], {HOSTILE_NAMES[1]!r}: results["EASE"]}},
    segment_by="activity",
)
panel_under_test = hostile
hostile
"""

PANEL = '[data-testid="metric-panel"]'


def setup_cell(ml100k_dir) -> str:
    return SETUP_CELL.replace("ML100K_DIR", repr(str(ml100k_dir)))


def first_number(text: str) -> str:
    """Return the estimate of a cell such as '0.0371 [0.0300, 0.0420]'."""
    return text.split()[0]


@pytest.mark.parametrize("kind", ["lab", "notebook"])
def test_metric_panel_round_trip(jupyter_server, page, ml100k_dir, kind):
    session = open_notebook(page, jupyter_server(kind), [setup_cell(ml100k_dir), PANEL_CELL], stem="metric-panel")
    root = session.wait_for_widget(PANEL)

    # Rendered: one column per model and the numbers Python computed.
    expect(root.locator("th[data-model]")).to_have_text(["Popularity", "EASE"])
    n_metrics = int(session.run_code("print(len(panel.metric_names))"))
    expect(root.locator('[data-testid="metric-cell"]')).to_have_count(2 * n_metrics)
    ease_ndcg = root.locator('[data-testid="metric-cell"][data-model="EASE"][data-metric="NDCG"]')
    assert first_number(ease_ndcg.text_content()) == session.run_code("print(shown_value('EASE', 'NDCG', 10))")

    # A click on a segment row reaches the kernel: panel.selected_users contains exactly that segment's users.
    labels = json.loads(session.run_code("print(json.dumps(panel.segment_labels('activity')))"))
    assert len(labels) == 4
    row = root.locator(f'tr[data-testid="segment-row"][data-segment="{labels[0]}"]')
    row.click()
    session.wait_for_output("print(panel.selected_segment)", labels[0])
    assert int(session.run_code("print(len(panel.selected_users))")) > 0
    same_users = "print(set(panel.selected_users.tolist()) == users_in('activity', {!r}))"
    assert session.run_code(same_users.format(labels[0])) == "True"
    expect(row).to_have_attribute("aria-selected", "true")
    n_selected = session.run_code(f"print(len(users_in('activity', {labels[0]!r})))")
    expect(root.locator('[data-testid="metric-panel-selection"]')).to_contain_text(f"{n_selected} users")

    # A click on another segment's bar group in the chart moves the selection.
    root.locator(f'[data-testid="bar-group"][data-group="{labels[-1]}"]').click()
    session.wait_for_output("print(panel.selected_segment)", labels[-1])
    assert session.run_code(same_users.format(labels[-1])) == "True"

    # k set from Python redraws the table with the values at that cutoff.
    session.run_code("panel.k = 5")
    expect(root.locator('[data-testid="metric-panel-k"]')).to_have_value("5")
    expect(root.locator("h4").first).to_contain_text("k = 5")
    expect(root.locator('tr[data-metric="NDCG"] td').first).to_have_text("NDCG@5")
    assert first_number(ease_ndcg.text_content()) == session.run_code("print(shown_value('EASE', 'NDCG', 5))")

    # k picked in the page reaches the kernel.
    root.locator('[data-testid="metric-panel-k"]').select_option("20")
    session.wait_for_output("print(panel.k)", "20")

    assert session.widget_errors() == []
    assert session.monitor.unexpected_console_errors() == []
    assert session.dialogs == []


def test_metric_panel_escapes_model_names(jupyter_server, page, ml100k_dir):
    session = open_notebook(
        page, jupyter_server("lab"), [setup_cell(ml100k_dir), HOSTILE_CELL], stem="metric-panel-hostile"
    )
    root = session.wait_for_widget(PANEL)

    # Model names show as literal text in the table header and the chart legend.
    expect(root.locator("th[data-model]")).to_have_text(HOSTILE_NAMES)
    legend = root.locator('[data-testid="metric-panel-chart"] > text')
    for name in HOSTILE_NAMES:
        expect(legend.filter(has_text=name)).to_have_count(1)

    # Redraw after a selection too, so every code path that writes names has run.
    first_segment = root.locator('tr[data-testid="segment-row"]').first
    first_segment.click()
    expect(first_segment).to_have_attribute("aria-selected", "true")

    assert root.locator("img").count() == 0
    assert root.locator("script").count() == 0
    assert page.locator('img[src="x"]').count() == 0
    assert session.dialogs == []
    assert session.widget_errors() == []
