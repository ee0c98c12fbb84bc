"""Offline HTML of executed notebooks: nbconvert's lab template with the recwidgets widget loader.

Plain ``jupyter nbconvert --to html`` loads require.js, MathJax and the widget manager from
CDNs, so its widget outputs stay blank without a network. :class:`OfflineHTMLExporter`
keeps nbconvert's page (code cells, Markdown, text and image outputs) and changes the parts
that need the network:

* require.js, MathJax and Mermaid are not loaded (Markdown math stays as TeX source);
* the widget state that nbclient or JupyterLab saved into ``metadata.widgets`` is rewritten
  into the format of ``js/_export_loader.js``, the same inline loader that
  :func:`recwidgets.export.save_html` uses: each distinct widget ESM and CSS is stored once
  per page, keyed by its SHA-256, and ``_kernel`` is set to false so views disable controls
  that need Python;
* the loader is inlined as a module script, with a Content-Security-Policy ``<meta>`` tag
  that forbids every network request;
* each widget output keeps its static ``text/html`` fallback inside ``<noscript>``.

Only anywidget widgets (inline ``_esm``) render offline. The view of any other widget, such
as an ipywidgets slider, shows an error box in the page.

From the command line the exporter is reachable by its class path::

    jupyter nbconvert --to recwidgets.export.notebook.OfflineHTMLExporter executed.ipynb
"""

from __future__ import annotations

import copy
import hashlib
import logging
import warnings
from pathlib import Path
from typing import Any

from traitlets import default

try:
    import jinja2
    import nbformat
    from nbconvert.exporters import HTMLExporter
except ImportError as error:  # pragma: no cover - depends on the environment
    raise ImportError(
        f"recwidgets.export.notebook needs nbconvert, nbformat and jinja2 ({error}); install them with "
        "pip install nbconvert nbformat."
    ) from error

from recwidgets.export.html import (
    STATE_MIME,
    ExportError,
    ExportSizeWarning,
    _loader_source,
    _NETWORK_IMPORT,
    escape_script_json,
)

logger = logging.getLogger(__name__)

TEMPLATE_NAME = "recwidgets_offline.html.j2"

#: Every request is forbidden except the page's own inline code, Blob-URL modules and data: images.
CONTENT_SECURITY_POLICY = (
    "default-src 'none'; script-src 'unsafe-inline' blob:; style-src 'unsafe-inline'; "
    "img-src data: blob:; font-src data:; connect-src 'none'; base-uri 'none'; form-action 'none'"
)

# The template extends nbconvert's lab page (lab/index.html.j2, found first on the template
# path because template_name is "lab"). Each emptied block loads a script from a CDN there.
TEMPLATE = """\
{%- extends 'index.html.j2' -%}

{%- block html_head_js -%}
<meta http-equiv="Content-Security-Policy" content="{{ resources.recwidgets.policy }}">
<meta name="generator" content="recwidgets">
{%- endblock html_head_js -%}

{% block jupyter_widgets %}{% endblock jupyter_widgets %}
{%- block html_head_js_mathjax -%}{%- endblock html_head_js_mathjax -%}
{%- block html_head_js_mermaidjs -%}{%- endblock html_head_js_mermaidjs -%}

{%- block data_widget_view scoped -%}
{{ super() }}
{%- if 'text/html' in output.data -%}
<noscript>{{ output.data['text/html'] }}</noscript>
{%- endif -%}
{%- endblock data_widget_view -%}

{% block footer_js %}
{{ super() }}
{%- if resources.recwidgets.has_widgets %}
<script type="application/json" id="recwidgets-modules">{{ resources.recwidgets.modules }}</script>
<script type="module">{{ resources.recwidgets.loader }}</script>
{%- endif %}
{% endblock footer_js %}
"""


def offline_widget_state(notebook: nbformat.NotebookNode) -> dict:
    """Rewrite the saved widget state of ``notebook`` in place for the offline loader; return the modules.

    Each model's ``_esm`` and ``_css`` move out of its state into the returned
    ``{"esm": {sha256: source}, "css": {sha256: source}, "vega": None, "charts": {}}``, and
    the model entry gets ``recwidgets_esm`` / ``recwidgets_css`` keys naming them.
    ``_kernel`` becomes false. Models without ESM (ipywidgets layouts, for example) are left
    as they are. Raises :class:`ExportError` when a widget ESM imports from the network.
    """
    modules: dict[str, Any] = {"esm": {}, "css": {}, "vega": None, "charts": {}}
    widgets = notebook.metadata.get("widgets") or {}
    state = (widgets.get(STATE_MIME) or {}).get("state") or {}
    for model_id, entry in state.items():
        model_state = entry.get("state") or {}
        esm = model_state.get("_esm")
        if not isinstance(esm, str) or not esm.strip():
            continue
        stripped = esm.strip()
        is_url = "\n" not in stripped and stripped.startswith(("http://", "https://", "//"))
        if is_url or _NETWORK_IMPORT.search(esm):
            raise ExportError(
                f"The ESM of widget {model_id} ({model_state.get('_model_name', 'unknown model')}) loads code from "
                "the network, which an offline page cannot do; bundle the dependency into the widget's ESM."
            )
        del model_state["_esm"]
        esm_hash = hashlib.sha256(esm.encode("utf-8")).hexdigest()
        modules["esm"][esm_hash] = esm
        entry["recwidgets_esm"] = esm_hash

        css = model_state.pop("_css", None)
        if isinstance(css, str) and css.strip():
            css_hash = hashlib.sha256(css.encode("utf-8")).hexdigest()
            modules["css"][css_hash] = css
            entry["recwidgets_css"] = css_hash
        if "_kernel" in model_state:
            model_state["_kernel"] = False
    return modules


