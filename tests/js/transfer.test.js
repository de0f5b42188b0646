// Validation of what another browser sends over the data channels (static/js/transfer.js).
import test from "node:test";
import assert from "node:assert/strict";
import { PeerChannels, parseAppMessage, parseFileHeader, declineReason, MAX_FILE_SIZE, RECEIVED_TYPE } from "../../static/js/transfer.js";

test("chat text is kept as text, at most 2000 characters", () => {
  assert.deepEqual(parseAppMessage('{"t":"chat","text":"<b>hi</b>"}'), { t: "chat", text: "<b>hi</b>" });
  assert.equal(parseAppMessage(JSON.stringify({ t: "chat", text: "x".repeat(5000) })).text.length, 2000);
  assert.equal(parseAppMessage('{"t":"chat","text":42}'), null);
});

test("hello and state carry only the known fields, typed", () => {
  const m = parseAppMessage(JSON.stringify({ t: "hello", name: "A".repeat(99), muted: 1, cameraOff: 0, sharing: "yes", hasAudio: false, evil: "x" }));
  assert.deepEqual(m, { t: "state", state: { name: "A".repeat(40), muted: true, cameraOff: false, sharing: true, hasAudio: false, hasVideo: true } });
  assert.equal(parseAppMessage(JSON.stringify({ t: "state", name: { x: 1 } })).state.name, "");
});

test("anything else on the app channel is dropped", () => {
  for (const bad of ["", "not json", "null", "42", '"str"', "[]", '{"t":"nope"}', new ArrayBuffer(4), undefined]) {
    assert.equal(parseAppMessage(bad), null, String(bad));
  }
});

test("a display name loses bidi overrides and control characters", () => {
  const m = parseAppMessage(JSON.stringify({ t: "state", name: "\u202EecilA\u0007\n" }));
  assert.equal(m.state.name, "ecilA");
});

test("a file header is validated and its name made safe", () => {
  assert.deepEqual(parseFileHeader({ t: "file", id: "f1", name: "../../etc/passwd", size: 10, type: "text/plain" }),
    { id: "f1", name: ".._.._etc_passwd", size: 10, type: "text/plain" });
  assert.equal(parseFileHeader({ id: "f1", name: "", size: 0 }).name, "file");
  assert.equal(parseFileHeader({ id: "f1", name: "a", size: 1, type: "text/html; <script>" }).type, "text/html");
  assert.equal(parseFileHeader({ id: "f1", name: "a", size: 1, type: "nonsense" }).type, "");
  assert.equal(parseFileHeader({ id: "f1", name: "n".repeat(300), size: 1 }).name.length, 255);
  // "invoice<RLO>fdp.exe" would read "invoiceexe.pdf"
  assert.equal(parseFileHeader({ id: "f1", name: "invoice\u202Efdp.exe", size: 1 }).name, "invoicefdp.exe");
  assert.equal(parseFileHeader({ id: "f1", name: "\u2066\u200F\u0000", size: 1 }).name, "file");
});

test("a file header with a bad id or size is refused", () => {
  for (const bad of [null, {}, { id: 1, size: 1 }, { id: "f", size: -1 }, { id: "f", size: 1.5 },
    { id: "f", size: "12abc" }, { id: "f", size: "12" }, { id: "f", size: 2 ** 60 }, { id: "", size: 1 },
    { id: "x".repeat(65), size: 1 }, { id: "a b", size: 1 }, { id: { toString: () => "f" }, size: 1 }]) {
    assert.equal(parseFileHeader(bad), null, JSON.stringify(bad));
  }
});

test("a size over what we keep is parsed (the receiver refuses it visibly), and we never offer one", () => {
  assert.equal(parseFileHeader({ id: "f", size: MAX_FILE_SIZE + 1 }).size, MAX_FILE_SIZE + 1);
  assert.equal(MAX_FILE_SIZE, 512 * 1024 * 1024);
});

// A stand-in for an RTCPeerConnection's data channels: what we send is recorded, and the
// test delivers messages as the other browser would.
class FakeChannel extends EventTarget {
  constructor(label) {
    super();
    this.label = label;
    this.readyState = "open";
    this.sent = [];
    this.bufferedAmount = 0;
  }
  send(data) { this.sent.push(typeof data === "string" ? JSON.parse(data) : data); }
  close() { this.readyState = "closed"; }
  deliver(data) {
    const ev = new Event("message");
    ev.data = typeof data === "string" || data instanceof ArrayBuffer ? data : JSON.stringify(data);
    this.dispatchEvent(ev);
  }
}

function fakePeer() {
  const channels = {};
  const pc = { createDataChannel: (label) => (channels[label] = new FakeChannel(label)) };
  const ch = new PeerChannels(pc);
  const events = [];
  for (const type of ["file-offer", "file-progress", "file-complete", "file-failed"]) {
    ch.addEventListener(type, (ev) => events.push({ ...ev.detail, event: type }));
  }
  return { ch, files: channels.files, events };
}

