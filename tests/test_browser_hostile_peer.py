"""What a malicious room member can do to the others through the data channels, in real Chromium.

Three people in a call: Alice (honest), Bob (the victim, whose screen every test reads) and
Mallory, whose page sends crafted data-channel messages: the app's own channels, reached through
a test-only wrapper of ``RTCPeerConnection.prototype.createDataChannel`` (``HOSTILE``, added as
an init script; the app has no hook that sends anything). Mallory can send whatever a modified
browser could: reused transfer ids, names with bidi overrides, an HTML file with script, floods of
chat and file offers. Each test asserts what Bob sees (roles, labels, text, ``to_be_visible``);
``docs/reliability.md`` names the defence each one proves.

Bob's page also counts the object URLs it holds and keeps each Blob by its URL (``VICTIM``, a
read-only wrapper), so the bytes behind a Download link can be checked without fetch (the CSP
keeps ``connect-src`` to 'self').
"""

from __future__ import annotations

import json
import re

import pytest
from playwright.sync_api import expect

from tests.support.browser import audit, browser, people, playwright_driver, room, screenshot_dir  # noqa: F401
from tests.test_browser_call import drop_file, file_card

pytestmark = pytest.mark.slow

MiB = 1024 * 1024

# Test instrumentation for the one who attacks: every data channel the app creates is kept with
# its peer connection, offers that arrive are recorded (to learn Alice's transfer id), and
# `__hostile.send(peerId, label, messages)` writes raw messages on the app's own channel to that
# peer (found by the remote DTLS fingerprint the read-only hook reports for it).
HOSTILE = """
(() => {
  const create = RTCPeerConnection.prototype.createDataChannel;
  const pcs = [];
  window.__offersSeen = [];
  RTCPeerConnection.prototype.createDataChannel = function (label, options) {
    const channel = create.call(this, label, options);
    (this.__channels = this.__channels || {})[label] = channel;
    if (!pcs.includes(this)) pcs.push(this);
    if (label === "files") channel.addEventListener("message", (ev) => {
      if (typeof ev.data !== "string") return;
      try { const m = JSON.parse(ev.data); if (m.t === "file") window.__offersSeen.push(m); } catch {}
    });
    return channel;
  };
  const fingerprint = (sdp) => {
    const m = /^a=fingerprint:(\\S+)\\s+([0-9A-Fa-f:]+)\\s*$/m.exec(sdp || "");
    return m ? `${m[1].toLowerCase()} ${m[2].toUpperCase()}` : null;
  };
  window.__hostile = {
    async send(peerId, label, messages) {
      const remote = window.rtcsvc.fingerprints(peerId).remote;
      const pc = pcs.find((p) => p.remoteDescription && fingerprint(p.remoteDescription.sdp) === remote);
      const channel = pc.__channels[label];
      for (const m of messages) {
        if (typeof m === "string") channel.send(m);
        else channel.send(new TextEncoder().encode(m.bytes));
        // Mind the buffer like a real sender, so a flood is not dropped by the browser.
        while (channel.bufferedAmount > 1024 * 1024) await new Promise((r) => setTimeout(r, 5));
      }
    },
  };
})();
"""

# Read-only instrumentation of the victim: the object URLs it holds, and the Blob behind each.
VICTIM = """
(() => {
  const create = URL.createObjectURL, revoke = URL.revokeObjectURL;
  window.__blobs = new Map();
  URL.createObjectURL = (blob) => { const url = create(blob); window.__blobs.set(url, blob); return url; };
  URL.revokeObjectURL = (url) => { window.__blobs.delete(url); return revoke(url); };
})();
"""

BLOB_SHA = """async (href) => {
    const blob = window.__blobs.get(href);
    if (!blob) return null;
    const d = new Uint8Array(await crypto.subtle.digest('SHA-256', await blob.arrayBuffer()));
    return Array.from(d, x => x.toString(16).padStart(2, '0')).join('');
}"""


def sha256_hex(data: bytes) -> str:
    import hashlib

    return hashlib.sha256(data).hexdigest()


def offer(id_: str, name: str, size: int, type_: str = "application/octet-stream") -> str:
    return json.dumps({"t": "file", "id": id_, "name": name, "size": size, "type": type_})


