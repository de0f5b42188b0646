"""A two-person call in real headless Chromium against the real ``twistd -n rtcsvc``.

Each test starts its own server (the ``rtcsvc`` fixture stops it by PID at teardown) and two
participants with Chromium's fake camera and microphone, then checks what the people would
notice: moving pictures, live audio, chat, files, mute, screen share, the security code.
"""

from __future__ import annotations

import re
import secrets
import time

import pytest

from tests.support.browser import browser, people, playwright_driver, room, screenshot_dir  # noqa: F401

pytestmark = pytest.mark.slow



def start_pair(rtcsvc, browser, people, room, names=("Ada", "Grace")):
    svc = rtcsvc(tls=True)
    a = people(browser, svc.http_url, name=names[0])
    b = people(browser, svc.http_url, name=names[1])
    a.join(room)
    b.join(room)
    (b_id,) = a.wait_connected_to(1)
    (a_id,) = b.wait_connected_to(1)
    return svc, a, b, a_id, b_id


def assert_no_csp_violations(*participants):
    for p in participants:
        bad = [m for m in p.console if "Content Security Policy" in m or "pageerror" in m]
        assert not bad, f"{p.name}: {bad}"


def test_two_participants_receive_each_others_video_and_live_audio(rtcsvc, browser, people, tmp_path):
    room = secrets.token_urlsafe(16)  # what "Start a call" makes, so the screenshot looks real
    svc, a, b, a_id, b_id = start_pair(rtcsvc, browser, people, room)

    for viewer, other in ((a, b_id), (b, a_id)):
        sample = viewer.wait_media_flowing(other)
        assert sample["w"] > 0 and sample["h"] > 0
        assert sample["audio"] == ["live"], sample
        assert sample["video"] == ["live"], sample

    # The tiles are named after the people (the name travels over the data channel).
    a.wait(f"() => document.querySelector('.tile[data-peer=\"{b_id}\"] .tile-name').textContent === 'Grace'")
    time.sleep(2.5)  # let the stats readout and the video settle before the picture
    a.screenshot(screenshot_dir(tmp_path) / "call-2.png")
    assert_no_csp_violations(a, b)


def test_chat_message_typed_by_one_participant_arrives_at_the_other(rtcsvc, browser, people, room):
    svc, a, b, a_id, b_id = start_pair(rtcsvc, browser, people, room)

    a.page.click("#btn-chat")
    a.page.fill("#chat-input", "hello over the data channel ✓")
    a.page.press("#chat-input", "Enter")

    b.wait("() => window.rtcsvc.chat.some(m => m.text === 'hello over the data channel ✓' && !m.self)")
    (entry,) = [m for m in b.page.evaluate("window.rtcsvc.chat") if not m["self"]]
    assert entry["from"] == a_id and entry["name"] == "Ada"
    # The unread badge tells B (whose chat panel is closed) that something arrived.
    assert b.page.locator("#unread").text_content() == "1"
    # And it is on A's side as sent by "You".
    assert a.page.locator(".msg-self .msg-text").text_content() == "hello over the data channel ✓"


# Builds a 5 MB file of random bytes inside the page, records its SHA-256, and records every
# progress value the transfer item shows (MutationObserver), so the test can see that progress
# was shown while the bytes were moving, not just at the end.
MAKE_FILE = """async (size) => {
    const bytes = new Uint8Array(size);
    for (let off = 0; off < size; off += 65536) crypto.getRandomValues(bytes.subarray(off, Math.min(off + 65536, size)));
    const digest = new Uint8Array(await crypto.subtle.digest('SHA-256', bytes));
    window.__sentSha = Array.from(digest, x => x.toString(16).padStart(2, '0')).join('');
    const file = new File([bytes], 'random-5MB.bin', {type: 'application/octet-stream'});
    const dt = new DataTransfer();
    dt.items.add(file);
    return dt;
}"""
WATCH_PROGRESS = """() => {
    window.__progress = [];
    new MutationObserver(records => {
        for (const r of records) window.__progress.push(Number(r.target.dataset.progress));
    }).observe(document.querySelector('#chat-log'), {subtree: true, attributes: true, attributeFilter: ['data-progress']});
}"""
RECEIVED = """async () => {
    const a = document.querySelector('.transfer-in a.download');
    const t = window.rtcsvc.transfers.find(t => t.direction === 'in');
    return {sha: await window.rtcsvc.receivedSha256(t.id), name: a.getAttribute('download'),
            size: Number(a.dataset.size), type: a.dataset.type, href: a.href, url: t.url,
            text: a.textContent};
}"""


