"""Self-test of the browser harness with a tiny anywidget defined inside the notebook."""

from __future__ import annotations

import sys

import pytest

from .harness import (
    KERNEL_NAME,
    KernelExecutionError,
    NotebookExecutionError,
    child_pids,
    is_local_url,
    monitor_for,
    open_notebook,
    pid_alive,
    port_is_free,
    save_artifacts,
    start_jupyter_server,
)

pytestmark = pytest.mark.browser

COUNTER_CELL = '''
import anywidget
import traitlets


class Counter(anywidget.AnyWidget):
    _esm = """
    /** @param {{ model: any, el: HTMLElement }} context */
    function render({ model, el }) {
      const button = document.createElement("button");
      button.dataset.testid = "harness-counter";
      const show = () => { button.textContent = `count is ${model.get("count")}`; };
      const increment = () => {
        model.set("count", model.get("count") + 1);
        model.save_changes();
      };
      button.addEventListener("click", increment);
      model.on("change:count", show);
      show();
      el.appendChild(button);
      return () => {
        model.off("change:count", show);
        button.removeEventListener("click", increment);
      };
    }
    export default { render };
    """
    count = traitlets.Int(0).tag(sync=True)


w = Counter()
w
'''

COUNTER = "[data-testid=harness-counter]"


@pytest.mark.parametrize("kind", ["lab", "notebook"])
def test_counter_widget_round_trip(jupyter_server, page, kind):
    session = open_notebook(page, jupyter_server(kind), [COUNTER_CELL], stem="counter")
    button = session.wait_for_widget(COUNTER)
    assert button.text_content() == "count is 0"

    # Browser to kernel: the click's comm message and our execute request travel on different websockets.
    button.click()
    assert session.wait_for_output("print(w.count)", "1") == "1"

    # Kernel to browser: a trait set from Python reaches the DOM.
    session.run_code("w.count = 41")
    page.wait_for_function(
        "(selector) => document.querySelector(selector).textContent === 'count is 41'", arg=COUNTER
    )
    assert button.text_content() == "count is 41"

    assert session.external_requests == []
    assert session.dialogs == []
    assert session.monitor.unexpected_console_errors() == []


def test_run_code_returns_output_and_raises(jupyter_server, page):
    session = open_notebook(page, jupyter_server("lab"), ["answer = 6 * 7"], stem="run-code")
    # The kernel runs the interpreter that runs pytest, so it imports the project's packages.
    assert session.run_code("import sys; print(sys.executable)") == sys.executable
    assert session.run_code("print(answer)") == "42"
    assert session.run_code("answer + 1") == "43"
    with pytest.raises(KernelExecutionError, match="ZeroDivisionError"):
        session.run_code("1 / 0")
    # The kernel still runs code after an error.
    assert session.run_code("print('still here')") == "still here"


def test_cell_error_fails_open_notebook(jupyter_server, page):
    with pytest.raises(NotebookExecutionError, match=r"Cell 1 .* raised NameError"):
        open_notebook(page, jupyter_server("lab"), ["x = 1", "undefined_name + x"], stem="cell-error")


def test_monitor_catches_outside_request_and_dialog(page):
    page.set_content("<p>blank</p>")
    # .invalid never resolves (RFC 2606); the route handler aborts the request before it leaves the browser.
    page.evaluate("() => fetch('http://harness-check.invalid/probe').catch(() => null)")
    page.evaluate("() => alert('harness dialog')")

    monitor = monitor_for(page)
    assert monitor.external_requests == ["http://harness-check.invalid/probe"]
    assert monitor.dialogs == ["alert: harness dialog"]

    # Cleared, so the page fixture does not fail this test for the request it made on purpose.
    monitor.external_requests.clear()


def test_save_artifacts_writes_files(page, tmp_path):
    page.set_content("<h1 id='marker'>artifact marker</h1>")
    page.evaluate("() => console.error('harness console error')")

    written = save_artifacts(page, monitor_for(page), tmp_path / "artifacts")
    assert sorted(path.name for path in written) == ["log.txt", "page.html", "screenshot.png"]
    assert "artifact marker" in (tmp_path / "artifacts" / "page.html").read_text()
    assert "harness console error" in (tmp_path / "artifacts" / "log.txt").read_text()
    assert (tmp_path / "artifacts" / "screenshot.png").stat().st_size > 0


@pytest.mark.parametrize(
    ("url", "local"),
    [
        ("http://127.0.0.1:8888/lab", True),
        ("ws://localhost:9/api/kernels", True),
        ("data:text/plain,x", True),
        ("blob:http://127.0.0.1:1/abc", True),
        ("https://cdn.jsdelivr.net/npm/vega@5", False),
        ("http://127.0.0.2/", False),
        ("wss://example.org/socket", False),
    ],
)
def test_is_local_url(url, local):
    assert is_local_url(url) is local


def test_server_stop_releases_everything():
    server = start_jupyter_server("notebook")
    try:
        # A kernel started through the REST API must end with the server.
        server.api("POST", "api/kernels", {"name": KERNEL_NAME})
        kernels = child_pids(server.pid)
        assert len(kernels) == 1
        assert port_is_free(server.port) is False
    finally:
        server.stop()

    assert server.process.poll() is not None
    assert pid_alive(kernels[0]) is False
    assert port_is_free(server.port) is True
    assert server.base_dir.exists() is False
