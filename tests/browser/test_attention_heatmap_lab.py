"""AttentionHeatmap in JupyterLab 4 and in its offline export, driven by Chromium."""

from __future__ import annotations

import pytest

from .harness import open_notebook

pytestmark = pytest.mark.browser

SETUP_CELL = """
import numpy as np
import torch
from recwidgets.data import leave_last_out, load_ml100k
from recwidgets.models import SASRec, SASRecModule
from recwidgets.widgets.attention_heatmap import AttentionHeatmap

split = leave_last_out(load_ml100k(r"{path}"))
torch.manual_seed(0)
model = SASRec(max_len=200, hidden=16, layers=2, heads=2)
model.module = SASRecModule(split.log.n_items, max_len=200, hidden=16, layers=2, heads=2).eval()
model.n_items = split.log.n_items
lengths = np.array([len(history) for history in split.test.histories])
users = split.test.users[lengths >= 200][:2].tolist()
w = AttentionHeatmap(model, split, users=users)
"""

CANVAS = "[data-testid=attention-canvas]"

# Layout constants of js/attention_heatmap.js: plot offset and cell size of a 50-position window.
AXIS_MARGIN = 44
CELL = 560 // 50


def canvas_state(page, selector: str = CANVAS) -> dict:
    return page.eval_on_selector(selector, "(canvas) => ({...canvas.dataset})")


def wait_for_canvas(page, **expected) -> None:
    page.wait_for_function(
        """([selector, expected]) => {
          const canvas = document.querySelector(selector);
          return !!canvas && Object.entries(expected).every(([name, value]) => canvas.dataset[name] === value);
        }""",
        arg=[CANVAS, {name: str(value) for name, value in expected.items()}],
    )


def test_heatmap_in_lab_and_offline_export(jupyter_server, page, ml100k_dir, tmp_path):
    session = open_notebook(page, jupyter_server("lab"), [SETUP_CELL.format(path=ml100k_dir), "w"], stem="attention")
    session.wait_for_widget(CANVAS)
    wait_for_canvas(page, size=50, start=150, layer=0, head=0)
    assert "200 items" in page.text_content("[data-testid=attention-summary]")

    # Browser to kernel: the selects change the Python traits.
    page.select_option("[data-testid=attention-layer]", "1")
    assert session.wait_for_output("print(w.layer)", "1") == "1"
    page.select_option("[data-testid=attention-head]", "1")
    assert session.wait_for_output("print(w.head)", "1") == "1"
    wait_for_canvas(page, layer=1, head=1)

    # Kernel to browser: traits set in Python redraw the DOM from the new slice.
    session.run_code("w.layer = 0; w.head = -1")
    wait_for_canvas(page, layer=0, head=-1)
    assert "mean over heads" in page.text_content("[data-testid=attention-summary]")
    expected_max = float(session.run_code("print(float(w.matrix.max()))"))
    assert float(canvas_state(page)["max"]) == pytest.approx(expected_max, rel=1e-5)

    # Hovering a cell shows the key item's title.
    row, column = 40, 10
    page.hover(CANVAS, position={"x": AXIS_MARGIN + CELL * column + CELL // 2, "y": AXIS_MARGIN + CELL * row + CELL // 2})
    page.wait_for_selector("[data-testid=attention-tooltip]:not([hidden])")
    expected_title = session.run_code(f"print(w.user_data['titles'][w.matrix_key['start'] + {column}])")
    assert page.text_content("[data-testid=attention-tooltip-title]") == expected_title

    # A click pins the key position; the overlay and window controls reach Python too.
    start = int(canvas_state(page)["start"])
    page.click(CANVAS, position={"x": AXIS_MARGIN + CELL * column + CELL // 2, "y": AXIS_MARGIN + CELL * row + CELL // 2})
    assert session.wait_for_output("print(w.pinned)", str(start + column)) == str(start + column)
    assert expected_title in page.text_content("[data-testid=attention-pinned]")
    page.select_option("[data-testid=attention-overlay]", "popularity")
    assert session.wait_for_output("print(w.overlay)", "popularity") == "popularity"
    page.select_option("[data-testid=attention-window-size]", "100")
    assert session.wait_for_output("print(w.window_size, w.window_start)", "100 100") == "100 100"
    wait_for_canvas(page, size=100, start=100)

    assert session.widget_errors() == []
    assert session.monitor.unexpected_console_errors() == []

    # The export, opened from file://, switches layer, head and user without a kernel.
    export = tmp_path / "attention.html"
    session.run_code(f"w.to_html(r'{export}')")
    users = [int(value) for value in session.run_code("print(' '.join(str(user) for user in users))").split()]
    offline_max = float(session.run_code("print(float(w.precomputed[0]['cube'][1, 0, 100:200, 100:200].max()))"))

    offline = page.context.new_page()
    requests = []
    offline.on("request", lambda request: requests.append(request.url))
    offline.goto(export.as_uri())
    offline.wait_for_function("document.documentElement.dataset.recwidgetsReady === 'true'")
    assert offline.get_attribute("html", "data-recwidgets-errors") == "0"
    assert offline.is_disabled("[data-testid=attention-user-input]")

    offline.select_option("[data-testid=attention-layer]", "1")
    offline.select_option("[data-testid=attention-head]", "0")
    state = canvas_state(offline)
    assert (state["layer"], state["head"], state["start"], state["size"]) == ("1", "0", "100", "100")
    assert float(state["max"]) == pytest.approx(offline_max, rel=1e-5)

    offline.select_option("[data-testid=attention-user]", str(users[1]))
    assert canvas_state(offline)["user"] == str(users[1])
    assert offline.text_content("[data-testid=attention-summary]").startswith(f"User {users[1]} ")

    outside = [url for url in requests if not url.startswith(("file:", "blob:", "data:"))]
    assert outside == []
    offline.close()
