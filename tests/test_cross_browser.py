"""Chromium and Firefox ESR in the same calls, against rtcsvc's own HTTPS listener.

Chromium is driven by Playwright (``tests/support/browser.py``), Firefox ESR by
``tests/support/firefox.py`` (puppeteer-core over WebDriver BiDi, on its own Xvfb screen so it
can share it). Both are driven and checked the same way, by what a person sees: roles,
accessible names and visible text; ``see`` / ``unseen`` work for both kinds of locator. The
app's ``window.rtcsvc`` hook is read only for what nobody sees (tracks, file digests).

Marked ``firefox``: ``pytest -m firefox`` runs the set alone; it is part of the default suite.
"""

from __future__ import annotations

import re
import subprocess
import time

import pytest

from tests.support.browser import (  # noqa: F401  (pytest fixtures)
    browser, people, playwright_driver, room, screenshot_dir,
)
from tests.support.firefox import (  # noqa: F401  (pytest fixtures)
    SCREEN, Firefox, FirefoxPerson, audit, firefox, firefox_people, see, unseen, wait_media_flowing,
)

pytestmark = [pytest.mark.slow, pytest.mark.firefox]

# Keeps every RTCPeerConnection the app makes, so the test can read what arrives (getStats).
RECORD_PEER_CONNECTIONS = """(() => {
  const Native = window.RTCPeerConnection;
  window.__testPeerConnections = [];
  window.RTCPeerConnection = class extends Native {
    constructor(...args) { super(...args); window.__testPeerConnections.push(this); }
  };
})();"""

# Audio received and decoded, summed over the live connections: bytes and the energy of what
# was played out (Firefox's fake microphone is a steady tone, Chromium's beeps every second;
# silence adds no energy). Web Audio cannot measure it: Firefox has no sound device here.
INBOUND_AUDIO = """async () => {
  let bytes = 0, energy = 0;
  for (const pc of window.__testPeerConnections) {
    if (pc.connectionState !== 'connected') continue;
    (await pc.getStats()).forEach(s => {
      if (s.type === 'inbound-rtp' && s.kind === 'audio') {
        bytes += s.bytesReceived || 0;
        energy += s.totalAudioEnergy || 0;
      }
    });
  }
  return {bytes, energy};
}"""


def add_init_script(person, source: str) -> None:
    if isinstance(person, FirefoxPerson):
        person.page.add_init_script(source)
    else:
        person.page.add_init_script(source)


def assert_hears(person, other_name: str) -> None:
    """Audio from the other keeps arriving and is not silence."""
    before = person.page.evaluate(INBOUND_AUDIO)
    person.wait("""(b) => (async () => { const n = await (%s)();
                   return n.bytes > b.bytes + 2000 && n.energy > b.energy; })()""" % INBOUND_AUDIO.strip(),
                before, what=f"audio from {other_name}")


# A file of random bytes made in the page, its SHA-256 kept in window.__sentSha; returns a
# DataTransfer holding it, to drop on the call as a person drags a file from their desktop.
MAKE_FILE = """async ([size, name]) => {
    const bytes = new Uint8Array(size);
    for (let off = 0; off < size; off += 65536) crypto.getRandomValues(bytes.subarray(off, Math.min(off + 65536, size)));
    const digest = new Uint8Array(await crypto.subtle.digest('SHA-256', bytes));
    window.__sentSha = Array.from(digest, x => x.toString(16).padStart(2, '0')).join('');
    const dt = new DataTransfer();
    dt.items.add(new File([bytes], name, {type: 'application/octet-stream'}));
    return dt;
}"""

# The visible labels of the call's controls and top bar, to compare the two browsers' screens.
VISIBLE_CONTROLS = """() => [...document.querySelectorAll('.controls button, .topbar button')]
    .filter(b => b.offsetParent !== null).map(b => b.innerText.replace(/\\s+/g, ' ').trim())"""


