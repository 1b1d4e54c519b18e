"""Browser tests: one real `streamlit run app.py` per session, driven by Debian's Chromium via Playwright.

Fixtures
- ``streamlit_server`` (session): the app on a free port at 127.0.0.1, its output in a temp file that
  is attached to the report of any failing test. ``PREFLIGHT_E2E_APP_DIR`` points it at another app
  directory (default: the repository root).
- ``browser`` (session): headless Chromium from ``/usr/bin/chromium`` (``PREFLIGHT_CHROMIUM`` overrides).
- ``app`` (per test): a fresh browser context and page wrapped in :class:`AppPage`, which knows how to
  open a page, wait for Streamlit to finish a run, find widgets and metrics by label, and check for
  exceptions. Uncaught page errors fail the test at teardown; console errors go in the failure report.

Everything here skips, with the reason, when Playwright is not importable or Chromium is missing;
``scripts/setup.sh --test`` installs both, so CI runs them.

Selectors are Streamlit 1.67's own ``data-testid`` attributes (checked in streamlit/static/.../index.*.js):
``stApp`` carries ``data-test-script-state`` (``initial`` before the first run, then ``running`` /
``notRunning`` / ``rerunRequested`` / ``stopRequested`` / ``compilationError``) and
``data-test-connection-state`` (``CONNECTED``); alerts are ``stAlert`` > ``stAlertContainer`` >
``stAlertContent{Error,Warning,Info,Success}``; lazy elements show ``stSkeleton`` until loaded.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import warnings
from collections.abc import Callable, Generator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

try:
    from playwright.sync_api import Error as PlaywrightError
    from playwright.sync_api import expect, sync_playwright
except ImportError as exc:  # the e2e tests skip; nothing else needs Playwright
    sync_playwright = None
    _PLAYWRIGHT_MISSING = f"playwright is not importable ({exc}); run scripts/setup.sh --test"
else:
    _PLAYWRIGHT_MISSING = ""

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Locator, Page

REPO = Path(__file__).resolve().parents[2]
APP_DIR = Path(os.environ.get("PREFLIGHT_E2E_APP_DIR", REPO)).resolve()
CHROMIUM = os.environ.get("PREFLIGHT_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
    "--disable-sync", "--no-first-run", "--disable-quic",
]
SERVER_START_TIMEOUT_S = 60.0
IDLE_TIMEOUT_MS = 30_000   # one script run, including plotly's lazy bundle on a cold 2-core machine
SETTLE_MS = 250            # quiet period after a run: late reruns and lazy elements show up within it

_HERE = Path(__file__).resolve().parent

# Counts every transition of stApp's data-test-script-state, so that "the run my click started has
# finished" can be told apart from "no run has started yet" (the attribute is still notRunning for a
# moment after an input commits). A MutationObserver sees each committed attribute value, however short.
_RUN_COUNTER_JS = """
(() => {
  window.__stRunsStarted = 0;
  window.__stRunsFinished = 0;
  new MutationObserver((records) => {
    for (const r of records) {
      if (r.target.getAttribute('data-testid') !== 'stApp') continue;
      const now = r.target.getAttribute('data-test-script-state');
      if (now === r.oldValue) continue;
      if (now === 'running') window.__stRunsStarted += 1;
      else if (r.oldValue === 'running') window.__stRunsFinished += 1;
    }
  }).observe(document, {subtree: true, attributes: true, attributeOldValue: true,
                        attributeFilter: ['data-test-script-state']});
})();
"""

_IDLE_JS = """
() => {
  const app = document.querySelector('[data-testid="stApp"]');
  return !!app
    && app.getAttribute('data-test-script-state') === 'notRunning'
    && app.getAttribute('data-test-connection-state') === 'CONNECTED'
    && document.querySelector('[data-testid="stSkeleton"]') === null;
}
"""


def _skip_reason() -> str:
    if _PLAYWRIGHT_MISSING:
        return _PLAYWRIGHT_MISSING
    if not (os.path.isfile(CHROMIUM) and os.access(CHROMIUM, os.X_OK)):
        return f"{CHROMIUM} is missing (Debian's chromium; scripts/setup.sh --test installs it)"
    return ""


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    reason = _skip_reason()
    if not reason:
        return
    for item in items:
        if _HERE in Path(str(item.path)).resolve().parents:
            item.add_marker(pytest.mark.skip(reason=reason))


# ---------------------------------------------------------------------------------------------- server


@dataclass
class StreamlitServer:
    url: str
    log_path: Path
    proc: subprocess.Popen
    home: Path  # the server's PREFLIGHT_HOME (uploads, runs, registry)

    def log_tail(self, chars: int = 8000) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError as exc:
            return f"(could not read {self.log_path}: {exc})"
        return text if len(text) <= chars else "...\n" + text[-chars:]


_SERVER: StreamlitServer | None = None  # for the failure report hook


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is not None:
        return
    for sig, wait_s in ((signal.SIGTERM, 10), (signal.SIGKILL, 5)):
        try:
            os.killpg(proc.pid, sig)  # the server's own process group: streamlit and anything it started
        except ProcessLookupError:
            return
        try:
            proc.wait(timeout=wait_s)
            return
        except subprocess.TimeoutExpired:
            continue


@pytest.fixture(scope="session")
def streamlit_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StreamlitServer]:
    global _SERVER
    reason = _skip_reason()
    if reason:
        pytest.skip(reason)
    if not (APP_DIR / "app.py").is_file():
        pytest.fail(f"no app.py in {APP_DIR}")
    port = _free_port()
    log_path = tmp_path_factory.mktemp("streamlit") / "server.log"
    cmd = [
        sys.executable, "-m", "streamlit", "run", "app.py",
        "--server.headless", "true", "--browser.gatherUsageStats", "false",
        "--server.port", str(port), "--server.address", "127.0.0.1",
        # Other people edit files while the tests run: no watcher, no "source changed" reruns.
        "--server.fileWatcherType", "none",
    ]
    # Uploads, runs and the run registry go to a fresh workspace, never the developer's .preflight/.
    home = tmp_path_factory.mktemp("preflight-home")
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "PREFLIGHT_HOME": str(home)}
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(cmd, cwd=APP_DIR, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                env=env, start_new_session=True)
    server = StreamlitServer(url=f"http://127.0.0.1:{port}", log_path=log_path, proc=proc, home=home)
    try:
        deadline = time.monotonic() + SERVER_START_TIMEOUT_S
        while True:
            if proc.poll() is not None:
                pytest.fail(f"streamlit exited with code {proc.returncode} before it was healthy:\n{server.log_tail()}")
            try:
                with urllib.request.urlopen(f"{server.url}/_stcore/health", timeout=2) as resp:
                    if resp.status == 200 and resp.read().decode().strip() == "ok":
                        break
            except (urllib.error.URLError, ConnectionError, TimeoutError, OSError):
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"streamlit not healthy after {SERVER_START_TIMEOUT_S:.0f} s:\n{server.log_tail()}")
            time.sleep(0.25)
        _SERVER = server
        yield server
    finally:
        _SERVER = None
        _stop(proc)


# --------------------------------------------------------------------------------------------- browser


@pytest.fixture(scope="session")
def browser() -> Iterator[Browser]:
    """Chromium for the session, closed in order at the end: its contexts, the browser, then Playwright's
    driver (``stop``), so the run ends on pytest's own summary line."""
    reason = _skip_reason()
    if reason:
        pytest.skip(reason)
    manager = sync_playwright()
    pw = manager.start()
    try:
        b = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        try:
            yield b
        finally:
            for context in b.contexts:  # a test that failed before its own teardown
                with contextlib.suppress(PlaywrightError):
                    context.close()
            with contextlib.suppress(PlaywrightError):
                b.close()
    finally:
        pw.stop()
        _settle_driver_error(manager)


