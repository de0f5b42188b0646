// The call: joins a room over signaling, keeps one PeerLink per other member (a full
// mesh), and fans local actions (media changes, chat, files, our name) out to all of
// them. It knows nothing about the DOM; ui.js listens to its events.
//
// Membership: the `welcome` lists who is there; `peer-joined` / `peer-left` keep it
// current. Both ends of a pair create their PeerLink (perfect negotiation sorts out
// who offers). A resumed welcome keeps every link (the server replays queued
// signals); a fresh welcome after a drop (the server restarted, or the grace period
// ran out) means every id changed, so the old links are closed and new ones built
// with the new ids; media comes back on its own, without reloading the page.
//
// Files: an incoming file is only an offer until the person accepts it (answerTransfer);
// transfers are keyed by (peer, id), so nothing one peer sends reaches another peer's card,
// and `intake` (intake.js) refuses reused ids, a second file while one is waiting, and what
// would not fit the memory allowed for received files. Chat is kept per sender, the newest
// LIMITS.chatPerPeer messages of each.
//
// Events carry what they announce: joined {resumed, rejoined}, membership {count, ids},
// peer-added / peer-state / peer-media / peer-sas / peer-stats {id, peer} (peer: a
// `peerView` snapshot), peer-removed {id}, chat {from, name, text, self, at},
// transfer {transfer}, transfer-removed {key}, notice {code, ...}, signaling {status}.

import { Signaling } from "./signaling.js";
import { PeerLink } from "./peer.js";
import { newTransferId, MAX_FILE_SIZE } from "./transfer.js";
import { Intake, LIMITS, cleanName, overflow } from "./intake.js";
import { resetReportBudget } from "./report.js";
import { interruption, canSendAgain, sendAgainTo } from "./retry.js";

export function shortId(id) {
  return String(id || "").replace(/[^A-Za-z0-9]/g, "").slice(0, 6) || "peer";
}

export class Call extends EventTarget {
  constructor(room, media, { name = "", token = null } = {}) {
    super();
    this.room = room;
    this.media = media;
    this.name = name;
    this.signaling = new Signaling(room, { token });
    this.id = null;
    this.maxPeers = null;
    this.iceServers = [];
    this.links = new Map(); // id -> PeerLink
    this.info = new Map(); // id -> {name, muted, cameraOff, sharing}
    this.departed = new Set();
    this._endedHere = new Set(); // peers we dropped ourselves (retry.js: "ended", not "left")
    this.joined = false;
    this.ended = false;
    this.transfers = []; // oldest first; see sendFile and _incomingOffer for their fields
    this.transferIndex = new Map(); // key ("in:<peer>:<id>" or "out:<id>") -> transfer
    this.intake = new Intake();
    this._refusalsNoticed = new Set(); // "<peer>:<reason>:<waiting card>" already told
    this.chatLog = []; // {from, name, text, self, at}, at most LIMITS.chatPerPeer per sender
    this.sharing = false;
    this.joinedAt = null;
    this._wireSignaling();
  }

  _emit(type, detail = {}) {
    this.dispatchEvent(new CustomEvent(type, { detail }));
  }

  async join() {
    this.ended = false;
    this.joinedAt = performance.now();
    // Our own DTLS certificate (one per call), so the security code can use its fingerprint
    // rather than our description's text (sas.js). Without one the browser makes its own.
    if (!this.certificates) {
      try {
        this.certificates = [await RTCPeerConnection.generateCertificate({ name: "ECDSA", namedCurve: "P-256" })];
      } catch {
        this.certificates = null;
      }
    }
    if (!this.ended) this.signaling.connect();
  }

  leave() {
    this.ended = true;
    this.signaling.close();
    for (const id of [...this.links.keys()]) this._dropPeer(id, { quiet: true });
    this.joined = false;
    // Received files not yet saved go with the call: their object URLs are revoked.
    for (const t of this.transfers) {
      if (t.direction === "in" && t.blob) {
        this._freeFile(t);
        t.state = "expired";
        this._emit("transfer", { transfer: t });
      }
    }
    this._emitMembership();
  }

  // ---- signaling ----