class OfflineHTMLExporter(HTMLExporter):
    """nbconvert HTML exporter whose pages render recwidgets (anywidget) outputs without a network.

    See the module docstring for what changes against the stock lab template. The notebook
    passed in is not modified.
    """

    export_from_notebook = "HTML (offline widgets)"

    @default("extra_loaders")
    def _default_extra_loaders(self):
        return [jinja2.DictLoader({TEMPLATE_NAME: TEMPLATE})]

    @default("template_file")
    def _template_file_default(self):
        return TEMPLATE_NAME

    def from_notebook_node(self, nb: nbformat.NotebookNode, resources: dict | None = None, **kw: Any):
        """Convert ``nb`` into ``(html, resources)`` with the offline widget loader inlined."""
        notebook = copy.deepcopy(nb)
        modules = offline_widget_state(notebook)
        resources = dict(resources or {})
        resources["recwidgets"] = {
            "policy": CONTENT_SECURITY_POLICY,
            "has_widgets": bool(modules["esm"]),
            "modules": escape_script_json(modules),
            "loader": _loader_source(),
        }
        return super().from_notebook_node(notebook, resources, **kw)


def _as_notebook(notebook: nbformat.NotebookNode | dict | str | Path) -> nbformat.NotebookNode:
    if isinstance(notebook, (str, Path)):
        path = Path(notebook)
        if not path.is_file():
            raise ExportError(f"notebook {str(path)!r} not found; pass an existing .ipynb file or a NotebookNode.")
        return nbformat.read(path, as_version=4)
    if isinstance(notebook, nbformat.NotebookNode):
        return notebook
    if isinstance(notebook, dict):
        return nbformat.from_dict(notebook)
    raise ExportError(
        f"cannot convert an object of type {type(notebook).__name__}; pass a NotebookNode, a notebook dict or a path."
    )


def notebook_to_html(notebook: nbformat.NotebookNode | dict | str | Path, *, title: str | None = None) -> str:
    """Return an offline HTML page of an executed notebook, widgets included.

    ``notebook`` is a NotebookNode, a notebook dict or the path of an ``.ipynb`` file.
    Widgets render only from the widget state saved in the notebook's metadata: nbclient
    saves it by default, JupyterLab only with its ``saveState`` setting turned on. A widget
    output whose state is missing shows its static HTML fallback instead. ``title`` defaults
    to the notebook's ``metadata.title``, else the file name without suffix, else
    ``"notebook"``.
    """
    name = title
    if name is None and isinstance(notebook, (str, Path)):
        name = Path(notebook).stem
    node = _as_notebook(notebook)
    exporter = OfflineHTMLExporter()
    page, _ = exporter.from_notebook_node(node, resources={"metadata": {"name": name or "notebook"}})
    return page


def save_notebook_html(
    notebook: nbformat.NotebookNode | dict | str | Path,
    path: str | Path,
    *,
    title: str | None = None,
    budget_mb: float = 20.0,
) -> int:
    """Write :func:`notebook_to_html` of ``notebook`` to ``path`` and return the size in bytes.

    Emits an :class:`~recwidgets.export.html.ExportSizeWarning` when the file is larger than
    ``budget_mb`` megabytes (10**6 bytes).
    """
    if budget_mb <= 0:
        raise ExportError(f"budget_mb={budget_mb!r} is invalid; pass a positive size in megabytes.")
    data = notebook_to_html(notebook, title=title).encode("utf-8")
    target = Path(path)
    target.write_bytes(data)
    size = len(data)
    logger.info("wrote %s (%.2f MB)", target, size / 1e6)
    if size > budget_mb * 1e6:
        warnings.warn(
            f"{target} is {size / 1e6:.1f} MB, above the budget of {budget_mb:g} MB; save fewer or smaller widgets "
            "in the notebook, or pass a larger budget_mb.",
            ExportSizeWarning,
            stacklevel=2,
        )
    return size
