// The words on screen (static/js/text.js).
import test from "node:test";
import assert from "node:assert/strict";
import {
  initials, peopleText, netText, fmtBytes, qualityText, statsText, tileStatus, mediaProblemText,
  micToggle, camToggle, transferText, transferToast, refusalText, presentingText, noticeText,
} from "../../static/js/text.js";

test("initials: first letters of the first and last words, the same everywhere", () => {
  assert.equal(initials("Ada"), "A");
  assert.equal(initials("ada lovelace"), "AL");
  assert.equal(initials("  Ada  King  Lovelace "), "AL");
  assert.equal(initials("Guest abc123"), "GA");
  assert.equal(initials(""), "?");
  assert.equal(initials(null), "?");
  assert.equal(initials("Émile Zola"), "ÉZ");
  assert.equal(initials("😀 Smile"), "😀S"); // a whole character, never half a surrogate pair
});

test("people and network status in words", () => {
  assert.equal(peopleText(0), "Just you");
  assert.equal(peopleText(1), "2 people");
  assert.equal(peopleText(5), "6 people");
  assert.equal(netText("open"), "Connected");
  assert.equal(netText("reconnecting"), "Reconnecting…");
  assert.equal(netText("closed"), "Offline");
});

test("sizes", () => {
  assert.equal(fmtBytes(0), "0 B");
  assert.equal(fmtBytes(1023), "1023 B");
  assert.equal(fmtBytes(14000), "14 KB");
  assert.equal(fmtBytes(5 * 1024 * 1024), "5.0 MB");
  assert.equal(fmtBytes(50 * 1024 * 1024), "50 MB");
  assert.equal(fmtBytes(3 * 1024 ** 4), "3072 GB");
});

test("connection quality is said in words; only trouble is labelled on a tile", () => {
  assert.equal(qualityText("good"), "Good connection");
  assert.equal(qualityText("poor"), "Poor connection");
  assert.equal(qualityText("unknown"), "");
  assert.equal(statsText({ quality: "good", rttMs: 12.4, kbps: 1500, lossPct: 0 }),
    "Good connection · round trip 12 ms · 1.5 Mb/s · 0.0 % lost");
  assert.equal(statsText({ quality: "unknown", rttMs: null, kbps: null, lossPct: null }), "Measuring the connection…");
  assert.equal(tileStatus("connected"), "");
  assert.equal(tileStatus("connecting"), "Connecting…");
  assert.equal(tileStatus("failed"), "Connection lost, retrying…");
});

test("media problems say what is missing and what happens", () => {
  assert.equal(mediaProblemText({ mode: "full", problem: null }), null);
  assert.match(mediaProblemText({ mode: "receive-only", problem: "denied" }), /^Camera and microphone blocked\. You will join without sending/);
  assert.match(mediaProblemText({ mode: "audio-only", problem: "denied" }), /^Camera blocked\. You will join with audio only/);
  assert.equal(mediaProblemText({ mode: "receive-only", problem: "absent" }),
    "Camera and microphone not found. You will join to watch and listen.");
  assert.equal(mediaProblemText({ mode: "video-only", problem: "absent" }), "Microphone not found. You will join without audio.");
});

test("a toggle's visible label starts its accessible name and says what pressing it does", () => {
  const name = ({ label, more }) => label + more;
  assert.equal(name(micToggle({ hasAudio: true, muted: false })), "Mute microphone");
  assert.equal(name(micToggle({ hasAudio: true, muted: true })), "Unmute microphone");
  assert.equal(name(micToggle({ hasAudio: false, muted: false })), "No mic");
  assert.equal(name(camToggle({ hasCamera: true, cameraOff: false })), "Stop video");
  assert.equal(name(camToggle({ hasCamera: true, cameraOff: true })), "Start video");
  assert.equal(name(camToggle({ hasCamera: false })), "No camera");
  for (const t of [micToggle({ hasAudio: true, muted: true }), camToggle({ hasCamera: true, cameraOff: false })]) {
    assert.ok(name(t).startsWith(t.label));
  }
});