def send(person, to_id: str, label: str, messages) -> None:
    person.page.evaluate("([to, label, msgs]) => window.__hostile.send(to, label, msgs)", [to_id, label, messages])


def three(rtcsvc, browser, people, room):  # noqa: F811
    """Alice, Bob and Mallory connected in ``room``; Bob's chat panel open."""
    svc = rtcsvc(tls=True)
    alice = people(browser, svc.http_url, name="Alice")
    bob = people(browser, svc.http_url, name="Bob")
    mallory = people(browser, svc.http_url, name="Mallory")
    for p in (alice, mallory):
        p.page.add_init_script(HOSTILE)
    bob.page.add_init_script(VICTIM)
    for p in (alice, bob, mallory):
        p.join(room)
    for p in (alice, bob, mallory):
        p.wait_connected_to(2, timeout=45_000)
    expect(bob.tile("Mallory")).to_be_visible()
    expect(bob.tile("Alice")).to_be_visible()
    bob.button("Chat").click()
    return alice, bob, mallory


def chat_of(person):
    return person.page.get_by_role("complementary", name="Chat & files")


def test_a_reused_transfer_id_never_touches_another_persons_file(rtcsvc, browser, people, room):  # noqa: F811
    alice, bob, mallory = three(rtcsvc, browser, people, room)
    drop_file(alice, 256 * 1024, "report.pdf")
    card = file_card(bob, "Alice")
    expect(card.get_by_text("Alice wants to send you report.pdf (256 KB, application/octet-stream)")).to_be_visible()
    card.get_by_role("button", name="Accept").click()
    expect(card.get_by_text("Alice sent report.pdf (256 KB, application/octet-stream)")).to_be_visible()
    expect(card.get_by_text("Received", exact=True)).to_be_visible()
    alices_sha = alice.page.evaluate("window.__sentSha")

    # Mallory got Alice's offer too, so she knows its id; she offers Bob her own "report.pdf" under it.
    alices_id = mallory.wait("() => window.__offersSeen.length && window.__offersSeen[0].id")
    evil = b"%PDF-1.4 Mallory's bytes\n" * 100
    send(mallory, bob.id, "files", [offer(alices_id, "report.pdf", len(evil), "application/pdf")])
    hers = file_card(bob, "Mallory")
    expect(hers.get_by_text("Mallory wants to send you report.pdf (2.4 KB, application/pdf)")).to_be_visible()
    # Alice's card still reads as hers, received, with her bytes behind its Download link.
    expect(card.get_by_text("Alice sent report.pdf (256 KB, application/octet-stream)")).to_be_visible()
    expect(card.get_by_text("Received", exact=True)).to_be_visible()
    hers.get_by_role("button", name="Accept").click()
    send(mallory, bob.id, "files", [{"bytes": evil.decode()}])
    expect(hers.get_by_text("Mallory sent report.pdf (2.4 KB, application/pdf)")).to_be_visible()

    # Replaying the id, and aborting it, reach neither card: the replay is refused, visibly.
    send(mallory, bob.id, "files", [offer(alices_id, "report.pdf", 10), json.dumps({"t": "file-abort", "id": alices_id})])
    expect(bob.toast("Refused report.pdf from Mallory: it reused the id of an earlier file")).to_be_visible()
    # An abort of a new file of hers fails only that file.
    send(mallory, bob.id, "files", [offer("m2", "notes.txt", 10), json.dumps({"t": "file-abort", "id": "m2"})])
    expect(file_card(bob, "notes.txt").get_by_text("Failed: cancelled by sender")).to_be_visible()

    expect(file_card(bob, "Alice")).to_have_count(1)
    expect(card.get_by_text("Failed", exact=False)).to_have_count(0)
    expect(card.get_by_text("Received", exact=True)).to_be_visible()
    links = chat_of(bob).get_by_role("link", name="Download report.pdf")
    expect(links).to_have_count(2)
    assert bob.page.evaluate(BLOB_SHA, card.get_by_role("link").get_attribute("href")) == alices_sha
    assert bob.page.evaluate(BLOB_SHA, hers.get_by_role("link").get_attribute("href")) == sha256_hex(evil)
    audit(bob.page, "two files with one id, from two people")


