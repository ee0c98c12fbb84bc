"""ColdStartCurve in JupyterLab 4 and in its offline export, driven by Chromium.

The notebook builds a cold-start curve of EASE, most-popular and the genre fallback on
ML-100K (20% of users held out, 50 bootstrap resamples). No neural network is trained,
so the kernel is ready in a few seconds.
"""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from .harness import open_notebook

pytestmark = pytest.mark.browser

SETUP_CELL = """
import torch

torch.set_num_threads(1)

from recwidgets.coldstart import coldstart_curve, coldstart_split
from recwidgets.datasets import load_ml100k
from recwidgets.models import EASE
from recwidgets.widgets.cold_start_curve import ColdStartCurve

cold = coldstart_split(load_ml100k(r"{path}"), user_share=0.2, seed=0)
result = coldstart_curve(
    EASE().fit(cold.split), cold, strategies=("none", "popularity", "genre"), ns=(1, 2, 5, 20), k=(5, 10), n_bootstrap=50
)
w = ColdStartCurve(result)
"""

ROOT = '[data-testid="cold-start-curve"]'


def point(scope, strategy: str, n: int):
    return scope.locator(f'[data-testid="coldstart-point"][data-strategy="{strategy}"][data-n="{n}"]')


def test_curve_in_lab_and_offline_export(jupyter_server, page, ml100k_dir, tmp_path):
    session = open_notebook(page, jupyter_server("lab"), [SETUP_CELL.format(path=ml100k_dir), "w"], stem="coldstart")
    root = session.wait_for_widget(ROOT)

    # Rendered: one point per (strategy, n), one band per strategy, the numbers Python computed.
    expect(root.locator('[data-testid="coldstart-point"]')).to_have_count(3 * 4)
    expect(root.locator('[data-testid="coldstart-band"]')).to_have_count(3)
    expect(root.locator('[data-testid="coldstart-legend"]')).to_have_text(["none", "popularity", "genre"])
    cell = root.locator('[data-testid="coldstart-cell"][data-strategy="none"][data-n="1"]')
    expected = session.run_code("print(f\"{result.value('none', 1, 'NDCG@10'):.4f}\")")
    assert cell.text_content().split()[0] == expected

    # A click on a point reaches the kernel: selected_users contains exactly that point's users.
    point(root, "genre", 5).click()
    session.wait_for_output("print(w.selected_strategy, w.selected_n)", "genre 5")
    check = "print(set(w.selected_users.tolist()) == set(result.users('genre', 5).tolist()), len(w.selected_users))"
    same, count = session.run_code(check).split()
    assert same == "True"
    assert int(count) > 0
    expect(point(root, "genre", 5)).to_have_attribute("aria-selected", "true")
    expect(root.locator('[data-testid="coldstart-selection"]')).to_contain_text(f"{count} users")
    expect(root.locator('[data-testid="coldstart-user"]')).to_have_count(min(int(count), 100))

    # The metric set from Python redraws the select, the table and the points.
    session.run_code("w.metric = 'HR@5'")
    expect(root.locator('[data-testid="coldstart-metric"]')).to_have_value("HR@5")
    hit_rate = session.run_code("print(f\"{result.value('none', 1, 'HR@5'):.4f}\")")
    expect(cell).to_contain_text(hit_rate)
    expect(point(root, "none", 1)).to_have_attribute(
        "data-value", session.run_code("print(repr(float(result.value('none', 1, 'HR@5'))))")
    )

    # A breakdown picked in the page reaches the kernel, with the first segment of it.
    root.locator('[data-testid="coldstart-segment-by"]').select_option("gender")
    session.wait_for_output("print(w.segment_by, w.segment)", "gender F")

    assert session.widget_errors() == []
    assert session.monitor.unexpected_console_errors() == []

    # The export, opened from file://, switches metric and lists a point's users without a kernel.
    export = tmp_path / "coldstart.html"
    session.run_code(f"w.segment_by = ''; w.to_html(r'{export}')")
    n_users = session.run_code("print(len(result.users('popularity', 2)))")

    offline = page.context.new_page()
    requests = []
    offline.on("request", lambda request: requests.append(request.url))
    offline.goto(export.as_uri())
    offline.wait_for_function("document.documentElement.dataset.recwidgetsReady === 'true'")
    assert offline.get_attribute("html", "data-recwidgets-errors") == "0"
    expect(offline.locator('[data-testid="coldstart-point"]')).to_have_count(3 * 4)

    offline.select_option('[data-testid="coldstart-metric"]', "NDCG@5")
    expect(offline.locator('[data-testid="coldstart-table-title"]')).to_contain_text("NDCG@5")
    point(offline, "popularity", 2).click()
    expect(offline.locator('[data-testid="coldstart-selection"]')).to_contain_text(f"{n_users} users")
    expect(offline.locator('[data-testid="coldstart-user"]')).to_have_count(min(int(n_users), 100))

    outside = [url for url in requests if not url.startswith(("file:", "blob:", "data:"))]
    assert outside == []
    offline.close()