def drop_file(person, size: int, name: str) -> None:
    """Drag a file of ``size`` random bytes from the desktop onto the call area."""
    if isinstance(person, FirefoxPerson):
        person.firefox.call("drop", page=person.page_id, steps=[{"role": "region", "name": "Call area"}],
                            make=MAKE_FILE, arg=[size, name])
        return
    handle = person.page.evaluate_handle(MAKE_FILE, [size, name])
    for event in ("dragenter", "dragover", "drop"):
        person.page.dispatch_event("#stage", event, {"dataTransfer": handle})


def say(person, text: str) -> None:
    person.button("Chat").click()
    box = person.page.get_by_role("textbox", name="Message")
    box.fill(text)
    box.press("Enter")
    person.button("Close chat").click()


def no_page_errors(*persons, expected: str | None = None) -> None:
    """No CSP violation and no uncaught error (but those matching ``expected``)."""
    for p in persons:
        bad = [m for m in p.console if ("Content Security Policy" in m or "pageerror" in m)
               and not (expected and re.search(expected, m))]
        assert not bad, f"{p.name}: {bad}"


def test_chromium_and_firefox_call_each_other_with_media_chat_files_codes_and_leave(
        rtcsvc, browser, people, firefox_people, room, tmp_path):  # noqa: F811
    shots = screenshot_dir(tmp_path)
    svc = rtcsvc(tls=True)
    ada = people(browser, svc.http_url, name="Ada")  # Chromium
    fox = firefox_people(svc.http_url, name="Fiona")  # Firefox ESR
    for p in (ada, fox):
        add_init_script(p, RECORD_PEER_CONNECTIONS)
    ada.join(room)
    fox.join(room)
    (fox_id,) = ada.wait_connected_to(1)
    (ada_id,) = fox.wait_connected_to(1)
    pairs = ((ada, fox, fox_id), (fox, ada, ada_id))

    # ---- each sees and hears the other, named, in a call of two ----
    for me, other, other_id in pairs:
        see(me.tile(other.name))
        see(me.tile(other.name).get_by_text(other.name))
        see(me.page.get_by_text("2 people"))
        sample = wait_media_flowing(me, other_id)
        assert sample["w"] > 0 and sample["audio"] == ["live"] and sample["video"] == ["live"], sample
        assert_hears(me, other.name)
    # Both browsers show the same call screen: the same controls, the same words.
    assert ada.page.evaluate(VISIBLE_CONTROLS) == fox.page.evaluate(VISIBLE_CONTROLS)
    audit(fox, "a call of two (Firefox)")
    fox.shot(shots, "firefox-call-2-desktop.png")

    # ---- chat, both ways ----
    say(ada, "Hello from Chromium")
    see(fox.toast("Ada: Hello from Chromium"))
    see(fox.button("Chat 1 unread"))
    fox.button("Chat 1 unread").click()
    chat = fox.page.get_by_role("complementary", name="Chat & files")
    see(chat.get_by_text("Hello from Chromium"))
    fox.page.get_by_role("textbox", name="Message").fill("Hello from Firefox")
    fox.page.get_by_role("button", name="Send").click()
    see(chat.get_by_text("Hello from Firefox"))
    see(ada.toast("Fiona: Hello from Firefox"))
    ada.button("Chat 1 unread").click()
    see(ada.page.get_by_role("complementary", name="Chat & files").get_by_text("Hello from Firefox"))
    for p in (ada, fox):
        p.button("Close chat").click()

    # ---- a dropped file, both ways, arrives with the sender's checksum ----
    size = 5 * 1024 * 1024
    for sender, receiver in ((ada, fox), (fox, ada)):
        name = f"from-{sender.name}.bin"
        drop_file(sender, size, name)
        # The receiver is asked first, and says yes.
        chat = receiver.page.get_by_role("complementary", name="Chat & files")
        see(chat.get_by_text(f"{sender.name} wants to send you {name} (5.0 MB, application/octet-stream)"))
        chat.get_by_role("button", name="Accept").click()
        see(chat.get_by_role("link", name=f"Download {name}"), timeout=60_000)
        see(chat.get_by_text(f"{sender.name} sent {name} (5.0 MB, application/octet-stream)"))
        digest = receiver.page.evaluate("(name) => window.rtcsvc.receivedSha256(name)", name)
        assert digest == sender.page.evaluate("window.__sentSha"), name
    audit(fox, "chat and files (Firefox)")
    fox.shot(shots, "firefox-chat-desktop.png")
    for p in (ada, fox):
        p.button("Close chat").click()

    # ---- the security code is the same on both screens ----
    codes = {}
    for me, other, _ in pairs:
        me.button("Security codes").click()
        panel = me.page.get_by_role("complementary", name="Security codes")
        see(panel.get_by_role("heading", name=other.name))
        me.wait("() => /^\\S+( \\S+){4} · [a-z]+( [a-z]+){4}$/.test(document.querySelector('#security .sas')?.innerText || '')",
                what="the security code")
        codes[me.name] = panel.locator(".sas").inner_text()
    assert codes["Ada"] == codes["Fiona"], codes
    assert re.match(r"^\S+( \S+){4} · [a-z]+( [a-z]+){4}$", codes["Ada"]), codes
    fox.shot(shots, "firefox-security-desktop.png")
    for p in (ada, fox):
        p.button("Close security codes").click()

    # ---- muted microphone and stopped camera show on the other's tile, both ways ----
    for me, other, _ in pairs:
        me.button("Mute microphone").click()
        see(me.button("Unmute microphone"))
        see(other.tile(f"{me.name}, muted"))
        see(other.tile(f"{me.name}, muted").get_by_role("img", name="muted"))
        me.button("Stop video").click()
        see(other.tile(f"{me.name}, muted, camera off"))
        me.button("Unmute microphone").click()
        me.button("Start video").click()
        see(other.tile(me.name))
    # Firefox's own self-view says so too.
    fox.button("Mute microphone").click()
    see(fox.page.get_by_role("figure", name="Your video").get_by_role("img", name="muted"))
    fox.shot(shots, "firefox-muted-desktop.png")
    fox.button("Unmute microphone").click()

    # ---- leaving is shown to both ----
    fox.button("Leave call").click()
    see(fox.page.get_by_role("heading", name="You left the call"))
    see(fox.button("Rejoin"))
    see(ada.toast("Fiona left the call."))
    unseen(ada.tile("Fiona"))
    see(ada.page.get_by_text("Just you"))
    audit(fox, "left (Firefox)")
    fox.shot(shots, "firefox-left-desktop.png")
    no_page_errors(ada, fox)


