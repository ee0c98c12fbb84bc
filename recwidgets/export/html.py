"""Self-contained offline HTML pages of widgets, Altair charts, tables and text.

``ipywidgets.embed`` and plain nbconvert load a widget manager and require.js from CDNs,
so their pages stay blank offline. A page written here needs no network at all:

* every widget's state goes into the standard ``application/vnd.jupyter.widget-state+json``
  script, with binary buffers base64-encoded and ``_kernel`` set to false;
* each distinct widget ESM (and CSS) is stored once per page, keyed by its SHA-256;
* a small inline loader (``js/_export_loader.js``) decodes the buffers into DataViews,
  imports the ESM from a Blob URL and calls ``render`` with a stand-in model;
* Altair / Vega-Lite charts are drawn by one Vega bundle (from ``vl-convert-python``)
  stored once per page, however many charts there are;
* a Content-Security-Policy ``<meta>`` tag forbids every network request.

Everything embedded in a ``<script>`` element is JSON whose ``<``, ``>``, ``&``, U+2028 and
U+2029 are written as ``\\u`` escapes, so data such as an item title containing
``</script>`` cannot end the element early.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import html
import json
import logging
import math
import re
import warnings
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from recwidgets.errors import RecwidgetsError, RecwidgetsWarning

logger = logging.getLogger(__name__)

STATE_MIME = "application/vnd.jupyter.widget-state+json"
VIEW_MIME = "application/vnd.jupyter.widget-view+json"

_SCRIPT_ESCAPES = {"<": "\\u003c", ">": "\\u003e", "&": "\\u0026", "\u2028": "\\u2028", "\u2029": "\\u2029"}
_SCRIPT_UNSAFE = re.compile("[<>&\u2028\u2029]")
_NETWORK_IMPORT = re.compile(r"""(?:\bfrom\s*|\bimport\s*\(?\s*)["'](?:https?:)?//""")

PAGE_CSS = """
:root { color-scheme: light dark; }
@media (prefers-color-scheme: dark) {
  :root {
    --jp-ui-font-color1: #e6edf3; --jp-ui-font-color2: #9198a1; --jp-layout-color1: #0d1117;
    --jp-layout-color2: #161b22; --jp-border-color2: #3d444d; --jp-brand-color1: #4493f8;
    --jp-error-color1: #f85149; --jp-warn-color1: #d29922;
  }
}
body { margin: 0; font-family: system-ui, -apple-system, "Segoe UI", sans-serif; font-size: 14px;
  color: var(--jp-ui-font-color1, #1f2328); background: var(--jp-layout-color1, #ffffff); }
main { max-width: 1100px; margin: 0 auto; padding: 16px 24px 48px; }
h1 { font-size: 1.6em; margin: 8px 0 16px; }
.rw-item { margin: 16px 0 24px; }
.rw-table { border-collapse: collapse; }
.rw-table th, .rw-table td { border-bottom: 1px solid var(--jp-border-color2, #d1d9e0); padding: 3px 10px 3px 0;
  text-align: left; }
.rw-export-error { color: var(--jp-error-color1, #cf222e); border: 1px solid currentColor; padding: 6px 8px; }
.rw-vega { max-width: 100%; overflow-x: auto; }
"""


class ExportError(RecwidgetsError):
    """An item cannot go into an offline page (for example ESM or chart data loaded from a URL)."""


class ExportSizeWarning(RecwidgetsWarning):
    """The written page is larger than the size budget passed to ``save_html``."""


@dataclass(frozen=True)
class Heading:
    """A section heading; ``text`` is escaped."""

    text: str
    level: int = 2


@dataclass(frozen=True)
class Text:
    """A paragraph of plain text; ``text`` is escaped and blank lines start new paragraphs."""

    text: str


@dataclass(frozen=True)
class TrustedHTML:
    """Markup inserted as-is. Only for markup the caller wrote; never for data (item titles, names)."""

    markup: str


def escape_script_json(value: Any) -> str:
    """Return ``value`` as JSON that is safe as the content of a ``<script>`` element.

    NaN and infinities become null (JSON has no such numbers). ``<``, ``>``, ``&``, U+2028
    and U+2029 are written as ``\\u`` escapes, which only occur inside JSON strings, so the
    text cannot contain ``</script>`` or ``<!--`` and parses back to the same value.
    """
    text = json.dumps(_finite(value), ensure_ascii=False, allow_nan=False, separators=(",", ":"))
    return _SCRIPT_UNSAFE.sub(lambda match: _SCRIPT_ESCAPES[match.group()], text)


def _finite(value: Any) -> Any:
    """Replace non-finite floats with None, recursively."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {key: _finite(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(item) for item in value]
    return value


@functools.lru_cache(maxsize=1)
def vega_bundle() -> str:
    """Return the Vega, Vega-Lite and vega-embed JavaScript from ``vl-convert-python`` (about 0.9 MB)."""
    import vl_convert

    return vl_convert.javascript_bundle()


def _loader_source() -> str:
    from recwidgets.widgets.base import js_dir

    source = (js_dir() / "_export_loader.js").read_text(encoding="utf-8")
    lowered = source.lower()
    if "</script" in lowered or "<!--" in lowered:
        raise ExportError("js/_export_loader.js contains '</script' or '<!--', which would break the inline script.")
    return source


def _sha256(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


class _Page:
    """Collects widget state, modules and markup for one page."""

    def __init__(self) -> None:
        self.state: dict[str, dict] = {}
        self.esm: dict[str, str] = {}
        self.css: dict[str, str] = {}
        self.charts: dict[str, dict] = {}
        self.body: list[str] = []

    def add(self, item: Any) -> None:
        if isinstance(item, Heading):
            level = min(max(int(item.level), 2), 6)
            self.body.append(f"<h{level}>{html.escape(item.text)}</h{level}>")
        elif isinstance(item, Text):
            paragraphs = [part.strip() for part in re.split(r"\n\s*\n", item.text) if part.strip()]
            self.body.append("".join(f"<p>{html.escape(part)}</p>" for part in paragraphs))
        elif isinstance(item, TrustedHTML):
            self.body.append(item.markup)
        elif isinstance(item, pd.DataFrame):
            table = item.to_html(escape=True, border=0, classes="rw-table", max_rows=500)
            self.body.append(f'<section class="rw-item">{table}</section>')
        elif isinstance(item, str):
            self.add(Text(item))
        elif _is_widget(item):
            self._add_widget(item)
        elif _is_chart(item):
            self._add_chart(item)
        else:
            raise ExportError(
                f"Cannot export an item of type {type(item).__name__}; pass widgets, Altair charts or Vega-Lite "
                "dicts, DataFrames, strings, Heading, Text or TrustedHTML."
            )

    def _add_widget(self, widget: Any) -> None:
        from ipywidgets.widgets.widget import _remove_buffers

        name = type(widget).__name__
        state, buffer_paths, buffers = _remove_buffers(widget.get_state())
        esm = state.pop("_esm", None)
        css = state.pop("_css", None)
        if not isinstance(esm, str) or not esm.strip():
            raise ExportError(f"{name} has no inline ESM (_esm); only anywidget widgets can be exported.")
        is_url = "\n" not in esm.strip() and esm.strip().startswith(("http://", "https://", "//"))
        if is_url or _NETWORK_IMPORT.search(esm):
            raise ExportError(
                f"The ESM of {name} loads code from the network, which an offline page cannot do; "
                "bundle the dependency into the widget's ESM."
            )
        state["_kernel"] = False

        entry: dict[str, Any] = {
            "model_name": state.get("_model_name", "AnyModel"),
            "model_module": state.get("_model_module", "anywidget"),
            "model_module_version": state.get("_model_module_version", ""),
            "state": state,
            "buffers": [
                {"path": path, "encoding": "base64", "data": base64.b64encode(bytes(buffer)).decode("ascii")}
                for path, buffer in zip(buffer_paths, buffers)
            ],
        }
        esm_hash = _sha256(esm)
        self.esm[esm_hash] = esm
        entry["recwidgets_esm"] = esm_hash
        if isinstance(css, str) and css.strip():
            css_hash = _sha256(css)
            self.css[css_hash] = css
            entry["recwidgets_css"] = css_hash
        self.state[widget.model_id] = entry

        fallback = ""
        bundle = widget._repr_mimebundle_()
        if bundle is not None and "text/html" in bundle[0]:
            fallback = f"<noscript>{bundle[0]['text/html']}</noscript>"
        view = escape_script_json({"version_major": 2, "version_minor": 0, "model_id": widget.model_id})
        self.body.append(
            f'<section class="rw-item rw-widget"><script type="{VIEW_MIME}">{view}</script>{fallback}</section>'
        )

    def _add_chart(self, chart: Any) -> None:
        spec = chart if isinstance(chart, dict) else chart.to_dict()
        remote = _remote_urls(spec)
        if remote:
            raise ExportError(
                f"The chart loads data from {remote[0]!r}; an offline page needs inline data "
                "(pass a DataFrame to alt.Chart instead of a URL)."
            )
        chart_id = f"chart-{len(self.charts) + 1}"
        self.charts[chart_id] = spec
        self.body.append(
            f'<section class="rw-item"><div class="rw-vega" data-chart-id="{chart_id}" data-testid="vega-chart"></div>'
            "</section>"
        )

    def render(self, title: str) -> str:
        modules = {
            "esm": self.esm,
            "css": self.css,
            "vega": vega_bundle() if self.charts else None,
            "charts": self.charts,
        }
        state = {"version_major": 2, "version_minor": 0, "state": self.state}
        # Vega compiles its expressions with the Function constructor, hence 'unsafe-eval' on chart pages.
        script_sources = "'unsafe-inline' blob:" + (" 'unsafe-eval'" if self.charts else "")
        policy = (
            f"default-src 'none'; script-src {script_sources}; style-src 'unsafe-inline'; "
            "img-src data: blob:; font-src data:; connect-src 'none'; base-uri 'none'; form-action 'none'"
        )
        escaped_title = html.escape(title)
        parts = [
            "<!DOCTYPE html>",
            '<html lang="en">',
            "<head>",
            '<meta charset="utf-8">',
            '<meta name="viewport" content="width=device-width, initial-scale=1">',
            f'<meta http-equiv="Content-Security-Policy" content="{policy}">',
            '<meta name="generator" content="recwidgets">',
            f"<title>{escaped_title}</title>",
            f"<style>{PAGE_CSS}</style>",
            "</head>",
            "<body>",
            "<main>",
            f"<h1>{escaped_title}</h1>",
            *self.body,
            "</main>",
            f'<script type="{STATE_MIME}">{escape_script_json(state)}</script>',
            f'<script type="application/json" id="recwidgets-modules">{escape_script_json(modules)}</script>',
            f'<script type="module">{_loader_source()}</script>',
            "</body>",
            "</html>",
        ]
        return "\n".join(parts) + "\n"


def _is_widget(item: Any) -> bool:
    return hasattr(item, "get_state") and hasattr(item, "model_id")


def _is_chart(item: Any) -> bool:
    if isinstance(item, dict):
        return "$schema" in item or "mark" in item or "layer" in item
    return hasattr(item, "to_dict") and type(item).__module__.startswith("altair")


def _remote_urls(spec: Any) -> list[str]:
    """Return every ``url`` value in a chart spec that is not a data: URL."""
    found = []
    if isinstance(spec, dict):
        for key, value in spec.items():
            if key == "url" and isinstance(value, str) and not value.startswith("data:"):
                found.append(value)
            else:
                found += _remote_urls(value)
    elif isinstance(spec, list):
        for item in spec:
            found += _remote_urls(item)
    return found


def build_html(*items: Any, title: str = "recwidgets report") -> str:
    """Return the text of a self-contained offline page showing ``items`` in order.

    Items may be widgets (any anywidget with inline ESM, such as ``MetricPanel``),
    Altair charts or Vega-Lite dicts with inline data, pandas DataFrames (escaped tables),
    strings (escaped paragraphs), :class:`Heading`, :class:`Text` or :class:`TrustedHTML`.
    """
    page = _Page()
    for item in _flatten(items):
        page.add(item)
    return page.render(title)


def _flatten(items: Iterable[Any]) -> Iterable[Any]:
    for item in items:
        if isinstance(item, (list, tuple)):
            yield from _flatten(item)
        else:
            yield item


def save_html(path: str | Path, *items: Any, title: str = "recwidgets report", budget_mb: float = 20.0) -> int:
    """Write one self-contained offline HTML file of ``items`` and return its size in bytes.

    See :func:`build_html` for the accepted items. Widgets keep every control that
    switches between precomputed data; their ``_kernel`` flag is false in the page so
    controls that need Python are shown disabled. The page makes no network request.
    Emits an :class:`ExportSizeWarning` when the file is larger than ``budget_mb``
    megabytes (10**6 bytes).
    """
    if budget_mb <= 0:
        raise ExportError(f"budget_mb={budget_mb!r} is invalid; pass a positive size in megabytes.")
    text = build_html(*items, title=title)
    data = text.encode("utf-8")
    target = Path(path)
    target.write_bytes(data)
    size = len(data)
    logger.info("wrote %s (%.2f MB)", target, size / 1e6)
    if size > budget_mb * 1e6:
        warnings.warn(
            f"{target} is {size / 1e6:.1f} MB, above the budget of {budget_mb:g} MB; export fewer widgets or "
            "charts, or pass a larger budget_mb.",
            ExportSizeWarning,
            stacklevel=2,
        )
    return size
