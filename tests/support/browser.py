"""Drive Debian's headless Chromium with Playwright against a real rtcsvc process.

Chromium's fake camera and microphone stand in for people, over rtcsvc's own HTTPS (its generated
certificate, as ``script/run`` serves it). ``Participant`` wraps one browser
context (one person): open the room link, pass the lobby, then read the app's state through
its ``window.rtcsvc`` test hook (documented in ``static/js/main.js`` and ``docs/client.md``)
instead of scraping pixels. Every wait is bounded.
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"

BASE_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    # Keep timers and media running in pages that are not in front.
    "--disable-background-timer-throttling",
    "--disable-renderer-backgrounding",
    "--disable-backgrounding-occluded-windows",
    "--autoplay-policy=no-user-gesture-required",
]
FAKE_MEDIA_ARGS = [
    "--use-fake-device-for-media-stream",
    "--use-fake-ui-for-media-stream",
    # getDisplayMedia picks this source without a picker.
    "--auto-select-desktop-capture-source=Entire screen",
]

#: Where the call screenshots go: docs/screenshots/ when RTCSVC_SCREENSHOTS=1 (to refresh the
#: README's pictures), else the test's temporary directory, so a test run leaves the tree clean.
SCREENSHOTS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"


def screenshot_dir(tmp_path: Path) -> Path:
    import os

    return SCREENSHOTS if os.environ.get("RTCSVC_SCREENSHOTS") == "1" else Path(tmp_path)


#: Default bound for one wait, in milliseconds.
WAIT_MS = 20_000


def launch(playwright, *, fake_media: bool = True, extra_args=()):
    """Headless Chromium; with ``fake_media`` it has a fake camera and microphone."""
    args = [*BASE_ARGS, *(FAKE_MEDIA_ARGS if fake_media else []), *extra_args]
    return playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=args)


# Every RTCPeerConnection the app makes is relay-only, and kept for the test to inspect.
RELAY_ONLY = """
(() => {
  const Native = window.RTCPeerConnection;
  const relayOnly = (config) => ({ ...(config || {}), iceTransportPolicy: "relay" });
  window.__deployTestPeerConnections = [];
  window.RTCPeerConnection = class extends Native {
    constructor(config, ...rest) {
      super(relayOnly(config), ...rest);
      window.__deployTestPeerConnections.push(this);
    }
    setConfiguration(config) {
      return super.setConfiguration(relayOnly(config));
    }
  };
})();
"""

SELECTED_PAIRS = """
async () => {
  const pairs = [];
  for (const pc of window.__deployTestPeerConnections) {
    if (pc.connectionState !== "connected") continue;
    const stats = await pc.getStats();
    stats.forEach((s) => {
      if (s.type !== "transport" || !s.selectedCandidatePairId) return;
      const pair = stats.get(s.selectedCandidatePairId);
      const local = stats.get(pair.localCandidateId);
      const remote = stats.get(pair.remoteCandidateId);
      pairs.push({
        policy: pc.getConfiguration().iceTransportPolicy,
        local: local.candidateType, localPort: local.port, relayProtocol: local.relayProtocol,
        remote: remote.candidateType, remotePort: remote.port,
        bytesReceived: pair.bytesReceived,
      });
    });
  }
  return pairs;
}
"""


class Participant:
    """One person in a call: a browser context with one page of the app."""

    def __init__(self, browser, base_url: str, *, name: str = "", permissions=("camera", "microphone"),
                 viewport=None):
        self.base_url = base_url
        self.name = name
        self.context = browser.new_context(
            viewport=viewport or {"width": 1280, "height": 760},
            permissions=list(permissions),
            # rtcsvc's own HTTPS with the self-signed certificate it generates, as script/run
            # serves it: the person clicked through the browser's warning once.
            ignore_https_errors=True,
        )
        self.page = self.context.new_page()
        self.console: list[str] = []
        self.page.on("console", lambda m: self.console.append(f"{m.type}: {m.text}"))
        self.page.on("pageerror", lambda e: self.console.append(f"pageerror: {e}"))

    # ---- getting into a room ----

    def open_room(self, room: str) -> None:
        self.page.goto(f"{self.base_url}/r/{room}", wait_until="load")
        self.page.locator("body.media-ready").wait_for(state="attached", timeout=WAIT_MS)

    def join(self, room: str, *, expect_joined: bool = True) -> None:
        """Open the room link, type the name, press "Join call" (and wait for the welcome)."""
        self.open_room(room)
        if self.name:
            self.page.fill("#name-input", self.name)
        self.page.click("#join-now")
        if expect_joined:
            self.wait("() => window.rtcsvc.state.joined", what="the welcome")

    # ---- reading state ----

    @property
    def state(self) -> dict:
        return self.page.evaluate("window.rtcsvc.state")

    @property
    def id(self) -> str:
        return self.state["id"]

    def peer_ids(self) -> list[str]:
        return [p["id"] for p in self.state["peers"]]

    def wait(self, expression: str, arg=None, timeout: int = WAIT_MS, what: str | None = None):
        """Poll until the JS ``expression`` (a function of ``arg`` if given) is truthy.

        Polled from Python through ``page.evaluate``: Playwright's own ``wait_for_function``
        compiles its predicate inside the page, which the app's CSP (no 'unsafe-eval') refuses.
        """
        deadline = time.monotonic() + timeout / 1000
        while True:
            value = self.page.evaluate(expression, arg)
            if value:
                return value
            if time.monotonic() > deadline:
                raise TimeoutError(
                    f"{self.name or 'participant'}: timed out after {timeout} ms waiting for "
                    f"{what or expression.strip()[:200]}\nstate: {self._state_for_error()}"
                )
            time.sleep(0.1)

    def _state_for_error(self):
        try:
            return self.page.evaluate("window.rtcsvc && window.rtcsvc.state")
        except Exception as e:  # the page may be gone
            return f"<unavailable: {e}>"

    def wait_connected_to(self, count: int, timeout: int = WAIT_MS) -> list[str]:
        """Wait for ``count`` peers, all connected with open data channels; their ids."""
        self.wait(
            """(n) => { const p = window.rtcsvc.state.peers;
                        return p.length === n && p.every(x => x.connectionState === 'connected' && x.channelOpen); }""",
            count, timeout,
        )
        return self.peer_ids()

    def wait_peer(self, peer_id: str, predicate: str, timeout: int = WAIT_MS):
        """Wait until ``predicate`` (JS, of ``p`` = that peer's snapshot) holds."""
        return self.wait(
            f"""(id) => {{ const p = window.rtcsvc.state.peers.find(x => x.id === id);
                          return !!p && ({predicate}); }}""",
            peer_id, timeout,
        )

    def video_progress(self, peer_id: str) -> dict:
        """The remote tile's video: size, currentTime and whether its tracks are live."""
        return self.page.evaluate(
            """(id) => {
                const v = document.querySelector(`.tile[data-peer="${id}"] video`);
                if (!v || !v.srcObject) return null;
                return {w: v.videoWidth, h: v.videoHeight, t: v.currentTime, paused: v.paused,
                        audio: v.srcObject.getAudioTracks().map(t => t.readyState),
                        video: v.srcObject.getVideoTracks().map(t => t.readyState)};
            }""",
            peer_id,
        )

    def wait_media_flowing(self, peer_id: str, timeout: int = WAIT_MS) -> dict:
        """Wait until that peer's video has frames and its clock moves; returns the last sample."""
        self.wait(
            """(id) => { const v = document.querySelector(`.tile[data-peer="${id}"] video`);
                          return !!v && v.videoWidth > 0 && v.readyState >= 2; }""",
            peer_id, timeout,
        )
        first = self.video_progress(peer_id)
        self.wait(
            """([id, t0]) => { const v = document.querySelector(`.tile[data-peer="${id}"] video`);
                                return !!v && v.currentTime > t0 + 0.5; }""",
            [peer_id, first["t"]], timeout,
        )
        return self.video_progress(peer_id)

    def screenshot(self, path: Path) -> None:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        self.page.screenshot(path=str(path))

    def close(self) -> None:
        try:
            self.context.close()
        except Exception:  # the browser may already be gone in teardown
            pass


# ---- pytest fixtures (import them into a test module to use them) ----

import pytest  # noqa: E402


def start_relay_only_call(people, browser, base_url: str, room: str):
    """Alice and Bob in ``room``, every RTCPeerConnection forced through TURN, media flowing
    both ways; returns ``(alice, bob)``."""
    alice = people(browser, base_url, name="Alice")
    bob = people(browser, base_url, name="Bob")
    for person in (alice, bob):
        person.page.add_init_script(RELAY_ONLY)
    alice.join(room)
    bob.join(room)
    assert alice.wait_connected_to(1) == [bob.id]
    bob.wait_connected_to(1)
    alice.wait_media_flowing(bob.id)
    bob.wait_media_flowing(alice.id)
    return alice, bob


@pytest.fixture(scope="module")
def playwright_driver():
    """One Playwright driver per test module."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        yield pw


@pytest.fixture(scope="module")
def browser(playwright_driver):
    """Headless Chromium with a fake camera and microphone, shared by a module's tests."""
    b = launch(playwright_driver)
    yield b
    b.close()


@pytest.fixture
def people():
    """``people(browser, base_url, name=...)`` makes a Participant; all are closed at teardown."""
    made: list[Participant] = []

    def make(browser, base_url, **kwargs) -> Participant:
        p = Participant(browser, base_url, **kwargs)
        made.append(p)
        return p

    yield make
    for p in made:
        p.close()


@pytest.fixture
def room(request) -> str:
    """A room name unique to the test (readable in server logs)."""
    import secrets

    return f"{request.node.name[:40]}-{secrets.token_hex(6)}".replace("[", "-").replace("]", "")
