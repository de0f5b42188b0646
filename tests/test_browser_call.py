"""A two-person call in real headless Chromium against the real ``twistd -n rtcsvc``.

Each test starts its own server (the ``rtcsvc`` fixture stops it by PID at teardown) and two
participants with Chromium's fake camera and microphone, then checks what the people would
notice, on screen: the other's named tile, chat, a file card with its download, mute and camera
state on the other tile, who is presenting, the security code. The app's test hook is read only
for what no person can see: frames and tracks, DTLS fingerprints, the bytes of a received file.
"""

from __future__ import annotations

import re
import time

import pytest
from playwright.sync_api import expect

from tests.support.browser import browser, people, playwright_driver, room  # noqa: F401

pytestmark = pytest.mark.slow


def start_pair(rtcsvc, browser, people, room, names=("Ada", "Grace")):  # noqa: F811
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


def test_two_participants_receive_each_others_video_and_live_audio(rtcsvc, browser, people, room):  # noqa: F811
    svc, a, b, a_id, b_id = start_pair(rtcsvc, browser, people, room)

    for viewer, other_id, other_name in ((a, b_id, "Grace"), (b, a_id, "Ada")):
        sample = viewer.wait_media_flowing(other_id)
        assert sample["w"] > 0 and sample["h"] > 0
        assert sample["audio"] == ["live"], sample
        assert sample["video"] == ["live"], sample
        # The tile is named after the person (the name travels over the data channel).
        expect(viewer.tile(other_name)).to_be_visible()
        expect(viewer.tile(other_name).get_by_text(other_name, exact=True)).to_be_visible()
        expect(viewer.page.get_by_text("2 people")).to_be_visible()
    assert_no_csp_violations(a, b)


def test_chat_message_typed_by_one_participant_arrives_at_the_other(rtcsvc, browser, people, room):  # noqa: F811
    svc, a, b, a_id, b_id = start_pair(rtcsvc, browser, people, room)

    a.button("Chat").click()
    a.page.get_by_role("textbox", name="Message").fill("hello over the data channel ✓")
    a.page.get_by_role("textbox", name="Message").press("Enter")

    # B, whose chat panel is closed, is told: a toast, and the count in the Chat button's name.
    expect(b.toast("Ada: hello over the data channel ✓")).to_be_visible()
    expect(b.button("Chat 1 unread")).to_be_visible()
    b.button("Chat 1 unread").click()
    log = b.page.get_by_role("complementary", name="Chat & files").get_by_role("listitem")
    expect(log.filter(has_text="hello over the data channel ✓")).to_contain_text("Ada")
    expect(b.button("Chat", exact=True)).to_be_visible()  # read: the count is gone
    # And on A's side it is there as sent by "You".
    mine = a.page.get_by_role("complementary", name="Chat & files").get_by_role("listitem")
    expect(mine.filter(has_text="hello over the data channel ✓")).to_contain_text("You")


# Builds a file of random bytes inside the page and records its SHA-256, then returns a
# DataTransfer holding it, to drop on the call as a person drags a file from their desktop.
MAKE_FILE = """async ([size, name]) => {
    const bytes = new Uint8Array(size);
    for (let off = 0; off < size; off += 65536) crypto.getRandomValues(bytes.subarray(off, Math.min(off + 65536, size)));
    const digest = new Uint8Array(await crypto.subtle.digest('SHA-256', bytes));
    window.__sentSha = Array.from(digest, x => x.toString(16).padStart(2, '0')).join('');
    const file = new File([bytes], name, {type: 'application/octet-stream'});
    const dt = new DataTransfer();
    dt.items.add(file);
    return dt;
}"""
# Records every value the file card's progress bar shows, so the test can see that progress
# was shown while the bytes were moving, not just at the end.
WATCH_PROGRESS = """() => {
    window.__progress = [];
    new MutationObserver(records => {
        for (const r of records) window.__progress.push(Number(r.target.dataset.progress));
    }).observe(document.querySelector('#chat-log'), {subtree: true, attributes: true, attributeFilter: ['data-progress']});
}"""


