"""Drive Debian's Firefox ESR next to Playwright's Chromium, as a person would.

Playwright's own Firefox build cannot be downloaded here, so Firefox is driven over WebDriver
BiDi by ``tests/js/firefox-driver.mjs`` (puppeteer-core from npm, installed by
``npm ci --prefix tests/js``), a Node child process that takes one JSON request per line on
stdin and answers one JSON line on stdout. ``Firefox`` owns that driver, the Firefox it starts
and, for screen sharing, an Xvfb display (Firefox shares a screen only when it has one);
all three are stopped by PID, pass or fail.

``FirefoxPerson`` is one person in Firefox (a browser context with one page) and has the same
face as ``tests.support.browser.Participant`` (both are a ``Person``, whose waits and test-hook
reads they share): ``join``, ``button``, ``tile``, ``toast``,
``page.get_by_role`` / ``get_by_text`` returning locators with ``click``/``fill``/``press``;
``see`` / ``unseen`` assert visibility for both kinds of locator. Elements are found through
Firefox's own accessibility tree (role and exact accessible name) or by visible text; the
app's ``window.rtcsvc`` hook is read only for WebRTC internals no person can see.
"""

from __future__ import annotations

import json
import os
import queue
import shutil
import signal
import subprocess
import threading
import time
from pathlib import Path

import pytest

from tests.support.axe import audit_page
from tests.support.browser import WAIT_MS, Person, made_then_closed
from tests.support.browser import audit as audit_in_chromium

ROOT = Path(__file__).resolve().parents[2]
DRIVER = ROOT / "tests" / "js" / "firefox-driver.mjs"
PUPPETEER = ROOT / "tests" / "js" / "node_modules" / "puppeteer-core"
FIREFOX = shutil.which("firefox-esr") or "/usr/bin/firefox-esr"
XVFB = shutil.which("Xvfb") or "/usr/bin/Xvfb"

#: The Xvfb screen: what Firefox shares when a person presents.
SCREEN = (1280, 800)
#: Bound for an assertion about what is visible (as Playwright's expect, set to 15 s there).
SEE_MS = 15_000


def available() -> str | None:
    """Why Firefox cannot be driven here, or None when it can."""
    if not Path(FIREFOX).exists():
        return f"no {FIREFOX} (apt-get install firefox-esr)"
    if not PUPPETEER.exists():
        return f"no {PUPPETEER} (npm ci --prefix tests/js)"
    if not shutil.which("node"):
        return "no node"
    return None


def _descendants(pid: int) -> list[int]:
    """Every process below ``pid`` (Firefox's content processes), read from /proc."""
    found, todo = [], [pid]
    while todo:
        p = todo.pop()
        try:
            children = Path(f"/proc/{p}/task/{p}/children").read_text().split()
        except OSError:
            continue
        for c in map(int, children):
            found.append(c)
            todo.append(c)
    return found


def _kill(pids) -> None:
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


class Xvfb:
    """A private X display (``Xvfb -displayfd``), stopped by PID."""

    def __init__(self, size=SCREEN, timeout: float = 15.0):
        read, write = os.pipe()
        self.proc = subprocess.Popen(
            [XVFB, "-displayfd", str(write), "-screen", "0", f"{size[0]}x{size[1]}x24",
             "-nolisten", "tcp", "-noreset"],
            pass_fds=(write,), stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        os.close(write)
        deadline = time.monotonic() + timeout
        digits = b""
        try:
            while not digits.endswith(b"\n"):
                if time.monotonic() > deadline or self.proc.poll() is not None:
                    raise RuntimeError(f"Xvfb gave no display within {timeout} s")
                chunk = os.read(read, 16)  # Xvfb writes the number once it accepts clients
                if not chunk:
                    raise RuntimeError("Xvfb closed its display pipe")
                digits += chunk
        except BaseException:
            self.stop()
            raise
        finally:
            os.close(read)
        self.display = f":{int(digits)}"

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)


class DriverError(AssertionError):
    """Firefox (through the driver) could not do or see what was asked."""


