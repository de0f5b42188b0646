// Chat and file transfer over RTCDataChannels, peer to peer (never through the server).
//
// Each peer connection gets two pre-negotiated channels (`negotiated: true`, fixed
// ids), so neither side has to be "the one who creates the channel" and perfect
// negotiation stays symmetric:
//   id 0 "app":   JSON text. {t:"hello"|"state", name, muted, cameraOff, sharing}, {t:"chat", text}
//   id 1 "files": {t:"file", id, name, size, type} (text) offers a file; the receiver's person
//                 decides: {t:"file-accept", id} or {t:"file-decline", id, reason}. Only after
//                 an accept come the bytes as binary messages, in order; the receiver answers
//                 {t:"file-ack", id} when it has them all, or either side sends {t:"file-abort", id}.
// Files are sent one at a time per peer, in chunks no larger than the SCTP max message
// size allows, with backpressure: we stop writing above HIGH_WATER bytes buffered and
// resume on `bufferedamountlow` (threshold LOW_WATER), so a 50 MB file never floods
// the channel or memory.
//
// Everything received here is another browser's say-so: one PeerChannels belongs to one
// peer and only ever reports about that peer's transfers; a second offer while one of that
// peer's files is waiting or arriving is reported as `busy`; bytes nobody accepted are
// dropped; a received file is always an application/octet-stream Blob, whatever type the
// sender declared, so it can only ever be saved, never rendered as a page of this origin.
// Whether to ask the person at all (reused ids, memory) is decided by the call (intake.js).

import { LIMITS, cleanName, cleanFileName, validTransferId } from "./intake.js";

const CHUNK_MAX = 64 * 1024;
const READ_BLOCK = 1024 * 1024;
const HIGH_WATER = 4 * 1024 * 1024;
const LOW_WATER = 1024 * 1024;
const REPORT_EVERY = 512 * 1024;
/** The largest file we offer: what a receiver keeps in memory at most (intake.js). */
export const MAX_FILE_SIZE = LIMITS.heldBytes;
/** The type of every received Blob: a download, never a document. */
export const RECEIVED_TYPE = "application/octet-stream";

/**
 * One message of the `app` channel, validated: {t: "chat", text} or {t: "state", state:
 * {name, muted, cameraOff, sharing, hasAudio, hasVideo}} ("hello" and "state" alike), or null
 * for anything else. Another browser wrote it: nothing in it is trusted beyond these fields.
 */
export function parseAppMessage(data) {
  if (typeof data !== "string") return null;
  let msg;
  try {
    msg = JSON.parse(data);
  } catch {
    return null;
  }
  if (!msg || typeof msg !== "object") return null;
  if (msg.t === "chat" && typeof msg.text === "string") return { t: "chat", text: msg.text.slice(0, 2000) };
  if (msg.t === "hello" || msg.t === "state") {
    return {
      t: "state",
      state: {
        name: cleanName(msg.name, 40),
        muted: !!msg.muted,
        cameraOff: !!msg.cameraOff,
        sharing: !!msg.sharing,
        hasAudio: msg.hasAudio !== false,
        hasVideo: msg.hasVideo !== false,
      },
    };
  }
  return null;
}

/**
 * A file offer of the `files` channel, validated and made safe: {id, name, size, type}, or
 * null. The size is any whole number of bytes (the receiver's limits judge it, visibly); the
 * type is only shown, never used for the Blob.
 */
export function parseFileHeader(msg) {
  if (!msg || typeof msg !== "object") return null;
  const size = typeof msg.size === "number" ? msg.size : NaN;
  if (!validTransferId(msg.id) || !Number.isSafeInteger(size) || size < 0) return null;
  const name = cleanFileName(msg.name);
  // A bare media type: parameters (and whatever else follows a ";") are dropped.
  const base = typeof msg.type === "string" ? msg.type.split(";")[0].trim() : "";
  const type = /^[\w.+-]+\/[\w.+-]+$/.test(base) ? base.slice(0, 100) : "";
  return { id: msg.id, name, size, type };
}

/** The reason a receiver gave for declining (one of ours, else "declined"). */
export function declineReason(reason) {
  return ["declined", "reused", "too-many", "busy", "too-large", "no-room"].includes(reason) ? reason : "declined";
}

function randomId() {
  const b = crypto.getRandomValues(new Uint8Array(8));
  return Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("");
}

/** The two channels of one peer connection. */
export class PeerChannels extends EventTarget {
  constructor(pc) {
    super();
    this.pc = pc;
    this.app = pc.createDataChannel("app", { negotiated: true, id: 0, ordered: true });
    this.files = pc.createDataChannel("files", { negotiated: true, id: 1, ordered: true });
    this.files.binaryType = "arraybuffer";
    this.files.bufferedAmountLowThreshold = LOW_WATER;
    this.queue = Promise.resolve();
    this.offered = null; // {id, name, size, type}: waiting for our person to accept or decline
    this.incoming = null; // {id, name, size, chunks, received, lastEvent}: accepted, arriving
    this.outgoing = null; // {id, answer(kind, reason), resolveAck}
    this.closed = false;

    this.app.addEventListener("open", () => this._emit("open"));
    this.app.addEventListener("message", (ev) => this._onApp(ev.data));
    this.files.addEventListener("message", (ev) => this._onFiles(ev.data));
    const onClose = () => this._onClose();
    this.app.addEventListener("close", onClose);
    this.files.addEventListener("close", onClose);
  }