def drop_file(person, size: int, name: str) -> None:
    data_transfer = person.page.evaluate_handle(MAKE_FILE, [size, name])
    for event in ("dragenter", "dragover", "drop"):
        person.page.dispatch_event("#stage", event, {"dataTransfer": data_transfer})


def file_card(person, heading: str):
    """The file card in the chat panel whose heading starts with ``heading``."""
    chat = person.page.get_by_role("complementary", name="Chat & files")
    return chat.get_by_role("listitem").filter(has_text=heading)


def accept_file(person, heading: str) -> None:
    """The person presses Accept on the card offering a file."""
    card = file_card(person, heading)
    expect(card.get_by_text("Accept to receive it, or decline.")).to_be_visible()
    card.get_by_role("button", name="Accept").click()


def test_a_declined_file_sends_no_bytes_and_the_sender_sees_declined(rtcsvc, browser, people, room):  # noqa: F811
    svc, a, b, a_id, b_id = start_pair(rtcsvc, browser, people, room)
    drop_file(a, 64 * 1024, "holiday.bin")
    card = file_card(b, "holiday.bin")  # its heading changes with its state
    expect(card.get_by_text("Ada wants to send you holiday.bin (64 KB, application/octet-stream)")).to_be_visible()
    expect(b.toast("Ada wants to send you holiday.bin")).to_be_visible()
    expect(card.get_by_role("button", name="Accept")).to_have_accessible_description(re.compile("^Ada wants to send you holiday.bin"))
    card.get_by_role("button", name="Decline").click()
    expect(card.get_by_text("You declined it", exact=True)).to_be_visible()
    expect(b.page.get_by_role("link", name="Download holiday.bin")).to_have_count(0)
    sent = file_card(a, "holiday.bin")
    expect(sent.get_by_text("You offered holiday.bin (64 KB, application/octet-stream)")).to_be_visible()
    expect(sent.get_by_text("Declined by Grace", exact=True)).to_be_visible()
    # The receiver clears the card away.
    card.get_by_role("button", name="Dismiss").click()
    expect(card).to_have_count(0)
    assert b.page.evaluate("(name) => window.rtcsvc.receivedSha256(name)", "holiday.bin") is None


def test_file_dropped_on_the_call_arrives_intact_with_progress_on_both_ends(rtcsvc, browser, people, room):  # noqa: F811
    svc, a, b, a_id, b_id = start_pair(rtcsvc, browser, people, room)
    size = 5 * 1024 * 1024
    for p in (a, b):
        p.page.evaluate(WATCH_PROGRESS)

    drop_file(a, size, "random-5MB.bin")

    # Nothing arrives before the receiver says yes: the sender waits, the receiver is asked.
    chat = a.page.get_by_role("complementary", name="Chat & files")
    expect(chat.get_by_text("Waiting for Grace to accept", exact=True)).to_be_visible()
    accept_file(b, "Ada wants to send you random-5MB.bin")

    # The chat panel opens on both sides with the file's card.
    download = b.page.get_by_role("link", name="Download random-5MB.bin")
    expect(download).to_be_visible(timeout=60_000)
    expect(b.page.get_by_text("Ada sent random-5MB.bin (5.0 MB, application/octet-stream)")).to_be_visible()
    assert download.get_attribute("download") == "random-5MB.bin"
    assert download.get_attribute("href").startswith("blob:")
    # The bytes are the ones sent (the digest is computed in the page: no person sees it).
    sha = b.page.evaluate("(name) => window.rtcsvc.receivedSha256(name)", "random-5MB.bin")
    assert sha == a.page.evaluate("window.__sentSha")

    expect(chat.get_by_text("You sent random-5MB.bin (5.0 MB, application/octet-stream)")).to_be_visible()
    expect(chat.get_by_text("Delivered", exact=True)).to_be_visible()
    expect(chat.get_by_text("You are sending")).to_have_count(0)
    for p in (a, b):
        seen = p.page.evaluate("window.__progress")
        assert seen[-1] == 100, (p.name, seen)
        assert min(seen) < 100, f"{p.name} showed no progress before the end: {seen}"
        expect(p.page.locator(".transfer progress")).to_have_js_property("value", 1)
    # The receiver updates as chunks land (its first update is at the first chunk). The
    # sender's partial values depend on how fast loopback SCTP drains, so they are not asserted.
    received = b.page.evaluate("window.__progress")
    assert any(0 < v < 100 for v in received), f"no partial progress at the receiver: {received}"