def test_file_dropped_on_the_call_arrives_intact_with_progress_on_both_ends(rtcsvc, browser, people, room):
    svc, a, b, a_id, b_id = start_pair(rtcsvc, browser, people, room)
    size = 5 * 1024 * 1024
    for p in (a, b):
        p.page.evaluate(WATCH_PROGRESS)

    data_transfer = a.page.evaluate_handle(MAKE_FILE, size)
    for event in ("dragenter", "dragover", "drop"):
        a.page.dispatch_event("#stage", event, {"dataTransfer": data_transfer})

    b.wait("() => window.rtcsvc.transfers.some(t => t.direction === 'in' && t.done && t.url)", timeout=60_000,
           what="the file to arrive")
    got = b.page.evaluate(RECEIVED)
    assert got["sha"] == a.page.evaluate("window.__sentSha")
    # The download link carries the original name, size and type, as a blob: URL.
    assert got["name"] == "random-5MB.bin"
    assert got["size"] == size
    assert got["type"] == "application/octet-stream"
    assert got["href"].startswith("blob:") and got["href"] == got["url"]
    assert "random-5MB.bin" in got["text"]

    a.wait("() => window.rtcsvc.transfers.some(t => t.direction === 'out' && t.done && !t.failed)",
           what="the sender to see the file delivered")
    for p in (a, b):
        seen = p.page.evaluate("window.__progress")
        assert seen[-1] == 100, (p.name, seen)
        assert min(seen) < 100, f"{p.name} showed no progress before the end: {seen}"
        assert p.page.locator(".transfer progress").evaluate("e => e.value") == 1
    # The receiver updates as chunks land (its first update is at the first chunk). The
    # sender's partial values depend on how fast loopback SCTP drains, so they are not asserted.
    received = b.page.evaluate("window.__progress")
    assert any(0 < v < 100 for v in received), f"no partial progress at the receiver: {received}"
    assert a.page.locator(".transfer-out .transfer-status").text_content() == "Delivered"


def test_mute_and_camera_off_are_shown_on_the_other_side(rtcsvc, browser, people, room):
    svc, a, b, a_id, b_id = start_pair(rtcsvc, browser, people, room)
    tile = b.page.locator(f'.tile[data-peer="{a_id}"]')

    a.page.click("#btn-mic")
    b.wait_peer(a_id, "p.muted && !p.cameraOff")
    assert "muted" in tile.get_attribute("class")
    assert tile.locator(".mic-off-icon").is_visible()
    assert a.page.evaluate("window.rtcsvc.state.media.muted") is True
    assert a.page.get_attribute("#btn-mic", "aria-pressed") == "true"

    a.page.click("#btn-cam")
    b.wait_peer(a_id, "p.muted && p.cameraOff")
    assert "camera-off" in tile.get_attribute("class")
    assert tile.locator(".avatar").is_visible()

    a.page.click("#btn-mic")
    a.page.click("#btn-cam")
    b.wait_peer(a_id, "!p.muted && !p.cameraOff")
    assert not tile.locator(".avatar").is_visible()