  _wireSignaling() {
    const s = this.signaling;
    s.addEventListener("status", (ev) => {
      const { status, everOpened, failures } = ev.detail;
      const was = this._lastStatus;
      this._lastStatus = status;
      // One notice per outage, not one per retry.
      if (status === "reconnecting" && was === "open") this._emit("notice", { code: "connection-lost" });
      if (status === "reconnecting" && !everOpened && failures === 1 && was !== "reconnecting") {
        this._emit("notice", { code: "server-unreachable" });
      }
      this._emit("signaling", ev.detail);
    });
    s.addEventListener("welcome", (ev) => this._onWelcome(ev.detail));
    s.addEventListener("peer-joined", (ev) => {
      this.departed.delete(ev.detail.id);
      this._ensurePeer(ev.detail.id);
      this._emitMembership();
    });
    s.addEventListener("peer-left", (ev) => {
      const id = ev.detail.id;
      if (!this.links.has(id)) return;
      const who = this.displayName(id);
      this._dropPeer(id);
      this._emit("notice", { code: "peer-left", id, name: who });
    });
    s.addEventListener("signal", (ev) => {
      const { from, data } = ev.detail;
      if (!from || from === this.id || this.departed.has(from)) return;
      const link = this._ensurePeer(from);
      if (link) link.handleSignal(data);
    });
    s.addEventListener("ice-servers", (ev) => {
      this.iceServers = ev.detail.iceServers || [];
      for (const link of this.links.values()) link.setIceServers(this.iceServers);
    });
    s.addEventListener("full", (ev) => {
      // The refusal may name the capacity (`maxPeers`); else we know it from an earlier welcome.
      const cap = Number.isInteger(ev.detail.maxPeers) ? ev.detail.maxPeers : this.maxPeers;
      this._emit("notice", { code: "room-full", message: ev.detail.message, maxPeers: cap });
    });
    s.addEventListener("superseded", () => this._emit("notice", { code: "superseded" }));
    s.addEventListener("not-invited", () => this._emit("notice", { code: "not-invited" }));
    s.addEventListener("error", (ev) => {
      this._emit("server-error", ev.detail);
    });
  }

  _onWelcome(msg) {
    resetReportBudget();
    this.maxPeers = msg.maxPeers || null;
    this.iceServers = msg.iceServers || [];
    const wasJoined = this.joined;
    if (!msg.resumed) {
      // A new identity: every old link belongs to the previous session.
      for (const id of [...this.links.keys()]) this._dropPeer(id, { quiet: true });
      this.departed.clear();
    }
    this.id = msg.id;
    this.joined = true;
    const present = new Set(msg.peers || []);
    if (msg.resumed) {
      for (const id of [...this.links.keys()]) if (!present.has(id)) this._dropPeer(id);
      for (const link of this.links.values()) link.setIceServers(this.iceServers);
    }
    for (const id of present) this._ensurePeer(id);
    this._emit("joined", { resumed: !!msg.resumed, rejoined: !!msg.rejoined });
    if (wasJoined) this._emit("notice", { code: msg.resumed ? "resumed" : "rejoined" });
    this._emitMembership();
  }

  // ---- peers ----

