// Chat and file transfer over RTCDataChannels, peer to peer (never through the server).
//
// Each peer connection gets two pre-negotiated channels (`negotiated: true`, fixed
// ids), so neither side has to be "the one who creates the channel" and perfect
// negotiation stays symmetric:
//   id 0 "app":   JSON text. {t:"hello"|"state", name, muted, cameraOff, sharing}, {t:"chat", text}
//   id 1 "files": {t:"file", id, name, size, type} (text), then the bytes as binary
//                 messages, in order; the receiver answers {t:"file-ack", id} when it has
//                 them all, or either side sends {t:"file-abort", id}.
// Files are sent one at a time per peer, in chunks no larger than the SCTP max message
// size allows, with backpressure: we stop writing above HIGH_WATER bytes buffered and
// resume on `bufferedamountlow` (threshold LOW_WATER), so a 50 MB file never floods
// the channel or memory.

const CHUNK_MAX = 64 * 1024;
const READ_BLOCK = 1024 * 1024;
const HIGH_WATER = 4 * 1024 * 1024;
const LOW_WATER = 1024 * 1024;
const REPORT_EVERY = 512 * 1024;
export const MAX_FILE_SIZE = 2 * 1024 * 1024 * 1024;

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
        name: typeof msg.name === "string" ? msg.name.slice(0, 40) : "",
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

/** A file header of the `files` channel, validated and made safe: {id, name, size, type}, or null. */
export function parseFileHeader(msg) {
  if (!msg || typeof msg !== "object") return null;
  const size = Number(msg.size);
  if (typeof msg.id !== "string" || !Number.isSafeInteger(size) || size < 0 || size > MAX_FILE_SIZE) return null;
  const name = String(msg.name || "file").replace(/[\\/]/g, "_").slice(0, 255) || "file";
  // A bare media type: parameters (and whatever else follows a ";") are dropped.
  const base = typeof msg.type === "string" ? msg.type.split(";")[0].trim() : "";
  const type = /^[\w.+-]+\/[\w.+-]+$/.test(base) ? base : "";
  return { id: msg.id, name, size, type };
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
    this.incoming = null; // {id, name, size, type, chunks, received}
    this.outgoing = null; // {id, resolveAck}
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
      if (msg.t === "file") this._beginIncoming(msg);
      else if (msg.t === "file-ack" && this.outgoing && this.outgoing.id === msg.id) this.outgoing.resolveAck(true);
      else if (msg.t === "file-abort") this._onAbort(msg.id);
      return;
    }
    const inc = this.incoming;
    if (!inc) return;
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

  _beginIncoming(raw) {
    const msg = parseFileHeader(raw);
    if (!msg) return;
    if (this.incoming) this._failIncoming("superseded");
    const { name, size, type } = msg;
    this.incoming = { id: msg.id, name, size, type, chunks: [], received: 0, lastEvent: 0 };
    this._emit("file-start", { id: msg.id, name, size, type });
    if (size === 0) this._finishIncoming();
  }

  _finishIncoming() {
    const inc = this.incoming;
    this.incoming = null;
    const blob = new Blob(inc.chunks, { type: inc.type || "application/octet-stream" });
    this.files.send(JSON.stringify({ t: "file-ack", id: inc.id }));
    this._emit("file-complete", { id: inc.id, name: inc.name, size: inc.size, type: inc.type, blob });
  }

  _failIncoming(reason) {
    const inc = this.incoming;
    if (!inc) return;
    this.incoming = null;
    if (this.files.readyState === "open") this.files.send(JSON.stringify({ t: "file-abort", id: inc.id }));
    this._emit("file-failed", { id: inc.id, reason });
  }

  _onAbort(id) {
    if (this.incoming && this.incoming.id === id) {
      this.incoming = null;
      this._emit("file-failed", { id, reason: "cancelled by sender" });
    }
    if (this.outgoing && this.outgoing.id === id) this.outgoing.resolveAck(false);
  }

  _onClose() {
    if (this.closed) return;
    this.closed = true;
    if (this.incoming) {
      const id = this.incoming.id;
      this.incoming = null;
      this._emit("file-failed", { id, reason: "connection closed" });
    }
    if (this.outgoing) this.outgoing.resolveAck(false);
    this._emit("close");
  }

  // ---- sending files ----

  /**
   * Queue `file` for this peer. `onProgress(sentBytes)` is called as bytes leave the
   * buffer. Resolves true when the receiver acknowledged every byte.
   */
  sendFile(file, id, onProgress) {
    const run = () => this._sendFile(file, id, onProgress);
    const p = this.queue.then(run, run);
    this.queue = p.catch(() => false);
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

  async _sendFile(file, id, onProgress) {
    await this._waitForOpen();
    const ch = this.files;
    const maxMsg = (this.pc.sctp && this.pc.sctp.maxMessageSize) || 16384;
    const chunk = Math.max(1024, Math.min(CHUNK_MAX, maxMsg));
    let ackResolve;
    const acked = new Promise((r) => { ackResolve = r; });
    this.outgoing = { id, resolveAck: ackResolve };
    try {
      ch.send(JSON.stringify({ t: "file", id, name: file.name, size: file.size, type: file.type }));
      let queued = 0;
      let lastReport = 0;
      let lastReportedAt = 0;
      for (let off = 0; off < file.size; off += READ_BLOCK) {
        const block = new Uint8Array(await file.slice(off, off + READ_BLOCK).arrayBuffer());
        for (let i = 0; i < block.byteLength; i += chunk) {
          const mustWait = ch.bufferedAmount > HIGH_WATER;
          await this._drain();
          if (ch.readyState !== "open") throw new Error("channel closed");
          ch.send(block.subarray(i, Math.min(i + chunk, block.byteLength)));
          queued += Math.min(chunk, block.byteLength - i);
          const now = performance.now();
          // Report after every drain (the buffer just emptied: real progress), every
          // REPORT_EVERY bytes, and at least every 100 ms.
          if (mustWait || queued - lastReportedAt >= REPORT_EVERY || now - lastReport > 100) {
            lastReport = now;
            lastReportedAt = queued;
            onProgress(Math.max(0, queued - ch.bufferedAmount));
          }
        }
      }
      onProgress(Math.max(0, queued - ch.bufferedAmount));
      const ok = await acked;
      if (ok) onProgress(file.size);
      return ok;
    } finally {
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
