"""ShapExplorer in JupyterLab 4 and in its offline export, driven by Chromium."""

from __future__ import annotations

import pytest

from .harness import open_notebook

pytestmark = pytest.mark.browser

SETUP_CELL = """
import torch
from recwidgets.data import leave_last_out, load_ml100k
from recwidgets.models import SASRec, SASRecModule
from recwidgets.widgets.shap_explorer import ShapExplorer

split = leave_last_out(load_ml100k(r"{path}"))
torch.manual_seed(0)
model = SASRec(max_len=12, hidden=16, layers=2, heads=2)
model.module = SASRecModule(split.log.n_items, max_len=12, hidden=16, layers=2, heads=2).eval()
model.n_items = split.log.n_items
users = split.test.users[:2].tolist()
w = ShapExplorer(model, split, users=users, k=5)
"""

CHART = "[data-testid=shap-chart]"


def chart_state(page) -> dict:
    return page.eval_on_selector(CHART, "(chart) => ({...chart.dataset})")


def wait_for_chart(page, **expected) -> None:
    page.wait_for_function(
        """([selector, expected]) => {
          const chart = document.querySelector(selector);
          return !!chart && Object.entries(expected).every(([name, value]) => chart.dataset[name] === value);
        }""",
        arg=[CHART, {name: str(value) for name, value in expected.items()}],
    )


def test_explorer_in_lab_and_offline_export(jupyter_server, page, ml100k_dir, tmp_path):
    session = open_notebook(page, jupyter_server("lab"), [SETUP_CELL.format(path=ml100k_dir), "w"], stem="shap")
    session.wait_for_widget(CHART)
    first = int(session.run_code("print(w.target)"))
    wait_for_chart(page, target=first, versus=0, view="waterfall")
    assert page.locator("[data-testid=shap-recommendation]").count() == 5

    # Browser to kernel: clicking another recommendation computes its explanation in Python,
    # and the chart redraws from the new result.
    second = int(page.get_attribute("[data-testid=shap-recommendation]:nth-child(2)", "data-item"))
    page.click("[data-testid=shap-recommendation]:nth-child(2)")
    assert session.wait_for_output("print(w.result['target'])", str(second)) == str(second)
    wait_for_chart(page, target=second, versus=0)
    expected_output = float(session.run_code("print(repr(w.result['explained_output']))"))
    state = chart_state(page)
    assert float(state["output"]) == pytest.approx(expected_output, rel=1e-9)
    assert float(state["total"]) == pytest.approx(expected_output, abs=1e-4)

    # A contrast picked in the browser is computed by the kernel too.
    page.select_option("[data-testid=shap-versus]", str(first))
    assert session.wait_for_output("print(w.result['versus'])", str(first)) == str(first)
    wait_for_chart(page, target=second, versus=first)
    assert " - score(" in page.text_content("[data-testid=shap-headline]")

    # Kernel to browser: the view switch set in Python redraws bars in history order.
    session.run_code("w.view = 'bar'")
    wait_for_chart(page, view="bar")
    assert page.locator(f"{CHART} [data-testid=shap-bar]").count() == 12

    assert session.widget_errors() == []
    assert session.monitor.unexpected_console_errors() == []

    # The export, opened from file://, switches user, target and contrast without a kernel.
    export = tmp_path / "shap.html"
    session.run_code("w.versus = 0; w.view = 'waterfall'")
    session.run_code(f"w.to_html(r'{export}', n_targets=2)")
    users = [int(value) for value in session.run_code("print(' '.join(str(user) for user in users))").split()]
    stored = session.run_code("print(' '.join(str(e['target']) for e in w.precomputed[1]['explanations']))")
    other_first, other_second = (int(value) for value in stored.split())
    stored_output = float(session.run_code("print(repr(w.precomputed[1]['explanations'][0]['explained_output']))"))

    offline = page.context.new_page()
    requests = []
    offline.on("request", lambda request: requests.append(request.url))
    offline.goto(export.as_uri())
    offline.wait_for_function("document.documentElement.dataset.recwidgetsReady === 'true'")
    assert offline.get_attribute("html", "data-recwidgets-errors") == "0"
    assert offline.is_disabled("[data-testid=shap-summary-button]")
    assert chart_state(offline)["target"] == str(second)

    offline.select_option("[data-testid=shap-user]", str(users[1]))
    state = chart_state(offline)
    assert (state["user"], state["target"]) == (str(users[1]), str(other_first))
    assert float(state["output"]) == pytest.approx(stored_output, rel=1e-9)

    offline.select_option("[data-testid=shap-versus]", str(other_second))
    assert chart_state(offline)["versus"] == str(other_second)
    assert "contrast from two stored explanations" in offline.text_content("[data-testid=shap-headline]")

    outside = [url for url in requests if not url.startswith(("file:", "blob:", "data:"))]
    assert outside == []
    offline.close()
