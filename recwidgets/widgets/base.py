"""The widget runtime shared by every recwidgets widget.

``RecWidget`` extends ``anywidget.AnyWidget`` with:

* ESM loaded from the package's ``js/`` folder, with the shared ``js/_runtime.js`` inlined
  (anywidget loads one ESM string per widget, so a widget file cannot import a sibling);
* numeric arrays synced as binary buffers (:class:`ArrayTrait`), never as nested lists;
* a ``python_error`` trait that shows errors of Python callbacks inside the widget;
* a ``_kernel`` flag that the offline export sets to false, so the front end can disable
  controls that need Python;
* a static ``text/html`` and ``text/plain`` fallback in the MIME bundle, built from the
  widget's ``data()`` frame, for nbviewer, GitHub and consoles;
* ``to_html(path)`` for a self-contained offline page.
"""

from __future__ import annotations

import functools
import html
import logging
import re
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, ClassVar

import anywidget
import numpy as np
import pandas as pd
import traitlets

from recwidgets.errors import ConfigError

logger = logging.getLogger(__name__)

RUNTIME_FILE = "_runtime.js"

# dtypes the front end can view as a typed array without conversion.
_WIRE_DTYPES = {"float32", "float64", "int8", "int16", "int32", "uint8", "uint16", "uint32"}

_RUNTIME_IMPORT = re.compile(r"^import\s*\{[^}]*\}\s*from\s*['\"]\./_runtime\.js['\"];?[ \t]*\n", re.MULTILINE)
_EXPORT_KEYWORD = re.compile(r"^export (?=(?:async\s+)?function\b|const\b|let\b|class\b)", re.MULTILINE)

_FALLBACK_MAX_ROWS = 60


class TraitValueError(ConfigError, traitlets.TraitError):
    """A synced trait was given an invalid value.

    It is a ``ConfigError`` for the user and a ``TraitError`` for traitlets: only the
    latter makes traitlets undo a batched update (a front-end ``set_state`` with several
    keys, or ``hold_trait_notifications``) instead of keeping the invalid value.
    """


def validator(*names: str) -> Callable:
    """Register a validator like ``traitlets.validate``, turning a ConfigError raised inside into a TraitValueError."""

    def decorate(function: Callable) -> Any:
        @functools.wraps(function)
        def checked(self, proposal):
            try:
                return function(self, proposal)
            except TraitValueError:
                raise
            except ConfigError as error:
                raise TraitValueError(str(error)) from None

        return traitlets.validate(*names)(checked)

    return decorate


def js_dir() -> Path:
    """Return the folder holding the widget ESM files.

    An installed wheel ships them as ``recwidgets/js/``; a source checkout keeps them in
    ``<repo>/js/``. The packaged copy wins when both exist.
    """
    package_root = Path(__file__).resolve().parents[1]
    for candidate in (package_root / "js", package_root.parent / "js"):
        if (candidate / RUNTIME_FILE).is_file():
            return candidate
    raise FileNotFoundError(
        f"recwidgets front-end files not found in {package_root / 'js'} or {package_root.parent / 'js'}; "
        "reinstall the package (the wheel ships them as recwidgets/js/)."
    )


@functools.lru_cache(maxsize=None)
def load_esm(name: str) -> str:
    """Return the ESM of widget ``name`` (``js/<name>.js``) with ``js/_runtime.js`` inlined.

    The runtime's ``export`` keywords and the widget's ``import ... from "./_runtime.js"``
    line are removed, so the result is one self-contained module whose only export is the
    widget's default export.
    """
    folder = js_dir()
    path = folder / f"{name}.js"
    if not path.is_file():
        available = sorted(p.stem for p in folder.glob("*.js") if not p.stem.startswith("_"))
        raise ConfigError(f"No widget front end named {name!r} in {folder}; available: {', '.join(available)}.")
    source = path.read_text(encoding="utf-8")
    if not _RUNTIME_IMPORT.search(source):
        return source
    runtime = _EXPORT_KEYWORD.sub("", (folder / RUNTIME_FILE).read_text(encoding="utf-8"))
    widget = _RUNTIME_IMPORT.sub("", source, count=1)
    return f"// ---- {RUNTIME_FILE} (inlined) ----\n{runtime}\n// ---- {name}.js ----\n{widget}"


def to_numpy(value: Any) -> np.ndarray:
    """Convert a numpy array, torch tensor or nested sequence to a numpy array."""
    if hasattr(value, "detach") and hasattr(value, "cpu"):
        value = value.detach().cpu().numpy()
    return np.asarray(value)