def _settle_driver_error(manager: Any) -> None:
    """When Playwright's driver dies during the session (SIGKILLed from outside: the OOM killer, or a
    test ending processes that are not its own), its transport keeps a "Connection closed while reading
    from the driver" error that nothing awaits, and asyncio prints "Future exception was never retrieved"
    after pytest's summary (issue 11 item 19; reproduced by SIGKILLing the driver mid-session). Read it
    here, where it belongs to the session, and report it as a warning instead. The transport is
    Playwright's private ``_client._transport.on_error_future``; if a version moves it, this does nothing."""
    future = getattr(getattr(getattr(manager, "_client", None), "_transport", None), "on_error_future", None)
    if future is None or not future.done() or future.cancelled():
        return
    error = future.exception()
    if error is not None:
        warnings.warn(f"Playwright's driver exited during the session: {error}", RuntimeWarning, stacklevel=1)


def wait_idle(page: Page, timeout_ms: int = IDLE_TIMEOUT_MS) -> None:
    """Wait until Streamlit is connected, no script run is in progress and no skeleton (a lazy element
    still loading) is on screen, and it stays that way for a short settle period."""
    deadline = time.monotonic() + timeout_ms / 1000
    while True:
        left = max(1, int((deadline - time.monotonic()) * 1000))
        page.wait_for_function(_IDLE_JS, timeout=left)
        page.wait_for_timeout(SETTLE_MS)
        if page.evaluate(_IDLE_JS):
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"Streamlit did not become idle within {timeout_ms} ms")


