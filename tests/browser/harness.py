"""Browser test harness: JupyterLab 4 and Notebook 7 on 127.0.0.1, driven by Playwright in Debian Chromium.

The pieces, from the outside in:

- :func:`start_jupyter_server` starts ``jupyter lab`` or ``jupyter notebook`` on a free port of 127.0.0.1 with a
  token. Its config, data, runtime, IPython, settings and workspaces folders are temporary, so nothing from the
  user's home leaks in, and its settings turn off the news and update checks that would reach the internet.
- :func:`launch_chromium` starts the system Chromium through Playwright (``playwright install`` is never needed).
- :class:`PageMonitor` records every request to a host other than 127.0.0.1 or localhost (and aborts it), console
  errors, page errors and JavaScript dialogs.
- :func:`open_notebook` writes a notebook, opens it, runs all cells through the app's command registry and waits
  for the kernel to be idle. The returned :class:`NotebookSession` runs more code in the same kernel over the
  Jupyter kernel websocket (:meth:`NotebookSession.run_code`), so a test can check kernel state after a click.
"""

from __future__ import annotations

import itertools
import json
import logging
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
import weakref
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Literal

import nbformat
import websocket

logger = logging.getLogger(__name__)

ServerKind = Literal["lab", "notebook"]

CHROMIUM_PATH = os.environ.get("RECWIDGETS_CHROMIUM", "/usr/bin/chromium")

# Chromium switches: no sandbox (containers run as root), no GPU, and no background traffic of its own
# (component updates, sync, QUIC probes). The resolver rule makes every host name except the loopback ones
# unresolvable, a second guard behind the route handler for requests by name (it does not cover IP literals).
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE localhost, EXCLUDE 127.0.0.1",
]

KERNEL_NAME = "recwidgets-test-python"
KERNEL_DISPLAY_NAME = "Python 3 (recwidgets tests)"

LOCAL_HOSTS = frozenset({"127.0.0.1", "localhost", "::1", "[::1]"})

# Ceilings in seconds, not expectations: they only bound how long a broken setup hangs. A kernel that imports
# torch and a notebook that evaluates models start slowly on a busy CI runner, so they are generous.
SERVER_START_TIMEOUT_S = 120.0
NOTEBOOK_OPEN_TIMEOUT_S = 120.0
RUN_ALL_TIMEOUT_S = 600.0
RUN_CODE_TIMEOUT_S = 120.0
WIDGET_TIMEOUT_S = 60.0
PORT_ATTEMPTS = 3

_ANSI_ESCAPE = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


class HarnessError(RuntimeError):
    """A browser-test fixture could not do its job (server start, notebook run, kernel call)."""


class NotebookExecutionError(HarnessError):
    """A notebook cell raised an error or did not run."""


class KernelExecutionError(HarnessError):
    """Code sent with :meth:`NotebookSession.run_code` raised an error in the kernel."""


def strip_ansi(text: str) -> str:
    """Remove terminal color codes, as found in kernel tracebacks."""
    return _ANSI_ESCAPE.sub("", text)


def is_local_url(url: str) -> bool:
    """Return True when ``url`` stays on this machine (loopback host, or a data:, blob:, file: or about: URL)."""
    parsed = urllib.parse.urlsplit(url)
    if parsed.scheme not in ("http", "https", "ws", "wss"):
        return True
    return (parsed.hostname or "") in LOCAL_HOSTS


def find_free_port() -> int:
    """Return a TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def port_is_free(port: int) -> bool:
    """Return True when a TCP socket can bind ``port`` on 127.0.0.1."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        # As servers do, ignore connections in TIME_WAIT: only a bound or listening socket makes the port busy.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def child_pids(pid: int) -> list[int]:
    """List the direct children of ``pid`` from /proc (empty where /proc is missing)."""
    children = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        # After the command name come the state and then the parent pid.
        if int(fields[1]) == pid:
            children.append(int(stat.parent.name))
    return children


