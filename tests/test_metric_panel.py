"""MetricPanel: precomputed arrays, selection, data frames, fallback and a real ML-100K result."""

from __future__ import annotations

import numpy as np
import pytest
from ipywidgets.widgets.widget import _remove_buffers

from js.hand_results import INJECTION, make_result
from recwidgets.errors import ConfigError
from recwidgets.widgets import MetricPanel


@pytest.fixture
def results():
    return {"SASRec": make_result("SASRec", seed=1), "Popularity": make_result("Popularity", seed=2)}


@pytest.fixture
def panel(results):
    return MetricPanel(results)


def test_panel_arrays_shape(panel):
    assert panel.model_names == ["SASRec", "Popularity"]
    assert panel.metric_names == ["HR", "NDCG", "Coverage"]
    assert panel.ks == [5, 10, 20]
    assert [group["key"] for group in panel.segment_groups] == ["", "activity", "target_popularity"]
    # 1 overall row + 4 quartiles + 3 popularity buckets.
    assert panel.values.shape == (2, 3, 3, 8, 3)
    assert panel.counts.tolist()[0] == [40, 10, 10, 10, 10, 14, 13, 13]
    assert panel.k == 10
    assert panel.chart_metric == "NDCG"


def test_panel_values_match_results(panel, results):
    result = results["Popularity"]
    overall = panel.values[1, panel.metric_names.index("HR"), panel.ks.index(20), 0]
    np.testing.assert_allclose(overall, result.metrics.loc["HR@20", ["value", "ci_low", "ci_high"]].to_numpy(float))

    segments = result.segment_metrics("target_popularity", k=5).set_index(["segment", "metric"])
    row = 1 + 4 + ["head", "mid", "tail"].index("tail")
    cell = panel.values[1, panel.metric_names.index("NDCG"), panel.ks.index(5), row]
    np.testing.assert_allclose(cell, segments.loc[("tail", "NDCG@5"), ["value", "ci_low", "ci_high"]].to_numpy(float))


def test_panel_values_sent_as_buffers(panel):
    state, paths, buffers = _remove_buffers(panel.get_state())

    assert sorted(paths) == [["counts", "buffer"], ["values", "buffer"]]
    assert state["values"] == {"dtype": "float64", "shape": [2, 3, 3, 8, 3]}


def test_front_end_selection_sets_users(panel):
    panel.set_state({"segment_by": "target_popularity"})
    panel.set_state({"selected_segment": "mid"})

    # Users u with (u - 1) % 3 == 1 are in the mid bucket.
    np.testing.assert_array_equal(panel.selected_users, np.arange(2, 41, 3))
    assert panel.python_error == ""


def test_selection_over_all_users(panel):
    panel.selected_segment = "All users"

    np.testing.assert_array_equal(panel.selected_users, np.arange(1, 41))


def test_selection_union_over_results():
    panel = MetricPanel([make_result("a", n_users=8), make_result("b", n_users=12)])
    panel.segment_by = "activity"

    panel.selected_segment = "Q1 (1-10)"

    np.testing.assert_array_equal(panel.selected_users, [1, 5, 9])


def test_unknown_segment_from_front_end(panel):
    panel.set_state({"segment_by": "activity"})

    panel.set_state({"selected_segment": "Q9"})

    assert "selected_segment='Q9' is not a segment of 'activity'" in panel.python_error
    assert len(panel.selected_users) == 0


def test_breakdown_change_clears_selection(panel):
    panel.segment_by = "activity"
    panel.selected_segment = "Q2 (11-20)"
    assert len(panel.selected_users) == 10

    panel.segment_by = "target_popularity"

    assert panel.selected_segment == ""
    assert len(panel.selected_users) == 0


def test_invalid_k_names_choices(panel):
    with pytest.raises(ConfigError, match=r"k=7 has no precomputed values; use one of \[5, 10, 20\]"):
        panel.k = 7


def test_invalid_breakdown_names_choices(panel):
    with pytest.raises(ConfigError, match="segment_by='genre' is unknown"):
        panel.segment_by = "genre"


def test_metrics_data_long_form(panel):
    frame = panel.metrics_data()

    assert list(frame.columns) == ["model", "segment_by", "segment", "metric", "k", "label", "value", "ci_low", "ci_high", "n_users"]
    # Overall: 2 models x 9 labels. Segments: 2 models x 7 segments x 3 k x 2 per-user metrics.
    assert (frame["segment_by"] == "").sum() == 2 * 9
    assert (frame["segment_by"] != "").sum() == 2 * 7 * 3 * 2
    assert panel.data().equals(frame)


def test_fallback_table_current_k(panel):
    panel.k = 5
    data, _ = panel._repr_mimebundle_()

    assert "NDCG@5" in data["text/html"]
    assert "NDCG@10" not in data["text/html"]
    assert "SASRec" in data["text/plain"]


def test_injected_names_escaped_in_fallback():
    panel = MetricPanel({INJECTION: make_result("x")})
    data, _ = panel._repr_mimebundle_()

    assert "<img" not in data["text/html"]
    assert "&lt;img src=x onerror=alert(1)&gt;" in data["text/html"]


def test_duplicate_model_names_numbered():
    panel = MetricPanel([make_result("pop"), make_result("pop", seed=3)])

    assert panel.model_names == ["pop", "pop #2"]


def test_card_difference_flagged():
    panel = MetricPanel([make_result("a"), make_result("b", dataset="ml-1m")])

    flagged = [row[0] for row in panel.card_rows if row[2]]
    assert flagged == ["Dataset"]
    assert any("Dataset" in note for note in panel.notes)


def test_rejects_non_results():
    with pytest.raises(ConfigError, match="without metrics, segments, card"):
        MetricPanel([object()])


def test_chart_uses_current_view(panel):
    panel.segment_by = "activity"
    panel.k = 20

    spec = panel.chart().to_dict()

    data = next(iter(spec["datasets"].values()))
    assert {row["segment"] for row in data} == {"Q1 (1-10)", "Q2 (11-20)", "Q3 (21-30)", "Q4 (31-40)"}
    assert {row["label"] for row in data} == {"NDCG@20"}


@pytest.fixture(scope="module")
def ml100k_popularity(ml100k_dir):
    from recwidgets.data.loaders import load_ml100k
    from recwidgets.data.split import leave_last_out
    from recwidgets.evaluation import evaluate
    from recwidgets.models.baselines import Popularity

    split = leave_last_out(load_ml100k(ml100k_dir))
    return evaluate(Popularity().fit(split), split, n_bootstrap=20, seed=0)


def test_panel_on_ml100k(ml100k_popularity):
    panel = MetricPanel(ml100k_popularity)

    assert panel.model_names == ["popularity"]
    assert {"NDCG", "HR", "Coverage", "ARP"} <= set(panel.metric_names)
    assert panel.counts[0, 0] == 943
    # The quartile and bucket counts each add up to the evaluated users.
    assert panel.counts[0, 1:5].sum() == 943
    assert panel.counts[0, 5:8].sum() == 943
    ndcg = panel.values[0, panel.metric_names.index("NDCG"), panel.ks.index(10), 0]
    assert ndcg[1] <= ndcg[0] <= ndcg[2]

    panel.segment_by = "target_popularity"
    panel.selected_segment = "head"
    segments = ml100k_popularity.segments
    np.testing.assert_array_equal(
        panel.selected_users, np.sort(segments.loc[segments["target_popularity"] == "head", "user"].to_numpy())
    )
