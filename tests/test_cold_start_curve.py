"""ColdStartCurve: precomputed arrays, selection, data frames, fallback and export, on an ML-100K curve."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
from ipywidgets.widgets.widget import _remove_buffers

from recwidgets.coldstart import coldstart_curve, coldstart_split
from recwidgets.datasets import load_ml100k
from recwidgets.errors import ConfigError
from recwidgets.export import build_html
from recwidgets.models import EASE
from recwidgets.widgets.cold_start_curve import ColdStartCurve


@pytest.fixture(scope="module")
def result(ml100k_dir):
    cold = coldstart_split(load_ml100k(ml100k_dir), user_share=0.2, seed=0)
    model = EASE().fit(cold.split)
    return coldstart_curve(model, cold, strategies=("none", "popularity", "genre"), ns=(1, 2, 5, 20), k=(5, 10), n_bootstrap=100)


@pytest.fixture
def widget(result):
    return ColdStartCurve(result)


def segment_row(widget: ColdStartCurve, key: str, label: str) -> int:
    row = 0
    for group in widget.segment_groups:
        if group["key"] == key:
            return row + group["segments"].index(label)
        row += len(group["segments"])
    raise AssertionError(f"no segment {key}={label}")


def test_curve_arrays_shape(widget, result):
    assert widget.strategies == ["none", "popularity", "genre"]
    assert widget.ns == [1, 2, 5, 20]
    assert widget.metric == "NDCG@10"
    assert [group["key"] for group in widget.segment_groups] == ["", "activity", "gender", "age"]
    n_rows = sum(len(group["segments"]) for group in widget.segment_groups)
    assert widget.values.shape == (3, 4, len(result.metrics), n_rows, 3)
    assert widget.counts.shape == (4, n_rows)
    assert widget.user_values.shape == (3, 4, len(result.metrics), result.n_cold_users)
    assert widget.user_rows.shape == (4, result.n_cold_users)
    assert widget.item_values.shape == (3, 4, 4, 3)


def test_curve_values_match_result(widget, result):
    metric = widget.metric_names.index("HR@5")
    cell = widget.values[widget.strategies.index("genre"), widget.ns.index(5), metric, 0]
    np.testing.assert_allclose(cell, [result.value("genre", 5, "HR@5"), *result.ci("genre", 5, "HR@5")])

    segments = result.segment_curve.set_index(["strategy", "n", "segment_by", "segment", "metric"])
    expected = segments.loc[("none", 2, "gender", "F", "NDCG@10"), ["value", "ci_low", "ci_high"]].to_numpy(float)
    row = segment_row(widget, "gender", "F")
    np.testing.assert_allclose(widget.values[0, 1, widget.metric_names.index("NDCG@10"), row], expected)
    assert widget.counts[1, row] == segments.loc[("none", 2, "gender", "F", "NDCG@10"), "n_users"]


def test_curve_user_values_match_per_user(widget, result):
    rows = result.per_user[(result.per_user["strategy"] == "popularity") & (result.per_user["n"] == 20)]
    column = {int(user): index for index, user in enumerate(widget.user_ids)}
    values = widget.user_values[1, 3, widget.metric_names.index("NDCG@10")]

    for user, value in zip(rows["user"], rows["NDCG@10"]):
        assert values[column[int(user)]] == pytest.approx(value, abs=1e-6)
    # Users with 20 or fewer interactions have no value at n = 20.
    assert int(np.isnan(values).sum()) == widget.skipped[3]


def test_curve_arrays_sent_as_buffers(widget):
    state, paths, _ = _remove_buffers(widget.get_state())
    names = {path[0] for path in paths}

    assert {"values", "counts", "skipped", "user_ids", "user_rows", "user_values", "item_values"} <= names
    assert state["user_values"]["dtype"] == "float32"


def test_point_selection_sets_users(widget, result):
    widget.set_state({"selected_strategy": "genre", "selected_n": 5})

    np.testing.assert_array_equal(widget.selected_users, result.users("genre", 5))
    assert widget.python_error == ""

    widget.set_state({"segment_by": "gender"})
    widget.set_state({"segment": "F"})
    women = result.segments.loc[result.segments["gender"] == "F", "user"].to_numpy()
    np.testing.assert_array_equal(widget.selected_users, np.intersect1d(result.users("genre", 5), women))

    widget.set_state({"selected_n": -1})
    assert len(widget.selected_users) == 0


def test_breakdown_change_resets_segment(widget):
    widget.segment_by = "age"

    assert widget.segment == widget.segment_labels("age")[0]
    assert widget.segment_labels("age")[0] == "under 25"


def test_bad_values_raise(widget, result):
    with pytest.raises(ConfigError, match="metric"):
        widget.metric = "NDCG@50"
    widget.selected_strategy = "none"
    with pytest.raises(ConfigError, match="selected_n=4"):
        widget.selected_n = 4
    with pytest.raises(ConfigError, match="segment"):
        widget.segment = "nobody"
    with pytest.raises(ConfigError, match="ColdStartResult"):
        ColdStartCurve(result.curve)


def test_front_end_error_reaches_python_error(widget):
    # A bad value from the front end is shown in the widget instead of raising in the kernel.
    widget.set_state({"selected_strategy": "oracle", "selected_n": 5})
    assert "selected_strategy='oracle'" in widget.python_error
    assert len(widget.selected_users) == 0

    widget.set_state({"selected_strategy": "none"})
    assert widget.python_error == ""
    assert len(widget.selected_users) > 0


def test_coldstart_data_frames(widget, result):
    frame = widget.coldstart_data()
    assert list(frame.columns) == ["strategy", "n", "metric", "value", "ci_low", "ci_high", "n_users"]
    assert len(frame) == 3 * 4 * len(result.metrics)

    with_segments = widget.coldstart_data(segments=True)
    assert {"segment_by", "segment"} <= set(with_segments.columns)
    assert set(with_segments["segment_by"]) == {"", "activity", "gender", "age"}
    assert widget.data().equals(frame)
    assert set(widget.items_data()["bucket"]) == {"0", "1-4", "5-19", "20+"}


def test_notes_count_users_left_out(widget, result):
    left_out = int(result.curve.loc[result.curve["n"] == 20, "n_skipped"].iloc[0])

    assert left_out > 0
    assert any(note.startswith(f"n = 20: {left_out} of {result.n_cold_users}") for note in widget.notes)


def test_fallback_shows_current_metric(widget, result):
    data, _ = widget._repr_mimebundle_()
    expected = f"{result.value('none', 1, 'NDCG@10'):.4f}"

    assert "ColdStartCurve: NDCG@10" in data["text/plain"]
    assert expected in data["text/plain"]
    assert expected in data["text/html"]


def test_export_embeds_state_offline(widget):
    page = build_html(widget, title="Cold start")
    state = json.loads(re.search(r'<script type="application/vnd.jupyter.widget-state\+json">(.*?)</script>', page).group(1))
    entry = next(iter(state["state"].values()))

    assert entry["state"]["_kernel"] is False
    assert {buffer["path"][0] for buffer in entry["buffers"]} >= {"values", "user_values"}
    assert "coldstart-chart" in page