# The size of the screen a person shares, read from their own self-view (it shows the screen).
SHARED_SIZE = """() => { const t = document.querySelector('#self-video').srcObject.getVideoTracks()[0];
                         const s = t.getSettings(); return [s.width, s.height]; }"""


def start_call(rtcsvc, browser, people, firefox_people, room):  # noqa: F811
    svc = rtcsvc(tls=True)
    ada = people(browser, svc.http_url, name="Ada")
    fox = firefox_people(svc.http_url, name="Fiona")
    ada.join(room)
    fox.join(room)
    (fox_id,) = ada.wait_connected_to(1)
    (ada_id,) = fox.wait_connected_to(1)
    wait_media_flowing(ada, fox_id)
    wait_media_flowing(fox, ada_id)
    return svc, ada, fox, ada_id, fox_id


TILE_SIZE = """(id) => { const v = document.querySelector(`.tile[data-peer="${id}"] video`);
                        return v ? [v.videoWidth, v.videoHeight] : null; }"""


def received_size(viewer, presenter, presenter_id, t0: float, within_s: float):
    """Seconds from ``t0`` (the click) until the viewer's tile of the presenter shows the size
    the presenter's screen track has then, which keeps matching for two more seconds; and
    that size. (Headless Chromium's captured tab settles its height a moment after the share
    starts, 760 or 720 px: what counts is that the viewer gets whatever is being shared, whole.)
    """
    deadline = t0 + within_s
    while True:
        size = presenter.page.evaluate(SHARED_SIZE)
        sample = viewer.page.evaluate(TILE_SIZE, presenter_id)
        if sample == size:
            break
        assert time.monotonic() < deadline, (
            f"{viewer.name} sees the shared screen at {sample}, not {size}, after {within_s} s")
        time.sleep(0.2)
    took = time.monotonic() - t0
    for _ in range(4):
        time.sleep(0.5)
        size = presenter.page.evaluate(SHARED_SIZE)
        sample = viewer.page.evaluate(TILE_SIZE, presenter_id)
        assert sample == size, f"{viewer.name}: the shared screen is {sample}, not {size}"
    return took, size


