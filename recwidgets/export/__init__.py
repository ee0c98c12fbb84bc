"""Offline HTML export of widgets, charts and tables: one self-contained file, no network."""

from recwidgets.export.html import (
    ExportError,
    ExportSizeWarning,
    Heading,
    Text,
    TrustedHTML,
    build_html,
    escape_script_json,
    save_html,
    vega_bundle,
)

__all__ = [
    "ExportError",
    "ExportSizeWarning",
    "Heading",
    "Text",
    "TrustedHTML",
    "build_html",
    "escape_script_json",
    "save_html",
    "vega_bundle",
]
