"""AttentionHeatmap on ML-100K with a real (untrained, seeded) SASRec: state, slices and export."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
import torch
from ipywidgets.widgets.widget import _remove_buffers

from recwidgets.data import leave_last_out, load_ml100k
from recwidgets.errors import ConfigError
from recwidgets.explain import attention_data, attention_weights
from recwidgets.models import SASRec, SASRecModule
from recwidgets.widgets.attention_heatmap import MEAN_HEADS, AttentionHeatmap


@pytest.fixture(scope="module")
def ml100k_split(ml100k_dir):
    return leave_last_out(load_ml100k(ml100k_dir))


@pytest.fixture(scope="module")
def sasrec(ml100k_split) -> SASRec:
    """SASRec with seeded random weights that reads up to 200 items, 2 layers of 2 heads."""
    torch.manual_seed(0)
    model = SASRec(max_len=200, hidden=16, layers=2, heads=2)
    model.module = SASRecModule(ml100k_split.log.n_items, max_len=200, hidden=16, layers=2, heads=2).eval()
    model.n_items = ml100k_split.log.n_items
    return model


@pytest.fixture(scope="module")
def long_users(ml100k_split) -> list[int]:
    """Users with at least 200 items in their test history (the model reads the last 200)."""
    lengths = np.array([len(history) for history in ml100k_split.test.histories])
    return ml100k_split.test.users[lengths >= 200][:3].tolist()


@pytest.fixture
def widget(sasrec, ml100k_split, long_users) -> AttentionHeatmap:
    return AttentionHeatmap(sasrec, ml100k_split, users=long_users)


def full_cube(model, split, user) -> np.ndarray:
    result = attention_weights(model, [user], split=split)
    length = int(result.lengths[0])
    return result.weights[0, :, :, -length:, -length:]


def test_initial_window_is_last_positions(widget, long_users):
    assert widget.user == long_users[0]
    assert widget.user_data["length"] == 200
    assert widget.matrix.shape == (50, 50)
    assert widget.matrix_key == {"user": long_users[0], "layer": 0, "head": 0, "start": 150, "size": 50}


def test_matrix_is_visible_slice(widget, sasrec, ml100k_split):
    cube = full_cube(sasrec, ml100k_split, widget.user)

    np.testing.assert_allclose(widget.matrix, cube[0, 0, 150:200, 150:200])
    np.testing.assert_allclose(widget.matrix_before, cube[0, 0, 150:200, :150].sum(axis=1), atol=1e-6)


def test_layer_head_window_update_slice(widget, sasrec, ml100k_split):
    cube = full_cube(sasrec, ml100k_split, widget.user)
    widget.layer = 1
    widget.head = MEAN_HEADS
    widget.window_size = 25
    widget.window_start = 40

    assert widget.matrix_key == {"user": widget.user, "layer": 1, "head": -1, "start": 40, "size": 25}
    np.testing.assert_allclose(widget.matrix, cube[1].mean(axis=0)[40:65, 40:65], atol=1e-7)


def test_window_start_is_clamped(widget):
    widget.window_start = 10_000
    assert widget.window_start == 150
    widget.window_start = -5
    assert widget.window_start == 0


def test_invalid_layer_and_head_rejected(widget):
    with pytest.raises(ConfigError, match="layer=2 is out of range"):
        widget.layer = 2
    with pytest.raises(ConfigError, match="head=-2 is out of range"):
        widget.head = -2
    with pytest.raises(ConfigError, match="overlay='heat'"):
        widget.overlay = "heat"


def test_bad_layer_update_keeps_slice(widget):
    key = dict(widget.matrix_key)

    # One message from the front end changes the head and requests a layer that does not exist.
    widget.set_state({"head": 1, "layer": 7})

    assert (widget.layer, widget.head) == (0, 0)
    assert widget.matrix_key == key
    assert "layer=7 is out of range" in widget.python_error


def test_unknown_user_from_front_end_restored(widget, long_users):
    key = dict(widget.matrix_key)

    widget.set_state({"user": 10**6})

    assert widget.user == long_users[0]
    assert widget.matrix_key == key
    assert "user 1000000 is not in the test set" in widget.python_error


def test_unknown_user_shows_python_error(widget):
    with pytest.raises(ConfigError, match="user 99999 is not in the test set"):
        widget.user = 99999

    assert "99999" in widget.python_error


def test_selected_users_switch_shown_user(widget, long_users):
    widget.users = [long_users[2], long_users[1]]

    assert widget.user == long_users[2]
    assert widget.user_data["user"] == long_users[2]
    assert widget.matrix_key["user"] == long_users[2]
    assert widget.pinned == -1


def test_short_history_window(sasrec, ml100k_split):
    lengths = np.array([len(history) for history in ml100k_split.test.histories])
    user = int(ml100k_split.test.users[np.flatnonzero((lengths > 20) & (lengths < 40))[0]])
    widget = AttentionHeatmap(sasrec, ml100k_split, user=user)
    length = int(lengths[ml100k_split.test.users == user][0])

    assert widget.user_data["length"] == length
    assert widget.user_data["truncated"] == 0
    assert widget.matrix.shape == (length, length)
    assert widget.matrix_key["start"] == 0


def test_user_metadata_matches_log(widget, ml100k_split):
    payload = widget.user_data
    history = ml100k_split.test.histories[int(np.flatnonzero(ml100k_split.test.users == widget.user)[0])]
    frame = ml100k_split.log.interactions
    stamps = frame.loc[frame["user"] == widget.user, "timestamp"].to_numpy()[: len(history)]
    titles = ml100k_split.log.item_titles()

    np.testing.assert_array_equal(payload["items"], history[-200:])
    np.testing.assert_array_equal(payload["timestamps"], stamps[-200:])
    assert payload["titles"][-1] == titles[history[-1]]
    assert payload["truncated"] == len(history) - 200
    np.testing.assert_array_equal(payload["popularity"], ml100k_split.train_popularity()[history[-200:]])
    assert payload["last_rows"].shape == (2, 2, 200)


def test_recommendations_exclude_history(widget, ml100k_split):
    history = set(widget.user_data["items"].tolist())
    recommended = [entry["item"] for entry in widget.user_data["recommendations"]]

    assert len(recommended) == 10
    assert not history & set(recommended)
    widget.k = 3
    assert len(widget.user_data["recommendations"]) == 3


def test_attention_data_matches_explain(widget, sasrec, ml100k_split):
    frame = widget.attention_data()
    expected = attention_data(sasrec, [widget.user], split=ml100k_split)

    assert len(frame) == 2 * 2 * 200 * 200
    np.testing.assert_allclose(frame["weight"], expected["weight"])
    titles = ml100k_split.log.item_titles()
    assert frame["title"].iloc[0] == titles[int(frame["item"].iloc[0])]


def test_data_is_last_row_sorted(widget):
    frame = widget.data()

    assert len(frame) == 200
    assert frame["weight"].sum() == pytest.approx(1.0, abs=1e-5)
    assert frame["weight"].is_monotonic_decreasing


def test_arrays_travel_as_buffers(widget):
    state, paths, buffers = _remove_buffers(widget.get_state())
    flat = {tuple(path) for path in paths}

    assert ("matrix", "buffer") in flat
    assert ("user_data", "last_rows", "buffer") in flat
    assert ("user_data", "items", "buffer") in flat
    assert sum(len(buffer) for buffer in buffers) < 100_000
    json.dumps(state)


def test_precompute_holds_full_cubes(widget, sasrec, ml100k_split, long_users):
    widget.precompute()

    assert [entry["user"] for entry in widget.precomputed] == long_users
    for entry in widget.precomputed:
        np.testing.assert_allclose(entry["cube"], full_cube(sasrec, ml100k_split, entry["user"]))
    with pytest.raises(ConfigError, match="too many to precompute"):
        widget.precompute(ml100k_split.test.users[:30])


def test_to_html_embeds_precomputed_state(widget, tmp_path, long_users):
    path = tmp_path / "attention.html"
    size = widget.to_html(path)
    text = path.read_text(encoding="utf-8")

    assert size == path.stat().st_size
    assert "application/vnd.jupyter.widget-state+json" in text
    assert re.search(r"<script[^>]+src=", text) is None
    assert len(widget.precomputed) == len(long_users)
    # Three 200-item users x 4 heads x 200 x 200 float32, base64-encoded.
    assert size > 3 * 4 * 200 * 200 * 4


def test_fallback_bundle_has_table(widget):
    data, _ = widget._repr_mimebundle_()

    assert "AttentionHeatmap" in data["text/plain"]
    assert "<table" in data["text/html"]


def test_model_without_attention_rejected(ml100k_split):
    class ScoresOnly:
        name, n_items, max_len, device = "scores-only", 5, 4, torch.device("cpu")

        def score(self, histories):
            return torch.zeros(histories.shape[0], 6)

    with pytest.raises(ConfigError, match="ScoresOnly has no attention"):
        AttentionHeatmap(ScoresOnly(), ml100k_split)
