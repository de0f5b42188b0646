"""A file transfer the connection broke is not a dead end: the sender sends it again.

The relay-only rung (static/js/escalation.js) replaces each side's RTCPeerConnection, and with
it the data channels a file is going over. Here the rung is forced the way a peer forces it:
a `relayOnly` signal through rtcsvc, from Ada's page once her browser has put a few MiB of the
file on the `files` data channel, and reflected by Grace's page (her app then rebuilds too, as
when the rung is announced by the other end). The rebuilt connections keep the app's relay-only
configuration except the transport policy, since this machine has no TURN-over-TLS server; the
test hook reads and triggers WebRTC internals only. Everything asserted is on screen, except the
received file's SHA-256 (computed in the page: no person sees it).
"""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from tests.support.browser import (  # noqa: F401  (pytest fixtures)
    DESKTOP, PHONE, audit, browser, people, playwright_driver, room, screenshot_dir,
)
from tests.test_browser_call import accept_file, drop_file, file_card

pytestmark = pytest.mark.slow

# In every page: keep the signaling sockets and peer connections for the test; connections
# built with iceTransportPolicy "relay" (the relay-only rung) may use any path on this machine.
# `__replaceWhenSent = {to, bytes}` makes this page announce the relay-only rung to `to` once its
# `files` channels have taken that many bytes; a page that gets such an announcement answers with
# the same, once, so both ends rebuild their connection.
REPLACE_CONNECTION = """
(() => {
  const sockets = [];
  const NativeSocket = window.WebSocket;
  const announce = (to, gen) => {
    const ws = sockets.filter((s) => s.readyState === NativeSocket.OPEN).at(-1);
    ws.send(JSON.stringify({ type: "signal", to, data: { relayOnly: gen } }));
  };
  let reflected = false;
  window.WebSocket = class extends NativeSocket {
    constructor(...args) {
      super(...args);
      sockets.push(this);
      this.addEventListener("message", (ev) => {
        let msg = null;
        try { msg = JSON.parse(ev.data); } catch { return; }
        if (!reflected && msg && msg.type === "signal" && msg.data && Number.isSafeInteger(msg.data.relayOnly)) {
          reflected = true;
          window.__replaced = (window.__replaced || 0) + 1;
          announce(msg.from, msg.data.relayOnly);
        }
      });
    }
  };
  const NativePc = window.RTCPeerConnection;
  const anyPath = (config) => { const c = { ...(config || {}) }; delete c.iceTransportPolicy; return c; };
  window.__callConnections = [];  // the call's own (it gives them its DTLS certificate)
  window.RTCPeerConnection = class extends NativePc {
    constructor(config, ...rest) {
      super(anyPath(config), ...rest);
      if (config && config.certificates) window.__callConnections.push(this);
    }
    setConfiguration(config) {
      return super.setConfiguration(anyPath(config));
    }
  };
  let sent = 0;
  const nativeSend = RTCDataChannel.prototype.send;
  RTCDataChannel.prototype.send = function (data) {
    const plan = window.__replaceWhenSent;
    if (this.label === "files" && typeof data !== "string") {
      sent += data.byteLength;
      if (plan && !plan.done && sent >= plan.bytes) {
        plan.done = true;
        reflected = true;  // the answer to our own announcement is not reflected again
        announce(plan.to, 1);
      }
    }
    return nativeSend.call(this, data);
  };
})();
"""

CONNECTION_STATES = "() => window.__callConnections.map((pc) => pc.connectionState)"
CONNECTIONS_REPLACED = """() => {
  const states = window.__callConnections.map((pc) => pc.connectionState);
  return states.length === 2 && states[0] === "closed" && states[1] === "connected";
}"""

SIZE = 24 * 1024 * 1024
NAME = "holiday-video.bin"


def test_a_file_cut_off_by_a_replaced_connection_is_sent_again_and_arrives_intact(
        rtcsvc, browser, people, room, tmp_path):  # noqa: F811
    svc = rtcsvc(tls=True)
    a = people(browser, svc.http_url, name="Ada")
    b = people(browser, svc.http_url, name="Grace", viewport=PHONE)
    for p in (a, b):
        p.page.add_init_script(REPLACE_CONNECTION)
    a.join(room)
    b.join(room)
    (b_id,) = a.wait_connected_to(1)
    b.wait_connected_to(1)
    a.page.evaluate("(to) => { window.__replaceWhenSent = {to, bytes: 2 * 1024 * 1024}; }", b_id)

    drop_file(a, SIZE, NAME)
    accept_file(b, f"Ada wants to send you {NAME}")

    # The connection is replaced mid-file: both ends built a new peer connection.
    sent_card = file_card(a, NAME)
    expect(sent_card.get_by_text("Interrupted: the connection to Grace was replaced", exact=True)).to_be_visible(timeout=30_000)
    expect(sent_card.get_by_text(f"You tried to send {NAME} (24 MB, application/octet-stream)")).to_be_visible()
    for p in (a, b):
        p.wait(CONNECTIONS_REPLACED, what="the first connection closed, the second connected")
    again = sent_card.get_by_role("button", name="Send again")
    expect(again).to_be_visible()
    expect(again).to_have_accessible_description(f"You tried to send {NAME} (24 MB, application/octet-stream)")

    # Grace is told, and nothing of the partial file is kept for her to save.
    got_card = file_card(b, f"Ada was sending {NAME}")
    expect(got_card.get_by_text(
        "Interrupted: the connection to Ada was replaced; the part received was not kept. Ada can send it again",
        exact=True)).to_be_visible()
    expect(b.page.get_by_role("link", name=f"Download {NAME}")).to_have_count(0)
    assert b.page.evaluate("(name) => window.rtcsvc.receivedSha256(name)", NAME) is None

    audit(a.page, "interrupted file card (desktop)")
    a.shot(screenshot_dir(tmp_path), "transfer-interrupted-desktop.png")
    b.shot(screenshot_dir(tmp_path), "transfer-interrupted-phone.png")
    a.page.set_viewport_size(PHONE)
    a.shot(screenshot_dir(tmp_path), "transfer-send-again-phone.png")
    a.page.set_viewport_size(DESKTOP)

    # Ada sends it again over the new connection; Grace accepts; the bytes are the ones sent.
    again.click()
    expect(sent_card.get_by_role("button", name="Send again")).to_have_count(0)
    accept_file(b, f"Ada wants to send you {NAME}")
    expect(b.page.get_by_role("link", name=f"Download {NAME}")).to_be_visible(timeout=120_000)
    assert b.page.evaluate("(name) => window.rtcsvc.receivedSha256(name)", NAME) == a.page.evaluate("window.__sentSha")
    expect(sent_card.get_by_text("Delivered", exact=True)).to_be_visible(timeout=30_000)
    expect(sent_card.get_by_text(f"You sent {NAME} (24 MB, application/octet-stream)")).to_be_visible()
    # It went over the second connection: still the same two, nobody reloaded.
    for p in (a, b):
        assert p.page.evaluate(CONNECTIONS_REPLACED), p.page.evaluate(CONNECTION_STATES)