  _ensurePeer(id) {
    if (!this.id || id === this.id) return null;
    let link = this.links.get(id);
    if (link) return link;
    link = new PeerLink({
      selfId: this.id,
      remoteId: id,
      iceServers: this.iceServers,
      sendSignal: (data) => this.signaling.signal(id, data),
      sendReport: (data) => this.signaling.report(data),
      local: { audio: this.media.audioTrack, video: this.media.videoTrack, stream: this.media.stream },
      certificates: this.certificates || undefined,
    });
    this.links.set(id, link);
    this.info.set(id, { name: "", muted: false, cameraOff: false, sharing: false, hasAudio: true, hasVideo: true });
    link.addEventListener("warning", (ev) => console.warn(`rtcsvc: peer ${shortId(id)}: ${ev.detail.message}`));
    link.addEventListener("state", () => this._emitPeer("peer-state", id));
    link.addEventListener("media", () => this._emitPeer("peer-media", id));
    link.addEventListener("sas", () => this._emitPeer("peer-sas", id));
    link.addEventListener("stats", () => this._emitPeer("peer-stats", id));
    link.addEventListener("restart", () => this._emit("notice", { code: "peer-reconnecting", id, name: this.displayName(id) }));
    const ch = link.channels;
    ch.addEventListener("open", () => {
      ch.sendJson({ t: "hello", ...this._myState() });
      this._emitPeer("peer-state", id);
      this._channelsOpened(id);
    });
    ch.addEventListener("state", (ev) => {
      this.info.set(id, { ...this.info.get(id), ...ev.detail });
      this._emitPeer("peer-state", id);
    });
    ch.addEventListener("chat", (ev) => this._addChat(id, ev.detail.text, false));
    ch.addEventListener("file-offer", (ev) => this._incomingOffer(id, ev.detail));
    ch.addEventListener("file-progress", (ev) => this._incomingProgress(id, ev.detail));
    ch.addEventListener("file-complete", (ev) => this._incomingDone(id, ev.detail));
    ch.addEventListener("file-failed", (ev) => this._incomingFailed(id, ev.detail.id, ev.detail.reason, !!ev.detail.closed));
    this._emitPeer("peer-added", id);
    return link;
  }

  _dropPeer(id, { quiet = false } = {}) {
    const link = this.links.get(id);
    if (!link) return;
    this.links.delete(id);
    this.departed.add(id);
    // Quiet: we ended it (we left, or rejoined as someone new), not the peer: cards say so.
    if (quiet) this._endedHere.add(id);
    link.close(); // its waiting or arriving files fail ("connection closed")
    this.info.delete(id);
    this.intake.forget(id);
    this._partsLeft(id);
    this._emit("peer-removed", { id, quiet });
    this._emitMembership();
  }

  /** What a person can see of one peer: a snapshot, carried by every peer-* event. */
  peerView(id) {
    const link = this.links.get(id);
    if (!link) return null;
    const info = this.info.get(id) || {};
    return {
      id,
      name: this.displayName(id),
      muted: !!info.muted,
      cameraOff: !!info.cameraOff,
      sharing: !!info.sharing,
      connectionState: link.connectionState,
      quality: link.stats.quality,
      stats: { ...link.stats },
      sas: link.sas,
      stream: link.remoteStream,
    };
  }

  _emitPeer(type, id) {
    const peer = this.peerView(id);
    if (peer) this._emit(type, { id, peer });
  }

  _emitMembership() {
    this._emit("membership", { count: this.links.size, ids: [...this.links.keys()] });
  }

  displayName(id) {
    const info = this.info.get(id);
    return (info && info.name) || `Guest ${shortId(id)}`;
  }

  // ---- our state, fanned out ----

  _myState() {
    return {
      name: this.name,
      muted: this.media.muted || !this.media.audioTrack,
      cameraOff: this.media.cameraOff || !this.media.videoTrack,
      sharing: this.sharing,
      hasAudio: !!this.media.audioTrack,
      hasVideo: !!this.media.videoTrack,
    };
  }

  _broadcastState() {
    const msg = { t: "state", ...this._myState() };
    for (const link of this.links.values()) link.channels.sendJson(msg);
  }

  setName(name) {
    this.name = cleanName(String(name || ""), 40);
    this._broadcastState();
  }

  setMuted(muted) {
    this.media.setMuted(muted);
    this._broadcastState();
  }

  setCameraOff(off) {
    this.media.setCameraOff(off);
    this._broadcastState();
  }

  async _sendVideo(track) {
    await Promise.all([...this.links.values()].map((l) => l.setOutgoing("video", track, this.media.stream)));
  }

  async startScreenShare() {
    const track = await this.media.startScreenShare();
    if (!track) return false;
    this.sharing = true;
    await this._sendVideo(track);
    this._broadcastState();
    return true;
  }

  async stopScreenShare() {
    const camera = this.media.stopScreenShare();
    this.sharing = false;
    await this._sendVideo(camera);
    this._broadcastState();
  }

  async switchDevice(kind, deviceId) {
    const track = await this.media.useDevice(kind, deviceId);
    if (!track) return false;
    if (kind === "video" && this.sharing) return true; // sent when sharing stops
    await Promise.all([...this.links.values()].map((l) => l.setOutgoing(kind, track, this.media.stream)));
    this._broadcastState();
    return true;
  }