def test_floods_of_chat_and_file_offers_are_bounded_per_peer(rtcsvc, browser, people, room, tmp_path):  # noqa: F811
    alice, bob, mallory = three(rtcsvc, browser, people, room)
    alice.button("Chat").click()
    alice.page.get_by_role("textbox", name="Message").fill("agenda at 10")
    alice.page.get_by_role("textbox", name="Message").press("Enter")
    expect(chat_of(bob).get_by_text("agenda at 10")).to_be_visible()

    # 300 chat messages: Bob keeps Mallory's newest 200, and Alice's message stays.
    spam = [json.dumps({"t": "chat", "text": f"spam {i}"}) for i in range(300)]
    send(mallory, bob.id, "app", spam)
    log = chat_of(bob).get_by_role("listitem")
    expect(log.filter(has_text="spam 299")).to_be_visible()
    expect(log.filter(has_text=re.compile(r"^Mallory.*spam \d+$"))).to_have_count(200)
    expect(chat_of(bob).get_by_text("spam 99", exact=True)).to_have_count(0)
    expect(chat_of(bob).get_by_text("spam 100", exact=True)).to_have_count(1)
    expect(chat_of(bob).get_by_text("agenda at 10")).to_be_visible()

    # 50 offers at once: one card asks, the rest are refused (the sender told), one notice.
    send(mallory, bob.id, "files", [offer(f"f{i}", f"f{i}.bin", 1024) for i in range(50)])
    first = file_card(bob, "f0.bin")
    expect(first.get_by_text("Mallory wants to send you f0.bin (1.0 KB, application/octet-stream)")).to_be_visible()
    expect(bob.toast("Refused f1.bin from Mallory: another file from Mallory is waiting or arriving (one at a time)")).to_be_visible()
    expect(chat_of(bob).locator(".transfer")).to_have_count(1)
    first.get_by_role("button", name="Decline").click()
    expect(first.get_by_text("You declined it", exact=True)).to_be_visible()

    # Over the allowance for received files: refused with the reason, nothing to accept.
    send(mallory, bob.id, "files", [offer("huge", "huge.bin", 600 * MiB)])
    huge = file_card(bob, "huge.bin")
    expect(huge.get_by_text("Mallory tried to send huge.bin (600 MB, application/octet-stream)")).to_be_visible()
    expect(huge.get_by_text("Refused: larger than the 512 MB this browser keeps for received files")).to_be_visible()
    expect(huge.get_by_role("button", name="Accept")).to_have_count(0)
    audit(bob.page, "refused file offers")
    bob.shot(screenshot_dir(tmp_path), "file-refused-desktop.png")

    # The allowance is shared: Bob accepts 300 MB from Mallory (reserved, though she sends
    # nothing), so 300 MB from Alice no longer fits.
    send(mallory, bob.id, "files", [offer("big", "big.bin", 300 * MiB)])
    file_card(bob, "big.bin").get_by_role("button", name="Accept").click()
    expect(file_card(bob, "big.bin").get_by_text("Receiving… 0 %")).to_be_visible()
    send(alice, bob.id, "files", [offer("a-big", "video.mp4", 300 * MiB, "video/mp4")])
    video = file_card(bob, "video.mp4")
    expect(video.get_by_text("Refused: not enough room: received files may take 512 MB at most here; save or dismiss some first")).to_be_visible()

    # Cards per peer are bounded too: Mallory's oldest finished cards make way.
    send(mallory, bob.id, "files", [json.dumps({"t": "file-abort", "id": "big"})])
    expect(file_card(bob, "big.bin").get_by_text("Failed: cancelled by sender")).to_be_visible()
    send(mallory, bob.id, "files", [offer(f"h{i}", f"huge{i}.bin", 600 * MiB) for i in range(25)])
    expect(file_card(bob, "huge24.bin")).to_be_visible()
    mallorys = chat_of(bob).locator(".transfer").filter(has_text="Mallory")
    expect(mallorys).to_have_count(20)
    expect(file_card(bob, "f0.bin")).to_have_count(0)
    expect(video).to_be_visible()  # Alice's card is not Mallory's to push out