def pid_alive(pid: int) -> bool:
    """Return True while process ``pid`` runs (a zombie waiting to be reaped counts as ended)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return True
    return state != "Z"


# ---------------------------------------------------------------------------------------------------------------
# Jupyter server
# ---------------------------------------------------------------------------------------------------------------

# User settings shared by JupyterLab 4 and Notebook 7 (both use the JupyterLab settings registry).
USER_SETTINGS: dict[str, dict[str, Any]] = {
    # No news toast and no update check, so the page never calls jupyterlab.github.io or pypi.org.
    "@jupyterlab/apputils-extension/notification.jupyterlab-settings": {
        "fetchNews": "false",
        "checkForUpdates": False,
    },
    # Every cell stays in the DOM, so locators find widgets below the fold.
    "@jupyterlab/notebook-extension/tracker.jupyterlab-settings": {"windowingMode": "none"},
}


@dataclass
class JupyterServer:
    """A running ``jupyter lab`` or ``jupyter notebook`` process bound to 127.0.0.1."""

    kind: ServerKind
    port: int
    token: str
    root_dir: Path
    base_dir: Path
    process: subprocess.Popen
    log_path: Path
    _notebook_names: itertools.count = field(default_factory=lambda: itertools.count(1))

    @property
    def pid(self) -> int:
        return self.process.pid

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/"

    def new_notebook_name(self, stem: str = "test") -> str:
        """Return a notebook file name not used before on this server."""
        return f"{stem}-{next(self._notebook_names)}-{uuid.uuid4().hex[:8]}.ipynb"

    def notebook_url(self, name: str) -> str:
        """Return the page URL that opens notebook ``name`` (relative to the root dir) with the token."""
        quoted = urllib.parse.quote(name)
        token = urllib.parse.quote(self.token)
        if self.kind == "lab":
            # A fresh workspace per page, reset, so JupyterLab does not reopen the previous test's notebook.
            workspace = f"ws-{uuid.uuid4().hex[:12]}"
            return f"{self.url}lab/workspaces/{workspace}/tree/{quoted}?reset&token={token}"
        return f"{self.url}notebooks/{quoted}?token={token}"

    def api(self, method: str, path: str, body: Any = None, timeout: float = 30.0) -> Any:
        """Call the Jupyter server REST API and return the decoded JSON (None for an empty reply)."""
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(
            self.url + path.lstrip("/"),
            data=data,
            method=method,
            headers={"Authorization": f"token {self.token}", "Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=timeout) as reply:
            payload = reply.read()
        return json.loads(payload) if payload else None

    def shutdown_kernel(self, kernel_id: str) -> None:
        """Shut down one kernel; a kernel that is already gone is ignored."""
        try:
            self.api("DELETE", f"api/kernels/{kernel_id}")
        except urllib.error.HTTPError as error:
            if error.code != 404:
                raise

    def log_tail(self, n_chars: int = 4000) -> str:
        """Return the end of the server log, for error messages."""
        try:
            return self.log_path.read_text(errors="replace")[-n_chars:]
        except OSError:
            return "(no server log)"

    def stop(self, timeout: float = 20.0) -> None:
        """Shut down the kernels, stop the server by its PID, and remove its temporary folders."""
        if self.process.poll() is None:
            try:
                for kernel in self.api("GET", "api/kernels", timeout=5.0):
                    self.shutdown_kernel(kernel["id"])
            except (OSError, urllib.error.URLError, json.JSONDecodeError) as error:
                logger.warning("could not shut down the kernels of %s server pid %d: %s", self.kind, self.pid, error)

            children = child_pids(self.pid)
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                logger.warning("%s server pid %d ignored SIGTERM for %.0f s; killing it", self.kind, self.pid, timeout)
                self.process.kill()
                self.process.wait(timeout=timeout)

            # Kernels run in their own session, so a server that died uncleanly can leave them behind.
            for pid in children:
                if pid_alive(pid):
                    logger.warning("killing kernel pid %d left by %s server pid %d", pid, self.kind, self.pid)
                    try:
                        os.kill(pid, signal.SIGKILL)
                    except ProcessLookupError:
                        pass
            if not port_is_free(self.port):
                logger.warning("port %d is still bound after %s server pid %d exited", self.port, self.kind, self.pid)
            logger.info("stopped %s server pid %d on port %d", self.kind, self.pid, self.port)

        shutil.rmtree(self.base_dir, ignore_errors=True)


def _stop_with_parent() -> None:
    """Ask Linux to send SIGTERM to this child when the test process dies (runs in the child before exec)."""
    import ctypes

    PR_SET_PDEATHSIG = 1
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


def _write_kernelspec(data_dir: Path) -> None:
    """Install a kernelspec that runs this interpreter, so the kernel imports from the project venv.

    It has its own name because inside a virtualenv Jupyter prefers the environment's ``python3`` kernelspec
    over one in ``JUPYTER_DATA_DIR``.
    """
    spec_dir = data_dir / "kernels" / KERNEL_NAME
    spec_dir.mkdir(parents=True)
    spec = {
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": KERNEL_DISPLAY_NAME,
        "language": "python",
        "env": {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"},
    }
    (spec_dir / "kernel.json").write_text(json.dumps(spec, indent=1))


def _write_user_settings(settings_dir: Path) -> None:
    for relative, values in USER_SETTINGS.items():
        path = settings_dir / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(values, indent=1))


def _server_command(kind: ServerKind, port: int, token: str, root_dir: Path) -> list[str]:
    module = {"lab": "jupyterlab", "notebook": "notebook"}[kind]
    app_class = {"lab": "LabApp", "notebook": "JupyterNotebookApp"}[kind]
    return [
        sys.executable,
        "-m",
        module,
        "--no-browser",
        "--allow-root",
        "--ServerApp.ip=127.0.0.1",
        f"--ServerApp.port={port}",
        "--ServerApp.port_retries=0",
        f"--IdentityProvider.token={token}",
        f"--ServerApp.root_dir={root_dir}",
        "--ServerApp.terminals_enabled=False",
        # Language-server autodetection runs npm and is of no use to widget tests.
        "--LanguageServerManager.autodetect=False",
        f"--{app_class}.expose_app_in_browser=True",
        # Notebook 7 also loads the JupyterLab server extension, so these apply to both kinds.
        "--LabApp.extension_manager=readonly",
        "--LabApp.news_url=None",
        "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
    ]


def start_jupyter_server(kind: ServerKind, timeout: float = SERVER_START_TIMEOUT_S) -> JupyterServer:
    """Start ``jupyter lab`` (``kind="lab"``) or ``jupyter notebook`` (``"notebook"``) on 127.0.0.1.

    Every Jupyter folder (config, data, runtime, IPython, settings, workspaces) and the notebook root are
    fresh temporary folders, removed again by :meth:`JupyterServer.stop`. Waits until ``/api/status`` returns.
    """
    if kind not in ("lab", "notebook"):
        raise HarnessError(f"Unknown Jupyter server kind {kind!r}; use 'lab' or 'notebook'.")

    base_dir = Path(tempfile.mkdtemp(prefix=f"recwidgets-jupyter-{kind}-"))
    folders = {
        name: base_dir / name for name in ("root", "config", "data", "runtime", "ipython", "settings", "workspaces")
    }
    for folder in folders.values():
        folder.mkdir()
    _write_kernelspec(folders["data"])
    _write_user_settings(folders["settings"])

    env = dict(os.environ)
    env.update(
        JUPYTER_CONFIG_DIR=str(folders["config"]),
        JUPYTER_DATA_DIR=str(folders["data"]),
        JUPYTER_RUNTIME_DIR=str(folders["runtime"]),
        IPYTHONDIR=str(folders["ipython"]),
        JUPYTERLAB_SETTINGS_DIR=str(folders["settings"]),
        JUPYTERLAB_WORKSPACES_DIR=str(folders["workspaces"]),
        JUPYTER_PLATFORM_DIRS="1",
        OMP_NUM_THREADS="1",
        MKL_NUM_THREADS="1",
        PYTHONUNBUFFERED="1",
    )

    # Another process can take the free port before the server binds it, so a bind failure gets a new port.
    for attempt in range(1, PORT_ATTEMPTS + 1):
        server = _launch(kind, find_free_port(), uuid.uuid4().hex, base_dir, folders["root"], env)
        try:
            _wait_until_serving(server, timeout)
            return server
        except _PortTaken:
            logger.warning("port %d was taken before jupyter %s bound it (attempt %d)", server.port, kind, attempt)
    shutil.rmtree(base_dir, ignore_errors=True)
    raise HarnessError(f"jupyter {kind} found no free port on 127.0.0.1 in {PORT_ATTEMPTS} attempts.")


class _PortTaken(HarnessError):
    """The server exited because its port was taken between the check and the bind."""


def _launch(kind: ServerKind, port: int, token: str, base_dir: Path, root_dir: Path, env: dict) -> JupyterServer:
    log_path = base_dir / "server.log"
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            _server_command(kind, port, token, root_dir),
            cwd=root_dir,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            # Its own session keeps a terminal's Ctrl-C away from the server, which would then prompt on stdin.
            start_new_session=True,
            # If pytest is killed before fixture teardown, the server (and so its kernels) still stops.
            preexec_fn=_stop_with_parent if sys.platform.startswith("linux") else None,
        )
    logger.info("starting %s server pid %d on port %d", kind, process.pid, port)
    return JupyterServer(
        kind=kind, port=port, token=token, root_dir=root_dir, base_dir=base_dir, process=process, log_path=log_path
    )


def _wait_until_serving(server: JupyterServer, timeout: float) -> None:
    """Poll ``/api/status`` until it returns; raise with the server log when the server exits or times out."""
    deadline = time.monotonic() + timeout
    while True:
        if server.process.poll() is not None:
            tail = server.log_tail()
            if "already in use" in tail:
                raise _PortTaken(tail)
            shutil.rmtree(server.base_dir, ignore_errors=True)
            raise HarnessError(
                f"jupyter {server.kind} exited with code {server.process.returncode} before it served port "
                f"{server.port}. Server log:\n{tail}"
            )
        try:
            server.api("GET", "api/status", timeout=5.0)
            return
        except (OSError, urllib.error.URLError):
            pass
        if time.monotonic() > deadline:
            tail = server.log_tail()
            server.stop()
            raise HarnessError(
                f"jupyter {server.kind} did not answer on 127.0.0.1:{server.port} within {timeout:.0f} s. "
                f"On a slow or loaded machine, raise SERVER_START_TIMEOUT_S. Server log:\n{tail}"
            )
        time.sleep(0.25)


# ---------------------------------------------------------------------------------------------------------------
# Browser and page monitoring
# ---------------------------------------------------------------------------------------------------------------


def launch_chromium(playwright):
    """Launch Debian's Chromium through Playwright; Playwright gives it a fresh temporary profile."""
    if not Path(CHROMIUM_PATH).exists():
        raise HarnessError(
            f"Chromium not found at {CHROMIUM_PATH}. Install it (apt-get install chromium), set "
            "RECWIDGETS_CHROMIUM to its path, or deselect these tests with -m 'not browser'."
        )
    return playwright.chromium.launch(executable_path=CHROMIUM_PATH, headless=True, args=CHROMIUM_ARGS)