def test_screen_share_replaces_the_outgoing_video_track_and_back(rtcsvc, browser, people, room):
    svc, a, b, a_id, b_id = start_pair(rtcsvc, browser, people, room)
    b.wait_media_flowing(a_id)
    camera = [t for t in a.page.evaluate("(id) => window.rtcsvc.outgoing(id)", b_id) if t["kind"] == "video"]
    remote_track_before = [t["id"] for t in b.page.evaluate("(id) => window.rtcsvc.remoteTracks(id)", a_id)
                           if t["kind"] == "video"]

    a.page.click("#btn-share")
    a.wait("""(peer) => window.rtcsvc.state.media.sharing &&
               window.rtcsvc.outgoing(peer).some(t => t.kind === 'video' && t.label.startsWith('screen'))""",
           b_id, what="screen sharing to start")
    shared = [t for t in a.page.evaluate("(id) => window.rtcsvc.outgoing(id)", b_id) if t["kind"] == "video"]
    assert len(camera) == len(shared) == 1
    assert shared[0]["id"] != camera[0]["id"]
    assert shared[0]["label"].startswith("screen"), shared

    # B learns it is a screen and keeps receiving frames on the same receiver track (replaceTrack:
    # no renegotiation, no new track), now at the screen's size.
    b.wait_peer(a_id, "p.sharing")
    b.wait(f"""() => {{ const v = document.querySelector('.tile[data-peer="{a_id}"] video');
                        return v.videoWidth > 0 && v.videoWidth !== 640 && v.videoHeight !== 480; }}""",
           what="the screen's frames")
    b.wait_media_flowing(a_id)
    remote_track_after = [t["id"] for t in b.page.evaluate("(id) => window.rtcsvc.remoteTracks(id)", a_id)
                          if t["kind"] == "video"]
    assert remote_track_after == remote_track_before

    a.page.click("#btn-share")
    # replaceTrack resolves a moment later: the camera's own track goes out again.
    a.wait("""([peer, camera]) => !window.rtcsvc.state.media.sharing &&
               window.rtcsvc.outgoing(peer).some(t => t.kind === 'video' && t.id === camera)""",
           [b_id, camera[0]["id"]], what="the camera track to be sent again")
    b.wait_peer(a_id, "!p.sharing")


def test_both_ends_show_the_same_authentication_string_and_tampering_changes_it(rtcsvc, browser, people, room):
    svc, a, b, a_id, b_id = start_pair(rtcsvc, browser, people, room)

    sas_a = a.page.evaluate("(id) => window.rtcsvc.sas(id)", b_id)
    sas_b = b.page.evaluate("(id) => window.rtcsvc.sas(id)", a_id)
    assert sas_a and sas_a == sas_b
    assert len(sas_a.split(" · ")[1].split()) == 5  # five words under the five emoji
    # It is what the tiles show.
    a.wait(f"() => document.querySelector('.tile[data-peer=\"{b_id}\"]').dataset.sas !== ''")
    shown_a = a.page.get_attribute(f'.tile[data-peer="{b_id}"]', "data-sas")
    shown_b = b.page.get_attribute(f'.tile[data-peer="{a_id}"]', "data-sas")
    assert shown_a == shown_b == sas_a.split(" · ")[1]

    # The two ends really hold each other's fingerprints, mirrored.
    fa = a.page.evaluate("(id) => window.rtcsvc.fingerprints(id)", b_id)
    fb = b.page.evaluate("(id) => window.rtcsvc.fingerprints(id)", a_id)
    assert fa["local"] == fb["remote"] and fa["remote"] == fb["local"]
    assert re.fullmatch(r"sha-256 ([0-9A-F]{2}:){31}[0-9A-F]{2}", fa["local"])

    # In the page: order does not matter, and one changed hex digit of either fingerprint
    # (a man in the middle substituting his certificate) gives a different string.
    check = a.page.evaluate(
        """async ({local, remote}) => {
            const flip = (fp, i) => fp.slice(0, i) + (fp[i] === 'A' ? 'B' : 'A') + fp.slice(i + 1);
            const base = await window.rtcsvc.sasOf(local, remote);
            return {
                base,
                swapped: await window.rtcsvc.sasOf(remote, local),
                tamperedRemote: await window.rtcsvc.sasOf(local, flip(remote, remote.length - 1)),
                tamperedLocal: await window.rtcsvc.sasOf(flip(local, 8), remote),
            };
        }""",
        fa,
    )
    assert check["base"] == sas_a == check["swapped"]
    assert check["tamperedRemote"] != sas_a
    assert check["tamperedLocal"] != sas_a


