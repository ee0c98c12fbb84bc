"""OnlineUpdatePanel live in JupyterLab 4: lr slider and apply reach the kernel, undo restores the cards, export.

The notebook builds the ML-100K stream after the 0.9 timestamp quantile and the small first-order model of
``recwidgets.online.markov`` (each update takes well under a second), applies and commits one update, and shows
the panel. The kernel's ``updater.apply`` waits on a ``threading.Event`` that the test releases, so the test can
look at the page while an update runs without depending on how fast it is.
"""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from .harness import open_notebook

pytestmark = pytest.mark.browser

SETUP_CELL = """
import threading

import torch

torch.set_num_threads(1)

from recwidgets.data import load_ml100k
from recwidgets.online import FirstOrderModel, OnlineUpdater, online_logs
from recwidgets.widgets.online_update_panel import OnlineUpdatePanel

logs = online_logs(load_ml100k(ML100K_DIR), 0.9)
model = FirstOrderModel(logs.pre_cutoff.n_items, logs.pre_cutoff.n_users, hidden=8, seed=0)
updater = OnlineUpdater(
    model, logs.stream, cutoff=logs.cutoff, window=1000, steps=3, lr=1e-2,
    max_eval_cases=200, forgetting_users=100, n_movers=5,
)
updater.apply()
updater.commit()

gate = threading.Event()
ungated_apply = updater.apply


def gated_apply(**settings):
    gate.wait(120)
    return ungated_apply(**settings)


updater.apply = gated_apply


def card_text(key):
    # The card value as the panel prints it (4 decimals).
    card = next(card for card in panel.cards if card["key"] == key)
    return f"{card['after']:.4f}"
"""

PANEL_CELL = """
panel = OnlineUpdatePanel(updater)
panel
"""

PANEL = '[data-testid="online-update-panel"]'
CARD = '[data-testid="online-card"][data-key="plasticity_NDCG@10"] [data-testid="card-after"]'

# Five slider moves in one task, ending at 10 ** -1.5; the apply click follows before the debounce fires.
_JS_SLIDE_LR = """
() => {
  const slider = document.querySelector('[data-testid="online-lr"]');
  for (const value of ["-4", "-3", "-2.5", "-1", "-1.5"]) {
    slider.value = value;
    slider.dispatchEvent(new Event("input"));
  }
}
"""


def test_online_panel_apply_undo_export(jupyter_server, page, ml100k_dir, tmp_path):
    setup = SETUP_CELL.replace("ML100K_DIR", repr(str(ml100k_dir)))
    session = open_notebook(page, jupyter_server("lab"), [setup, PANEL_CELL], stem="online-panel")
    root = session.wait_for_widget(PANEL)

    # The card shows the committed update's number from the kernel.
    committed = session.run_code("print(card_text('plasticity_NDCG@10'))")
    expect(root.locator(CARD)).to_have_text(committed)
    expect(root.locator('[data-testid="history-row"]')).to_have_count(1)

    # Move the lr slider in a burst and press apply at once: the apply uses the last value.
    page.evaluate(_JS_SLIDE_LR)
    expect(root.locator('[data-testid="online-lr-value"]')).to_have_text("3.16e-2")
    apply_button = root.locator('[data-testid="online-apply"]')
    apply_button.click()

    # While the kernel keeps the update waiting, the page shows it running and cannot start another.
    session.wait_for_output("print(panel.busy)", "True")
    expect(apply_button).to_be_disabled()
    expect(root.locator('[data-testid="online-progress"]')).to_be_visible()
    expect(root.locator('[data-testid="online-running"]')).to_contain_text("Running: update 2 with lr 3.16e-2")
    session.run_code("gate.set()")

    session.wait_for_output("print(panel.busy, updater.n_pending)", "False 1")
    assert session.run_code("print(updater.records[-1].settings.lr, panel.lr)") == "0.0316 0.0316"
    applied = session.run_code("print(card_text('plasticity_NDCG@10'))")
    assert applied != committed
    expect(root.locator(CARD)).to_have_text(applied)
    expect(root.locator('[data-testid="history-row"]')).to_have_count(2)
    expect(apply_button).to_be_enabled()

    # Undo brings back the committed update's numbers.
    root.locator('[data-testid="online-undo"]').click()
    session.wait_for_output("print(updater.n_pending, [r.status for r in updater.records])", "0 ['committed', 'undone']")
    expect(root.locator(CARD)).to_have_text(committed)
    expect(root.locator('[data-testid="history-row"][data-status="undone"]')).to_have_count(1)
    expect(root.locator('[data-testid="online-undo"]')).to_be_disabled()

    # A click on a mover row selects that user in the kernel.
    mover = root.locator('[data-testid="mover-row"]').first
    user = mover.get_attribute("data-user")
    mover.click()
    session.wait_for_output("print(panel.selected_user)", user)

    assert session.widget_errors() == []
    assert session.monitor.unexpected_console_errors() == []

    # The export renders offline: history and cards stay, controls that need the kernel are disabled.
    export = tmp_path / "online-panel.html"
    session.run_code(f"panel.to_html({str(export)!r})")
    # A second page of the same (monitored) context, so JupyterLab's unload prompt does not get in the way.
    offline_page = page.context.new_page()
    offline_page.goto(export.as_uri())
    offline_page.wait_for_selector("html[data-recwidgets-ready='true']", timeout=30_000)
    assert offline_page.get_attribute("html", "data-recwidgets-errors") == "0"
    offline = offline_page.locator(PANEL)
    expect(offline.locator(CARD)).to_have_text(committed)
    expect(offline.locator('[data-testid="history-row"]')).to_have_count(2)
    expect(offline.locator('[data-testid="online-kernel-note"]')).to_be_visible()
    for control in ("online-apply", "online-undo", "online-commit", "online-reset", "online-lr", "online-steps", "online-window", "online-replay", "online-optimizer-state"):
        expect(offline.locator(f'[data-testid="{control}"]')).to_be_disabled()
    expect(offline.locator('[data-testid="online-chart"] [data-testid="chart-point"]')).to_have_count(4)
    assert session.monitor.unexpected_console_errors() == []