def test_a_screen_shared_from_each_browser_is_seen_by_the_other_at_full_size(
        rtcsvc, browser, people, firefox_people, room, tmp_path):  # noqa: F811
    """Firefox's screen (its Xvfb display) arrives at its full 1280x800 within 5 s of the click: without
    degradationPreference "maintain-resolution" it came at 640x400 for about 10 s."""
    shots = screenshot_dir(tmp_path)
    svc, ada, fox, ada_id, fox_id = start_call(rtcsvc, browser, people, firefox_people, room)
    for presenter, viewer, presenter_id in ((fox, ada, fox_id), (ada, fox, ada_id)):
        clicked = time.monotonic()
        presenter.button("Share screen").click()
        presenter.wait("() => document.body.innerText.includes('You are presenting your screen')",
                       what="the presenting strip")
        if presenter is fox:
            size = presenter.page.evaluate(SHARED_SIZE)
            assert tuple(size) == SCREEN, size  # Firefox shares its whole (Xvfb) screen
        took, size = received_size(viewer, presenter, presenter_id, clicked, within_s=5)
        print(f"{viewer.name} sees {presenter.name}'s {size[0]}x{size[1]} screen at full size {took:.1f} s after the click")
        see(presenter.page.get_by_text("You are presenting your screen to everyone"))
        see(presenter.button("Stop presenting"))
        see(viewer.page.get_by_text(f"{presenter.name} is presenting their screen"))
        see(viewer.tile(f"{presenter.name}, presenting"))
        audit(fox, f"presenting, {'the presenter' if presenter is fox else 'a viewer'} (Firefox)")
        fox.shot(shots, f"firefox-presenting-{'presenter' if presenter is fox else 'viewer'}-desktop.png")
        presenter.button("Stop presenting").click()
        unseen(viewer.page.get_by_text(f"{presenter.name} is presenting their screen"))
        see(presenter.button("Share screen"))
        see(viewer.tile(presenter.name))
    no_page_errors(ada, fox)


# A person who presses Cancel in Chromium's screen picker (headless Chromium has no picker to
# cancel, so its refusal is played here exactly as Chromium reports it).
CANCEL_SCREEN_PICKER = """(() => {
  navigator.mediaDevices.getDisplayMedia = async () => {
    throw new DOMException('Permission denied', 'NotAllowedError');
  };
})();"""


def test_a_refused_screen_share_tells_the_person_why_in_both_browsers(
        rtcsvc, browser, people, room, tmp_path):  # noqa: F811
    """Firefox without a display refuses with NotFoundError, a cancelled picker with
    NotAllowedError: each says so in words (before, the app said one vague line or nothing)."""
    svc = rtcsvc(tls=True)
    ada = people(browser, svc.http_url, name="Ada")
    ada.page.add_init_script(CANCEL_SCREEN_PICKER)
    # A headless Firefox: no display, so no screen to share.
    from tests.support.firefox import FirefoxPerson as Person

    headless = Firefox(headless=True, log_path=tmp_path / "headless-firefox.log")
    try:
        fox = Person(headless, svc.http_url, name="Fiona")
        ada.join(room)
        fox.join(room)
        ada.wait_connected_to(1)
        fox.wait_connected_to(1)
        for me, other, words in (
                (fox, ada, "Screen sharing did not start: the browser found no screen to share."),
                (ada, fox, "Screen sharing did not start: it was cancelled or not allowed.")):
            me.button("Share screen").click()
            see(me.toast(words))
            see(me.button("Share screen"))
            unseen(me.page.get_by_text("You are presenting your screen to everyone"))
            see(other.tile(me.name))  # nothing changed for the others
            unseen(other.page.get_by_text(f"{me.name} is presenting"))
        audit(fox, "a refused screen share (Firefox)")
        fox.shot(tmp_path, "firefox-share-refused-desktop.png")
        no_page_errors(ada, fox)
    finally:
        headless.close()


