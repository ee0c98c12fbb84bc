"""Front-end unit tests: each widget ESM in a blank Chromium page with a fake anywidget model.

Chromium runs in a persistent context with a fresh ``--user-data-dir``, driven by Python
playwright's sync API from one dedicated worker thread. The sync API raises when another
sync Playwright is active in the same thread. The browser tests in ``tests/browser`` keep
one alive in the main thread for the whole session, so a thread of our own keeps both
usable in one pytest run. :class:`ThreadBound` forwards every call to
that thread, so tests use the page as usual.
"""

from __future__ import annotations

import base64
import json
import re
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

CHROMIUM_PATH = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
ARTIFACTS_DIR = Path(__file__).resolve().parents[2] / "test-artifacts" / "js"

# The test page: a fake model with listener bookkeeping, and mount/update helpers.
HARNESS_HTML = """<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>recwidgets ESM test</title></head>
<body><div id="mount"></div>
<script>
function decodeBase64(text) {
  const binary = atob(text);
  const bytes = new Uint8Array(binary.length);
  for (let i = 0; i < binary.length; i += 1) bytes[i] = binary.charCodeAt(i);
  return bytes.buffer;
}
function putBuffers(state, paths, buffers) {
  paths.forEach((path, index) => {
    let target = state;
    for (const key of path.slice(0, -1)) target = target[key];
    target[path[path.length - 1]] = new DataView(decodeBase64(buffers[index]));
  });
  return state;
}
function makeModel(state) {
  const listeners = new Map();
  const log = { saves: 0, sent: [], sets: [] };
  const emit = (event, ...args) => { for (const cb of Array.from(listeners.get(event) || [])) cb(...args); };
  const model = {
    get(name) { return state[name]; },
    set(name, value) { state[name] = value; log.sets.push(name); emit("change:" + name, model, value); emit("change", model); },
    on(event, callback) { if (!listeners.has(event)) listeners.set(event, new Set()); listeners.get(event).add(callback); },
    off(event, callback) { if (listeners.has(event)) listeners.get(event).delete(callback); },
    save_changes() { log.saves += 1; },
    send(content) { log.sent.push(content); },
  };
  const listenerCount = () => Array.from(listeners.values()).reduce((total, set) => total + set.size, 0);
  return { model, log, listenerCount };
}
window.rwTest = {
  async mount(source, state, paths, buffers) {
    const url = URL.createObjectURL(new Blob([source], { type: "text/javascript" }));
    const module = await import(url);
    URL.revokeObjectURL(url);
    const fake = makeModel(putBuffers(state, paths, buffers));
    const el = document.getElementById("mount");
    const widget = typeof module.default === "function" ? await module.default() : module.default;
    if (widget.initialize) await widget.initialize({ model: fake.model });
    const cleanup = await widget.render({ model: fake.model, el });
    window.rwTest.current = { ...fake, el, cleanup };
    return typeof cleanup;
  },
  // Simulate the kernel changing traits: set the state and fire the change events.
  pyUpdate(changes, paths, buffers) {
    const { model } = window.rwTest.current;
    putBuffers(changes, paths, buffers);
    for (const [name, value] of Object.entries(changes)) model.set(name, value);
  },
};
</script></body></html>
"""


def _is_playwright_object(value: Any) -> bool:
    return type(value).__module__.startswith("playwright.")


class ThreadBound:
    """Proxy that runs every attribute access and call of ``target`` in one worker thread."""

    def __init__(self, target: Any, executor: ThreadPoolExecutor):
        self._target = target
        self._executor = executor

    def _wrap(self, value: Any) -> Any:
        if _is_playwright_object(value):
            return ThreadBound(value, self._executor)
        if isinstance(value, list) and value and all(_is_playwright_object(item) for item in value):
            return [ThreadBound(item, self._executor) for item in value]
        return value

    def __getattr__(self, name: str) -> Any:
        attribute = self._executor.submit(getattr, self._target, name).result()
        if not callable(attribute) or _is_playwright_object(attribute):
            return self._wrap(attribute)

        def call(*args: Any, **kwargs: Any) -> Any:
            return self._wrap(self._executor.submit(attribute, *args, **kwargs).result())

        return call