@dataclass
class ConsoleMessage:
    """A console error or uncaught page error seen in the browser."""

    kind: str
    text: str
    location: str = ""

    def __str__(self) -> str:
        where = f" ({self.location})" if self.location else ""
        return f"[{self.kind}] {self.text}{where}"


# Errors the stock apps log on every page load, unrelated to widgets: Notebook 7.6 throws this TypeError while it
# loads its settings, with or without user settings.
KNOWN_CONSOLE_ERRORS = (re.compile(r"Cannot read properties of undefined \(reading 'schema'\)"),)


class PageMonitor:
    """Recorder of the outside requests, console errors and dialogs of one browser context.

    ``external_requests`` lists every URL outside 127.0.0.1 and localhost (each is aborted before it leaves the
    browser), ``console_errors`` the console errors and uncaught exceptions, and ``dialogs`` every alert, confirm
    or prompt (each is dismissed). ``sessions`` are the notebooks opened in this context, closed by the fixture.
    """

    def __init__(self) -> None:
        self.external_requests: list[str] = []
        self.console_errors: list[ConsoleMessage] = []
        self.dialogs: list[str] = []
        self.sessions: list[NotebookSession] = []

    def attach(self, context) -> None:
        """Install the request route on ``context``; call :meth:`watch_page` for each page."""
        context.route("**/*", self._route)
        context.on("page", self.watch_page)

    def unexpected_console_errors(self) -> list[ConsoleMessage]:
        """Return the console errors not in :data:`KNOWN_CONSOLE_ERRORS`."""
        return [
            message
            for message in self.console_errors
            if not any(pattern.search(message.text) for pattern in KNOWN_CONSOLE_ERRORS)
        ]

    def watch_page(self, page) -> None:
        """Collect console errors, page errors, dialogs and websockets from ``page``."""
        page.on("console", self._console)
        page.on("pageerror", self._page_error)
        page.on("dialog", self._dialog)
        # Routes do not see websockets, so an outside websocket is recorded here (the resolver rule stops it).
        page.on("websocket", self._websocket)

    def _route(self, route) -> None:
        url = route.request.url
        if is_local_url(url):
            route.continue_()
            return
        self.external_requests.append(url)
        logger.warning("aborted request outside the machine: %s", url)
        route.abort("blockedbyclient")

    def _websocket(self, ws) -> None:
        if not is_local_url(ws.url) and ws.url not in self.external_requests:
            self.external_requests.append(ws.url)

    def _console(self, message) -> None:
        if message.type != "error":
            return
        location = message.location or {}
        where = location.get("url", "")
        if where and location.get("lineNumber") is not None:
            where = f"{where}:{location['lineNumber']}"
        self.console_errors.append(ConsoleMessage("console", message.text, where))

    def _page_error(self, error) -> None:
        self.console_errors.append(ConsoleMessage("pageerror", str(error)))

    def _dialog(self, dialog) -> None:
        self.dialogs.append(f"{dialog.type}: {dialog.message}")
        logger.warning("dismissed a JavaScript %s dialog: %r", dialog.type, dialog.message)
        try:
            dialog.dismiss()
        except Exception as error:  # noqa: BLE001 - the page may be gone, and the record is what matters
            logger.debug("could not dismiss dialog: %s", error)