def test_a_mesh_of_two_chromium_and_one_firefox_everyone_sees_everyone(
        rtcsvc, browser, people, firefox_people, room, tmp_path):  # noqa: F811
    svc = rtcsvc(tls=True)
    ada = people(browser, svc.http_url, name="Ada")
    grace = people(browser, svc.http_url, name="Grace")
    fox = firefox_people(svc.http_url, name="Fiona")
    everyone = (ada, grace, fox)
    for p in everyone:
        p.join(room)
    ids = {}
    for p in everyone:
        p.wait_connected_to(2, timeout=45_000)
        ids[p.name] = p.id
    for me in everyone:
        see(me.page.get_by_text("3 people"))
        for other in everyone:
            if other is me:
                continue
            see(me.tile(other.name))
            wait_media_flowing(me, ids[other.name])
    audit(fox, "a group of three (Firefox)")
    fox.shot(screenshot_dir(tmp_path), "firefox-call-3-desktop.png")
    # Someone leaves: the other two, in either browser, see it.
    grace.button("Leave call").click()
    for me in (ada, fox):
        see(me.toast("Grace left the call."))
        unseen(me.tile("Grace"))
        see(me.page.get_by_text("2 people"))
    no_page_errors(*everyone)


def signaling_sockets(pid: int, port: int) -> list[int]:
    """The local ports of process ``pid``'s TCP connections to 127.0.0.1:``port``."""
    out = subprocess.run(["ss", "-tnpH", "state", "established", "dst", f"127.0.0.1:{port}"],
                         capture_output=True, text=True, timeout=10, check=True).stdout
    ports = []
    for line in out.splitlines():
        if f"pid={pid}," in line:
            local = line.split()[2]  # Recv-Q Send-Q Local Peer ...
            ports.append(int(local.rsplit(":", 1)[1]))
    return ports


def test_firefox_recovers_from_a_network_blip_without_a_reload(
        rtcsvc, browser, people, firefox_people, firefox, room, tmp_path):  # noqa: F811
    """Firefox's signaling socket is cut (its TCP connection destroyed, the page held offline
    for 3 s): it shows the reconnecting banner, comes back by itself and the call goes on."""
    svc, ada, fox, ada_id, fox_id = start_call(rtcsvc, browser, people, firefox_people, room)
    fox.page.evaluate("() => { window.__sameDocument = true; }")
    ports = signaling_sockets(firefox.firefox_pid, svc.port)
    assert ports, "Firefox has no connection to rtcsvc"

    firefox.call("setOffline", page=fox.page_id, offline=True)
    for p in ports:
        subprocess.run(["ss", "-K", "src", f"127.0.0.1:{p}", "dst", f"127.0.0.1:{svc.port}"],
                       capture_output=True, timeout=10, check=True)
    banner = fox.page.get_by_role("alert").get_by_text("Connection to the server lost. Reconnecting…")
    see(banner)
    see(fox.page.locator(".topbar").get_by_text("Reconnecting…"))
    fox.shot(tmp_path, "firefox-reconnecting-desktop.png")
    time.sleep(3)
    firefox.call("setOffline", page=fox.page_id, offline=False)

    fox.expect_connected(timeout=45_000)
    see(fox.toast("Reconnected."), timeout=45_000)
    unseen(fox.page.get_by_role("alert"))
    assert fox.page.evaluate("window.__sameDocument") is True  # no reload
    assert fox.wait_connected_to(1) == [ada_id]
    wait_media_flowing(fox, ada_id)
    wait_media_flowing(ada, fox_id)
    see(ada.tile("Fiona"))
    see(fox.tile("Ada"))
    # Firefox reports each refused WebSocket while offline as a page error.
    no_page_errors(ada, fox, expected=r"connection to wss://.*(was interrupted|can.t establish)|establish a connection to the server at wss://")
