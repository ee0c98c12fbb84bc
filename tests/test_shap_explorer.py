"""ShapExplorer on ML-100K with a real (untrained, seeded) SASRec: state, recomputation, contrast, export."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
import torch
from ipywidgets.widgets.widget import _remove_buffers

from recwidgets.data import leave_last_out, load_ml100k
from recwidgets.errors import ConfigError
from recwidgets.models import SASRec, SASRecModule
from recwidgets.models.base import pad_histories
from recwidgets.widgets.shap_explorer import ShapExplorer

MAX_LEN = 12  # 12 players: the widget's default explainer enumerates coalitions exactly


@pytest.fixture(scope="module")
def ml100k_split(ml100k_dir):
    return leave_last_out(load_ml100k(ml100k_dir))


@pytest.fixture(scope="module")
def sasrec(ml100k_split) -> SASRec:
    """SASRec with seeded random weights that reads the last 12 items."""
    torch.manual_seed(0)
    model = SASRec(max_len=MAX_LEN, hidden=16, layers=2, heads=2)
    model.module = SASRecModule(ml100k_split.log.n_items, max_len=MAX_LEN, hidden=16, layers=2, heads=2).eval()
    model.n_items = ml100k_split.log.n_items
    return model


@pytest.fixture(scope="module")
def users(ml100k_split) -> list[int]:
    return ml100k_split.test.users[:3].tolist()


@pytest.fixture
def widget(sasrec, ml100k_split, users) -> ShapExplorer:
    return ShapExplorer(sasrec, ml100k_split, users=users, k=5)


def history_of(split, user: int) -> np.ndarray:
    row = int(np.flatnonzero(split.test.users == user)[0])
    return split.test.histories[row]


def score(model, history, item: int) -> float:
    return float(model.score(pad_histories([history], model.max_len))[0, item])


def test_initial_state_explains_top1(widget, sasrec, ml100k_split, users):
    result = widget.result
    history = history_of(ml100k_split, users[0])

    assert widget.user == users[0]
    assert len(widget.recommendations) == 5
    assert widget.target == widget.recommendations[0]["item"]
    assert result["target"] == widget.target
    assert result["method"] == "exact"
    np.testing.assert_array_equal(result["items"], history[-MAX_LEN:])
    assert list(result["positions"]) == list(range(-MAX_LEN, 0))
    assert result["titles"][-1] == ml100k_split.log.item_titles()[history[-1]]
    assert result["base_value"] + result["values"].sum() == pytest.approx(score(sasrec, history, widget.target), abs=1e-4)


def test_switching_target_recomputes(widget, sasrec, ml100k_split, users):
    second = widget.recommendations[1]["item"]
    widget.target = second

    assert widget.result["target"] == second
    history = history_of(ml100k_split, users[0])
    assert widget.result["explained_output"] == pytest.approx(score(sasrec, history, second), abs=1e-4)
    frame = widget.shap_data()
    assert set(frame["target"]) == {widget.recommendations[0]["item"], second}
    for column in ("user", "target", "position", "item", "title", "attribution", "base_value"):
        assert column in frame.columns


def test_contrast_is_difference_of_targets(widget):
    first, second = widget.recommendations[0]["item"], widget.recommendations[2]["item"]
    single_a = widget.explain(target=first, versus=0)
    single_b = widget.explain(target=second, versus=0)

    widget.target = first
    widget.versus = second
    result = widget.result
    assert result["versus"] == second
    np.testing.assert_allclose(result["values"], single_a.values - single_b.values, atol=1e-9)
    assert result["label"].count("score(") == 2


def test_switching_user_resets_target(widget, users):
    widget.versus = widget.recommendations[1]["item"]
    widget.user = users[1]

    assert widget.result["user"] == users[1]
    assert widget.versus == 0
    assert widget.target == widget.recommendations[0]["item"]
    assert widget.status == ""


def test_invalid_selections_raise(widget):
    with pytest.raises(ConfigError, match="target=99999 is not an item id"):
        widget.target = 99999
    with pytest.raises(ConfigError, match="equals the target"):
        widget.versus = widget.target
    with pytest.raises(ConfigError, match="view='pie'"):
        widget.view = "pie"
    with pytest.raises(ConfigError, match="user 99999 is not in the test set"):
        widget.user = 99999
    assert "99999" in widget.python_error


def test_front_end_error_shows_in_widget(widget):
    target = widget.target
    # An update from the browser with a valid target and an invalid contrast: both are rolled back.
    widget.set_state({"target": widget.recommendations[1]["item"], "versus": widget.recommendations[1]["item"]})

    assert "equals the target" in widget.python_error
    assert widget.target == target
    assert widget.versus == 0


def test_arrays_travel_as_buffers(widget):
    state, paths, buffers = _remove_buffers(widget.get_state())
    flat = {tuple(path) for path in paths}

    assert ("result", "values", "buffer") in flat
    assert ("result", "items", "buffer") in flat
    json.dumps(state)


def test_precompute_stores_top_targets(widget, users):
    widget.precompute(n_targets=2)

    assert [entry["user"] for entry in widget.precomputed] == users
    for entry in widget.precomputed:
        targets = [explanation["target"] for explanation in entry["explanations"]]
        assert targets == [item["item"] for item in entry["recommendations"][:2]]
        for explanation in entry["explanations"]:
            total = explanation["base_value"] + explanation["values"].sum()
            assert total == pytest.approx(explanation["explained_output"], abs=1e-6)
    with pytest.raises(ConfigError, match="too many to precompute"):
        widget.precompute(list(range(1, 30)))


def test_summary_over_users(widget, users):
    widget.summary_request += 1

    summary = widget.summary
    assert summary["n_users"] == len(users)
    kinds = {row["kind"] for row in summary["rows"]}
    assert kinds == {"genre", "position", "popularity"}
    frame = widget.summary_data()
    assert frame.loc[frame["kind"] == "position", "n"].sum() == len(users) * MAX_LEN


def test_to_html_embeds_precomputed_state(widget, tmp_path):
    path = tmp_path / "shap.html"
    size = widget.to_html(path, n_targets=2)
    text = path.read_text(encoding="utf-8")

    assert size == path.stat().st_size
    assert "application/vnd.jupyter.widget-state+json" in text
    assert re.search(r"<script[^>]+src=", text) is None
    assert len(widget.precomputed) == 3


def test_fallback_bundle_has_table(widget):
    data, _ = widget._repr_mimebundle_()

    assert "ShapExplorer: user" in data["text/plain"]
    assert "<table" in data["text/html"]
    assert widget.data()["attribution"].abs().is_monotonic_decreasing


def test_long_history_uses_sampling(ml100k_split):
    torch.manual_seed(0)
    model = SASRec(max_len=30, hidden=16, layers=1, heads=1)
    model.module = SASRecModule(ml100k_split.log.n_items, max_len=30, hidden=16, layers=1, heads=1).eval()
    model.n_items = ml100k_split.log.n_items
    lengths = np.array([len(history) for history in ml100k_split.test.histories])
    user = int(ml100k_split.test.users[lengths >= 30][0])
    widget = ShapExplorer(model, ml100k_split, users=[user], explainer_options={"max_evals": 5_000})

    result = widget.result
    assert result["method"] == "kernel"
    assert result["n_evals"] <= 5_000 + 1
    assert len(result["values"]) == 30
    assert result["base_value"] + result["values"].sum() == pytest.approx(result["explained_output"], abs=1e-6)