_MONITORS: "weakref.WeakKeyDictionary[Any, PageMonitor]" = weakref.WeakKeyDictionary()


def new_monitored_page(context) -> tuple[Any, PageMonitor]:
    """Attach a :class:`PageMonitor` to ``context`` and open a page in it; return both."""
    monitor = PageMonitor()
    monitor.attach(context)
    page = context.new_page()
    _MONITORS[page] = monitor
    return page, monitor


def monitor_for(page) -> PageMonitor:
    """Return the monitor of ``page``; a page made outside the ``page`` fixture gets a new one."""
    monitor = _MONITORS.get(page)
    if monitor is None:
        monitor = PageMonitor()
        monitor.attach(page.context)
        monitor.watch_page(page)
        _MONITORS[page] = monitor
    return monitor


def save_artifacts(page, monitor: PageMonitor | None, folder: Path) -> list[Path]:
    """Write a screenshot, the page HTML and the console log of ``page`` into ``folder``; return the files."""
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    try:
        page.screenshot(path=str(folder / "screenshot.png"), full_page=True, timeout=15_000)
        written.append(folder / "screenshot.png")
    except Exception as error:  # noqa: BLE001 - a failed screenshot must not hide the test failure
        logger.warning("could not take a screenshot into %s: %s", folder, error)
    try:
        (folder / "page.html").write_text(page.content(), encoding="utf-8")
        written.append(folder / "page.html")
    except Exception as error:  # noqa: BLE001 - same reason
        logger.warning("could not save the page HTML into %s: %s", folder, error)
    if monitor is not None:
        lines = [f"url: {page.url}", ""]
        lines += ["external requests (aborted):"] + [f"  {url}" for url in monitor.external_requests]
        lines += ["dialogs:"] + [f"  {text}" for text in monitor.dialogs]
        lines += ["console errors:"] + [f"  {message}" for message in monitor.console_errors]
        for session in monitor.sessions:
            lines += ["", f"notebook {session.name} outputs:", session.describe_outputs()]
        (folder / "log.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
        written.append(folder / "log.txt")
    return written


# ---------------------------------------------------------------------------------------------------------------
# Notebook sessions
# ---------------------------------------------------------------------------------------------------------------

# The notebook panel of the page: JupyterLab and Notebook 7 both expose it as the shell's current widget.
_JS_PANEL_READY = """
(name) => {
  const app = window.jupyterapp;
  const panel = app && app.shell && app.shell.currentWidget;
  if (!panel || !panel.context || panel.context.path !== name || !panel.sessionContext) return false;
  const kernel = panel.sessionContext.session && panel.sessionContext.session.kernel;
  return !!kernel && kernel.connectionStatus === 'connected' && kernel.status === 'idle';
}
"""

_JS_KERNEL_ID = "() => window.jupyterapp.shell.currentWidget.sessionContext.session.kernel.id"

_JS_KERNEL_IDLE = """
() => {
  const kernel = window.jupyterapp.shell.currentWidget.sessionContext.session.kernel;
  return kernel.connectionStatus === 'connected' && kernel.status === 'idle';
}
"""

_JS_RUN_ALL = """
async (timeoutMs) => {
  const app = window.jupyterapp;
  let timer;
  const timeout = new Promise((resolve) => { timer = setTimeout(() => resolve('timeout'), timeoutMs); });
  const run = app.commands.execute('notebook:run-all-cells').then((ok) => (ok === false ? 'failed' : 'done'));
  const outcome = await Promise.race([run, timeout]);
  clearTimeout(timer);
  return outcome;
}
"""

# recwidgets shells hold two alert boxes, shown only when rendering or a Python callback failed.
_JS_WIDGET_ERRORS = """
() => [...document.querySelectorAll('[data-testid="rw-error"], [data-testid="rw-python-error"]')]
  .filter((box) => !box.hidden)
  .map((box) => box.textContent)
"""

_JS_CELL_OUTPUTS = """
() => window.jupyterapp.shell.currentWidget.content.widgets
  .filter((cell) => cell.model.type === 'code')
  .map((cell) => ({ executionCount: cell.model.executionCount, outputs: cell.model.outputs.toJSON() }))
"""


def _output_text(output: dict) -> str:
    """Return the text of one nbformat output (stream text, text/plain or a traceback)."""
    kind = output.get("output_type")
    if kind == "stream":
        text = output.get("text", "")
        return "".join(text) if isinstance(text, list) else text
    if kind == "error":
        return strip_ansi("\n".join(output.get("traceback", [])) or f"{output.get('ename')}: {output.get('evalue')}")
    plain = output.get("data", {}).get("text/plain", "")
    return "".join(plain) if isinstance(plain, list) else plain


class NotebookSession:
    """A notebook open in a page, with its kernel reachable from the test.

    Created by :func:`open_notebook`. ``run_code`` runs Python in the same kernel as the notebook cells, so
    names defined in the cells (``w``, ``panel``) are visible to it.
    """

    def __init__(self, page, server: JupyterServer, name: str, kernel_id: str, monitor: PageMonitor) -> None:
        self.page = page
        self.server = server
        self.name = name
        self.kernel_id = kernel_id
        self.monitor = monitor
        self._ws: websocket.WebSocket | None = None
        self._client_session = uuid.uuid4().hex
        self.last_stderr = ""

    @property
    def external_requests(self) -> list[str]:
        """URLs outside 127.0.0.1 and localhost that the page requested (all aborted)."""
        return self.monitor.external_requests

    @property
    def console_errors(self) -> list[ConsoleMessage]:
        return self.monitor.console_errors

    @property
    def dialogs(self) -> list[str]:
        return self.monitor.dialogs

    # -- browser side ------------------------------------------------------------------------------------------

    def wait_for_widget(self, selector: str, timeout: float = WIDGET_TIMEOUT_S):
        """Wait until the first element matching ``selector`` is visible and return its locator."""
        locator = self.page.locator(selector).first
        try:
            locator.wait_for(state="visible", timeout=timeout * 1000)
        except Exception as error:
            raise HarnessError(
                f"No visible element matched {selector!r} within {timeout:.0f} s in notebook {self.name}. "
                f"Cell outputs:\n{self.describe_outputs()}\nConsole errors:\n"
                + "\n".join(str(message) for message in self.console_errors)
            ) from error
        return locator

    def widget_errors(self) -> list[str]:
        """Return the texts of visible recwidgets error boxes (front-end and Python-callback errors)."""
        return self.page.evaluate(_JS_WIDGET_ERRORS)

    def cell_outputs(self) -> list[dict]:
        """Return ``executionCount`` and nbformat ``outputs`` of each code cell from the page's notebook model."""
        return self.page.evaluate(_JS_CELL_OUTPUTS)

    def describe_outputs(self, max_chars: int = 6000) -> str:
        """Return the cell outputs as readable text, for failure messages."""
        try:
            cells = self.cell_outputs()
        except Exception as error:  # noqa: BLE001 - used while reporting another failure
            return f"(could not read the cell outputs: {error})"
        parts = []
        for index, cell in enumerate(cells):
            texts = [_output_text(output) for output in cell["outputs"]]
            parts.append(f"--- cell {index} [{cell['executionCount']}]\n" + "\n".join(t for t in texts if t))
        return "\n".join(parts)[-max_chars:]

    def run_all(self, timeout: float = RUN_ALL_TIMEOUT_S) -> None:
        """Run every cell through the command registry, wait for an idle kernel, and raise on any cell error."""
        outcome = self.page.evaluate(_JS_RUN_ALL, timeout * 1000)
        if outcome == "timeout":
            raise NotebookExecutionError(
                f"Running all cells of {self.name} did not finish within {timeout:.0f} s. Outputs so far:\n"
                + self.describe_outputs()
            )
        self.wait_for_idle()

        cells = self.cell_outputs()
        for index, cell in enumerate(cells):
            errors = [output for output in cell["outputs"] if output.get("output_type") == "error"]
            if errors:
                raise NotebookExecutionError(
                    f"Cell {index} of {self.name} raised {errors[0].get('ename')}:\n{_output_text(errors[0])}"
                )
            if cell["executionCount"] is None:
                raise NotebookExecutionError(
                    f"Cell {index} of {self.name} did not run (run-all returned {outcome!r}). Outputs:\n"
                    + self.describe_outputs()
                )

    def wait_for_idle(self, timeout: float = RUN_CODE_TIMEOUT_S) -> None:
        """Wait until the page reports the kernel as connected and idle."""
        try:
            self.page.wait_for_function(_JS_KERNEL_IDLE, timeout=timeout * 1000)
        except Exception as error:
            raise HarnessError(f"The kernel of {self.name} did not become idle within {timeout:.0f} s.") from error

    # -- kernel side -------------------------------------------------------------------------------------------

    def _channel(self) -> websocket.WebSocket:
        if self._ws is None or not self._ws.connected:
            url = (
                f"ws://127.0.0.1:{self.server.port}/api/kernels/{self.kernel_id}/channels"
                f"?session_id={self._client_session}"
            )
            self._ws = websocket.create_connection(
                url, header=[f"Authorization: token {self.server.token}"], timeout=RUN_CODE_TIMEOUT_S
            )
        return self._ws

    def run_code(self, code: str, timeout: float = RUN_CODE_TIMEOUT_S) -> str:
        """Run ``code`` in the notebook's kernel and return its stdout and result text, stripped.

        Text written to stderr (warnings, progress bars) is kept in ``last_stderr`` instead.

        The request goes over the Jupyter kernel websocket on 127.0.0.1, beside the page's own connection.
        Raises :class:`KernelExecutionError` with the traceback when the code raises. Messages from the page and
        from this call reach the kernel in no fixed order, so to check the effect of a click use
        :meth:`wait_for_output`.
        """
        ws = self._channel()
        msg_id = uuid.uuid4().hex
        self.last_stderr = ""
        ws.send(
            json.dumps(
                {
                    "header": {
                        "msg_id": msg_id,
                        "username": "harness",
                        "session": self._client_session,
                        "msg_type": "execute_request",
                        "version": "5.3",
                        "date": datetime.now(timezone.utc).isoformat(),
                    },
                    "parent_header": {},
                    "metadata": {},
                    "content": {
                        "code": code,
                        "silent": False,
                        "store_history": False,
                        "user_expressions": {},
                        "allow_stdin": False,
                        "stop_on_error": True,
                    },
                    "buffers": [],
                    "channel": "shell",
                }
            )
        )

        texts: list[str] = []
        error: dict | None = None
        replied = idle = False
        deadline = time.monotonic() + timeout
        while not (replied and idle):
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise HarnessError(f"Kernel code did not finish within {timeout:.0f} s: {code!r}")
            ws.settimeout(remaining)
            frame = ws.recv()
            # Binary frames carry comm messages with buffers (widget updates), never our text output.
            if not isinstance(frame, str):
                continue
            message = json.loads(frame)
            if message.get("parent_header", {}).get("msg_id") != msg_id:
                continue
            msg_type = message["header"]["msg_type"]
            content = message["content"]
            if msg_type == "stream":
                if content.get("name") == "stdout":
                    texts.append(content["text"])
                else:
                    self.last_stderr += content["text"]
            elif msg_type in ("execute_result", "display_data"):
                texts.append(content["data"].get("text/plain", ""))
            elif msg_type == "error":
                error = content
            elif msg_type == "execute_reply":
                replied = True
            elif msg_type == "status" and content["execution_state"] == "idle":
                idle = True

        if error is not None:
            traceback = strip_ansi("\n".join(error.get("traceback", [])))
            raise KernelExecutionError(f"Kernel code {code!r} raised {error['ename']}: {error['evalue']}\n{traceback}")
        return "".join(texts).strip()

    def wait_for_output(self, code: str, expected: str, timeout: float = WIDGET_TIMEOUT_S) -> str:
        """Run ``code`` until its output equals ``expected`` and return it; fail with the last output otherwise."""
        deadline = time.monotonic() + timeout
        while True:
            output = self.run_code(code)
            if output == expected:
                return output
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"Kernel output of {code!r} stayed {output!r}, expected {expected!r} (waited {timeout:.0f} s)."
                )
            time.sleep(0.2)

    def close(self) -> None:
        """Close the kernel websocket and shut the kernel down."""
        if self._ws is not None:
            try:
                self._ws.close()
            except OSError:
                pass
            self._ws = None
        try:
            self.server.shutdown_kernel(self.kernel_id)
        except (OSError, urllib.error.URLError) as error:
            logger.warning("could not shut down kernel %s of %s: %s", self.kernel_id, self.name, error)