def test_mute_and_camera_off_are_shown_on_the_other_side(rtcsvc, browser, people, room):  # noqa: F811
    svc, a, b, a_id, b_id = start_pair(rtcsvc, browser, people, room)
    expect(b.tile("Ada")).to_be_visible()

    a.button("Mute microphone").click()
    expect(a.button("Unmute microphone")).to_be_visible()
    tile = b.page.get_by_role("article", name="Ada, muted")
    expect(tile).to_be_visible()
    expect(tile.get_by_role("img", name="muted")).to_be_visible()
    expect(tile.get_by_role("img", name="camera off")).to_be_hidden()

    a.button("Stop video").click()
    expect(a.button("Start video")).to_be_visible()
    tile = b.page.get_by_role("article", name="Ada, muted, camera off")
    expect(tile).to_be_visible()
    expect(tile.get_by_role("img", name="camera off")).to_be_visible()
    expect(tile.locator(".avatar")).to_be_visible()
    expect(tile.locator(".avatar")).to_have_text("A")  # the same initials as on Ada's self-view
    expect(a.page.locator("#self-initials")).to_have_text("A")

    a.button("Unmute microphone").click()
    a.button("Start video").click()
    tile = b.page.get_by_role("article", name="Ada", exact=True)
    expect(tile).to_be_visible()
    expect(tile.locator(".avatar")).to_be_hidden()
    expect(tile.get_by_role("img", name="muted")).to_be_hidden()


def test_screen_share_replaces_the_outgoing_video_track_and_back(rtcsvc, browser, people, room):  # noqa: F811
    svc, a, b, a_id, b_id = start_pair(rtcsvc, browser, people, room)
    b.wait_media_flowing(a_id)
    camera = [t for t in a.page.evaluate("(id) => window.rtcsvc.outgoing(id)", b_id) if t["kind"] == "video"]
    remote_track_before = [t["id"] for t in b.page.evaluate("(id) => window.rtcsvc.remoteTracks(id)", a_id)
                           if t["kind"] == "video"]

    a.button("Share screen").click()
    # The presenter sees that they present, and how to stop; the viewer sees who presents.
    expect(a.page.get_by_text("You are presenting your screen to everyone")).to_be_visible()
    expect(a.button("Stop presenting")).to_be_visible()
    expect(b.page.get_by_text("Ada is presenting their screen")).to_be_visible()
    expect(b.tile("Ada").get_by_text("Presenting", exact=True)).to_be_visible()
    a.wait("(peer) => window.rtcsvc.outgoing(peer).some(t => t.kind === 'video' && t.label.startsWith('screen'))",
           b_id, what="the screen track to go out")
    shared = [t for t in a.page.evaluate("(id) => window.rtcsvc.outgoing(id)", b_id) if t["kind"] == "video"]
    assert len(camera) == len(shared) == 1
    assert shared[0]["id"] != camera[0]["id"]
    assert shared[0]["label"].startswith("screen"), shared

    # B keeps receiving frames on the same receiver track (replaceTrack: no renegotiation, no
    # new track), now at the screen's size.
    b.wait(f"""() => {{ const v = document.querySelector('.tile[data-peer="{a_id}"] video');
                        return v.videoWidth > 0 && v.videoWidth !== 640 && v.videoHeight !== 480; }}""",
           what="the screen's frames")
    b.wait_media_flowing(a_id)
    remote_track_after = [t["id"] for t in b.page.evaluate("(id) => window.rtcsvc.remoteTracks(id)", a_id)
                          if t["kind"] == "video"]
    assert remote_track_after == remote_track_before

    a.button("Stop presenting").click()
    expect(a.page.get_by_text("You are presenting your screen to everyone")).to_be_hidden()
    expect(a.button("Share screen")).to_be_visible()
    # replaceTrack resolves a moment later: the camera's own track goes out again.
    a.wait("""([peer, camera]) => window.rtcsvc.outgoing(peer).some(t => t.kind === 'video' && t.id === camera)""",
           [b_id, camera[0]["id"]], what="the camera track to be sent again")
    expect(b.page.get_by_text("Ada is presenting their screen")).to_be_hidden()
    expect(b.tile("Ada").get_by_text("Presenting", exact=True)).to_be_hidden()