class Firefox:
    """Firefox ESR with a fake camera and microphone, driven through the Node driver.

    ``headless=False`` runs it on its own Xvfb display, where getDisplayMedia shares that
    screen (``SCREEN``) with no prompt; headless, Firefox refuses screen sharing.
    """

    def __init__(self, *, headless: bool = True, log_path: Path | None = None, timeout: float = 60.0):
        self.xvfb = None if headless else Xvfb()
        env = {**os.environ}
        if self.xvfb:
            env["DISPLAY"] = self.xvfb.display
        env.pop("WAYLAND_DISPLAY", None)
        self.log_path = Path(log_path) if log_path else None
        stderr = open(self.log_path, "ab") if self.log_path else subprocess.DEVNULL
        config = {"executable": FIREFOX, "headless": headless}
        self.proc = subprocess.Popen(
            ["node", str(DRIVER), json.dumps(config)], cwd=str(DRIVER.parent), env=env,
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=stderr, text=True, bufsize=1,
        )
        if stderr is not subprocess.DEVNULL:
            stderr.close()
        self._lines: queue.Queue = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()
        self._next = 0
        self.firefox_pid = None
        try:
            ready = self._line(timeout, "Firefox to start")
            self.firefox_pid = ready["pid"]
            self.version = ready["version"]
        except BaseException:
            self.close()
            raise

    def _read(self) -> None:
        for line in self.proc.stdout:
            self._lines.put(line)
        self._lines.put(None)

    def _line(self, timeout: float, what: str) -> dict:
        try:
            line = self._lines.get(timeout=timeout)
        except queue.Empty:
            raise TimeoutError(f"firefox driver: no answer within {timeout} s for {what}") from None
        if line is None:
            raise RuntimeError(f"firefox driver exited ({self.proc.poll()}) while waiting for {what}"
                               + self._log_tail())
        return json.loads(line)

    def _log_tail(self) -> str:
        if not self.log_path or not self.log_path.exists():
            return ""
        return "\n" + self.log_path.read_text(errors="replace")[-2000:]

    def call(self, op: str, **request):
        """One request; its value, or DriverError with the driver's message."""
        self._next += 1
        request = {"id": self._next, "op": op, **request}
        self.proc.stdin.write(json.dumps(request) + "\n")
        self.proc.stdin.flush()
        # The driver bounds its own waits; this bound only catches a driver that hangs.
        bound = request.get("timeout", WAIT_MS) / 1000 + 60
        answer = self._line(bound, op)
        if answer.get("id") != request["id"]:
            raise RuntimeError(f"firefox driver answered {answer} to {request}")
        if not answer["ok"]:
            raise DriverError(f"Firefox {op} {json.dumps({k: v for k, v in request.items() if k not in ('id', 'op', 'fn', 'make')})}:"
                              f"\n{answer['error']}")
        return answer["value"]

    def close(self) -> None:
        """Quit Firefox through the driver; then kill by PID whatever is left (and Xvfb)."""
        if self.proc.poll() is None:
            try:
                self.proc.stdin.write(json.dumps({"op": "quit"}) + "\n")
                self.proc.stdin.close()
                self.proc.wait(15)
            except (OSError, ValueError, subprocess.TimeoutExpired):
                pass
        if self.firefox_pid:
            _kill([self.firefox_pid, *_descendants(self.firefox_pid)])
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
        if self.xvfb:
            self.xvfb.stop()


def _is_function(source: str) -> bool:
    s = source.strip()
    return s.startswith(("(", "async", "function")) and "=>" in s or s.startswith("function")


class Locator:
    """Elements found as a person finds them: a chain of role/name, text or CSS steps."""

    def __init__(self, person: "FirefoxPerson", steps):
        self.person = person
        self.steps = list(steps)

    def _call(self, op, **kw):
        return self.person.firefox.call(op, page=self.person.page_id, steps=self.steps, **kw)

    # Finding, with Playwright's names.
    def get_by_role(self, role: str, name: str | None = None, exact: bool = True) -> "Locator":
        step = {"role": role}
        if name is not None:
            step["name"] = name
        return Locator(self.person, [*self.steps, step])

    def get_by_text(self, text: str, exact: bool = False) -> "Locator":
        return Locator(self.person, [*self.steps, {"text": text}])

    def locator(self, css: str) -> "Locator":
        return Locator(self.person, [*self.steps, {"css": css}])

    # Acting.
    def click(self, timeout: int = SEE_MS) -> None:
        self._call("click", timeout=timeout)

    def fill(self, value: str, timeout: int = SEE_MS) -> None:
        self._call("fill", value=value, timeout=timeout)

    def press(self, key: str, timeout: int = SEE_MS) -> None:
        self._call("press", key=key, timeout=timeout)

    def input_value(self, timeout: int = SEE_MS) -> str:
        return self._call("value", timeout=timeout)

    def inner_text(self, timeout: int = SEE_MS) -> str:
        return self._call("text", timeout=timeout)

    def bounding_box(self, timeout: int = SEE_MS) -> dict:
        return self._call("box", timeout=timeout)

    # Seeing.
    def expect_visible(self, timeout: int = SEE_MS, count: int | None = None) -> int:
        kw = {"timeout": timeout}
        if count is not None:
            kw["count"] = count
        return self._call("expectVisible", **kw)

    def expect_hidden(self, timeout: int = SEE_MS) -> None:
        self._call("expectHidden", timeout=timeout)

    def __repr__(self) -> str:
        return f"<Firefox {self.person.name}: {self.steps}>"