  // ---- chat ----

  sendChat(text) {
    const t = String(text || "").trim().slice(0, 2000);
    if (!t) return false;
    for (const link of this.links.values()) link.channels.sendJson({ t: "chat", text: t });
    this._addChat(this.id, t, true);
    return true;
  }

  _addChat(from, text, self) {
    const entry = { from, name: self ? "You" : this.displayName(from), text, self, at: Date.now() };
    this.chatLog.push(entry);
    // Each sender's newest messages are kept: one person's flood never pushes out another's.
    const old = new Set(overflow(this.chatLog, LIMITS.chatPerPeer, (m) => m.from === from));
    if (old.size) this.chatLog = this.chatLog.filter((m) => !old.has(m));
    this._emit("chat", entry);
  }

  // ---- files ----

  sendFiles(files) {
    for (const file of files) this.sendFile(file);
  }

  /**
   * Offer `file` to everyone here. The transfer: {key, id, direction: "out", name, size, type,
   * progress, done, failed, file, peers: [{id, name, state: "waiting" | "sending" |
   * "reconnecting" | "delivered" | "declined" | "failed", reason, sent, interrupted, attempt}]}.
   * A part the connection interrupted (`interrupted`, retry.js) can be sent again while its
   * peer is in the call; `file` is kept only as long as some part can.
   */
  sendFile(file) {
    const targets = [...this.links.values()];
    const id = newTransferId();
    const t = {
      key: `out:${id}`, id, direction: "out", name: file.name, size: file.size, type: file.type,
      progress: 0, done: false, failed: null, file,
      peers: targets.map((l) => ({
        id: l.id, name: this.displayName(l.id), state: "waiting", reason: null, sent: 0, interrupted: null, attempt: null,
      })),
    };
    this._addTransfer(t);
    if (file.size > MAX_FILE_SIZE) {
      t.failed = "too large";
    } else if (targets.length === 0) {
      t.failed = "nobody to send to";
    }
    if (t.failed) {
      t.done = true;
      t.file = null;
    }
    this._emit("transfer", { transfer: t });
    if (t.failed) return t;
    for (const who of t.peers) this._sendPart(t, who, id);
    return t;
  }

  /**
   * Send `t`'s file to one of its receivers (`who`, one of `t.peers`) as `wireId`: the
   * transfer's id the first time, a new one when it is sent again (a receiver refuses an id
   * it has seen). A part whose connection is down waits ("reconnecting") until its channels
   * open again (_channelsOpened).
   */
  _sendPart(t, who, wireId = newTransferId()) {
    const link = this.links.get(who.id);
    who.sent = 0;
    who.reason = null;
    who.interrupted = null;
    if (!link) {
      Object.assign(who, { state: "failed", reason: "connection closed", interrupted: this._goneKind(who.id), attempt: null });
      this._settleOut(t);
      return;
    }
    if (link.channels.closed) {
      who.state = "reconnecting";
      who.attempt = null;
      this._progressOut(t);
      return;
    }
    who.state = "waiting";
    who.attempt = wireId;
    this._progressOut(t);
    link.channels.sendFile(t.file, wireId, ({ state, sent }) => {
      if (who.attempt !== wireId) return;
      who.state = state;
      who.sent = sent;
      this._progressOut(t);
    }).then((result) => {
      if (who.attempt !== wireId) return;
      who.attempt = null;
      who.state = result.state;
      who.reason = result.reason || null;
      if (result.state === "delivered") who.sent = t.size;
      const now = this.links.get(who.id);
      who.interrupted = interruption(result, {
        present: now === link, replaced: now === link && !link.channels.closed, ended: this._endedHere.has(who.id),
      });
      this._settleOut(t);
    });
  }

  _progressOut(t) {
    const total = t.size * t.peers.length || 1;
    const sum = t.peers.reduce((a, p) => a + p.sent, 0);
    t.progress = t.size === 0 ? 0 : sum / total;
    this._emit("transfer", { transfer: t });
  }