def test_both_ends_show_the_same_authentication_string_and_tampering_changes_it(rtcsvc, browser, people, room):  # noqa: F811
    svc, a, b, a_id, b_id = start_pair(rtcsvc, browser, people, room)

    sas_a = a.page.evaluate("(id) => window.rtcsvc.sas(id)", b_id)
    sas_b = b.page.evaluate("(id) => window.rtcsvc.sas(id)", a_id)
    assert sas_a and sas_a == sas_b
    assert len(sas_a.split(" · ")[1].split()) == 5  # five words under the five emoji
    # It is what each person reads in the security-codes panel, under the other's name.
    for me, other in ((a, "Grace"), (b, "Ada")):
        me.button("Security codes").click()
        panel = me.page.get_by_role("complementary", name="Security codes")
        item = panel.get_by_role("listitem").filter(has=me.page.get_by_role("heading", name=other))
        expect(item.locator(".sas")).to_have_text(sas_a)

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


# Makes this browser's remote descriptions read back with another fingerprint line, as a browser
# that re-serialised the remote SDP differently might; the real description is what was applied.
REWRITTEN_REMOTE_SDP = """
(() => {
  const real = Object.getOwnPropertyDescriptor(RTCPeerConnection.prototype, "remoteDescription");
  Object.defineProperty(RTCPeerConnection.prototype, "remoteDescription", {
    configurable: true,
    get() {
      const d = real.get.call(this);
      if (!d) return d;
      const sdp = d.sdp.replace(/^a=fingerprint:(\\S+) .*$/gm, "a=fingerprint:$1 " + "0F:".repeat(31) + "0F");
      return { type: d.type, sdp, toJSON: () => ({ type: d.type, sdp }) };
    },
  });
  const remote = RTCDtlsTransport.prototype.getRemoteCertificates;
  window.__certificatesPresented = 0;
  RTCDtlsTransport.prototype.getRemoteCertificates = function () {
    const certs = remote.call(this);
    window.__certificatesPresented += certs.length ? 1 : 0;
    return certs;
  };
})();
"""


def test_the_security_code_comes_from_the_dtls_certificates_not_the_remote_sdp_text(rtcsvc, browser, people, room):  # noqa: F811
    svc = rtcsvc(tls=True)
    a = people(browser, svc.http_url, name="Ada")
    b = people(browser, svc.http_url, name="Grace")
    b.page.add_init_script(REWRITTEN_REMOTE_SDP)
    a.join(room)
    b.join(room)
    a.wait_connected_to(1)
    b.wait_connected_to(1)
    fb = b.page.evaluate("(id) => window.rtcsvc.fingerprints(id)", a.id)
    assert fb["remote"] == "sha-256 " + ":".join(["0F"] * 32)  # Grace's page reads the rewritten line

    codes = {}
    for me, other in ((a, "Grace"), (b, "Ada")):
        me.button("Security codes").click()
        panel = me.page.get_by_role("complementary", name="Security codes")
        item = panel.get_by_role("listitem").filter(has=me.page.get_by_role("heading", name=other))
        expect(item.locator(".sas")).to_have_text(re.compile(r"^\S+( \S+){4} · [a-z]+( [a-z]+){4}$"))
        codes[me.name] = item.locator(".sas")
    # Both read the same words: Grace's code was made from the certificate her DTLS handshake met.
    expect(codes["Grace"]).to_have_text(codes["Ada"].inner_text())
    expect(codes["Ada"]).to_have_text(codes["Grace"].inner_text())
    assert b.page.evaluate("window.__certificatesPresented") > 0


