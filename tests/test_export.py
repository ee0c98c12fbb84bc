"""Offline HTML export: one self-contained file, escaping, deduplication, size budget."""

from __future__ import annotations

import base64
import json
import logging
import re
import warnings

import altair as alt
import pandas as pd
import pytest

from js.hand_results import INJECTION, make_result, training_events
from recwidgets.export import (
    ExportError,
    ExportSizeWarning,
    Heading,
    Text,
    build_html,
    escape_script_json,
    save_html,
)
from recwidgets.export.html import STATE_MIME, VIEW_MIME
from recwidgets.widgets import MetricPanel, TrainingMonitor

SCRIPT = re.compile(r"<script([^>]*)>(.*?)</script>", re.DOTALL | re.IGNORECASE)


@pytest.fixture
def panel():
    return MetricPanel({"SASRec": make_result("SASRec", seed=1), INJECTION: make_result(INJECTION, seed=2)})


@pytest.fixture
def monitor():
    monitor = TrainingMonitor(min_interval_s=0)
    for event in training_events():
        monitor(event)
    return monitor


def scripts(page):
    """Return (attributes, content) of every <script> element."""
    return SCRIPT.findall(page)


def page_state(page):
    for attributes, content in scripts(page):
        if STATE_MIME in attributes:
            return json.loads(content)
    raise AssertionError("no widget state script")


def page_modules(page):
    for attributes, content in scripts(page):
        if 'id="recwidgets-modules"' in attributes:
            return json.loads(content)
    raise AssertionError("no module script")


def test_save_html_writes_one_file(tmp_path, panel, monitor, caplog):
    target = tmp_path / "report.html"

    with caplog.at_level(logging.INFO, logger="recwidgets.export.html"):
        size = save_html(target, panel, monitor, title="Run")

    assert sorted(path.name for path in tmp_path.iterdir()) == ["report.html"]
    assert size == target.stat().st_size
    assert f"wrote {target}" in caplog.text
    page = target.read_text(encoding="utf-8")
    views = [content for attributes, content in scripts(page) if VIEW_MIME in attributes]
    assert [json.loads(view)["model_id"] for view in views] == [panel.model_id, monitor.model_id]


def test_page_has_no_network_references(panel, monitor):
    chart = alt.Chart(pd.DataFrame({"x": [1, 2], "y": [3, 4]})).mark_line().encode(x="x", y="y")

    page = build_html(panel, monitor, chart, title="Run")

    assert re.search(r"""\b(src|href)\s*=\s*["']?\s*(https?:)?//""", page, re.IGNORECASE) is None
    assert re.search(r"""\bimport\s*\(?\s*["'](https?:)?//""", page) is None
    assert re.search(r"""\bfrom\s*["'](https?:)?//""", page) is None
    assert "@import" not in page
    assert "default-src 'none'" in page


def test_state_round_trips_with_buffers(panel):
    entry = page_state(build_html(panel))["state"][panel.model_id]

    assert entry["state"]["_kernel"] is False
    assert panel._kernel is True
    assert entry["state"]["model_names"] == ["SASRec", INJECTION]
    assert "_esm" not in entry["state"]
    buffers = {tuple(buffer["path"]): base64.b64decode(buffer["data"]) for buffer in entry["buffers"]}
    assert len(buffers[("values", "buffer")]) == panel.values.nbytes
    assert len(buffers[("counts", "buffer")]) == panel.counts.nbytes


def test_identical_esm_stored_once(panel):
    other = MetricPanel(make_result("other"))

    page = build_html(panel, other, TrainingMonitor())

    modules = page_modules(page)
    assert len(modules["esm"]) == 2
    state = page_state(page)["state"]
    assert state[panel.model_id]["recwidgets_esm"] == state[other.model_id]["recwidgets_esm"]
    assert page.count("function readArray") == 2


def test_script_breakout_escaped(panel, tmp_path):
    title = f"Run {INJECTION}"
    save_html(tmp_path / "page.html", panel, Heading(INJECTION), Text(INJECTION), title=title)
    page = (tmp_path / "page.html").read_text(encoding="utf-8")

    # Every </script> closes a <script> the exporter wrote; data never contains one.
    assert page.lower().count("</script>") == len(scripts(page)) == page.lower().count("<script")
    assert "<img" not in page
    assert "&lt;/script&gt;&lt;img src=x onerror=alert(1)&gt;" in page
    assert "\\u003c/script\\u003e\\u003cimg src=x onerror=alert(1)\\u003e" in page
    assert page_state(page)["state"][panel.model_id]["state"]["model_names"][1] == INJECTION


def test_escape_script_json_characters():
    value = {"text": "a</script><!--&\u2028\u2029>", "n": float("nan")}

    text = escape_script_json(value)

    assert text == '{"text":"a\\u003c/script\\u003e\\u003c!--\\u0026\\u2028\\u2029\\u003e","n":null}'
    assert json.loads(text) == {"text": value["text"], "n": None}


def test_injection_in_user_ids_and_tables():
    frame = pd.DataFrame({"user": [INJECTION], "value": [1.0]})

    page = build_html(frame, INJECTION)

    assert "<img" not in page
    assert page.count("&lt;img src=x onerror=alert(1)&gt;") == 2


def test_size_warning_above_budget(tmp_path, panel):
    with pytest.warns(ExportSizeWarning, match="above the budget of 0.01 MB"):
        size = save_html(tmp_path / "big.html", panel, budget_mb=0.01)

    assert size > 10_000


def test_no_warning_within_budget(tmp_path, panel):
    with warnings.catch_warnings():
        warnings.simplefilter("error", ExportSizeWarning)
        save_html(tmp_path / "small.html", panel)


def test_vega_bundle_once_per_page():
    charts = [
        alt.Chart(pd.DataFrame({"x": [1, 2], "y": [value, value + 1]})).mark_bar().encode(x="x:O", y="y")
        for value in (1, 5, 9)
    ]

    page = build_html(*charts)

    assert page.count("data-testid=\"vega-chart\"") == 3
    assert page.count("window.vegaEmbed=") == 1
    assert "'unsafe-eval'" in page


def test_page_without_charts_has_no_vega(panel):
    page = build_html(panel)

    assert page_modules(page)["vega"] is None
    assert "'unsafe-eval'" not in page


def test_widget_to_html(tmp_path, monitor):
    size = monitor.to_html(tmp_path / "monitor.html")

    page = (tmp_path / "monitor.html").read_text(encoding="utf-8")
    assert size == len(page.encode("utf-8"))
    assert f"<title>{monitor.summary}</title>" in page


def test_rejects_chart_with_remote_data():
    chart = alt.Chart("https://example.org/data.csv").mark_point().encode(x="x:Q")

    with pytest.raises(ExportError, match="loads data from 'https://example.org/data.csv'"):
        build_html(chart)


def test_rejects_network_esm():
    import anywidget

    class Remote(anywidget.AnyWidget):
        _esm = 'import * as d3 from "https://esm.sh/d3@7";\nexport default { render() {} };\n'

    with pytest.raises(ExportError, match="loads code from the network"):
        build_html(Remote())


def test_rejects_unknown_item():
    with pytest.raises(ExportError, match="Cannot export an item of type object"):
        build_html(object())


def test_rejects_bad_budget(tmp_path, panel):
    with pytest.raises(ExportError, match="budget_mb=0"):
        save_html(tmp_path / "x.html", panel, budget_mb=0)