def test_received_files_are_freed_when_saved_dismissed_or_the_call_is_left(rtcsvc, browser, people, room):  # noqa: F811
    alice, bob, mallory = three(rtcsvc, browser, people, room)
    live = "() => window.__blobs.size"
    for name in ("a.bin", "b.bin", "c.bin"):
        drop_file(alice, 32 * 1024, name)
        card = file_card(bob, name)
        card.get_by_role("button", name="Accept").click()
        expect(card.get_by_role("link", name=f"Download {name}")).to_be_visible()
    assert bob.page.evaluate(live) == 3

    with bob.page.expect_download() as download:
        file_card(bob, "a.bin").get_by_role("link", name="Download a.bin").click()
    assert download.value.suggested_filename == "a.bin"
    expect(file_card(bob, "a.bin").get_by_text("Saved to your downloads")).to_be_visible()
    bob.wait("() => window.__blobs.size === 2", what="the saved file's URL to be revoked")

    file_card(bob, "b.bin").get_by_role("button", name="Dismiss").click()
    expect(file_card(bob, "b.bin")).to_have_count(0)
    assert bob.page.evaluate(live) == 1

    bob.button("Leave call").click()
    expect(bob.page.get_by_role("heading", name="You left the call")).to_be_visible()
    assert bob.page.evaluate(live) == 0
    # Back in the call, the card says so, and goes when dismissed.
    bob.button("Rejoin").click()
    bob.expect_connected()
    if not chat_of(bob).is_visible():
        bob.button("Chat").click()
    gone = file_card(bob, "c.bin")
    expect(gone.get_by_text("No longer kept (you left the call)")).to_be_visible()
    expect(gone.get_by_role("link")).to_have_count(0)
    gone.get_by_role("button", name="Dismiss").click()
    expect(gone).to_have_count(0)


HTML = "<!doctype html><title>pwned</title><h1>Mallory's page</h1><script>localStorage.setItem('pwned', document.domain)</script>"


def test_a_received_html_file_is_downloaded_never_shown_as_a_page_and_names_lose_bidi_overrides(
        rtcsvc, browser, people, room):  # noqa: F811
    alice, bob, mallory = three(rtcsvc, browser, people, room)
    # "<RLO>ecilA" would read "Alice" on Bob's screen.
    send(mallory, bob.id, "app", [json.dumps({"t": "state", "name": "\u202eecilA"})])
    expect(bob.tile("ecilA")).to_be_visible()
    expect(bob.tile("Mallory")).to_have_count(0)

    # "invoice<RLO>fdp.exe" would read "invoiceexe.pdf"; the file is an HTML page with script.
    name = "invoice\u202efdp.exe"
    send(mallory, bob.id, "files", [offer("h1", name, len(HTML.encode()), "text/html")])
    card = file_card(bob, "invoicefdp.exe")
    expect(card.get_by_text(f"ecilA wants to send you invoicefdp.exe ({len(HTML.encode())} B, text/html)")).to_be_visible()
    card.get_by_role("button", name="Accept").click()
    send(mallory, bob.id, "files", [{"bytes": HTML}])
    link = card.get_by_role("link", name="Download invoicefdp.exe")
    expect(link).to_be_visible()
    assert link.get_attribute("download") == "invoicefdp.exe"
    assert "\u202e" not in bob.page.evaluate("document.body.innerText")

    # Opened by its address (a middle click, a pasted link), the file is a download, not a page.
    href = link.get_attribute("href")
    tab = bob.context.new_page()
    with tab.expect_download() as download:
        try:
            tab.goto(href)
        except Exception as e:  # Playwright: "Download is starting"
            assert "Download is starting" in str(e), e
    assert download.value.path().read_text() == HTML
    expect(tab.get_by_role("heading", name="Mallory's page")).to_have_count(0)
    tab.close()
    with bob.page.expect_download() as saved:
        link.click()
    assert saved.value.suggested_filename == "invoicefdp.exe"
    assert bob.page.evaluate("localStorage.getItem('pwned')") is None