  /** A part of `t` ended: once none is going, the transfer is done. */
  _settleOut(t) {
    const going = t.peers.some((p) => ["waiting", "sending", "reconnecting"].includes(p.state));
    if (!going) {
      t.done = true;
      t.failed = null;
      const delivered = t.peers.filter((p) => p.state === "delivered").length;
      if (delivered === t.peers.length) t.progress = 1;
      else if (delivered === 0 && t.peers.some((p) => p.state === "failed")) t.failed = "not delivered";
      // The file is kept only while it can still be sent again.
      if (!sendAgainTo(t).length) t.file = null;
    }
    this._progressOut(t);
  }

  /** The person pressed "Send again" on an outgoing card: the interrupted parts start over. */
  _sendAgain(t) {
    const ids = sendAgainTo(t);
    if (!ids.length || !t.file) return;
    t.done = false;
    t.failed = null;
    for (const who of t.peers) if (ids.includes(who.id)) who.sent = 0;
    for (const who of t.peers) if (ids.includes(who.id)) this._sendPart(t, who);
  }

  /**
   * The data channels to `peer` opened (again): the parts waiting for them are sent, and an
   * interruption that said "closed" now knows the connection was replaced.
   */
  _channelsOpened(peer) {
    for (const t of [...this.transfers]) {
      let changed = false;
      if (t.direction === "out") {
        for (const who of t.peers) {
          if (who.id !== peer) continue;
          if (who.state === "reconnecting") this._sendPart(t, who);
          else if (who.state === "failed" && who.interrupted === "closed") {
            who.interrupted = "replaced";
            changed = true;
          }
        }
      } else if (t.from === peer && t.state === "failed" && t.interrupted === "closed") {
        t.interrupted = "replaced";
        changed = true;
      }
      if (changed) this._emit("transfer", { transfer: t });
    }
  }

  /** Why a peer is no longer here, for retry.js: it "left", or we "ended" it (quiet drop). */
  _goneKind(peer) {
    return this._endedHere.has(peer) ? "ended" : "left";
  }

  /** `peer` is gone: nothing of ours is sent to it again. */
  _partsLeft(peer) {
    for (const t of this.transfers) {
      if (t.direction !== "out") continue;
      let changed = false;
      for (const who of t.peers) {
        if (who.id !== peer) continue;
        if (who.state === "reconnecting" || canSendAgain(who)) {
          Object.assign(who, { state: "failed", reason: who.reason || "connection closed", interrupted: this._goneKind(peer), attempt: null });
          changed = true;
        }
      }
      if (changed) this._settleOut(t);
    }
  }

  _addTransfer(t) {
    this.transfers.push(t);
    this.transferIndex.set(t.key, t);
  }

  _removeTransfer(t) {
    this._freeFile(t);
    this.transfers = this.transfers.filter((x) => x !== t);
    this.transferIndex.delete(t.key);
    this._emit("transfer-removed", { key: t.key });
  }

  /** The incoming transfer of `from` with `id`: only that peer's own entries are ever found. */
  _incoming(from, id) {
    return this.transferIndex.get(`in:${from}:${id}`) || null;
  }

  /**
   * Another peer offers a file. The transfer: {key, id, direction: "in", from, fromName, name,
   * size, type, state: "offered" | "refused" | "declined" | "receiving" | "received" | "saved" |
   * "failed" | "expired", reason, progress, url, blob, interrupted, interruptedWhile}.
   */
  _incomingOffer(from, offer) {
    const link = this.links.get(from);
    if (!link) return;
    const refusal = this.intake.judge(from, offer, { busy: offer.busy });
    const fromName = this.displayName(from);
    if (refusal === "reused" || refusal === "busy" || refusal === "too-many") {
      // No card for these (the id is taken, or one of theirs is already on screen): the
      // sender is told, and the person once per waiting file (a flood is one notice).
      // (A busy offer never became the waiting one; the waiting one stays.)
      link.channels.declineFile(offer.id, refusal, { current: !offer.busy });
      const waiting = this.transfers.find((x) => x.from === from && (x.state === "offered" || x.state === "receiving"));
      const once = `${from}:${refusal}:${refusal === "busy" && waiting ? waiting.key : ""}`;
      if (this._refusalsNoticed.has(once)) return;
      this._refusalsNoticed.add(once);
      this._emit("notice", { code: "file-refused", id: from, name: fromName, file: offer.name, reason: refusal });
      return;
    }
    const t = {
      key: `in:${from}:${offer.id}`, id: offer.id, direction: "in", from, fromName,
      name: offer.name, size: offer.size, type: offer.type,
      state: refusal ? "refused" : "offered", reason: refusal, progress: 0, url: null, blob: null,
    };
    if (refusal) link.channels.declineFile(offer.id, refusal);
    this._addTransfer(t);
    this._emit("transfer", { transfer: t });
    // Each peer keeps at most LIMITS.cardsPerPeer cards: the oldest finished ones go.
    const settled = (x) => x.state !== "offered" && x.state !== "receiving";
    for (const old of overflow(this.transfers, LIMITS.cardsPerPeer, (x) => x.from === from, settled)) {
      this._removeTransfer(old);
    }
  }

