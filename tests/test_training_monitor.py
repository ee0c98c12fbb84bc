"""TrainingMonitor: the fit callback protocol, rate limiting, from_history and a real SASRec fit."""

from __future__ import annotations

import threading

import numpy as np
import pandas as pd
import pytest
from ipywidgets.widgets.widget import _remove_buffers

from js.hand_results import training_events
from recwidgets.errors import ConfigError
from recwidgets.widgets import TrainingMonitor
from recwidgets.widgets.training_monitor import MAX_BATCH_POINTS


def run(monitor, events):
    for event in events:
        monitor(event)
    return monitor


def test_callback_records_run():
    monitor = run(TrainingMonitor(min_interval_s=0), training_events(n_epochs=5, n_batches=8, best_epoch=4))

    assert monitor.status == "finished"
    assert monitor.best_epoch == 4
    assert monitor.stop_reason == "max epochs"
    assert monitor.history.shape == (5, len(monitor.columns))
    assert monitor.columns[:2] == ["epoch", "train_loss"]
    np.testing.assert_array_equal(monitor.history[:, 0], [1, 2, 3, 4, 5])
    assert monitor.batch_loss.shape == (5 * 8, 2)
    assert monitor.batch_loss.dtype == np.float32
    # Step 8 of 8 in epoch 2 sits at 2.0 epochs.
    assert monitor.batch_loss[15, 0] == pytest.approx(2.0)
    assert monitor.summary == (
        "5 epochs (max epochs); best epoch 4: val_NDCG@10 0.2000, train loss 4.0000; 2.5 s of training."
    )


def test_history_sent_as_buffers():
    monitor = run(TrainingMonitor(min_interval_s=0), training_events())

    state, paths, _ = _remove_buffers(monitor.get_state())

    assert sorted(paths) == [["batch_loss", "buffer"], ["history", "buffer"]]
    assert state["history"]["dtype"] == "float64"


def test_training_data_frame():
    monitor = run(TrainingMonitor(min_interval_s=0), training_events(n_epochs=3))

    frame = monitor.training_data()

    assert list(frame["epoch"]) == [1, 2, 3]
    assert "event" not in frame.columns
    assert monitor.data().equals(frame)


def test_updates_rate_limited():
    monitor = TrainingMonitor(min_interval_s=3600)

    run(monitor, training_events(n_epochs=4)[:-1])

    # The first event is sent at once; the rest wait for the interval.
    assert monitor.n_syncs == 1
    assert monitor.status == "training"
    assert monitor.history is None or monitor.history.shape[0] < 4

    monitor({"event": "end", "best_epoch": 4, "best_value": 0.2, "stop_reason": "max epochs", "epochs_run": 4})

    assert monitor.n_syncs == 2
    assert monitor.history.shape[0] == 4
    assert monitor.status == "finished"


def test_pending_update_sent_by_timer():
    monitor = TrainingMonitor(min_interval_s=0.05)
    sent = threading.Event()
    events = training_events(n_epochs=2, n_batches=1)
    monitor(events[0])
    monitor.observe(lambda change: sent.set() if change["new"] is not None and len(change["new"]) == 2 else None, "history")

    monitor(events[1])
    monitor(events[2])
    monitor(events[3])

    assert sent.wait(timeout=30), "the timer never sent the pending update"
    assert monitor.history.shape[0] == 2
    assert monitor.n_syncs >= 2


def test_long_runs_averaged_down():
    monitor = TrainingMonitor(min_interval_s=3600)
    for step in range(1, 3 * MAX_BATCH_POINTS + 1):
        monitor({"event": "batch", "epoch": 1, "batch": step, "n_batches": 3 * MAX_BATCH_POINTS, "loss": 1.0})
    monitor.finish()

    assert monitor.batch_loss.shape == (MAX_BATCH_POINTS, 2)
    np.testing.assert_allclose(monitor.batch_loss[:, 1], 1.0)


def test_unknown_n_batches_uses_steps_seen():
    monitor = TrainingMonitor(min_interval_s=0)
    for step in (1, 2, 3, 4):
        monitor({"event": "batch", "epoch": 1, "batch": step, "n_batches": None, "loss": 2.0})

    np.testing.assert_allclose(monitor.batch_loss[:, 0], [0.25, 0.5, 0.75, 1.0])


