"""TrainingMonitor ESM in Chromium with a fake model: curves, live updates, slider, cleanup."""

from __future__ import annotations

from js.hand_results import training_events
from recwidgets.widgets import TrainingMonitor


def finished_monitor():
    monitor = TrainingMonitor(min_interval_s=0)
    for event in training_events(n_epochs=5, best_epoch=4):
        monitor(event)
    return monitor


def curve_names(widget_page, chart_test_id):
    curves = widget_page.page.locator(f'[data-testid="{chart_test_id}"] [data-testid="curve"]')
    return sorted(curves.nth(index).get_attribute("data-series") for index in range(curves.count()))


def test_monitor_draws_finished_run(widget_page):
    monitor = finished_monitor()
    widget_page.mount(monitor)

    assert curve_names(widget_page, "training-monitor-loss-chart") == ["step loss", "train_loss"]
    assert curve_names(widget_page, "training-monitor-validation-chart") == ["val_HR@10", "val_NDCG@10"]
    markers = widget_page.page.locator('[data-testid="best-epoch-marker"]')
    assert markers.count() == 2
    assert markers.first.get_attribute("data-epoch") == "4"
    assert widget_page.text("training-monitor-summary") == monitor.summary
    assert widget_page.text("training-monitor-status") == "Finished"
    box = widget_page.page.locator('[data-testid="training-monitor-validation-chart"]').bounding_box()
    assert box["width"] > 0
    assert box["height"] > 0


def test_monitor_shows_failed_run(widget_page):
    monitor = TrainingMonitor(min_interval_s=0, total_epochs=5)
    widget_page.mount(monitor)

    for event in training_events(n_epochs=5)[:9]:
        monitor(event)
    monitor({"event": "error", "error": "RuntimeError: CUDA out of memory", "best_epoch": 1, "epochs_run": 1})
    widget_page.py_update(monitor, "history", "columns", "batch_loss", "best_epoch", "status", "progress", "summary")

    assert widget_page.text("training-monitor-status") == "Failed"
    assert widget_page.text("training-monitor-summary").startswith("Training failed: RuntimeError: CUDA out of memory.")


def test_monitor_live_updates(widget_page):
    monitor = TrainingMonitor(min_interval_s=0, total_epochs=5)
    widget_page.mount(monitor)
    assert widget_page.count('[data-testid="chart-empty"]') == 2
    assert widget_page.text("training-monitor-status") == "Waiting for training to start"

    events = training_events(n_epochs=5)
    for event in events[:19]:  # two epochs (9 events each) and the first step of the third
        monitor(event)
    widget_page.py_update(monitor, "history", "columns", "batch_loss", "best_epoch", "status", "progress")

    assert widget_page.count('[data-testid="chart-empty"]') == 0
    points = widget_page.page.locator('[data-testid="training-monitor-loss-chart"] [data-testid="point"]')
    assert points.count() == 2
    assert widget_page.text("training-monitor-status").startswith("Training: epoch 3 of 5, step 1 of 8")


def test_monitor_smoothing_slider_debounced(widget_page):
    monitor = finished_monitor()
    widget_page.mount(monitor)
    before = widget_page.page.locator('[data-testid="curve"][data-series="step loss"]').get_attribute("points")

    # Five input events in one task: the view redraws each time, the model is set once.
    widget_page.page.evaluate(
        """() => {
            const slider = document.querySelector('[data-testid="training-monitor-smoothing"]');
            for (const value of ["0.1", "0.2", "0.3", "0.4", "0"]) {
                slider.value = value;
                slider.dispatchEvent(new Event("input"));
            }
        }"""
    )
    after = widget_page.page.locator('[data-testid="curve"][data-series="step loss"]').get_attribute("points")
    assert after != before
    assert widget_page.saves() == 0

    widget_page.page.wait_for_function("() => window.rwTest.current.model.get('smoothing') === 0")
    assert widget_page.saves() == 1


def test_monitor_cleanup_removes_listeners(widget_page):
    monitor = finished_monitor()
    widget_page.mount(monitor)
    assert widget_page.listener_count() > 0

    widget_page.cleanup()

    assert widget_page.listener_count() == 0
    widget_page.page.click('[data-testid="training-monitor-series-toggle"][data-series="val_HR@10"]')
    assert widget_page.model_get("validation_columns") == []
    assert widget_page.saves() == 0


def test_monitor_bad_buffer_shows_error(widget_page):
    monitor = finished_monitor()
    widget_page.mount(monitor)

    # Half the bytes the shape needs: readArray must reject it, and the view must show the error.
    widget_page.page.evaluate(
        """() => window.rwTest.pyUpdate({history: {dtype: "float64", shape: [5, 8], buffer: new DataView(new ArrayBuffer(160))}}, [], [])"""
    )

    box = widget_page.page.locator('[data-testid="rw-error"]')
    assert box.is_visible()
    assert "needs 320" in box.text_content()


def test_monitor_validation_toggle_sets_columns(widget_page):
    monitor = finished_monitor()
    widget_page.mount(monitor)
    toggles = widget_page.page.locator('[data-testid="training-monitor-series-toggle"]')
    assert toggles.count() == 2

    widget_page.page.click('[data-testid="training-monitor-series-toggle"][data-series="val_HR@10"]')

    assert widget_page.model_get("validation_columns") == ["val_NDCG@10"]
    assert widget_page.saves() == 1
    assert curve_names(widget_page, "training-monitor-validation-chart") == ["val_NDCG@10"]