  get isOpen() {
    return this.app.readyState === "open";
  }

  _emit(type, detail = {}) {
    this.dispatchEvent(new CustomEvent(type, { detail }));
  }

  sendJson(obj) {
    if (this.app.readyState !== "open") return false;
    this.app.send(JSON.stringify(obj));
    return true;
  }

  _sendFilesJson(obj) {
    if (this.files.readyState === "open") this.files.send(JSON.stringify(obj));
  }

  _onApp(data) {
    const msg = parseAppMessage(data);
    if (msg && msg.t === "chat") this._emit("chat", { text: msg.text });
    else if (msg && msg.t === "state") this._emit("state", msg.state);
  }

  // ---- receiving files ----

  _onFiles(data) {
    if (typeof data === "string") {
      let msg;
      try {
        msg = JSON.parse(data);
      } catch {
        return;
      }
      if (!msg || typeof msg !== "object") return;
      const out = this.outgoing && this.outgoing.id === msg.id ? this.outgoing : null;
      if (msg.t === "file") this._onOffer(msg);
      else if (msg.t === "file-accept" && out) out.answer("accept");
      else if (msg.t === "file-decline" && out) out.answer("decline", declineReason(msg.reason));
      else if (msg.t === "file-ack" && out) out.resolveAck(true);
      else if (msg.t === "file-abort") this._onAbort(msg.id);
      return;
    }
    const inc = this.incoming;
    if (!inc) return; // bytes nobody accepted are dropped
    inc.chunks.push(data);
    inc.received += data.byteLength;
    if (inc.received > inc.size) {
      this._failIncoming("more bytes than announced");
      return;
    }
    const now = performance.now();
    if (inc.received === inc.size || now - inc.lastEvent > 100) {
      inc.lastEvent = now;
      this._emit("file-progress", { id: inc.id, received: inc.received, size: inc.size });
    }
    if (inc.received === inc.size) this._finishIncoming();
  }

  /** An offer: reported with `busy` when another of this peer's files is waiting or arriving. */
  _onOffer(raw) {
    const offer = parseFileHeader(raw);
    if (!offer) return;
    const busy = !!(this.offered || this.incoming);
    if (!busy) this.offered = offer;
    this._emit("file-offer", { ...offer, busy });
  }

  /** Our person accepted the waiting offer `id`: ask for its bytes. False if it is gone. */
  acceptFile(id) {
    const offer = this.offered;
    if (!offer || offer.id !== id || this.files.readyState !== "open") return false;
    this.offered = null;
    this.incoming = { id, name: offer.name, size: offer.size, chunks: [], received: 0, lastEvent: 0 };
    this._sendFilesJson({ t: "file-accept", id });
    if (offer.size === 0) this._finishIncoming();
    return true;
  }

  /**
   * Decline offer `id` (our person said no, or our limits did), telling the sender why;
   * `current: false` for an offer reported as busy, which never became the waiting one.
   */
  declineFile(id, reason = "declined", { current = true } = {}) {
    if (current && this.offered && this.offered.id === id) this.offered = null;
    this._sendFilesJson({ t: "file-decline", id, reason });
  }

  _finishIncoming() {
    const inc = this.incoming;
    this.incoming = null;
    // Never the sender's type: a text/html Blob opened by its URL would be a page of our origin.
    const blob = new Blob(inc.chunks, { type: RECEIVED_TYPE });
    this._sendFilesJson({ t: "file-ack", id: inc.id });
    this._emit("file-complete", { id: inc.id, size: inc.size, blob });
  }

  _failIncoming(reason) {
    const inc = this.incoming;
    if (!inc) return;
    this.incoming = null;
    this._sendFilesJson({ t: "file-abort", id: inc.id });
    this._emit("file-failed", { id: inc.id, reason });
  }

  _onAbort(id) {
    for (const key of ["offered", "incoming"]) {
      if (this[key] && this[key].id === id) {
        this[key] = null;
        this._emit("file-failed", { id, reason: "cancelled by sender" });
      }
    }
    if (this.outgoing && this.outgoing.id === id) this.outgoing.answer("decline", "cancelled");
  }

  _onClose() {
    if (this.closed) return;
    this.closed = true;
    for (const key of ["offered", "incoming"]) {
      if (this[key]) {
        const id = this[key].id;
        this[key] = null;
        this._emit("file-failed", { id, reason: "connection closed", closed: true });
      }
    }
    if (this.outgoing) this.outgoing.answer("closed");
    this._emit("close");
  }

  // ---- sending files ----