def test_from_history():
    rows = [event for event in training_events(n_epochs=3) if event["event"] == "epoch"]
    history = pd.DataFrame(rows).drop(columns="event")

    monitor = TrainingMonitor.from_history(history, stop_reason="early stopping")

    assert monitor.status == "finished"
    assert monitor.best_epoch == 3
    assert monitor.history.shape == (3, history.shape[1])
    assert monitor.summary.startswith("3 epochs (early stopping); best epoch 3")
    assert monitor.batch_loss is None


def test_from_history_rejects_empty():
    with pytest.raises(ConfigError, match="history is empty"):
        TrainingMonitor.from_history(pd.DataFrame())


def test_from_history_needs_epoch():
    with pytest.raises(ConfigError, match="no 'epoch' column"):
        TrainingMonitor.from_history(pd.DataFrame({"loss": [1.0]}))


def test_smoothing_range_checked():
    with pytest.raises(ConfigError, match="smoothing=1.5"):
        TrainingMonitor(smoothing=1.5)


def test_min_interval_checked():
    with pytest.raises(ConfigError, match="min_interval_s=-1"):
        TrainingMonitor(min_interval_s=-1)


def test_fallback_shows_summary():
    monitor = run(TrainingMonitor(min_interval_s=0), training_events(n_epochs=2, best_epoch=2))

    data, _ = monitor._repr_mimebundle_()

    assert data["text/plain"].startswith("2 epochs (max epochs); best epoch 2")
    assert "<table" in data["text/html"]


def test_monitor_in_sasrec_fit():
    from recwidgets.data.split import leave_last_out
    from recwidgets.models.sasrec import SASRec
    from recwidgets.synthetic import synthetic_log

    split = leave_last_out(synthetic_log(120, 60, 15, seed=0), short_users="drop")
    monitor = TrainingMonitor(min_interval_s=0)
    model = SASRec(
        epochs=2, hidden=16, layers=1, heads=1, max_len=20, batch_size=64, windows="last", patience=None, seed=0
    )

    model.fit(split, callbacks=[monitor], progress=False)

    assert monitor.status == "finished"
    assert monitor.best_epoch == model.best_epoch
    assert monitor.stop_reason == model.stop_reason
    pd.testing.assert_frame_equal(monitor.training_data(), model.history, check_dtype=False)
    assert "val_NDCG@10" in monitor.columns
    assert monitor.batch_loss.shape[0] > 0

    static = TrainingMonitor.from_history(model.history, best_epoch=model.best_epoch, stop_reason=model.stop_reason)
    assert static.summary == monitor.summary


def test_failed_fit_marks_monitor_failed():
    from recwidgets.data.split import leave_last_out
    from recwidgets.models.sasrec import SASRec
    from recwidgets.synthetic import synthetic_log

    split = leave_last_out(synthetic_log(120, 60, 15, seed=0), short_users="drop")
    monitor = TrainingMonitor(min_interval_s=3600)
    model = SASRec(
        epochs=3, hidden=16, layers=1, heads=1, max_len=20, batch_size=64, windows="last", patience=None, seed=0
    )

    def interrupt(event):
        # Stands in for a kernel interrupt right after the first epoch.
        if event.get("event") == "epoch" and event["epoch"] == 1:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        model.fit(split, callbacks=[monitor, interrupt], progress=False)

    assert monitor.status == "failed"
    assert monitor.error == "KeyboardInterrupt"
    assert monitor.summary.startswith("Training failed: KeyboardInterrupt. 1 epoch; best epoch 1")
    assert monitor.history.shape[0] == 1


def test_non_finite_loss_kept_out_of_json():
    monitor = TrainingMonitor(min_interval_s=0)

    monitor({"event": "batch", "epoch": 1, "batch": 1, "n_batches": 2, "loss": float("nan")})

    assert monitor.progress["loss"] is None
    assert np.isnan(monitor.batch_loss[0, 1])


def test_finish_after_interrupted_fit():
    monitor = TrainingMonitor(min_interval_s=3600)
    run(monitor, training_events(n_epochs=3)[:-1])

    monitor.finish()

    assert monitor.status == "finished"
    assert monitor.history.shape[0] == 3
    assert monitor.summary.startswith("3 epochs; best epoch 3")
