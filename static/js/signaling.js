// The signaling socket: one WebSocket to /ws/<room>, spoken as in docs/protocol.md.
//
// It owns reconnecting. A dropped socket (anything but our own clean close, or a
// room-full refusal) is reopened with exponential backoff and jitter, carrying the
// resume token of the latest `welcome`, so the server can hand back the same peer id
// and the signals queued while we were away. Outgoing signals sent while the socket
// is down are held and flushed after a resumed welcome (a fresh join drops them:
// the peer ids they were addressed to belong to the old session).
//
// Events (all CustomEvent, payload in `detail`):
//   welcome      the welcome message, plus `rejoined: true` when a fresh id replaced an old one
//   peer-joined  {id}            peer-left {id}
//   signal       {from, data}    ice-servers {iceServers}
//   error        the server's error message {code, message}
//   status       {status: "connecting"|"open"|"reconnecting"|"closed", failures, everOpened}
//   full         {message}       the room is full; no reconnect is attempted
//   superseded   {}              close 4002: the session continues on a newer socket
//   not-invited  {message}       close 4003: the room is closed and our invite is bad or expired

const BACKOFF_START_MS = 400;
const BACKOFF_MAX_MS = 10000;
const HANDSHAKE_TIMEOUT_MS = 10000;

export function signalingUrl(room, loc = window.location) {
  const scheme = loc.protocol === "https:" ? "wss" : "ws";
  return `${scheme}://${loc.host}/ws/${encodeURIComponent(room)}`;
}

export class Signaling extends EventTarget {
  constructor(room, { url = signalingUrl(room), token = null } = {}) {
    super();
    this.room = room;
    this.baseUrl = url;
    this.token = token; // invite token for closed rooms (docs/protocol.md, "Closed rooms")
    this.ws = null;
    this.id = null;
    this.resumeToken = null;
    this.status = "closed";
    this.failures = 0; // consecutive failed attempts since the last welcome
    this.everOpened = false;
    this.stopped = false;
    this.outbox = [];
    this.retryTimer = null;
  }

  connect() {
    this.stopped = false;
    this._open();
  }

  _open() {
    clearTimeout(this.retryTimer);
    const params = new URLSearchParams();
    if (this.resumeToken) params.set("resume", this.resumeToken);
    if (this.token) params.set("token", this.token);
    const query = params.toString();
    const url = query ? `${this.baseUrl}?${query}` : this.baseUrl;
    this._setStatus(this.everOpened || this.failures > 0 ? "reconnecting" : "connecting");
    let ws;
    try {
      ws = new WebSocket(url);
    } catch (err) {
      this._scheduleRetry();
      return;
    }
    this.ws = ws;
    let welcomed = false;
    let refused = false;
    // A handshake that hangs (a half-open proxy, a paused server) counts as a failure.
    const handshakeTimer = setTimeout(() => {
      if (!welcomed && this.ws === ws) ws.close();
    }, HANDSHAKE_TIMEOUT_MS);
    ws.onmessage = (ev) => {
      let msg;
      try {
        msg = JSON.parse(ev.data);
      } catch {
        return;
      }
      if (!msg || typeof msg !== "object") return;
      if (msg.type === "welcome") {
        welcomed = true;
        clearTimeout(handshakeTimer);
        this._onWelcome(msg);
      } else if (msg.type === "error" && msg.code === "room-full") {
        refused = true;
        this._emit("full", { message: msg.message, code: msg.code, maxPeers: msg.maxPeers });
      } else if (msg.type === "error" && msg.code === "not-invited") {
        refused = true;
        this._emit("not-invited", { message: msg.message });
      } else if (msg.type === "error") {
        this._emit("error", msg);
      } else if (msg.type === "peer-joined" || msg.type === "peer-left" ||
                 msg.type === "signal" || msg.type === "ice-servers") {
        this._emit(msg.type, msg);
      }
    };
    ws.onclose = (ev) => {
      clearTimeout(handshakeTimer);
      if (this.ws !== ws) return;
      this.ws = null;
      if (this.stopped) {
        this._setStatus("closed");
        return;
      }
      if (refused || ev.code === 4001 || ev.code === 4003) {
        this.stopped = true;
        this._setStatus("closed");
        return;
      }
      if (ev.code === 4002) {
        // Our session resumed on a newer socket (another tab, or a stale retry): the
        // newer one owns it now; reconnecting would only fight over it.
        this.stopped = true;
        this._setStatus("closed");
        this._emit("superseded", {});
        return;
      }
      if (!welcomed) this.failures += 1;
      this._scheduleRetry();
    };
    // onerror is always followed by onclose; nothing to do here.
    ws.onerror = () => {};
  }

  _onWelcome(msg) {
    const previousId = this.id;
    const resumed = msg.resumed === true && msg.id === previousId;
    this.id = msg.id;
    this.resumeToken = msg.resume || null;
    this.failures = 0;
    this.everOpened = true;
    this._setStatus("open");
    if (!resumed) this.outbox = [];
    this._emit("welcome", { ...msg, resumed, rejoined: previousId !== null && !resumed });
    const held = this.outbox;
    this.outbox = [];
    for (const m of held) this._sendNow(m);
  }

  _scheduleRetry() {
    // Full jitter over an exponentially growing window, so a restarted server is not
    // hit by every client at the same instant.
    const cap = Math.min(BACKOFF_MAX_MS, BACKOFF_START_MS * 2 ** Math.min(this.failures, 10));
    const delay = cap / 2 + Math.random() * (cap / 2);
    this._setStatus("reconnecting");
    this.retryTimer = setTimeout(() => this._open(), delay);
  }

  _setStatus(status) {
    this.status = status;
    this._emit("status", { status, failures: this.failures, everOpened: this.everOpened });
  }

  _emit(type, detail) {
    this.dispatchEvent(new CustomEvent(type, { detail }));
  }

  _sendNow(msg) {
    if (this.ws && this.ws.readyState === WebSocket.OPEN && this.status === "open") {
      this.ws.send(JSON.stringify(msg));
      return true;
    }
    return false;
  }

  /** Send `data` to one peer (`to`) or, with `to` null, to everyone else in the room. */
  signal(to, data) {
    const msg = to ? { type: "signal", to, data } : { type: "signal", data };
    if (!this._sendNow(msg)) this.outbox.push(msg);
  }

  /** Call-setup telemetry; never queued (a stale report is worthless). */
  report(data) {
    this._sendNow({ type: "report", data });
  }

  /** Our own clean close: the server ends the session at once (no resume). */
  close() {
    this.stopped = true;
    clearTimeout(this.retryTimer);
    if (this.ws) {
      try {
        this.ws.close(1000, "bye");
      } catch {
        /* already closing */
      }
    }
    this.ws = null;
    this.outbox = [];
    this._setStatus("closed");
  }

  /** Reset to a brand-new join (used by "try again" after room-full). */
  restart() {
    this.close();
    this.id = null;
    this.resumeToken = null;
    this.failures = 0;
    this.everOpened = false;
    this.connect();
  }
}