def wire_array(value: Any) -> np.ndarray:
    """Return ``value`` as a C-contiguous little-endian array of a dtype the front end reads.

    bool becomes uint8, float16 becomes float32, and int64/uint64 become int32 when every
    value fits, else float64 when every value is exact there; other dtypes raise.
    """
    array = to_numpy(value)
    kind = array.dtype
    if kind == np.bool_:
        array = array.astype(np.uint8)
    elif kind == np.float16:
        array = array.astype(np.float32)
    elif kind in (np.int64, np.uint64):
        array = _narrow_integers(array)
    elif kind.name not in _WIRE_DTYPES:
        raise ConfigError(
            f"Cannot send an array of dtype {kind} to the front end; convert it to one of "
            f"{', '.join(sorted(_WIRE_DTYPES))} first."
        )
    return np.ascontiguousarray(array, dtype=array.dtype.newbyteorder("<"))


def _narrow_integers(array: np.ndarray) -> np.ndarray:
    """Convert 64-bit integers to int32 when they fit, else to float64 when that is exact."""
    if array.size == 0:
        return array.astype(np.int32)
    low, high = int(array.min()), int(array.max())
    if np.iinfo(np.int32).min <= low and high <= np.iinfo(np.int32).max:
        return array.astype(np.int32)
    if -(2**53) <= low and high <= 2**53:
        return array.astype(np.float64)
    raise ConfigError(
        f"Integer array values span [{low}, {high}], beyond what a JavaScript number holds exactly (2**53); "
        "send them as strings in a list trait instead."
    )


def array_to_json(value: np.ndarray | None, widget: Any = None) -> dict | None:
    """Serialise an array trait as ``{"dtype", "shape", "buffer"}`` with a binary buffer.

    ipywidgets moves the ``memoryview`` out of the JSON message into a binary frame; the
    front end receives it as a ``DataView`` (see ``readArray`` in ``js/_runtime.js``).
    """
    if value is None:
        return None
    array = wire_array(value)
    return {"dtype": array.dtype.name, "shape": list(array.shape), "buffer": memoryview(array.reshape(-1).view(np.uint8))}


def array_from_json(payload: dict | None, widget: Any = None) -> np.ndarray | None:
    """Rebuild an array trait value from its wire form (the inverse of :func:`array_to_json`)."""
    if payload is None:
        return None
    dtype = np.dtype(payload["dtype"]).newbyteorder("<")
    return np.frombuffer(bytes(payload["buffer"]), dtype=dtype).reshape(payload["shape"])


class ArrayTrait(traitlets.TraitType):
    """A numeric array trait synced as one binary buffer with dtype and shape metadata.

    Accepts numpy arrays, torch tensors and nested sequences; stores a read-only numpy
    array in a dtype the front end can view directly (see :func:`wire_array`).
    """

    default_value = None
    info_text = "a numeric array (numpy array, torch tensor or nested sequence)"

    def __init__(self, default_value: Any = None, **kwargs: Any):
        kwargs.setdefault("allow_none", True)
        super().__init__(default_value=default_value, **kwargs)
        self.metadata.setdefault("to_json", array_to_json)
        self.metadata.setdefault("from_json", array_from_json)

    def validate(self, obj: Any, value: Any) -> np.ndarray | None:
        if value is None:
            if self.allow_none:
                return None
            self.error(obj, value)
        try:
            array = wire_array(value)
        except ConfigError:
            raise
        except (TypeError, ValueError) as error:
            raise traitlets.TraitError(
                f"The {self.name!r} trait of {type(obj).__name__} expects {self.info_text}; got {type(value).__name__} ({error})."
            ) from error
        array.setflags(write=False)
        return array