def quadrant(page, locator) -> str:
    """Which corner of the stage the element's centre is in, e.g. "top-left"."""
    stage = page.locator("#stage").bounding_box()
    box = locator.bounding_box()
    cx, cy = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
    v = "top" if cy < stage["y"] + stage["height"] / 2 else "bottom"
    h = "left" if cx < stage["x"] + stage["width"] / 2 else "right"
    return f"{v}-{h}"


def wait_quadrant(page, locator, corner: str, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while quadrant(page, locator) != corner:
        assert time.monotonic() < deadline, f"the self-view stayed {quadrant(page, locator)}, not {corner}"
        time.sleep(0.1)


def test_self_view_is_dragged_and_dropped_into_another_corner(rtcsvc, browser, people, room):  # noqa: F811
    svc, a, b, a_id, b_id = start_pair(rtcsvc, browser, people, room)
    page = a.page
    me = page.get_by_role("figure", name="Your video")
    expect(me).to_be_visible()
    assert quadrant(page, me) == "bottom-right"

    # A real mouse drag: Chromium runs the HTML5 drag-and-drop events (dragstart with
    # dataTransfer.setData, dragover on the dock zone, drop).
    self_box = me.bounding_box()
    dock_box = page.locator('.dock[data-corner="top-left"]').bounding_box()
    page.mouse.move(self_box["x"] + self_box["width"] / 2, self_box["y"] + self_box["height"] / 2)
    page.mouse.down()
    page.mouse.move(dock_box["x"] + dock_box["width"] / 2, dock_box["y"] + dock_box["height"] / 2, steps=12)
    page.mouse.up()
    wait_quadrant(page, me, "top-left")
    expect(a.toast("Your video moved to the top left corner.")).to_be_visible()
    # Toasts move out of its way, to the bottom of the stage.
    expect(a.toast("Your video moved to the top left corner.")).to_be_visible()
    assert quadrant(page, page.get_by_role("status")).startswith("bottom")

    # The same with the keyboard, for people who cannot drag.
    me.focus()
    page.keyboard.press("ArrowRight")
    wait_quadrant(page, me, "top-right")
    page.keyboard.press("ArrowDown")
    wait_quadrant(page, me, "bottom-right")
    expect(me).to_have_accessible_description(re.compile("bottom right corner"))


def metric_samples(svc, name: str) -> dict[str, float]:
    text = svc.get("/metrics").decode()
    out = {}
    for line in text.splitlines():
        if line.startswith(name):
            key, _, value = line.rpartition(" ")
            out[key] = float(value)
    return out


def test_metrics_count_the_call_setups_both_browsers_reported(rtcsvc, browser, people, room):  # noqa: F811
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


def test_fifty_megabyte_file_arrives_intact(rtcsvc, browser, people, room):  # noqa: F811
    """The issue's size bar: 50 MB through the data channel with backpressure, same SHA-256."""
    svc, a, b, a_id, b_id = start_pair(rtcsvc, browser, people, room)
    drop_file(a, 50 * 1024 * 1024, "random-50MB.bin")
    accept_file(b, "Ada wants to send you random-50MB.bin")
    expect(b.page.get_by_role("link", name="Download random-50MB.bin")).to_be_visible(timeout=120_000)
    sha = b.page.evaluate("(name) => window.rtcsvc.receivedSha256(name)", "random-50MB.bin")
    assert sha == a.page.evaluate("window.__sentSha")
    chat = a.page.get_by_role("complementary", name="Chat & files")
    expect(chat.get_by_text("Delivered", exact=True)).to_be_visible(timeout=30_000)
