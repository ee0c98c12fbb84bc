"""TrainingMonitor live in JupyterLab 4 and Notebook 7: curves drawn during a real fit, traits both ways, escaping.

The notebook prepares ML-100K (leave-last-out) and a small SASRec. The test then runs a 2-epoch fit in the same
kernel with the displayed monitor as callback, so the page receives the updates while it shows the widget.
"""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from .harness import open_notebook

pytestmark = pytest.mark.browser

SETUP_CELL = """
import pandas as pd
import torch

torch.set_num_threads(1)

from recwidgets.data.split import leave_last_out
from recwidgets.datasets import load
from recwidgets.models.sasrec import SASRec
from recwidgets.widgets import TrainingMonitor

log = load(ML100K_DIR)
split = leave_last_out(log)
# One short window per user and a one-layer network keep two epochs to a few seconds on one CPU thread.
model = SASRec(max_len=20, hidden=32, layers=1, heads=1, batch_size=256, patience=None, windows="last")
"""

MONITOR_CELL = """
monitor = TrainingMonitor(total_epochs=2)
monitor
"""

FIT_CODE = "model.fit(split, epochs=2, callbacks=[monitor], progress=False, device='cpu'); print(monitor.status)"

HOSTILE_METRICS = ["val_<img src=x onerror=alert(1)>", "val_End </script><script>alert(2)</script>"]

HOSTILE_CELL = f"""
history = pd.DataFrame(
    {{
        "epoch": [1, 2, 3],
        "train_loss": [7.4, 7.2, 7.1],
        {HOSTILE_METRICS[0]!r}: [0.010, 0.030, 0.020],
        {HOSTILE_METRICS[1]!r}: [0.020, 0.050, 0.040],
    }}
)
hostile = TrainingMonitor.from_history(history, best_epoch=2, monitor_metric={HOSTILE_METRICS[0]!r})
hostile
"""

MONITOR = '[data-testid="training-monitor"]'

# Records every text the status line shows, so the test can tell that updates arrived during the fit.
_JS_RECORD_STATUS = """
(selector) => {
  const status = document.querySelector(selector);
  window.__statusTexts = [status.textContent];
  new MutationObserver(() => window.__statusTexts.push(status.textContent)).observe(status, {
    childList: true,
    characterData: true,
    subtree: true,
  });
}
"""


def setup_cell(ml100k_dir) -> str:
    return SETUP_CELL.replace("ML100K_DIR", repr(str(ml100k_dir)))


def polyline_points(locator) -> int:
    """Return the number of vertices of an SVG polyline."""
    return len(locator.get_attribute("points").split())


@pytest.mark.parametrize("kind", ["lab", "notebook"])
def test_training_monitor_live_fit(jupyter_server, page, ml100k_dir, kind):
    session = open_notebook(
        page, jupyter_server(kind), [setup_cell(ml100k_dir), MONITOR_CELL], stem="training-monitor"
    )
    root = session.wait_for_widget(MONITOR)
    status = root.locator('[data-testid="training-monitor-status"]')
    expect(status).to_have_text("Waiting for training to start")
    expect(root.locator('[data-testid="chart-empty"]')).to_have_count(2)

    page.evaluate(_JS_RECORD_STATUS, f'{MONITOR} [data-testid="training-monitor-status"]')
    assert session.run_code(FIT_CODE, timeout=600) == "finished"

    # The finished run: summary and best epoch as Python has them.
    expect(status).to_have_text("Finished")
    expect(root.locator('[data-testid="training-monitor-summary"]')).to_have_text(
        session.run_code("print(monitor.summary)")
    )
    best_epoch = session.run_code("print(monitor.best_epoch)")
    assert best_epoch in ("1", "2")
    expect(root.locator('[data-testid="best-epoch-marker"]')).to_have_count(2)
    expect(root.locator('[data-testid="best-epoch-marker"]').first).to_have_attribute("data-epoch", best_epoch)

    # The training chart draws the per-epoch loss (one vertex per epoch) and the per-step loss.
    loss_chart = root.locator('[data-testid="training-monitor-loss-chart"]')
    train_loss = loss_chart.locator('polyline[data-series="train_loss"]')
    expect(train_loss).to_have_count(1)
    assert polyline_points(train_loss) == 2
    expect(loss_chart.locator('[data-testid="point"]')).to_have_count(2)
    n_steps = int(session.run_code("print(len(monitor.batch_loss))"))
    assert n_steps > 2
    assert polyline_points(loss_chart.locator('polyline[data-series="step loss"]')) == n_steps

    validation_chart = root.locator('[data-testid="training-monitor-validation-chart"]')
    expect(validation_chart.locator('polyline[data-series="val_NDCG@10"]')).to_have_count(1)

    # Updates reached the page while the fit ran, not only at its end.
    seen = page.evaluate("() => window.__statusTexts")
    assert any(text.startswith("Training: epoch 1 of 2") for text in seen), seen

    # A slider move in the page reaches the kernel (the widget saves it after the slider rests).
    slider = root.locator('[data-testid="training-monitor-smoothing"]')
    slider.evaluate("(input) => { input.value = '0.2'; input.dispatchEvent(new Event('input', { bubbles: true })); }")
    session.wait_for_output("print(monitor.smoothing)", "0.2")

    # A trait set from Python reaches the page.
    session.run_code("monitor.smoothing = 0.75")
    expect(slider).to_have_value("0.75")

    assert session.widget_errors() == []
    assert session.monitor.unexpected_console_errors() == []
    assert session.dialogs == []


def test_training_monitor_escapes_metric_names(jupyter_server, page, ml100k_dir):
    session = open_notebook(
        page, jupyter_server("lab"), [setup_cell(ml100k_dir), HOSTILE_CELL], stem="training-monitor-hostile"
    )
    root = session.wait_for_widget(MONITOR)

    # Every name shows as literal text (legend, series toggles, tooltips), whichever curves are drawn by default.
    for name in HOSTILE_METRICS:
        expect(root).to_contain_text(name)

    validation_chart = root.locator('[data-testid="training-monitor-validation-chart"]')
    drawn = validation_chart.locator("polyline").evaluate_all("(lines) => lines.map((line) => line.dataset.series)")
    assert drawn
    assert set(drawn) <= set(HOSTILE_METRICS)
    for name in drawn:
        expect(validation_chart.locator("polyline > title").filter(has_text=name)).to_have_count(1)
    expect(root.locator('[data-testid="training-monitor-summary"]')).to_contain_text(f"{HOSTILE_METRICS[0]} 0.0300")

    assert root.locator("img").count() == 0
    assert root.locator("script").count() == 0
    assert page.locator('img[src="x"]').count() == 0
    assert session.dialogs == []
    assert session.widget_errors() == []
