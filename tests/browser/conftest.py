"""Fixtures for browser tests: Jupyter servers, one Chromium per session, and a monitored page per test.

A test requests ``jupyter_server`` (a factory: ``jupyter_server("lab")`` or ``jupyter_server("notebook")``, each
started once per session) and ``page``, then calls :func:`harness.open_notebook`. After each test, the ``page``
fixture shuts down the kernels the test opened, saves a screenshot, the HTML and a log into
``test-artifacts/<module>.<test>/`` when the test failed, and fails the test if the page requested anything outside
127.0.0.1 or localhost.
"""

from __future__ import annotations

import logging
import re
import time
from pathlib import Path

import pytest

from . import harness

logger = logging.getLogger(__name__)

ARTIFACTS_DIR = Path(__file__).resolve().parents[2] / "test-artifacts"

VIEWPORT = {"width": 1400, "height": 1000}


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item, call):
    """Keep each phase's report on the test item, so fixtures can tell in teardown whether the test failed."""
    report = yield
    setattr(item, f"rep_{report.when}", report)
    return report


def pytest_collection_modifyitems(items):
    """Mark every test in this folder as a browser test, so ``-m 'not browser'`` skips them all."""
    browser_folder = Path(__file__).parent
    for item in items:
        if Path(str(item.fspath)).parent == browser_folder:
            item.add_marker(pytest.mark.browser)


def artifact_dir(node) -> Path:
    """Return ``test-artifacts/<module>.<test name>`` for a test node, with unsafe characters replaced."""
    module = Path(str(node.fspath)).stem
    return ARTIFACTS_DIR / re.sub(r"[^\w.\-]+", "_", f"{module}.{node.name}").strip("_")


class JupyterServers:
    """Session-wide Jupyter servers, started on first use and stopped at session end."""

    def __init__(self) -> None:
        self.started: dict[str, harness.JupyterServer] = {}

    def __call__(self, kind: harness.ServerKind) -> harness.JupyterServer:
        server = self.started.get(kind)
        if server is None or server.process.poll() is not None:
            start = time.perf_counter()
            server = harness.start_jupyter_server(kind)
            logger.info("jupyter %s server ready after %.1f s", kind, time.perf_counter() - start)
            self.started[kind] = server
        return server

    def stop_all(self) -> None:
        for server in self.started.values():
            server.stop()
        self.started.clear()


@pytest.fixture(scope="session")
def jupyter_server():
    """Factory for session-scoped servers: ``jupyter_server("lab")`` (JupyterLab 4) or ``("notebook")`` (NB 7)."""
    servers = JupyterServers()
    yield servers
    servers.stop_all()


@pytest.fixture(scope="session")
def browser():
    """One headless Debian Chromium for the whole session."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.fail("Python playwright is missing; install the test extras (pip install -e '.[test]').")

    from playwright.sync_api import expect

    # Assertions wait as long as widget lookups do, because a loaded machine renders slowly.
    expect.set_options(timeout=harness.WIDGET_TIMEOUT_S * 1000)

    with sync_playwright() as playwright:
        chromium = harness.launch_chromium(playwright)
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser, request):
    """A page in a fresh browser context that records outside requests, console errors and dialogs.

    Teardown shuts down the kernels of notebooks opened on the page, saves artifacts when the test failed, and
    fails the test when the page requested a host other than 127.0.0.1 or localhost.
    """
    context = browser.new_context(viewport=VIEWPORT, service_workers="block")
    context.set_default_timeout(harness.WIDGET_TIMEOUT_S * 1000)
    page, monitor = harness.new_monitored_page(context)
    yield page

    failed = any(
        getattr(request.node, f"rep_{when}", None) is not None and getattr(request.node, f"rep_{when}").failed
        for when in ("setup", "call")
    )
    if failed:
        folder = artifact_dir(request.node)
        harness.save_artifacts(page, monitor, folder)
        logger.warning("saved browser artifacts of %s into %s", request.node.nodeid, folder)

    for session in monitor.sessions:
        session.close()
    context.close()

    if monitor.external_requests:
        pytest.fail(
            "The page requested hosts outside 127.0.0.1/localhost (all aborted):\n  "
            + "\n  ".join(monitor.external_requests)
        )