def write_notebook(path: Path, cells: list[str]) -> None:
    """Write an nbformat 4 notebook with one code cell per string, for the harness kernelspec."""
    notebook = nbformat.v4.new_notebook(
        cells=[nbformat.v4.new_code_cell(source) for source in cells],
        metadata={
            "kernelspec": {"name": KERNEL_NAME, "display_name": KERNEL_DISPLAY_NAME, "language": "python"},
            "language_info": {"name": "python"},
        },
    )
    nbformat.write(notebook, str(path))


def open_notebook(
    page,
    server: JupyterServer,
    cells: list[str],
    *,
    stem: str = "test",
    run: bool = True,
    timeout: float = NOTEBOOK_OPEN_TIMEOUT_S,
    run_timeout: float = RUN_ALL_TIMEOUT_S,
) -> NotebookSession:
    """Write a notebook with ``cells`` into the server root, open it, run all cells and wait for an idle kernel.

    Works for both JupyterLab 4 (a fresh, reset workspace) and Notebook 7 (``/notebooks/<name>``). Raises
    :class:`NotebookExecutionError` with the traceback when a cell fails. The session is closed (kernel shut
    down) by the ``page`` fixture.
    """
    name = server.new_notebook_name(stem)
    write_notebook(server.root_dir / name, cells)
    monitor = monitor_for(page)

    page.goto(server.notebook_url(name), wait_until="domcontentloaded", timeout=timeout * 1000)
    try:
        page.wait_for_function(_JS_PANEL_READY, arg=name, timeout=timeout * 1000, polling=200)
    except Exception as error:
        console = "\n".join(str(message) for message in monitor.console_errors) or "(none)"
        raise HarnessError(
            f"Notebook {name} did not open with an idle kernel within {timeout:.0f} s on the {server.kind} "
            f"server (port {server.port}). Console errors:\n{console}\nServer log:\n{server.log_tail()}"
        ) from error

    session = NotebookSession(page, server, name, page.evaluate(_JS_KERNEL_ID), monitor)
    monitor.sessions.append(session)
    if run:
        session.run_all(timeout=run_timeout)
    return session
