"""Payload size and first-render time of AttentionHeatmap data: binary buffers against JSON lists.

The view is one ML-100K user with a 200-item history, read by a SASRec of 2 layers and 2
heads (seeded random weights: the payload shape, not the values, is what is measured).
Two states are compared:

* ``kernel`` - what a live view receives: the 50 x 50 visible slice plus the user's
  history (items, titles, timestamps, popularity, the last position's rows, top-10);
* ``offline`` - the same plus the full (2, 2, 200, 200) weights that the export embeds
  so layer and head switching work without a kernel.

Each state is encoded as the widget sends it (JSON text with the numeric arrays in binary
buffers) and as plain JSON with the arrays as nested lists. First render is timed in
headless Chromium on a blank page that imports the widget ESM. The clock starts with the
payload already in memory (ArrayBuffers for the binary form, the JSON string for the list
form) and stops when ``render`` returns, which draws the canvas synchronously. The list form includes JSON.parse and
the conversion of the lists to typed arrays that the widget's drawing code reads. Paint
after ``render`` returns is not included.

Run: ``python bench/bench_attention_payload.py [--repeats 15]``. Prints a Markdown table and
writes it to ``bench/results/attention_payload.md``.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import platform
import statistics
import sys
from pathlib import Path

import numpy as np
import torch
from ipywidgets.widgets.widget import _remove_buffers

from recwidgets.data import leave_last_out, load_ml100k
from recwidgets.models import SASRec, SASRecModule
from recwidgets.widgets.attention_heatmap import AttentionHeatmap
from recwidgets.widgets.base import load_esm

ROOT = Path(__file__).resolve().parents[1]
ML100K = ROOT.parent / "shared" / "datasets" / "ml-100k"
RESULTS = ROOT / "bench" / "results" / "attention_payload.md"
CHROMIUM = "/usr/bin/chromium"

# Synced traits the view reads; everything else in the state is widget bookkeeping.
VIEW_TRAITS = (
    "user", "users", "layer", "head", "n_layers", "n_heads", "window_start", "window_size", "pinned", "overlay", "k",
    "user_data", "matrix", "matrix_before", "matrix_key", "precomputed", "python_error", "_kernel",
)  # fmt: skip

# The page decodes the payload, calls render, and returns the time between the two.
PAGE_SCRIPT = """
async ({esm, mode, text, buffers, paths, repeats}) => {
  const url = URL.createObjectURL(new Blob([esm], {type: "text/javascript"}));
  const widget = (await import(url)).default;
  const decoded = buffers.map((data) => Uint8Array.from(atob(data), (c) => c.charCodeAt(0)).buffer);

  const toTyped = (value) => {
    if (Array.isArray(value)) {
      return value.map(toTyped);
    }
    if (value !== null && typeof value === "object") {
      if (value.__list__ !== undefined) {
        const flat = value.__list__.flat(Infinity);
        const Type = {float32: Float32Array, float64: Float64Array, int32: Int32Array}[value.dtype];
        return {dtype: value.dtype, shape: value.shape, buffer: new DataView(new Type(flat).buffer)};
      }
      return Object.fromEntries(Object.entries(value).map(([key, item]) => [key, toTyped(item)]));
    }
    return value;
  };
  const makeModel = (state) => ({
    get: (name) => state[name], set: (name, value) => { state[name] = value; },
    on() {}, off() {}, save_changes() {}, send() {},
  });

  const times = [];
  for (let run = 0; run < repeats; run += 1) {
    const el = document.createElement("div");
    document.body.replaceChildren(el);
    const start = performance.now();
    let state;
    if (mode === "binary") {
      state = JSON.parse(text);
      paths.forEach((path, index) => {
        let target = state;
        for (const key of path.slice(0, -1)) target = target[key];
        target[path[path.length - 1]] = new DataView(decoded[index]);
      });
    } else {
      state = toTyped(JSON.parse(text));
    }
    const cleanup = widget.render({model: makeModel(state), el});
    times.push(performance.now() - start);
    cleanup();
  }
  URL.revokeObjectURL(url);
  const errors = document.querySelectorAll("[data-testid=rw-error]:not([hidden])").length;
  return {times, errors};
}
"""


def build_widget() -> AttentionHeatmap:
    split = leave_last_out(load_ml100k(ML100K))
    torch.manual_seed(0)
    model = SASRec(max_len=200, hidden=16, layers=2, heads=2)
    model.module = SASRecModule(split.log.n_items, max_len=200, hidden=16, layers=2, heads=2).eval()
    model.n_items = split.log.n_items
    lengths = np.array([len(history) for history in split.test.histories])
    user = int(split.test.users[lengths >= 200][0])
    return AttentionHeatmap(model, split, user=user)


def view_state(widget: AttentionHeatmap) -> dict:
    state = widget.get_state()
    return {name: state[name] for name in VIEW_TRAITS}


def binary_form(state: dict) -> tuple[str, list[bytes], list[list]]:
    """Return the JSON text, the buffers and their paths, as ipywidgets sends them."""
    stripped, paths, buffers = _remove_buffers(state)
    return json.dumps(stripped, separators=(",", ":")), [bytes(buffer) for buffer in buffers], paths


def list_form(state: dict) -> str:
    """Return the state as one JSON text, every array payload replaced by nested lists."""

    def convert(value):
        if isinstance(value, dict) and "buffer" in value and "dtype" in value:
            array = np.frombuffer(bytes(value["buffer"]), dtype=value["dtype"]).reshape(value["shape"])
            # Shortest round-trip decimal text, as json.dumps writes Python floats.
            return {"dtype": value["dtype"], "shape": value["shape"], "__list__": array.tolist()}
        if isinstance(value, dict):
            return {key: convert(item) for key, item in value.items()}
        if isinstance(value, list):
            return [convert(item) for item in value]
        return value

    return json.dumps(convert(state), separators=(",", ":"), allow_nan=True)


def time_render(page, esm: str, mode: str, state: dict, repeats: int) -> list[float]:
    if mode == "binary":
        text, buffers, paths = binary_form(state)
        encoded = [base64.b64encode(buffer).decode("ascii") for buffer in buffers]
    else:
        text, encoded, paths = list_form(state), [], []
    outcome = page.evaluate(
        PAGE_SCRIPT, {"esm": esm, "mode": mode, "text": text, "buffers": encoded, "paths": paths, "repeats": repeats}
    )
    if outcome["errors"]:
        raise RuntimeError(f"the widget showed an error while rendering the {mode} payload")
    # The first run also compiles the module's functions; report the runs after it.
    return outcome["times"][1:]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=15, help="renders per payload (the first is dropped as warm-up)")
    arguments = parser.parse_args()

    from playwright.sync_api import sync_playwright

    widget = build_widget()
    states = {"kernel (50 x 50 slice)": view_state(widget)}
    widget.precompute()
    states["offline (full 2 x 2 x 200 x 200)"] = view_state(widget)
    esm = load_esm("attention_heatmap")

    rows = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=["--no-sandbox", "--disable-gpu"])
        page = browser.new_page(viewport={"width": 1200, "height": 1000})
        page.set_content("<!DOCTYPE html><html><body></body></html>")
        for label, state in states.items():
            text, buffers, _ = binary_form(state)
            sizes = {"binary": len(text.encode()) + sum(len(buffer) for buffer in buffers), "JSON lists": len(list_form(state).encode())}
            for mode, name in (("binary", "binary"), ("lists", "JSON lists")):
                times = time_render(page, esm, mode, state, arguments.repeats + 1)
                rows.append((label, name, sizes[name], statistics.median(times), min(times)))
        browser.close()

    lines = [
        "# AttentionHeatmap payload: binary buffers against JSON lists",
        "",
        "One ML-100K user, 200-item history, SASRec with 2 layers x 2 heads; produced by "
        "`python bench/bench_attention_payload.py`.",
        f"Machine: {platform.machine()}, {platform.system()}, {os.cpu_count()} CPU cores, Python "
        f"{platform.python_version()}, headless Chromium at {CHROMIUM}; {arguments.repeats} timed renders per "
        "row after one warm-up. Times in milliseconds vary from run to run on a shared machine; the byte counts do not.",
        "First render: payload in page memory to the return of `render` (decode, JSON.parse and "
        "list-to-typed-array conversion included; paint excluded).",
        "",
        "| state | encoding | payload bytes | first render, median ms | min ms |",
        "| --- | --- | ---: | ---: | ---: |",
    ]
    for label, name, size, median, fastest in rows:
        lines.append(f"| {label} | {name} | {size:,} | {median:.1f} | {fastest:.1f} |")
    table = "\n".join(lines) + "\n"
    print(table)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(table, encoding="utf-8")
    print(f"written to {RESULTS}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
