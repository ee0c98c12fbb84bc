"""js/_runtime.js helpers in Chromium: binary arrays, debounce, ticks and ESM assembly."""

from __future__ import annotations

import re

import pytest

from recwidgets.widgets.base import js_dir, load_esm


@pytest.fixture
def runtime(widget_page):
    """Import js/_runtime.js as a module and expose it as window.rt."""
    source = (js_dir() / "_runtime.js").read_text(encoding="utf-8")
    widget_page.page.evaluate(
        """async (source) => {
            const url = URL.createObjectURL(new Blob([source], {type: "text/javascript"}));
            window.rt = await import(url);
        }""",
        source,
    )
    return widget_page.page


def test_read_array_unaligned_offset(runtime):
    # A float32 array starting at byte 1 of its buffer cannot be viewed in place; readArray copies.
    values = runtime.evaluate(
        """() => {
            const buffer = new ArrayBuffer(1 + 3 * 4);
            const view = new DataView(buffer, 1, 12);
            [1.5, -2.25, 3.0].forEach((value, index) => view.setFloat32(index * 4, value, true));
            const array = window.rt.readArray({dtype: "float32", shape: [3], buffer: view});
            return Array.from(array.data);
        }"""
    )
    assert values == [1.5, -2.25, 3.0]


def test_read_array_rejects_wrong_size(runtime):
    message = runtime.evaluate(
        """() => {
            try {
                window.rt.readArray({dtype: "float64", shape: [2, 2], buffer: new DataView(new ArrayBuffer(8))});
                return "no error";
            } catch (error) { return error.message; }
        }"""
    )
    assert message.startswith("Array buffer has 8 bytes")


def test_read_array_rejects_json_lists(runtime):
    message = runtime.evaluate(
        """() => {
            try { window.rt.readArray({dtype: "float32", shape: [2], buffer: [1, 2]}); return "no error"; }
            catch (error) { return error.message; }
        }"""
    )
    assert "sent as JSON" in message


def test_flat_index_row_major(runtime):
    assert runtime.evaluate("() => window.rt.flatIndex([2, 3, 4], [1, 2, 3])") == 1 * 12 + 2 * 4 + 3


def test_debounce_coalesces_calls(runtime):
    result = runtime.evaluate(
        """async () => {
            const calls = [];
            const debounced = window.rt.debounce((value) => calls.push(value), 20);
            debounced(1); debounced(2); debounced(3);
            const before = calls.length;
            await new Promise((resolve) => setTimeout(resolve, 80));
            return {before, calls};
        }"""
    )
    assert result == {"before": 0, "calls": [3]}


def test_nice_ticks_round_values(runtime):
    assert runtime.evaluate("() => window.rt.niceTicks(0, 0.1, 4)") == [0, 0.02, 0.04, 0.06, 0.08, 0.1]


def test_h_inserts_text_not_markup(runtime):
    html = runtime.evaluate("() => window.rt.h('td', {}, '<img src=x onerror=alert(1)>').outerHTML")
    assert html == "<td>&lt;img src=x onerror=alert(1)&gt;</td>"


def test_assembled_esm_has_one_export(runtime):
    # The assembled module must load on its own: the runtime is inlined, no import remains.
    source = load_esm("metric_panel")
    assert re.search(r"^\s*(import|export)\s.*_runtime\.js", source, re.MULTILINE) is None
    assert re.search(r"^export (function|const)", source, re.MULTILINE) is None
    keys = runtime.evaluate(
        """async (source) => {
            const url = URL.createObjectURL(new Blob([source], {type: "text/javascript"}));
            const module = await import(url);
            return Object.keys(module);
        }""",
        source,
    )
    assert keys == ["default"]
