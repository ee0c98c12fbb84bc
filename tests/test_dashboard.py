"""Dashboard on ML-100K: linked segment -> users -> inspector selection, finding views, export state.

One module fixture trains SASRec for 1 epoch (hidden 32) and Popularity, evaluates both with
20 bootstrap resamples and builds one dashboard (about 25 s on one core).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from recwidgets.data.split import leave_last_out
from recwidgets.datasets import load
from recwidgets.diagnose.finding import Finding
from recwidgets.errors import ConfigError
from recwidgets.evaluation import evaluate
from recwidgets.models.baselines import Popularity
from recwidgets.models.sasrec import SASRec
from recwidgets.widgets.dashboard import Dashboard


@pytest.fixture(scope="module")
def setup(ml100k_dir):
    torch.manual_seed(0)
    log = load(str(ml100k_dir))
    split = leave_last_out(log)
    sasrec = SASRec(epochs=1, hidden=32).fit(split)
    popularity = Popularity().fit(split)
    results = {
        "sasrec": evaluate(sasrec, split, k=(5, 10), n_bootstrap=20),
        "popularity": evaluate(popularity, split, k=(5, 10), n_bootstrap=20),
    }
    findings = [
        Finding(
            id="weak-activity",
            severity="warning",
            title="Short histories score low",
            evidence={"model": "sasrec"},
            fix="Look at the activity breakdown.",
            view={"widget": "MetricPanel", "segment_by": "target_popularity"},
        )
    ]
    board = Dashboard(results, split=split, model=sasrec, findings=findings, max_users=12)
    return {"split": split, "sasrec": sasrec, "results": results, "board": board}


def test_segment_click_lists_its_users(setup):
    board = setup["board"]
    board.segment_by = "activity"
    label = board.weakest_segment()
    board.selected_segment = label

    segments = setup["results"]["sasrec"].segments
    expected = set(segments.loc[segments["activity"] == label, "user"].tolist())
    assert set(board.selected_users.tolist()) == expected
    assert set(board.segment_users(label).tolist()) == expected

    # The same list is in the synced arrays the front end reads offline.
    labels = [segment for group in board.segment_groups for segment in group["segments"]]
    keys = [group["key"] for group in board.segment_groups for _ in group["segments"]]
    row = next(i for i, (key, seg) in enumerate(zip(keys, labels)) if key == "activity" and seg == label)
    offsets = board.segment_offsets
    assert set(board.segment_user_ids[offsets[row] : offsets[row + 1]].tolist()) == expected

    # A breakdown switch clears the selection.
    board.segment_by = "target_popularity"
    assert board.selected_segment == ""
    assert len(board.selected_users) == 0


def test_weakest_segment_has_the_lowest_value(setup):
    board = setup["board"]
    table = board.metrics_data()
    rows = table[(table.segment_by == "activity") & (table.k == board.k) & (table.metric == board.chart_metric) & (table.model == "sasrec")]
    assert board.weakest_segment("activity") == rows.sort_values("value").iloc[0]["segment"]


def test_user_selection_fills_the_inspector(setup):
    board, split = setup["board"], setup["split"]
    # A user outside the precomputed set is computed on request.
    outside = next(int(user) for user in split.test.users if str(int(user)) not in board.user_payloads)
    board.user = outside
    payload = board.user_data
    assert payload["user"] == outside

    row = int(np.flatnonzero(split.test.users == outside)[0])
    history = np.asarray(split.test.histories[row])
    items = np.asarray(payload["items"])
    np.testing.assert_array_equal(items, history[-len(items):])
    assert len(payload["titles"]) == len(items)
    assert payload["titles"][-1] == split.log.item_titles()[int(history[-1])]

    recommended = [rec["item"] for rec in payload["recommendations"]]
    assert len(recommended) == max(board.ks)
    assert not set(recommended) & set(history.tolist())
    scores = [rec["score"] for rec in payload["recommendations"]]
    assert scores == sorted(scores, reverse=True)

    # Attention of the last position is a distribution over the history items.
    attention = np.asarray(payload["attention"])
    assert attention.shape == items.shape
    assert attention.sum() == pytest.approx(1.0, abs=1e-4)

    # SHAP of the top-1 item: one value per history item, when the module is present.
    if board.inspector_notes:
        assert "shap" not in payload
    else:
        assert np.asarray(payload["shap"]).shape == items.shape
        assert payload["shap_label"] == f"score({payload['recommendations'][0]['title']})"

    with pytest.raises(ConfigError, match="not in the test set"):
        board.user = 10**6
    board.user = -1
    assert board.user_data == {}


def test_precomputed_users_in_export(setup, tmp_path):
    board = setup["board"]
    # The precomputed users come from the weakest segment of each breakdown.
    stored = board.precomputed_users()
    assert len(stored) == 12
    weak = set(board.segment_users(board.weakest_segment("activity"), "activity").tolist())
    weak |= set(board.segment_users(board.weakest_segment("target_popularity"), "target_popularity").tolist())
    assert set(stored) <= weak

    state = board.get_state()
    assert set(state["user_payloads"]) == {str(user) for user in stored}
    frame = board.dashboard_data()
    assert set(frame.loc[frame.precomputed, "user"]) == set(stored)

    size = board.to_html(tmp_path / "dashboard.html")
    page = (tmp_path / "dashboard.html").read_text(encoding="utf-8")
    assert size > 0
    assert '"user_payloads"' in page
    assert f'"{stored[0]}"' in page


def test_finding_show_applies_its_view(setup):
    board = setup["board"]
    board.segment_by = "activity"
    key = board.findings[0]["key"]
    board.selected_finding = key
    assert board.selected_view == {"widget": "MetricPanel", "segment_by": "target_popularity"}
    assert board.segment_by == "target_popularity"

    with pytest.raises(ConfigError, match="not a finding"):
        board.selected_finding = "nope"
    assert "not a finding" in board.python_error
    board.selected_finding = ""


def test_bad_segment_shows_python_error(setup):
    board = setup["board"]
    board.segment_by = "activity"
    with pytest.raises(ConfigError, match="not a segment"):
        board.selected_segment = "Q9"
    assert "Q9" in board.python_error
    assert len(board.selected_users) == 0
    board.selected_segment = board.segment_labels()[0]
    assert board.python_error == ""


def test_without_model_uses_evaluated_top_k(setup):
    board = Dashboard(setup["results"], split=setup["split"], max_users=2, segment_by="activity")
    assert any("No model" in note for note in board.inspector_notes)
    user = board.precomputed_users()[0]
    payload = board.user_payloads[str(user)]
    result = setup["results"]["sasrec"]
    row = int(np.flatnonzero(np.asarray(result.users) == user)[0])
    assert [rec["item"] for rec in payload["recommendations"]] == [int(i) for i in result.topk[row, : max(board.ks)]]
    assert "attention" not in payload
    assert "shap" not in payload


def test_bad_arguments(setup):
    with pytest.raises(ConfigError, match="k=3"):
        Dashboard(setup["results"], split=setup["split"], k=3, max_users=0)
    with pytest.raises(ConfigError, match="segment_by"):
        Dashboard(setup["results"], split=setup["split"], segment_by="age", max_users=0)
    with pytest.raises(ConfigError, match="split"):
        Dashboard(setup["results"], split=None)


def test_static_fallback(setup):
    data, _ = setup["board"]._repr_mimebundle_()
    assert "Dashboard: sasrec, popularity" in data["text/plain"]
    assert "NDCG@10" in data["text/html"]


def test_unknown_chart_metric_restored(setup):
    board = setup["board"]
    before = board.chart_metric

    board.set_state({"chart_metric": "bogus"})

    assert board.chart_metric == before
    assert "chart_metric='bogus' is unknown" in board.python_error
