"""OnlineUpdatePanel in Python: background updates, progress, control bursts, front-end messages, undo.

The model is the small first-order model of ``recwidgets.online.markov`` on the ML-100K stream
after the 0.9 timestamp quantile, so every update takes a fraction of a second.
"""

from __future__ import annotations

import threading

import numpy as np
import pytest
import torch

from recwidgets.data import load_ml100k
from recwidgets.errors import ConfigError
from recwidgets.online import FirstOrderModel, OnlineUpdater, online_logs
from recwidgets.widgets.online_update_panel import HISTORY_COLUMNS, OnlineUpdatePanel


@pytest.fixture(scope="module")
def logs(ml100k_dir):
    return online_logs(load_ml100k(ml100k_dir), 0.9)


@pytest.fixture
def updater(logs):
    model = FirstOrderModel(logs.pre_cutoff.n_items, logs.pre_cutoff.n_users, hidden=8, seed=0)
    return OnlineUpdater(
        model,
        logs.stream,
        cutoff=logs.cutoff,
        window=1000,
        steps=3,
        lr=1e-2,
        max_eval_cases=200,
        forgetting_users=100,
        n_movers=5,
    )


@pytest.fixture
def panel(updater):
    return OnlineUpdatePanel(updater)


def front_end_update(panel, **state):
    """Deliver a trait update as the comm does for a change made in the page."""
    panel._handle_msg({"content": {"data": {"method": "update", "state": state}}, "buffers": []})


def front_end_message(panel, content):
    """Deliver a custom message as the comm does for a button press in the page."""
    panel._handle_msg({"content": {"data": {"method": "custom", "content": content}}, "buffers": []})


def gate_updates(updater):
    """Make the updater's apply wait for the returned event, so a test can act while an update runs."""
    gate = threading.Event()
    started = threading.Event()
    apply = updater.apply

    def gated(**settings):
        started.set()
        assert gate.wait(60), "the test never released the update"
        return apply(**settings)

    updater.apply = gated
    return gate, started


def test_panel_starts_from_updater_defaults(panel, updater):
    assert panel.lr == updater.defaults.lr
    assert panel.steps == 3
    assert (panel.window_size, panel.window_unit) == (1000, "interactions")
    assert panel.replay == 0.0
    assert panel.optimizer_state == "fresh"
    assert panel.sparse is False
    assert panel.k == 10
    assert panel.can_apply is True
    assert panel.next_window.startswith("Next window (1000 interactions)")
    assert panel.cards == []
    assert panel.history.shape == (0, len(HISTORY_COLUMNS))
    assert panel.busy is False


def test_apply_fills_cards_history_and_movers(panel, updater):
    record = panel.apply(wait=True)

    assert panel.busy is False
    assert panel.progress == 1.0
    assert panel.running == {
        "update": 1,
        "lr": 0.01,
        "steps": 3,
        "window": "1000 interactions",
        "replay": 0.0,
        "optimizer_state": "fresh",
    }
    cards = {card["key"]: card for card in panel.cards}
    assert cards["plasticity_NDCG@10"]["after"] == record.plasticity_after["NDCG@10"]
    assert cards["plasticity_NDCG@10"]["before"] == record.plasticity_before["NDCG@10"]
    assert cards["forgetting_HR@10"]["original"] == record.forgetting_original["HR@10"]
    assert panel.history.shape == (1, len(HISTORY_COLUMNS))
    assert panel.history[0, HISTORY_COLUMNS.index("lr")] == 0.01
    assert panel.history_status == ["pending"]
    assert panel.n_pending == 1
    assert len(panel.movers) == 5
    titles = updater.log.item_titles()
    first = panel.movers[0]
    assert first["user"] == int(record.movers["user"].iloc[0])
    assert first["after"] == [titles[item] for item in record.movers["after"].iloc[0][:5]]
    assert "Update 1 applied" in panel.status


def test_update_runs_in_background(panel, updater):
    gate, started = gate_updates(updater)
    panel.apply()
    assert started.wait(60)

    assert panel.busy is True
    with pytest.raises(ConfigError, match="already running"):
        panel.apply()
    with pytest.raises(ConfigError, match="running"):
        panel.undo()

    gate.set()
    panel.wait(60)
    assert panel.busy is False
    assert panel.n_pending == 1


def test_control_burst_during_update(panel, updater):
    gate, started = gate_updates(updater)
    front_end_update(panel, lr=0.005)
    front_end_message(panel, {"action": "apply", "settings": {"lr": 0.005, "steps": 2}})
    assert started.wait(60)

    # A burst of slider moves while the update runs: the last values win, the running update keeps its own.
    for value in (0.02, 0.03, 0.04):
        front_end_update(panel, lr=value)
    front_end_update(panel, replay=0.3, steps=7)
    gate.set()
    record = panel.wait(60)

    assert (record.settings.lr, record.settings.steps, record.settings.replay) == (0.005, 2, 0.0)
    assert panel.running["lr"] == 0.005
    assert panel.running["steps"] == 2
    assert (panel.lr, panel.steps, panel.replay) == (0.04, 7, 0.3)

    # The next apply takes the values the controls ended with.
    second = panel.apply(wait=True)
    assert (second.settings.lr, second.settings.steps, second.settings.replay) == (0.04, 7, 0.3)