def test_self_view_is_dragged_and_dropped_into_another_corner(rtcsvc, browser, people, room):
    svc, a, b, a_id, b_id = start_pair(rtcsvc, browser, people, room)
    page = a.page
    assert a.state["selfCorner"] == "bottom-right"

    # A real mouse drag: Chromium runs the HTML5 drag-and-drop events (dragstart with
    # dataTransfer.setData, dragover on the dock zone, drop).
    self_box = page.locator("#self").bounding_box()
    dock_box = page.locator('.dock[data-corner="top-left"]').bounding_box()
    page.mouse.move(self_box["x"] + self_box["width"] / 2, self_box["y"] + self_box["height"] / 2)
    page.mouse.down()
    page.mouse.move(dock_box["x"] + dock_box["width"] / 2, dock_box["y"] + dock_box["height"] / 2, steps=12)
    page.mouse.up()
    a.wait("() => window.rtcsvc.state.selfCorner === 'top-left'", what="the drop")
    assert "corner-top-left" in page.get_attribute("#self", "class")
    page.wait_for_timeout(400)  # the CSS transition
    stage = page.locator("#stage").bounding_box()
    moved = page.locator("#self").bounding_box()
    assert moved["x"] < stage["x"] + stage["width"] / 2 and moved["y"] < stage["y"] + stage["height"] / 2

    # The same with the keyboard, for people who cannot drag.
    page.focus("#self")
    page.keyboard.press("ArrowRight")
    a.wait("() => window.rtcsvc.state.selfCorner === 'top-right'")
    page.keyboard.press("ArrowDown")
    a.wait("() => window.rtcsvc.state.selfCorner === 'bottom-right'")


def metric_samples(svc, name: str) -> dict[str, float]:
    text = svc.get("/metrics").decode()
    out = {}
    for line in text.splitlines():
        if line.startswith(name):
            key, _, value = line.rpartition(" ")
            out[key] = float(value)
    return out


def test_metrics_count_the_call_setups_both_browsers_reported(rtcsvc, browser, people, room):
    svc, a, b, a_id, b_id = start_pair(rtcsvc, browser, people, room)
    # Each end reports its own attempt once it is connected, with the path it took.
    for p in (a, b):
        p.wait("() => window.rtcsvc.state.peers.every(x => x.path)")

    def setups():
        return sum(v for k, v in metric_samples(svc, "rtcsvc_call_setups_total").items()
                   if 'path="direct"' in k)

    deadline = time.monotonic() + 10
    while setups() < 2 and time.monotonic() < deadline:
        time.sleep(0.2)
    assert setups() == 2
    histogram = metric_samples(svc, "rtcsvc_call_setup_seconds_count")
    assert sum(histogram.values()) == 2


def test_fifty_megabyte_file_arrives_intact(rtcsvc, browser, people, room):
    """The issue's size bar: 50 MB through the data channel with backpressure, same SHA-256."""
    svc, a, b, a_id, b_id = start_pair(rtcsvc, browser, people, room)
    size = 50 * 1024 * 1024
    data_transfer = a.page.evaluate_handle(MAKE_FILE, size)
    for event in ("dragenter", "dragover", "drop"):
        a.page.dispatch_event("#stage", event, {"dataTransfer": data_transfer})
    b.wait("() => window.rtcsvc.transfers.some(t => t.direction === 'in' && t.done && t.url)",
           timeout=120_000, what="the 50 MB file to arrive")
    got = b.page.evaluate(RECEIVED)
    assert got["size"] == size
    assert got["sha"] == a.page.evaluate("window.__sentSha")
    a.wait("() => window.rtcsvc.transfers.some(t => t.direction === 'out' && t.done && !t.failed)",
           timeout=30_000)