def assert_no_exceptions(page: Page, expected_errors: tuple[str, ...] = ()) -> None:
    """Fail on any st.exception box, and on any error alert whose text contains none of
    ``expected_errors`` (case-insensitive substrings)."""
    exceptions = page.get_by_test_id("stException")
    if exceptions.count():
        texts = "\n---\n".join(t.strip() for t in exceptions.all_inner_texts())
        raise AssertionError(f"{exceptions.count()} exception(s) on {page.url}:\n{texts}")
    wanted = tuple(e.lower() for e in expected_errors)
    unexpected = [t.strip() for t in page.get_by_test_id("stAlertContentError").all_inner_texts()
                  if not any(w in t.lower() for w in wanted)]
    if unexpected:
        raise AssertionError(f"unexpected error alert(s) on {page.url}:\n" + "\n---\n".join(unexpected))


@dataclass
class AppPage:
    """One browser page on the app, with Streamlit-aware helpers."""

    page: Page
    base_url: str
    console_errors: list[str] = field(default_factory=list)
    page_errors: list[str] = field(default_factory=list)
    server_runs_finished: int = 0  # full script runs the server reported finished (_count_script_finished)

    def goto(self, path: str = "") -> None:
        """Open a page by its url_path (deep link) and wait for its first run to finish."""
        self.page.goto(f"{self.base_url}/{path.lstrip('/')}", wait_until="domcontentloaded")
        self.wait_idle()

    def wait_idle(self) -> None:
        wait_idle(self.page)

    def assert_no_exceptions(self, expected_errors: tuple[str, ...] = ()) -> None:
        assert not self.page_errors, "uncaught page error(s):\n" + "\n".join(self.page_errors)
        assert_no_exceptions(self.page, expected_errors)

    def runs_finished(self) -> int:
        return self.page.evaluate("window.__stRunsFinished")

    def rerun_after(self, action: Callable[[], Any], timeout_ms: int = IDLE_TIMEOUT_MS) -> None:
        """Do ``action`` (which must make Streamlit rerun) and wait until that rerun has finished: the
        server's script_finished message counted on the websocket, or stApp's script state seen going
        from running to notRunning. Either alone can miss a run: a browser short of CPU may take the
        started and finished messages in one tick, so the DOM never shows 'running'."""
        before_dom, before_server = self.runs_finished(), self.server_runs_finished
        action()
        deadline = time.monotonic() + timeout_ms / 1000
        while self.server_runs_finished <= before_server and self.runs_finished() <= before_dom:
            if time.monotonic() > deadline:
                raise AssertionError(f"no Streamlit rerun finished within {timeout_ms} ms of the input on "
                                     f"{self.page.url}")
            self.page.wait_for_timeout(50)  # also lets Playwright deliver the websocket frames
        self.wait_idle()

    # -- finding things by their visible label

    def _labelled(self, testid: str, label: str) -> Locator:
        label_re = re.compile(rf"^\s*{re.escape(label)}\s*$")
        return self.page.get_by_test_id(testid).filter(
            has=self.page.get_by_test_id("stWidgetLabel").get_by_text(label_re)
        )

    def number_input(self, label: str) -> Locator:
        return self._labelled("stNumberInput", label).locator("input")

    def text_input(self, label: str) -> Locator:
        return self._labelled("stTextInput", label).locator("input")

    def metric(self, label: str) -> Locator:
        label_re = re.compile(rf"^\s*{re.escape(label)}\s*$")
        return self.page.get_by_test_id("stMetric").filter(
            has=self.page.get_by_test_id("stMetricLabel").get_by_text(label_re)
        )

    def metric_value(self, label: str) -> str:
        metric = self.metric(label)
        expect(metric, f"one metric labelled {label!r}").to_have_count(1)
        return metric.get_by_test_id("stMetricValue").inner_text().strip()

    def labels(self, testid: str) -> list[str]:
        """Visible labels of every element with this testid (for failure messages)."""
        inner = "stMetricLabel" if testid == "stMetric" else "stWidgetLabel"
        return [t.strip() for t in self.page.get_by_test_id(testid).get_by_test_id(inner).all_inner_texts()]

    def commit(self, field_: Locator, text: str) -> None:
        """Type ``text`` into an input and press Enter (Streamlit commits on Enter or blur); wait for the rerun.
        If no run has started 5 s after the Enter (a keystroke lost while the widget re-rendered), blur the
        field, Streamlit's other commit path; a page that never reruns still fails in rerun_after."""
        def action() -> None:
            started = self.page.evaluate("window.__stRunsStarted")
            field_.fill(text)
            field_.press("Enter")
            try:
                self.page.wait_for_function(f"window.__stRunsStarted > {started}", timeout=5_000)
            except PlaywrightError:
                field_.press("Tab")
        self.rerun_after(action)