test("a received file is always an application/octet-stream Blob, whatever the sender declared", async () => {
  assert.equal(RECEIVED_TYPE, "application/octet-stream");
  const { ch, files, events } = fakePeer();
  const page = new TextEncoder().encode("<script>alert(document.domain)</script>");
  files.deliver({ t: "file", id: "f1", name: "invoice.html", size: page.byteLength, type: "text/html" });
  assert.equal(events[0].event, "file-offer");
  assert.equal(events[0].event === "file-offer" && events[0].busy, false);
  assert.ok(ch.acceptFile("f1"));
  assert.deepEqual(files.sent.at(-1), { t: "file-accept", id: "f1" });
  files.deliver(page.buffer);
  const done = events.find((e) => e.event === "file-complete");
  assert.equal(done.blob.type, "application/octet-stream");
  assert.equal(await done.blob.text(), "<script>alert(document.domain)</script>");
  assert.deepEqual(files.sent.at(-1), { t: "file-ack", id: "f1" });
});

test("bytes nobody accepted are dropped, and a declined offer takes none", () => {
  const { ch, files, events } = fakePeer();
  files.deliver(new Uint8Array(10).buffer);
  files.deliver({ t: "file", id: "f1", name: "a", size: 10 });
  files.deliver(new Uint8Array(10).buffer);
  assert.deepEqual(events.map((e) => e.event), ["file-offer"]);
  ch.declineFile("f1", "declined");
  assert.deepEqual(files.sent.at(-1), { t: "file-decline", id: "f1", reason: "declined" });
  assert.equal(ch.acceptFile("f1"), false);
  files.deliver(new Uint8Array(10).buffer);
  assert.deepEqual(events.map((e) => e.event), ["file-offer"]);
});

test("a second offer while one waits is reported busy and does not replace the waiting one", () => {
  const { ch, files, events } = fakePeer();
  files.deliver({ t: "file", id: "f1", name: "a", size: 1 });
  files.deliver({ t: "file", id: "f2", name: "b", size: 1 });
  assert.deepEqual(events.map((e) => [e.id, e.busy]), [["f1", false], ["f2", true]]);
  ch.declineFile("f2", "busy", { current: false });
  assert.ok(ch.acceptFile("f1"), "the first offer still waits for its answer");
  files.deliver(new Uint8Array([7]).buffer);
  assert.equal(events.at(-1).event, "file-complete");
});

test("more bytes than announced fail the file and tell the sender", () => {
  const { ch, files, events } = fakePeer();
  files.deliver({ t: "file", id: "f1", name: "a", size: 2 });
  ch.acceptFile("f1");
  files.deliver(new Uint8Array(3).buffer);
  assert.deepEqual(events.at(-1), { event: "file-failed", id: "f1", reason: "more bytes than announced" });
  assert.deepEqual(files.sent.at(-1), { t: "file-abort", id: "f1" });
});

test("an abort for an id that is not this peer's waiting or arriving file changes nothing", () => {
  const { ch, files, events } = fakePeer();
  files.deliver({ t: "file", id: "f1", name: "a", size: 2 });
  files.deliver({ t: "file-abort", id: "other" });
  assert.deepEqual(events.map((e) => e.event), ["file-offer"]);
  files.deliver({ t: "file-abort", id: "f1" });
  assert.deepEqual(events.at(-1), { event: "file-failed", id: "f1", reason: "cancelled by sender" });
  assert.equal(ch.acceptFile("f1"), false);
});

test("a decline's reason is one of ours or plain 'declined'", () => {
  assert.equal(declineReason("no-room"), "no-room");
  assert.equal(declineReason("<img src=x>"), "declined");
  assert.equal(declineReason(undefined), "declined");
});

function closeChannels(files) {
  files.readyState = "closed";
  files.dispatchEvent(new Event("close"));
}

test("a file whose channel closes mid-send fails as closed (it may be sent again); a decline does not", async () => {
  const file = new File([new Uint8Array(40000)], "big.bin");
  const a = fakePeer();
  const cut = a.ch.sendFile(file, "f1", () => {});
  await new Promise((r) => setTimeout(r, 0));
  a.files.deliver({ t: "file-accept", id: "f1" });
  await new Promise((r) => setTimeout(r, 10));
  closeChannels(a.files);
  assert.deepEqual(await cut, { state: "failed", reason: "connection closed", closed: true });

  const b = fakePeer();
  const declined = b.ch.sendFile(file, "f2", () => {});
  await new Promise((r) => setTimeout(r, 0));
  b.files.deliver({ t: "file-decline", id: "f2", reason: "declined" });
  assert.deepEqual(await declined, { state: "declined", reason: "declined" });

  const c = fakePeer();
  const aborted = c.ch.sendFile(file, "f3", () => {});
  await new Promise((r) => setTimeout(r, 0));
  c.files.deliver({ t: "file-accept", id: "f3" });
  await new Promise((r) => setTimeout(r, 0));
  c.files.deliver({ t: "file-abort", id: "f3" });
  const r = await aborted;
  assert.equal(r.state, "failed");
  assert.equal(r.closed, undefined);
});

test("an arriving file cut by a closed channel is reported as closed and its bytes are dropped", () => {
  const { ch, files, events } = fakePeer();
  files.deliver({ t: "file", id: "f1", name: "a", size: 10 });
  ch.acceptFile("f1");
  files.deliver(new Uint8Array(4).buffer);
  closeChannels(files);
  assert.deepEqual(events.at(-1), { event: "file-failed", id: "f1", reason: "connection closed", closed: true });
  assert.equal(ch.incoming, null);
});
