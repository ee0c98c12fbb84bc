"""Dashboard live in JupyterLab 4: segment click -> user list -> user -> explanation views, with the kernel.

The notebook trains SASRec for 1 epoch (hidden 32) on ML-100K and evaluates it and Popularity
with 20 bootstrap resamples; the dashboard precomputes 6 users. About 20 s in the kernel.
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
torch.manual_seed(0)

from recwidgets.data.split import leave_last_out
from recwidgets.datasets import load
from recwidgets.diagnose.finding import Finding
from recwidgets.evaluation import evaluate
from recwidgets.models.baselines import Popularity
from recwidgets.models.sasrec import SASRec
from recwidgets.widgets.dashboard import Dashboard

split = leave_last_out(load(ML100K_DIR))
sasrec = SASRec(epochs=1, hidden=32).fit(split)
results = {
    "sasrec": evaluate(sasrec, split, k=(5, 10), n_bootstrap=20),
    "popularity": evaluate(Popularity().fit(split), split, k=(5, 10), n_bootstrap=20),
}
finding = Finding(
    id="tail-gap", severity="warning", title="Tail targets score low", evidence={"model": "sasrec"},
    fix="Compare popularity buckets.", view={"widget": "MetricPanel", "segment_by": "target_popularity"},
)
board = Dashboard(results, split=split, model=sasrec, findings=[finding], max_users=6)
"""

BOARD = '[data-testid="dashboard"]'


def test_dashboard_linked_selection_in_lab(jupyter_server, page, ml100k_dir):
    setup = SETUP_CELL.replace("ML100K_DIR", repr(str(ml100k_dir)))
    session = open_notebook(page, jupyter_server("lab"), [setup, "board"], stem="dashboard")
    root = session.wait_for_widget(BOARD)
    expect(root.locator('[data-testid="dashboard-metric-cell"]').first).to_be_visible()

    # A click on the weakest segment reaches the kernel and lists exactly that segment's users.
    weak = session.run_code("print(board.weakest_segment('activity'))")
    row = root.locator(f'[data-testid="dashboard-segment-row"][data-segment="{weak}"]')
    row.click()
    session.wait_for_output("print(board.selected_segment)", weak)
    n_users = session.run_code("print(len(board.selected_users))")
    expect(root.locator('[data-testid="dashboard-users-summary"]')).to_contain_text(f"{n_users} users")
    listed = root.locator('[data-testid="dashboard-user"]').evaluate_all("bs => bs.map(b => Number(b.dataset.user))")
    members = set(json.loads(session.run_code("print(json.dumps(board.selected_users.tolist()))")))
    assert listed and set(listed) <= members

    # A user without a precomputed payload is computed in Python on click.
    live = root.locator('[data-testid="dashboard-user"][data-precomputed="false"]').first
    user = live.get_attribute("data-user")
    expect(live).to_be_enabled()
    live.click()
    session.wait_for_output("print(board.user)", user)
    session.wait_for_output("print(board.user_data.get('user'))", user)
    expect(root.locator('[data-testid="dashboard-inspector-title"]')).to_have_attribute("data-user", user)
    n_items = session.run_code("print(len(board.user_data['items']))")
    history = root.locator('[data-testid="dashboard-history-row"]')
    expect(history).to_have_count(int(n_items))
    expect(root.locator('[data-testid="attention-bar"]')).to_have_count(int(n_items))
    top1 = session.run_code("print(board.user_data['recommendations'][0]['title'])")
    expect(root.locator('[data-testid="dashboard-rec"]').first).to_contain_text(top1)
    has_shap = session.run_code("print('shap' in board.user_data)")
    expect(root.locator('[data-testid="shap-bar"]')).to_have_count(int(n_items) if has_shap == "True" else 0)

    # A precomputed user switches the inspector too.
    ready = root.locator('[data-testid="dashboard-user"][data-precomputed="true"]').first
    other = ready.get_attribute("data-user")
    ready.click()
    session.wait_for_output("print(board.user)", other)
    expect(root.locator('[data-testid="dashboard-inspector-title"]')).to_have_attribute("data-user", other)
    expected_last = session.run_code(f"print(board.user_payloads[{other!r}]['titles'][-1])")
    expect(history.first.locator("td").nth(1)).to_have_text(expected_last)

    # A finding's "show" link selects the breakdown it names, in the page and in the kernel.
    root.locator('[data-testid="dashboard-finding-show"]').first.click()
    session.wait_for_output("print(board.segment_by)", "target_popularity")
    session.wait_for_output("print(board.selected_finding)", "tail-gap:sasrec")
    expect(root.locator('[data-testid="dashboard-segment-by"]')).to_have_value("target_popularity")

    # Python to browser: a segment set in the kernel shows its users.
    session.run_code("board.selected_segment = 'tail'")
    expect(root.locator('tr[data-segment="tail"]')).to_have_attribute("aria-selected", "true")

    assert session.widget_errors() == []
    assert session.monitor.unexpected_console_errors() == []
    assert session.dialogs == []