def test_window_size_updates_next_window(panel):
    front_end_update(panel, window_size=250)

    assert panel.next_window.startswith("Next window (250 interactions)")
    assert panel.next_window.endswith(", 250 interactions.")


def test_progress_rises_to_done(updater):
    panel = OnlineUpdatePanel(updater, progress_interval_s=0)
    values = []
    panel.observe(lambda change: values.append(change["new"]), names="progress")

    panel.apply(wait=True)

    # Tables grown (0.2), training steps 1 to 3 (0.25 to 0.8, the last equal to the start of the
    # second measurement), done.
    assert values == pytest.approx([0.2, 0.25 + 0.55 / 3, 0.25 + 0.55 * 2 / 3, 0.8, 1.0])


def test_undo_brings_back_previous_cards(panel, updater):
    panel.apply(wait=True)
    panel.commit()
    committed_cards = panel.cards
    panel.apply(wait=True, lr=0.05)
    assert panel.cards != committed_cards

    front_end_message(panel, {"action": "undo"})

    assert panel.cards == committed_cards
    assert panel.history_status == ["committed", "undone"]
    assert panel.n_pending == 0
    assert panel.depth == 1
    assert "undone" in panel.status


def test_reset_from_front_end(panel, updater):
    original = {name: tensor.clone() for name, tensor in updater.trainable.module.state_dict().items()}
    panel.apply(wait=True)
    panel.commit()

    front_end_message(panel, {"action": "reset"})

    assert panel.depth == 0
    assert panel.cards == []
    for name, tensor in updater.trainable.module.state_dict().items():
        assert torch.equal(tensor, original[name]), name


def test_failed_update_shows_error(panel, updater):
    def broken(**settings):
        raise RuntimeError("simulated failure")

    updater.apply = broken
    panel.apply()

    with pytest.raises(RuntimeError, match="simulated failure"):
        panel.wait(60)
    assert panel.busy is False
    assert "simulated failure" in panel.python_error
    assert panel.history_status == []


def test_messages_acknowledged(panel):
    sent = []
    panel.send = lambda content, buffers=None: sent.append(content)

    front_end_message(panel, {"action": "explode"})
    assert "unknown panel action 'explode'" in panel.python_error
    front_end_message(panel, {"action": "commit"})

    assert panel.python_error == ""  # a successful message clears the error
    assert sent == [{"event": "handled", "action": "explode"}, {"event": "handled", "action": "commit"}]


def test_selected_user_from_movers(panel):
    panel.apply(wait=True)
    seen = []
    panel.observe(lambda change: seen.append(change["new"]), names="selected_user")

    user = panel.movers[2]["user"]
    front_end_update(panel, selected_user=user)

    assert panel.selected_user == user
    assert seen == [user]
    history = panel.selected_history()
    assert history.tolist() == panel.updater.stream.history(user, panel.updater.position).tolist()
    assert len(history) > 0


@pytest.mark.parametrize(
    ("name", "value"), [("lr", -0.1), ("steps", -1), ("window_size", 0), ("replay", 0.95), ("optimizer_state", "warm")]
)
def test_invalid_control_values_raise(panel, name, value):
    with pytest.raises(ConfigError, match=name):
        setattr(panel, name, value)


@pytest.mark.parametrize(
    ("state", "message"),
    [
        ({"steps": 10**9}, "above the slider's maximum steps_max"),
        ({"lr": 1e9}, "outside the slider's range"),
        ({"busy": True}, "busy is set by the kernel"),
    ],
)
def test_front_end_values_beyond_sliders_rejected(panel, state, message):
    before = {name: getattr(panel, name) for name in state}

    panel.set_state(state)

    assert {name: getattr(panel, name) for name in state} == before
    assert message in panel.python_error


def test_rounded_slider_end_accepted(panel):
    # The log slider rounds to 3 significant digits, so its end can be up to 0.5% past lr_max.
    value = panel.lr_max * 1.004

    panel.set_state({"lr": value})

    assert panel.lr == value
    assert panel.python_error == ""


def test_exhausted_stream_disables_apply(logs):
    model = FirstOrderModel(logs.pre_cutoff.n_items, logs.pre_cutoff.n_users, seed=0)
    updater = OnlineUpdater(model, logs.stream, cutoff=logs.cutoff, window=len(logs.stream), steps=1, forgetting_users=50)
    panel = OnlineUpdatePanel(updater)

    panel.apply(wait=True)

    assert panel.can_apply is False
    assert "exhausted" in panel.next_window
    with pytest.raises(ConfigError, match="exhausted"):
        panel.apply()


def test_static_fallback_lists_history(panel):
    panel.apply(wait=True)
    panel.commit()
    panel.apply(wait=True)
    panel.undo()

    data, _ = panel._repr_mimebundle_()

    assert "committed" in data["text/plain"]
    assert "undone" in data["text/plain"]
    assert "plasticity_NDCG@10_after" in data["text/html"]
    assert list(panel.data()["status"]) == ["committed", "undone"]


def test_export_keeps_history(panel, tmp_path):
    panel.apply(wait=True)
    path = tmp_path / "online.html"

    size = panel.to_html(path)

    text = path.read_text()
    assert size == len(text.encode())
    assert '"_kernel":false' in text
    assert "Next window NDCG@10" in text
    assert np.isfinite(panel.history).any()