class RecWidget(anywidget.AnyWidget):
    """Base class of recwidgets widgets.

    Subclasses set ``_esm_name`` (the file ``js/<name>.js``) and implement ``data()``,
    the DataFrame behind the view, which also feeds the static fallback and the export.
    Register callbacks with :meth:`observe_guarded` so that their errors reach the
    ``python_error`` trait.
    """

    _esm_name: ClassVar[str] = ""

    python_error = traitlets.Unicode(
        "",
        help="Message of the last error raised by a Python callback of this widget; empty when none. "
        "The front end shows it in an alert box.",
    ).tag(sync=True)
    _kernel = traitlets.Bool(
        True,
        help="Whether a Python kernel is behind the view. The offline HTML export sets it to false so the "
        "front end disables controls that need Python.",
    ).tag(sync=True)

    def __init_subclass__(cls, **kwargs: Any) -> None:
        # The ESM is read once per class so every instance shares one string.
        if cls.__dict__.get("_esm_name") and "_esm" not in cls.__dict__:
            cls._esm = load_esm(cls._esm_name)
        super().__init_subclass__(**kwargs)

    def __init__(self, **kwargs: Any) -> None:
        self._error_source: str | None = None
        self._update_error: tuple[str, str] | None = None
        self._restoring = False
        super().__init__(**kwargs)

    # -- data -----------------------------------------------------------------------

    def data(self) -> pd.DataFrame:
        """Return the DataFrame behind the view."""
        raise NotImplementedError(f"{type(self).__name__} must implement data().")

    def _fallback_frame(self) -> pd.DataFrame:
        """Return the frame shown where the interactive view cannot render."""
        return self.data()

    def _fallback_title(self) -> str:
        return type(self).__name__

    # -- callbacks ------------------------------------------------------------------

    def observe_guarded(self, handler: Callable[[dict], Any], names: str | list[str]) -> Callable[[dict], Any]:
        """Observe traits with ``handler`` and route its errors to ``python_error``.

        When the change comes from the front end (ipywidgets is applying a state update),
        the error is logged and shown in the widget instead of being lost in the kernel
        log. When Python code set the trait, the error is shown and also re-raised to the
        caller. Either way the trait gets its previous value back. A later successful run
        of the same handler clears the message.
        """
        guarded = self.guard(handler)
        self.observe(guarded, names=names)
        return guarded

    def _restore(self, change: Any) -> None:
        """Set a trait back to its value before ``change``, whose observer failed.

        The widget then stays consistent with what it shows (the front end gets the old
        value back), and the observer's rerun on the old value keeps the error message.
        """
        if self._restoring or not isinstance(change, Mapping) or change.get("type") != "change":
            return
        self._restoring = True
        try:
            setattr(self, change["name"], change["old"])
        except Exception:
            logger.exception("%s: restoring %s failed", type(self).__name__, change["name"])
        finally:
            self._restoring = False

    def guard(self, handler: Callable[..., Any]) -> Callable[..., Any]:
        """Wrap a callback so that its errors are logged and shown in ``python_error``."""
        source = getattr(handler, "__qualname__", repr(handler))

        @functools.wraps(handler)
        def guarded(*args: Any, **kwargs: Any) -> Any:
            try:
                result = handler(*args, **kwargs)
            except Exception as error:
                logger.exception("%s callback %s failed", type(self).__name__, source)
                self._error_source = source
                self.python_error = f"{type(error).__name__}: {error}"
                self._update_error = (source, self.python_error)
                self._restore(args[0] if args else None)
                if not self._property_lock:
                    raise
                return None
            if self._error_source == source and not self._restoring:
                self._error_source = None
                self.python_error = ""
            return result

        return guarded

    def set_state(self, sync_data: dict) -> None:
        """Apply a state update from the front end, and show a rejected value instead of losing it in the kernel log.

        A ``TraitError`` (a :class:`TraitValueError` from a validator, or a wrong type) makes
        traitlets undo the whole update. The message then goes to ``python_error``, and the
        kept values are sent back so that the controls stop showing the rejected ones.
        """
        self._update_error = None
        try:
            super().set_state(sync_data)
        except traitlets.TraitError as error:
            logger.warning("%s: front-end update %s rejected: %s", type(self).__name__, sorted(sync_data), error)
            self._error_source = "set_state"
            self.python_error = f"{type(error).__name__}: {error}"
            self.send_state(key=[name for name in sync_data if name in self.keys])
            return
        if self._update_error is not None:
            # A later observer of the same update may have succeeded and cleared the message.
            self._error_source, self.python_error = self._update_error
        elif self._error_source == "set_state":
            self._error_source = None
            self.python_error = ""

    # -- display --------------------------------------------------------------------

    def _repr_mimebundle_(self, **kwargs: Any) -> tuple[dict, dict] | None:
        bundle = super()._repr_mimebundle_(**kwargs)
        if bundle is None:
            return None
        data, metadata = bundle
        try:
            frame = self._fallback_frame()
        except Exception:
            logger.exception("%s: building the static fallback failed", type(self).__name__)
            frame = pd.DataFrame()
        data["text/plain"] = fallback_text(self._fallback_title(), frame)
        data["text/html"] = fallback_html(self._fallback_title(), frame)
        return data, metadata

    def to_html(self, path: str | Path, *, title: str | None = None, budget_mb: float = 20.0) -> int:
        """Write this widget as one self-contained offline HTML file; return its size in bytes.

        See :func:`recwidgets.export.save_html`.
        """
        from recwidgets.export.html import save_html

        return save_html(path, self, title=title or self._fallback_title(), budget_mb=budget_mb)


def fallback_text(title: str, frame: pd.DataFrame) -> str:
    """Return a plain-text rendering of ``frame`` under ``title``."""
    if frame.empty:
        return f"{title} (no data)"
    with pd.option_context("display.width", 120, "display.max_columns", 20):
        return f"{title}\n{frame.to_string(max_rows=_FALLBACK_MAX_ROWS)}"


def fallback_html(title: str, frame: pd.DataFrame) -> str:
    """Return an escaped static HTML table of ``frame`` under ``title``."""
    heading = f"<strong>{html.escape(title)}</strong>"
    note = "<em>Static view: run the notebook with a kernel for the interactive widget.</em>"
    if frame.empty:
        return f'<div class="recwidgets-fallback">{heading} (no data)<br>{note}</div>'
    # pandas escapes cell text and labels by default (escape=True).
    table = frame.to_html(max_rows=_FALLBACK_MAX_ROWS, escape=True, float_format=lambda value: f"{value:.4f}", border=0)
    return f'<div class="recwidgets-fallback">{heading}<br>{note}{table}</div>'