test("a file card for the sender: waiting for each receiver to accept, sending, then how it ended", () => {
  const grace = { id: "g", name: "Grace", state: "waiting", reason: null, sent: 0 };
  const linus = { id: "l", name: "Linus", state: "waiting", reason: null, sent: 0 };
  const t = { direction: "out", name: "a.txt", size: 2048, type: "text/plain", progress: 0, done: false, failed: null, peers: [grace, linus] };
  assert.deepEqual(transferText(t), { heading: "You are offering a.txt (2.0 KB, text/plain)", status: "Waiting for Grace and Linus to accept" });
  const half = { ...t, progress: 0.5, peers: [{ ...grace, state: "sending" }, linus] };
  assert.deepEqual(transferText(half), { heading: "You are sending a.txt (2.0 KB, text/plain)", status: "Sending… 50 %; waiting for Linus to accept" });
  const both = { ...t, progress: 1, done: true, peers: [{ ...grace, state: "delivered" }, { ...linus, state: "delivered" }] };
  assert.deepEqual(transferText(both), { heading: "You sent a.txt (2.0 KB, text/plain)", status: "Delivered" });
  const declined = { ...t, done: true, peers: [{ ...grace, state: "declined", reason: "declined" }] };
  assert.deepEqual(transferText(declined), { heading: "You offered a.txt (2.0 KB, text/plain)", status: "Declined by Grace" });
  const mixed = { ...t, done: true, peers: [{ ...grace, state: "delivered" }, { ...linus, state: "declined", reason: "no-room" }] };
  assert.equal(transferText(mixed).status, "Delivered to Grace; refused by Linus's browser (no room left)");
  assert.equal(transferText({ ...t, done: true, failed: "too large" }).status, "Failed: too large");
});

test("a file card for the receiver: offered, refused with the reason, receiving, received", () => {
  const r = { direction: "in", fromName: "Ada", name: "b.bin", size: 10, type: "", progress: 0.2, state: "receiving" };
  assert.deepEqual(transferText(r), { heading: "Ada is sending b.bin (10 B)", status: "Receiving… 20 %" });
  assert.equal(transferText({ ...r, state: "offered" }).heading, "Ada wants to send you b.bin (10 B)");
  assert.equal(transferText({ ...r, state: "received", progress: 1 }).heading, "Ada sent b.bin (10 B)");
  assert.equal(transferText({ ...r, state: "declined" }).status, "You declined it");
  assert.equal(transferText({ ...r, state: "refused", reason: "too-large" }).status,
    "Refused: larger than the 512 MB this browser keeps for received files");
  assert.equal(transferText({ ...r, state: "failed", reason: "connection closed" }).status, "Failed: connection closed");
  assert.equal(transferToast({ ...r, state: "offered" }), "Ada wants to send you b.bin");
  assert.equal(transferToast({ ...r, state: "receiving" }), null);
  assert.equal(refusalText("busy", "Mallory"), "another file from Mallory is waiting or arriving (one at a time)");
  assert.equal(noticeText("file-refused", { name: "Mallory", file: "x.bin", reason: "reused" }).text,
    "Refused x.bin from Mallory: it reused the id of an earlier file");
});

test("who is presenting", () => {
  assert.equal(presentingText({ self: false, others: [] }), "");
  assert.equal(presentingText({ self: true, others: [] }), "You are presenting your screen to everyone");
  assert.equal(presentingText({ self: false, others: ["Ada"] }), "Ada is presenting their screen");
  assert.equal(presentingText({ self: false, others: ["Ada", "Grace", "Linus"] }), "Ada, Grace and Linus are presenting");
});

test("notices: refusals get a screen, outages the banner, news a toast", () => {
  const full = noticeText("room-full", { maxPeers: 2 });
  assert.equal(full.screen, true);
  assert.equal(full.title, "This call is full");
  assert.match(full.text, /2 people/);
  assert.equal(noticeText("room-full", {}).screen, true);
  assert.equal(noticeText("not-invited").title, "This invite link does not work");
  assert.equal(noticeText("connection-lost").banner, true);
  assert.equal(noticeText("server-unreachable").banner, true);
  assert.deepEqual(noticeText("peer-left", { name: "Linus" }), { text: "Linus left the call.", kind: "info" });
  assert.equal(noticeText("rejoined").text, "Reconnected.");
});