  /**
   * The person's answer on an incoming file's card: "accept", "decline", "saved" (the
   * Download link was used: the file is freed shortly after), "dismiss" (the card goes);
   * on an outgoing file's card, "send-again" (retry.js says to whom).
   * False when this call has no such transfer.
   */
  answerTransfer(key, action) {
    const t = this.transferIndex.get(key);
    if (t && t.direction === "out" && action === "send-again") {
      this._sendAgain(t);
      return true;
    }
    if (!t || t.direction !== "in") return false;
    const link = this.links.get(t.from);
    if (action === "accept" && t.state === "offered") {
      if (!link) return true;
      if (!this.intake.reserve(t.size)) {
        link.channels.declineFile(t.id, "no-room");
        t.state = "refused";
        t.reason = "no-room";
      } else if (link.channels.acceptFile(t.id)) {
        t.state = "receiving";
        t.reserved = t.size;
      } else {
        this.intake.release(t.size);
        t.state = "failed";
        t.reason = "cancelled by sender";
      }
    } else if (action === "decline" && t.state === "offered") {
      if (link) link.channels.declineFile(t.id, "declined");
      t.state = "declined";
    } else if (action === "saved" && t.state === "received") {
      t.state = "saved";
      // The download has the Blob by now; a second is ample before its URL is revoked.
      setTimeout(() => this._freeFile(t), 1000);
    } else if (action === "dismiss" && t.state !== "offered" && t.state !== "receiving") {
      this._removeTransfer(t);
      return true;
    } else {
      return true;
    }
    this._emit("transfer", { transfer: t });
    return true;
  }

  /** Let go of a received file: its object URL revoked, its bytes off the allowance. */
  _freeFile(t) {
    if (t.url) URL.revokeObjectURL(t.url);
    t.url = null;
    t.blob = null;
    if (t.reserved) this.intake.release(t.reserved);
    t.reserved = 0;
  }

  _incomingProgress(from, { id, received, size }) {
    const t = this._incoming(from, id);
    if (!t || t.state !== "receiving") return;
    t.progress = size ? received / size : 1;
    this._emit("transfer", { transfer: t });
  }

  _incomingDone(from, { id, blob }) {
    const t = this._incoming(from, id);
    if (!t || t.state !== "receiving") return;
    t.progress = 1;
    t.state = "received";
    t.blob = blob;
    t.url = URL.createObjectURL(blob);
    this._emit("transfer", { transfer: t });
  }

  /**
   * An offered or arriving file of `from` failed; `closed` when its channel closed under it
   * (the bytes received so far are gone with PeerChannels' entry; its allowance is freed here).
   */
  _incomingFailed(from, id, reason, closed = false) {
    const t = this._incoming(from, id);
    if (!t || (t.state !== "offered" && t.state !== "receiving")) return;
    this._freeFile(t);
    const link = this.links.get(from);
    t.interrupted = interruption({ state: "failed", closed },
      { present: !!link, replaced: !!link && !link.channels.closed, ended: this._endedHere.has(from) });
    if (t.interrupted) {
      t.interruptedWhile = t.state;
      t.progress = 0;
    }
    t.state = "failed";
    t.reason = reason || "failed";
    this._emit("transfer", { transfer: t });
  }
}