  /**
   * Queue `file` for this peer: offer it, and once the receiver accepts, send its bytes.
   * `onStatus({state, sent})` tells the sender's card: "waiting" (for the receiver to
   * accept), then "sending" with the bytes gone out. Resolves {state: "delivered" |
   * "declined" | "failed", reason, closed}; `closed` when it failed because the channel
   * closed under it (the connection went or was replaced: retry.js may send it again).
   */
  sendFile(file, id, onStatus) {
    const run = () => this._sendFile(file, id, onStatus)
      .catch((err) => ({ state: "failed", reason: String(err.message || err) }))
      // "closing" counts too: a send can fail before the channel's close event has come.
      .then((r) => (r.state === "failed" && (this.closed || this.files.readyState !== "open")
        ? { ...r, reason: "connection closed", closed: true } : r));
    const p = this.queue.then(run, run);
    this.queue = p;
    return p;
  }

  _waitForOpen() {
    if (this.files.readyState === "open") return Promise.resolve();
    return new Promise((resolve, reject) => {
      const ok = () => { cleanup(); resolve(); };
      const bad = () => { cleanup(); reject(new Error("channel closed")); };
      const cleanup = () => {
        this.files.removeEventListener("open", ok);
        this.files.removeEventListener("close", bad);
      };
      this.files.addEventListener("open", ok);
      this.files.addEventListener("close", bad);
    });
  }

  _drain() {
    const ch = this.files;
    if (ch.bufferedAmount <= HIGH_WATER) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const low = () => { cleanup(); resolve(); };
      const bad = () => { cleanup(); reject(new Error("channel closed")); };
      const cleanup = () => {
        ch.removeEventListener("bufferedamountlow", low);
        ch.removeEventListener("close", bad);
      };
      ch.addEventListener("bufferedamountlow", low);
      ch.addEventListener("close", bad);
    });
  }

  async _sendFile(file, id, onStatus) {
    if (this.closed) return { state: "failed", reason: "connection closed" };
    await this._waitForOpen();
    const ch = this.files;
    const maxMsg = (this.pc.sctp && this.pc.sctp.maxMessageSize) || 16384;
    const chunk = Math.max(1024, Math.min(CHUNK_MAX, maxMsg));
    let answered;
    let acked;
    const answer = new Promise((r) => { answered = r; });
    const ack = new Promise((r) => { acked = r; });
    let phase = "waiting";
    let stopped = false; // the receiver said stop (declined or aborted) while we were sending
    this.outgoing = {
      id,
      // The receiver's answer; after an accept a decline or a closed channel ends the sending.
      answer: (kind, reason) => {
        if (phase === "waiting") answered({ kind, reason });
        else {
          stopped = true;
          acked({ ok: false, reason: kind === "closed" ? "connection closed" : reason });
        }
      },
      resolveAck: (ok) => {
        if (phase !== "sending") return;
        if (!ok) stopped = true;
        acked({ ok, reason: ok ? null : "cancelled by the receiver" });
      },
    };
    try {
      ch.send(JSON.stringify({ t: "file", id, name: file.name, size: file.size, type: file.type }));
      onStatus({ state: "waiting", sent: 0 });
      const a = await answer;
      if (a.kind === "decline") return { state: "declined", reason: a.reason };
      if (a.kind !== "accept") return { state: "failed", reason: "connection closed" };
      phase = "sending";
      onStatus({ state: "sending", sent: 0 });
      let queued = 0;
      let lastReport = 0;
      let lastReportedAt = 0;
      for (let off = 0; off < file.size && !stopped; off += READ_BLOCK) {
        const block = new Uint8Array(await file.slice(off, off + READ_BLOCK).arrayBuffer());
        for (let i = 0; i < block.byteLength; i += chunk) {
          const mustWait = ch.bufferedAmount > HIGH_WATER;
          await this._drain();
          if (ch.readyState !== "open") throw new Error("connection closed");
          if (stopped) break;
          ch.send(block.subarray(i, Math.min(i + chunk, block.byteLength)));
          queued += Math.min(chunk, block.byteLength - i);
          const now = performance.now();
          // Report after every drain (the buffer just emptied: real progress), every
          // REPORT_EVERY bytes, and at least every 100 ms.
          if (mustWait || queued - lastReportedAt >= REPORT_EVERY || now - lastReport > 100) {
            lastReport = now;
            lastReportedAt = queued;
            onStatus({ state: "sending", sent: Math.max(0, queued - ch.bufferedAmount) });
          }
        }
      }
      onStatus({ state: "sending", sent: Math.max(0, queued - ch.bufferedAmount) });
      const done = await ack;
      if (!done.ok) return { state: "failed", reason: done.reason || "not delivered" };
      onStatus({ state: "sending", sent: file.size });
      return { state: "delivered" };
    } finally {
      phase = "over";
      this.outgoing = null;
    }
  }

  close() {
    try { this.app.close(); } catch { /* ignore */ }
    try { this.files.close(); } catch { /* ignore */ }
    this._onClose();
  }
}

export function newTransferId() {
  return randomId();
}