# On a deep link (/train) the frontend first probes /train/_stcore/{health,host-config} for a base path;
# the 404s it logs are expected and not worth reporting.
_EXPECTED_CONSOLE = re.compile(r"status of 404 .*/_stcore/(health|host-config)\b")


def _console_error(wrapped: AppPage, msg: Any) -> None:
    if msg.type != "error":
        return
    where = f"{msg.location.get('url', '')}:{msg.location.get('lineNumber', '')}"
    text = f"{msg.text} ({where})"
    if not _EXPECTED_CONSOLE.search(text):
        wrapped.console_errors.append(text)


_CURRENT: list[AppPage] = []  # the running test's page, for the failure report hook


@pytest.fixture
def app(browser: Browser, streamlit_server: StreamlitServer) -> Iterator[AppPage]:
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    context.set_default_timeout(IDLE_TIMEOUT_MS)
    context.add_init_script(_RUN_COUNTER_JS)
    page = context.new_page()
    wrapped = AppPage(page=page, base_url=streamlit_server.url)
    page.on("console", lambda msg: _console_error(wrapped, msg))
    page.on("pageerror", lambda err: wrapped.page_errors.append(f"{err.name}: {err.message}\n{err.stack or ''}"))
    page.on("websocket", lambda ws: ws.on("framereceived", lambda payload: _count_script_finished(wrapped, payload)))
    _CURRENT.append(wrapped)
    try:
        yield wrapped
    finally:
        _CURRENT.remove(wrapped)
        try:
            context.close()
        except PlaywrightError:
            pass
    assert not wrapped.page_errors, "uncaught page error(s):\n" + "\n".join(wrapped.page_errors)


def _count_script_finished(app: AppPage, payload: str | bytes) -> None:
    """Count a ForwardMsg that ends a full script run (fragment runs and runs cut short for a rerun are not)."""
    if not isinstance(payload, bytes):
        return
    from streamlit.proto.ForwardMsg_pb2 import ForwardMsg

    try:
        msg = ForwardMsg.FromString(payload)
    except Exception:  # noqa: BLE001 - not a ForwardMsg: nothing to count
        return
    if msg.WhichOneof("type") == "script_finished" and msg.script_finished in (
            ForwardMsg.FINISHED_SUCCESSFULLY, ForwardMsg.FINISHED_WITH_COMPILE_ERROR):
        app.server_runs_finished += 1


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    """Attach the browser's errors and the server's log to the report of a failing e2e test."""
    report = yield
    if report.failed and _HERE in Path(str(item.path)).resolve().parents:
        _attach_diagnostics(report)
    return report


def _attach_diagnostics(report: pytest.TestReport) -> None:
    for wrapped in _CURRENT:
        if wrapped.console_errors:
            report.sections.append(("browser console errors", "\n".join(wrapped.console_errors)))
        if wrapped.page_errors:
            report.sections.append(("browser page errors", "\n".join(wrapped.page_errors)))
        try:
            report.sections.append(("page url", wrapped.page.url))
        except PlaywrightError:
            pass
    if _SERVER is not None:
        report.sections.append((f"streamlit server log ({_SERVER.log_path})", _SERVER.log_tail()))
