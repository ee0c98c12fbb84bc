"""The widget runtime: binary array traits, guarded callbacks, static fallbacks and ESM loading."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
import torch
import traitlets
from ipywidgets.widgets.widget import _remove_buffers

from js.hand_results import INJECTION, make_result
from recwidgets.errors import ConfigError
from recwidgets.widgets import ArrayTrait, MetricPanel, RecWidget, TrainingMonitor, load_esm
from recwidgets.widgets.base import TraitValueError, js_dir, validator, wire_array


class Probe(RecWidget):
    """A minimal widget with an array trait and a guarded callback that fails on demand."""

    tensor = ArrayTrait(help="Test array.").tag(sync=True)
    trigger = traitlets.Unicode("", help="Setting 'fail' makes the callback raise.").tag(sync=True)

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.seen = []
        self.observe_guarded(self._on_trigger, names=["trigger"])

    def _on_trigger(self, change):
        if change["new"] == "fail":
            raise ConfigError("trigger='fail' is invalid; pass any other text.")
        self.seen.append(change["new"])

    def data(self):
        import pandas as pd

        return pd.DataFrame({"name": [INJECTION], "value": [1.0]})


class Checked(Probe):
    """Two synced traits, one of them validated, so a front-end update can mix a good and a bad value."""

    k = traitlets.Int(10, help="A cutoff that must be at least 1.").tag(sync=True)
    label = traitlets.Unicode("a", help="Free text.").tag(sync=True)

    @validator("k")
    def _validate_k(self, proposal):
        if proposal["value"] < 1:
            raise ConfigError(f"k={proposal['value']} is invalid; pass an int >= 1.")
        return proposal["value"]


def float_lists(value):
    """Yield every list in a JSON-like value that contains a float."""
    if isinstance(value, dict):
        for item in value.values():
            yield from float_lists(item)
    elif isinstance(value, list):
        if any(isinstance(item, float) for item in value):
            yield value
        for item in value:
            yield from float_lists(item)


def test_tensor_crosses_as_binary_buffer():
    tensor = torch.rand(2, 2, 200, 200, dtype=torch.float32)
    widget = Probe(tensor=tensor)

    state, paths, buffers = _remove_buffers(widget.get_state())

    assert paths == [["tensor", "buffer"]]
    assert len(buffers) == 1
    assert memoryview(buffers[0]).nbytes == 2 * 2 * 200 * 200 * 4
    assert state["tensor"] == {"dtype": "float32", "shape": [2, 2, 200, 200]}
    assert list(float_lists(state)) == []
    # Everything but the ESM text is small JSON: the values never enter it.
    state.pop("_esm")
    assert len(json.dumps(state)) < 2000
    decoded = np.frombuffer(bytes(buffers[0]), dtype="<f4").reshape(2, 2, 200, 200)
    np.testing.assert_array_equal(decoded, tensor.numpy())


def test_comm_message_carries_buffer():
    widget = Probe(tensor=np.arange(12, dtype=np.float64).reshape(3, 4))
    sent = []
    widget._send = lambda message, buffers=None: sent.append((message, buffers))

    widget.send_state("tensor")

    message, buffers = sent[0]
    assert message["method"] == "update"
    assert message["buffer_paths"] == [["tensor", "buffer"]]
    assert message["state"]["tensor"] == {"dtype": "float64", "shape": [3, 4]}
    assert memoryview(buffers[0]).nbytes == 12 * 8


def test_front_end_array_round_trip():
    widget = Probe()
    values = np.array([[1.5, -2.0], [0.25, 8.0]], dtype=np.float32)

    widget.set_state({"tensor": {"dtype": "float32", "shape": [2, 2], "buffer": memoryview(values.tobytes())}})

    np.testing.assert_array_equal(widget.tensor, values)
    assert not widget.tensor.flags.writeable


@pytest.mark.parametrize(
    ("values", "dtype"),
    [
        (np.array([True, False]), "uint8"),
        (np.array([1, 2], dtype=np.int64), "int32"),
        (np.array([2**40, 1], dtype=np.int64), "float64"),
        (np.array([1.0], dtype=np.float16), "float32"),
        (torch.tensor([1, 2]), "int32"),
    ],
)
def test_wire_array_dtypes(values, dtype):
    assert wire_array(values).dtype.name == dtype


def test_wire_array_rejects_unexact_integers():
    with pytest.raises(ConfigError, match=r"2\*\*53"):
        wire_array(np.array([2**60], dtype=np.int64))


def test_wire_array_rejects_complex():
    with pytest.raises(ConfigError, match="complex128"):
        Probe(tensor=np.array([1 + 2j]))


def test_front_end_callback_error_sets_python_error(caplog):
    widget = Probe()

    widget.set_state({"trigger": "fail"})

    assert widget.python_error == "ConfigError: trigger='fail' is invalid; pass any other text."
    assert "Probe callback" in caplog.text
    # The failed value is taken back, and the callback reran on the old one.
    assert widget.trigger == ""
    assert widget.seen == [""]

    widget.set_state({"trigger": "ok"})
    assert widget.python_error == ""
    assert widget.seen == ["", "ok"]


def test_rejected_update_rolls_back(caplog):
    widget = Checked()
    sent = []
    widget.send_state = lambda key=None: sent.append([key] if isinstance(key, str) else sorted(key))

    widget.set_state({"label": "b", "k": 0})

    # The whole update is undone, not just the invalid key.
    assert (widget.k, widget.label) == (10, "a")
    assert widget.python_error == "TraitValueError: k=0 is invalid; pass an int >= 1."
    assert sent == [["python_error"], ["k", "label"]]
    assert "front-end update ['k', 'label'] rejected" in caplog.text

    widget.set_state({"k": 5})
    assert widget.k == 5
    assert widget.python_error == ""


def test_wrong_type_from_front_end_shown():
    widget = Checked()
    widget.send_state = lambda key=None: None

    widget.set_state({"k": "ten"})

    assert widget.k == 10
    assert widget.python_error.startswith("TraitError: The 'k' trait of a Checked instance expected an int")


def test_invalid_value_raises_config_error():
    widget = Checked()

    with pytest.raises(ConfigError, match="k=-1 is invalid") as raised:
        widget.k = -1

    assert isinstance(raised.value, TraitValueError)
    assert widget.k == 10


def test_python_callback_error_raises_and_shows():
    widget = Probe()

    with pytest.raises(ConfigError, match="trigger='fail'"):
        widget.trigger = "fail"

    assert widget.python_error.startswith("ConfigError:")
    assert widget.trigger == ""


def test_mimebundle_has_escaped_fallback():
    data, _ = Probe()._repr_mimebundle_()

    assert "application/vnd.jupyter.widget-view+json" in data
    assert "&lt;/script&gt;&lt;img src=x onerror=alert(1)&gt;" in data["text/html"]
    assert "<img" not in data["text/html"]
    assert "</script>" not in data["text/html"]
    assert INJECTION in data["text/plain"]


def test_load_esm_inlines_runtime():
    source = load_esm("training_monitor")

    assert "function readArray" in source
    assert re.search(r"^import ", source, re.MULTILINE) is None
    assert source.count("export default") == 1


def test_load_esm_unknown_name():
    with pytest.raises(ConfigError, match="metric_panel"):
        load_esm("no_such_widget")


def test_widget_esm_never_imports_network():
    for path in js_dir().glob("*.js"):
        text = path.read_text(encoding="utf-8")
        assert re.search(r"""(from|import)\s*\(?\s*["'](https?:)?//""", text) is None, path.name


@pytest.mark.parametrize("cls", [MetricPanel, TrainingMonitor, RecWidget])
def test_synced_traits_documented(cls):
    ours = {name for klass in cls.__mro__ if isinstance(klass, type) and issubclass(klass, RecWidget) for name in vars(klass)}
    undocumented = [
        name for name, trait in cls.class_traits(sync=True).items() if name in ours and not trait.help
    ]
    assert undocumented == []


def test_metric_panel_shares_class_esm():
    first = MetricPanel(make_result("a"))
    second = MetricPanel(make_result("b"))

    assert first._esm is second._esm