class FirefoxPage(Locator):
    """The page itself: the root of every chain, plus evaluate and screenshots."""

    def __init__(self, person):
        super().__init__(person, [])

    def evaluate(self, expression: str, arg=None):
        fn = expression if _is_function(expression) else f"() => ({expression})"
        return self.person.firefox.call("evaluate", page=self.person.page_id, fn=fn, arg=arg)

    def add_init_script(self, source: str) -> None:
        """Run source in every document loaded from now on, before the app's scripts."""
        self.person.firefox.call("addInitScript", page=self.person.page_id, source=source)

    def run_script(self, source: str) -> None:
        """Run a script (e.g. axe-core) in the page; the page's CSP does not govern it."""
        self.person.firefox.call("run", page=self.person.page_id, source=source)

    def goto(self, url: str, timeout: int = WAIT_MS) -> None:
        self.person.firefox.call("goto", page=self.person.page_id, url=url, timeout=timeout)

    @property
    def url(self) -> str:
        return self.person.firefox.call("url", page=self.person.page_id)

    def screenshot(self, path: str, full_page: bool = False) -> None:
        self.person.firefox.call("screenshot", page=self.person.page_id, path=str(path), fullPage=full_page)

    def wait_for_timeout(self, ms: int) -> None:
        time.sleep(ms / 1000)


class FirefoxPerson(Person):
    """One person in Firefox: a browser context with one page of the app."""

    browser_name = "Firefox"

    def __init__(self, firefox: Firefox, base_url: str, *, name: str = "", viewport=None):
        self.firefox = firefox
        self.base_url = base_url
        self.name = name
        self.page_id = firefox.call("newPage", viewport=viewport or {"width": 1280, "height": 760})
        self.page = FirefoxPage(self)

    @property
    def console(self) -> list[str]:
        return self.firefox.call("console", page=self.page_id)

    # ---- getting into a room ----

    def open_room(self, room: str) -> None:
        self.page.goto(f"{self.base_url}/r/{room}")
        self.page.get_by_role("heading", name="Ready to join?").expect_visible(timeout=WAIT_MS)
        self.wait("() => document.body.classList.contains('media-ready')", what="the devices to be ready")

    def join(self, room: str, *, expect_joined: bool = True) -> None:
        self.open_room(room)
        if self.name:
            self.page.get_by_role("textbox", name="Your name").fill(self.name)
        self.button("Join call").click()
        if expect_joined:
            self.expect_connected()

    def expect_connected(self, timeout: int = WAIT_MS) -> None:
        self.button("Leave call").expect_visible(timeout=timeout)
        self.page.locator(".topbar").get_by_text("Connected").expect_visible(timeout=timeout)

    # ---- what a person sees ----

    def button(self, name: str, exact: bool = True) -> Locator:
        return self.page.get_by_role("button", name=name)

    def tile(self, label: str) -> Locator:
        """A remote tile by its whole accessible name: "Ada", "Ada, muted", "Ada, presenting"."""
        return self.page.get_by_role("article", name=label)

    def toast(self, text: str) -> Locator:
        return self.page.get_by_role("status").get_by_text(text)

    # ---- WebRTC internals: Person's, read through the same test hook ----

    def _who(self) -> str:
        return f"{self.name} (Firefox)"

    def _state_for_error(self) -> str:
        screen = self.page.evaluate("document.body.innerText")[:600]
        return f"{self.state}\nscreen text: {screen!r}"

    def close(self) -> None:
        try:
            self.firefox.call("closePage", page=self.page_id)
        except Exception:  # Firefox may already be gone in teardown
            pass


def wait_media_flowing(person, peer_id: str, timeout: int = WAIT_MS) -> dict:
    """That peer's tile shows frames and its clock moves, in either browser; the last sample."""
    return person.wait_media_flowing(peer_id, timeout)


def audit(person, what: str) -> None:
    """axe-core on the screen as it is (no serious or critical violation), in either browser."""
    if not isinstance(person, FirefoxPerson):
        audit_in_chromium(person.page, what)
        return
    audit_page(person.page.evaluate, person.page.run_script, f"{what} (Firefox)")


def see(locator, timeout: int = SEE_MS, count: int | None = None) -> None:
    """Assert that a person sees it (``count`` of them), in Chromium or Firefox."""
    if isinstance(locator, Locator):
        locator.expect_visible(timeout=timeout, count=count)
        return
    from playwright.sync_api import expect

    if count is None:
        expect(locator.first).to_be_visible(timeout=timeout)
    else:
        expect(locator).to_have_count(count, timeout=timeout)
        for i in range(count):
            expect(locator.nth(i)).to_be_visible(timeout=timeout)


def unseen(locator, timeout: int = SEE_MS) -> None:
    """Assert that a person does not see it (gone or hidden), in Chromium or Firefox."""
    if isinstance(locator, Locator):
        locator.expect_hidden(timeout=timeout)
        return
    from playwright.sync_api import expect

    expect(locator).to_be_hidden(timeout=timeout)


# ---- pytest fixtures ----


@pytest.fixture(scope="module")
def firefox(tmp_path_factory):
    """Firefox ESR on its own Xvfb screen (so it can share it), shared by a module's tests."""
    why = available()
    if why:
        pytest.fail(f"Firefox cannot be driven: {why}")
    log = tmp_path_factory.mktemp("firefox") / "driver.log"
    fx = Firefox(headless=False, log_path=log)
    yield fx
    fx.close()


@pytest.fixture
def firefox_people(firefox):
    """``firefox_people(base_url, name=...)`` makes a FirefoxPerson; all closed at teardown."""
    yield from made_then_closed(FirefoxPerson, firefox)
