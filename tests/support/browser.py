"""Drive Debian's headless Chromium with Playwright against a real rtcsvc process.

Chromium's fake camera and microphone stand in for people, over rtcsvc's own HTTPS (its generated
certificate, as ``script/run`` serves it). ``Participant`` wraps one browser context (one person)
and drives the app as a person does: by the visible roles, labels and text of its screens
(Playwright locators and ``expect``). What a person sees is asserted on screen; the app's
``window.rtcsvc`` hook (``static/js/hook.js``, ``docs/client.md``) is read only for WebRTC
internals no person can see (connection states, selected candidate pairs, tracks, file digests).
``audit`` runs axe-core (npm, installed into ``tests/js/node_modules`` by ``npm ci``) on the
screen as it is. Every wait is bounded.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path
from typing import Any

from playwright.sync_api import Error as PlaywrightError
from playwright.sync_api import expect

from tests.support.axe import audit_page

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
    return SCREENSHOTS if os.environ.get("RTCSVC_SCREENSHOTS") == "1" else Path(tmp_path)


#: Default bound for one wait, in milliseconds (generous: the machines have two cores and
#: several browsers may run at once).
WAIT_MS = 30_000

# Playwright's expect() waits 5 s by default: too short when two cores run several browsers.
expect.set_options(timeout=15_000)

#: Window sizes a person uses: a laptop and a phone held upright.
DESKTOP = {"width": 1280, "height": 760}
PHONE = {"width": 390, "height": 844}

def audit(page, what: str) -> None:
    """axe-core on the page as it is now: no serious or critical violation.

    axe is injected through the devtools protocol (``page.evaluate``), which the page's CSP does
    not govern (``tests.support.axe``).
    """
    audit_page(page.evaluate, page.evaluate, what)


def launch(playwright, *, fake_media: bool = True, extra_args=()):
    """Headless Chromium; with ``fake_media`` it has a fake camera and microphone."""
    args = [*BASE_ARGS, *(FAKE_MEDIA_ARGS if fake_media else []), *extra_args]
    return playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=args)


def record_sent_frames(page) -> list:
    """A list that gets every WebSocket frame ``page`` sends from now on (its signaling)."""
    frames: list = []
    page.on("websocket", lambda ws: ws.on("framesent", lambda payload: frames.append(payload)))
    return frames


def sent_messages(frames, kind: str) -> list[dict]:
    """The JSON messages of type ``kind`` among ``frames`` (what the app told rtcsvc)."""
    out = []
    for payload in frames:
        try:
            message = json.loads(payload)
        except (TypeError, ValueError):
            continue
        if isinstance(message, dict) and message.get("type") == kind:
            out.append(message)
    return out


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


VIDEO_PROGRESS = """(id) => {
    const v = document.querySelector(`.tile[data-peer="${id}"] video`);
    if (!v || !v.srcObject) return null;
    return {w: v.videoWidth, h: v.videoHeight, t: v.currentTime, paused: v.paused,
            audio: v.srcObject.getAudioTracks().map(t => t.readyState),
            video: v.srcObject.getVideoTracks().map(t => t.readyState)};
}"""


class Person:
    """What a person is in either browser (``Participant`` here, ``FirefoxPerson`` in
    ``tests.support.firefox``): screenshots, the app's ``window.rtcsvc`` test hook read for
    WebRTC internals no person can see, and bounded waits on it. Written once so that both
    browsers are asked the same questions.

    A subclass has ``page`` (``evaluate``, ``screenshot``, ``wait_for_timeout``) and ``name``;
    ``_who`` and ``_state_for_error`` say who timed out and what their screen showed.
    """

    page: Any
    name: str

    def shot(self, directory: Path, name: str, *, full_page: bool = False) -> None:
        """A screenshot of the window (or the whole scrollable page), once transitions settled."""
        self.page.wait_for_timeout(400)
        path = Path(directory) / name
        path.parent.mkdir(parents=True, exist_ok=True)
        self.page.screenshot(path=str(path), full_page=full_page)

    # ---- WebRTC internals, through the test hook ----

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
                    f"{self._who()}: timed out after {timeout} ms waiting for "
                    f"{what or expression.strip()[:200]}\nstate: {self._state_for_error()}"
                )
            time.sleep(0.1)

    def _who(self) -> str:
        return self.name or "participant"

    def _state_for_error(self) -> str:
        try:
            state = self.page.evaluate("window.rtcsvc && window.rtcsvc.state")
            text = self.page.evaluate("document.body.innerText")
            return f"{state}\nscreen text: {text[:600]!r}"
        except Exception as e:  # the page may be gone
            return f"<unavailable: {e}>"

    def wait_connected_to(self, count: int, timeout: int = WAIT_MS) -> list[str]:
        """Wait for ``count`` peers, all connected with open data channels; their ids."""
        self.wait(
            """(n) => { const p = window.rtcsvc.state.peers;
                        return p.length === n && p.every(x => x.connectionState === 'connected' && x.channelOpen); }""",
            count, timeout, what=f"{count} connected peers",
        )
        return self.peer_ids()

    def video_progress(self, peer_id: str) -> dict:
        """The remote tile's video: size, currentTime and whether its tracks are live."""
        return self.page.evaluate(VIDEO_PROGRESS, peer_id)

    def wait_media_flowing(self, peer_id: str, timeout: int = WAIT_MS) -> dict:
        """Wait until that peer's video has frames and its clock moves; returns the last sample."""
        self.wait(
            """(id) => { const v = document.querySelector(`.tile[data-peer="${id}"] video`);
                          return !!v && v.videoWidth > 0 && v.readyState >= 2; }""",
            peer_id, timeout, what=f"video from {peer_id}",
        )
        first = self.video_progress(peer_id)
        self.wait(
            """([id, t0]) => { const v = document.querySelector(`.tile[data-peer="${id}"] video`);
                                return !!v && v.currentTime > t0 + 0.5; }""",
            [peer_id, first["t"]], timeout, what=f"video from {peer_id} to advance",
        )
        return self.video_progress(peer_id)