class WidgetPage:
    """A test page with helpers to mount a widget ESM on a fake model and drive it."""

    def __init__(self, page: ThreadBound):
        self.page = page
        self.dialogs: list[str] = []
        self.requests: list[str] = []
        self.console_errors: list[str] = []

    def mount(self, widget: Any) -> None:
        """Render ``widget``'s ESM with a fake model holding the widget's current state."""
        from ipywidgets.widgets.widget import _remove_buffers

        state, paths, buffers = _remove_buffers(widget.get_state())
        source = state.pop("_esm")
        encoded = [base64.b64encode(bytes(buffer)).decode("ascii") for buffer in buffers]
        kind = self.page.evaluate(
            "([source, state, paths, buffers]) => window.rwTest.mount(source, state, paths, buffers)",
            [source, state, paths, encoded],
        )
        assert kind == "function", f"render returned {kind}, expected a cleanup function"

    def py_update(self, widget: Any, *names: str) -> None:
        """Send the current values of ``names`` from ``widget`` to the page, as the kernel would."""
        from ipywidgets.widgets.widget import _remove_buffers

        state, paths, buffers = _remove_buffers(widget.get_state(list(names)))
        encoded = [base64.b64encode(bytes(buffer)).decode("ascii") for buffer in buffers]
        self.page.evaluate(
            "([changes, paths, buffers]) => window.rwTest.pyUpdate(changes, paths, buffers)", [state, paths, encoded]
        )

    def set_raw(self, changes: dict) -> None:
        """Set plain JSON trait values in the page, as the kernel would."""
        self.page.evaluate("(changes) => window.rwTest.pyUpdate(changes, [], [])", changes)

    def model_get(self, name: str) -> Any:
        return self.page.evaluate("(name) => window.rwTest.current.model.get(name)", name)

    def saves(self) -> int:
        return self.page.evaluate("() => window.rwTest.current.log.saves")

    def listener_count(self) -> int:
        return self.page.evaluate("() => window.rwTest.current.listenerCount()")

    def cleanup(self) -> None:
        self.page.evaluate("() => window.rwTest.current.cleanup()")

    def text(self, test_id: str) -> str:
        return self.page.locator(f'[data-testid="{test_id}"]').first.text_content()

    def count(self, selector: str) -> int:
        return self.page.locator(selector).count()


@pytest.fixture(scope="session")
def chromium_context():
    """One Chromium persistent context with a fresh user-data dir, owned by a worker thread."""
    from playwright.sync_api import sync_playwright

    if not Path(CHROMIUM_PATH).exists():
        pytest.fail(f"Chromium not found at {CHROMIUM_PATH}; install it with 'apt-get install chromium'.")
    executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="chromium")
    user_data = tempfile.TemporaryDirectory(prefix="recwidgets-js-")

    def start():
        playwright = sync_playwright().start()
        context = playwright.chromium.launch_persistent_context(
            user_data.name,
            executable_path=CHROMIUM_PATH,
            headless=True,
            args=CHROMIUM_ARGS,
            viewport={"width": 1000, "height": 800},
            service_workers="block",
        )
        return playwright, context

    playwright, context = executor.submit(start).result()
    yield ThreadBound(context, executor)

    def stop():
        context.close()
        playwright.stop()

    executor.submit(stop).result()
    executor.shutdown()
    user_data.cleanup()


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item, call):
    report = yield
    setattr(item, f"rep_js_{report.when}", report)
    return report


@pytest.fixture
def widget_page(chromium_context, request):
    """A blank harness page; fails the test on any network request, dialog or console error."""
    page = chromium_context.new_page()
    helper = WidgetPage(page)
    page.on("dialog", lambda dialog: (helper.dialogs.append(dialog.message), dialog.dismiss()))
    page.on("console", lambda message: helper.console_errors.append(message.text) if message.type == "error" else None)

    def block(route):
        helper.requests.append(route.request.url)
        route.abort()

    page.route(re.compile(r"^(https?|wss?|ftp):"), block)
    page.set_content(HARNESS_HTML)
    yield helper

    report = getattr(request.node, "rep_js_call", None)
    if report is not None and report.failed:
        ARTIFACTS_DIR.mkdir(parents=True, exist_ok=True)
        name = re.sub(r"[^\w.\-]+", "_", request.node.name)
        page.screenshot(path=str(ARTIFACTS_DIR / f"{name}.png"), full_page=True)
        (ARTIFACTS_DIR / f"{name}.log").write_text(
            json.dumps({"console_errors": helper.console_errors, "requests": helper.requests}, indent=2)
        )
    page.close()
    assert not helper.requests, f"the page requested the network: {helper.requests}"
    assert not helper.dialogs, f"the page opened dialogs: {helper.dialogs}"