class Participant(Person):
    """One person in a call: a browser context with one page of the app."""

    def __init__(self, browser, base_url: str, *, name: str = "", permissions=("camera", "microphone"),
                 viewport=None):
        self.base_url = base_url
        self.name = name
        phone = viewport == PHONE
        self.context = browser.new_context(
            viewport=viewport or DESKTOP,
            is_mobile=phone,
            has_touch=phone,
            # The copy buttons write the invite link to the clipboard; tests read it back.
            permissions=[*permissions, "clipboard-read", "clipboard-write"],
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
        """Open the room's link: the lobby, with the camera preview running."""
        self.goto(f"{self.base_url}/r/{room}")
        expect(self.page.get_by_role("heading", name="Ready to join?")).to_be_visible(timeout=WAIT_MS)
        # The devices are ready when the pickers are filled (or say there is none).
        self.page.locator("body.media-ready").wait_for(state="attached", timeout=WAIT_MS)

    def goto(self, url: str, attempts: int = 3) -> None:
        """Load ``url``; reload, as a person would, a load the browser itself aborted because it
        saw its network change (fresh network namespaces settling). Any other failure raises."""
        for attempt in range(attempts):
            try:
                self.page.goto(url, wait_until="load")
            except PlaywrightError as e:
                text = str(e)
                if "ERR_NETWORK_CHANGED" not in text and "chrome-error://" not in text:
                    raise
                if attempt == attempts - 1:
                    raise
            else:
                if not self.page.url.startswith("chrome-error://"):
                    return
            time.sleep(1)

    def join(self, room: str, *, expect_joined: bool = True) -> None:
        """Open the room link, type the name, press "Join call" (and wait until "Connected")."""
        self.open_room(room)
        if self.name:
            self.page.get_by_role("textbox", name="Your name").fill(self.name)
        self.page.get_by_role("button", name="Join call").click()
        if expect_joined:
            self.expect_connected()

    def expect_connected(self, timeout: int = WAIT_MS) -> None:
        """The call screen says it is connected to the server."""
        expect(self.page.get_by_role("button", name="Leave call")).to_be_visible(timeout=timeout)
        expect(self.page.locator(".topbar").get_by_text("Connected", exact=True)).to_be_visible(timeout=timeout)

    # ---- what a person sees ----

    def button(self, name: str, exact: bool = True):
        return self.page.get_by_role("button", name=name, exact=exact)

    def tile(self, name: str):
        """The remote tile of the person called ``name`` (its accessible name starts with it)."""
        import re

        return self.page.get_by_role("article", name=re.compile(rf"^{re.escape(name)}(,|$)"))

    def toast(self, text: str):
        return self.page.get_by_role("status").get_by_text(text)

    # ---- WebRTC internals, through the test hook (the rest are Person's) ----

    def wait_peer(self, peer_id: str, predicate: str, timeout: int = WAIT_MS):
        """Wait until ``predicate`` (JS, of ``p`` = that peer's snapshot) holds."""
        return self.wait(
            f"""(id) => {{ const p = window.rtcsvc.state.peers.find(x => x.id === id);
                          return !!p && ({predicate}); }}""",
            peer_id, timeout,
        )

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
    yield from made_then_closed(Participant)


def made_then_closed(person_class, *first_args):
    """The body of a fixture that makes people: yields ``make(*args, **kwargs)``, which builds
    ``person_class(*first_args, *args, **kwargs)``; at teardown closes every one it made."""
    made: list = []

    def make(*args, **kwargs):
        person = person_class(*first_args, *args, **kwargs)
        made.append(person)
        return person

    yield make
    for person in made:
        person.close()


@pytest.fixture
def room(request) -> str:
    """A room name unique to the test (readable in server logs)."""
    import secrets

    return f"{request.node.name[:40]}-{secrets.token_hex(6)}".replace("[", "-").replace("]", "")


# ---- what a person sees, measured: boxes of things on screen (shared by the screen tests) ----


def box(locator) -> dict:
    """The locator's bounding box on screen; fails if it is not rendered."""
    b = locator.bounding_box()
    assert b, f"{locator} has no box (not rendered)"
    return b


def overlap(a, b) -> bool:
    """Do two boxes share any area?"""
    return not (a["x"] + a["width"] <= b["x"] or b["x"] + b["width"] <= a["x"]
                or a["y"] + a["height"] <= b["y"] or b["y"] + b["height"] <= a["y"])


def inside(inner, outer, slack: float = 1.0) -> bool:
    """Is the box ``inner`` within ``outer`` (give or take ``slack`` pixels)?"""
    return (inner["x"] >= outer["x"] - slack and inner["y"] >= outer["y"] - slack
            and inner["x"] + inner["width"] <= outer["x"] + outer["width"] + slack
            and inner["y"] + inner["height"] <= outer["y"] + outer["height"] + slack)


def assert_touch_sized(page) -> None:
    """Every visible button of the call's controls is at least 44 by 44 CSS pixels."""
    controls = page.get_by_role("navigation", name="Call controls").get_by_role("button")
    for i in range(controls.count()):
        b = box(controls.nth(i))
        assert b["width"] >= 44 and b["height"] >= 44, (controls.nth(i).inner_text(), b)


def small_fake_video(path: Path, width: int = 160, height: int = 120, fps: int = 5) -> Path:
    """A short y4m clip for ``--use-file-for-fake-video-capture``: a small, slow camera, so that a
    mesh of many people in one browser encodes little (the default fake camera sends 1280x720
    at 30 fps to every peer). A soft vertical gradient, so a tile looks like a picture."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    luma = b"".join(bytes([60 + 80 * y // height]) * width for y in range(height))
    chroma = bytes([150]) * ((width // 2) * (height // 2)) + bytes([110]) * ((width // 2) * (height // 2))
    frame = b"FRAME\n" + luma + chroma
    with path.open("wb") as f:
        f.write(f"YUV4MPEG2 W{width} H{height} F{fps}:1 Ip A1:1 C420jpeg\n".encode())
        f.write(frame * fps)
    return path
