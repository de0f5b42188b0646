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
// Events carry what they announce: joined {resumed, rejoined}, membership {count, ids},
// peer-added / peer-state / peer-media / peer-sas / peer-stats {id, peer} (peer: a
// `peerView` snapshot), peer-removed {id}, chat {from, name, text, self, at},
// transfer {transfer}, notice {code, ...}, signaling {status}.

import { Signaling } from "./signaling.js";
import { PeerLink } from "./peer.js";
import { newTransferId, MAX_FILE_SIZE } from "./transfer.js";
import { resetReportBudget } from "./report.js";

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
    this.joined = false;
    this.ended = false;
    this.transfers = []; // {id, direction, name, size, type, progress, done, failed, url, peer}
    this.chatLog = []; // {from, name, text, self, at}
    this.sharing = false;
    this.joinedAt = null;
    this._wireSignaling();
  }

  _emit(type, detail = {}) {
    this.dispatchEvent(new CustomEvent(type, { detail }));
  }

  join() {
    this.ended = false;
    this.joinedAt = performance.now();
    this.signaling.connect();
  }

  leave() {
    this.ended = true;
    this.signaling.close();
    for (const id of [...this.links.keys()]) this._dropPeer(id, { quiet: true });
    this.joined = false;
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
    });
    ch.addEventListener("state", (ev) => {
      this.info.set(id, { ...this.info.get(id), ...ev.detail });
      this._emitPeer("peer-state", id);
    });
    ch.addEventListener("chat", (ev) => this._addChat(id, ev.detail.text, false));
    ch.addEventListener("file-start", (ev) => this._incomingStart(id, ev.detail));
    ch.addEventListener("file-progress", (ev) => this._incomingProgress(ev.detail));
    ch.addEventListener("file-complete", (ev) => this._incomingDone(ev.detail));
    ch.addEventListener("file-failed", (ev) => this._transferFailed(ev.detail.id, ev.detail.reason));
    this._emitPeer("peer-added", id);
    return link;
  }

  _dropPeer(id, { quiet = false } = {}) {
    const link = this.links.get(id);
    if (!link) return;
    this.links.delete(id);
    this.info.delete(id);
    this.departed.add(id);
    link.close();
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
    this.name = String(name || "").trim().slice(0, 40);
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
    this._emit("chat", entry);
  }

  // ---- files ----

  sendFiles(files) {
    for (const file of files) this.sendFile(file);
  }

  sendFile(file) {
    const targets = [...this.links.values()];
    const t = {
      id: newTransferId(), direction: "out", name: file.name, size: file.size, type: file.type,
      progress: 0, done: false, failed: null, url: null, peers: targets.map((l) => l.id),
    };
    this.transfers.push(t);
    if (file.size > MAX_FILE_SIZE) {
      t.failed = "too large";
    } else if (targets.length === 0) {
      t.failed = "nobody to send to";
    }
    this._emit("transfer", { transfer: t });
    if (t.failed) return t;
    const sent = new Map(targets.map((l) => [l.id, 0]));
    const total = file.size * targets.length || 1;
    const update = () => {
      const sum = [...sent.values()].reduce((a, b) => a + b, 0);
      t.progress = file.size === 0 ? 0 : sum / total;
      this._emit("transfer", { transfer: t });
    };
    Promise.all(
      targets.map((link) =>
        link.channels.sendFile(file, t.id, (n) => { sent.set(link.id, n); update(); }).catch(() => false),
      ),
    ).then((oks) => {
      t.done = true;
      const okCount = oks.filter(Boolean).length;
      if (okCount < oks.length) t.failed = okCount === 0 ? "not delivered" : `delivered to ${okCount} of ${oks.length}`;
      else t.progress = 1;
      this._emit("transfer", { transfer: t });
    });
    return t;
  }

  _incomingStart(from, { id, name, size, type }) {
    const t = { id, direction: "in", from, fromName: this.displayName(from), name, size, type, progress: 0, done: false, failed: null, url: null };
    this.transfers.push(t);
    this._emit("transfer", { transfer: t });
  }

  _incomingProgress({ id, received, size }) {
    const t = this.transfers.find((x) => x.id === id && x.direction === "in");
    if (!t) return;
    t.progress = size ? received / size : 1;
    this._emit("transfer", { transfer: t });
  }

  _incomingDone({ id, blob }) {
    const t = this.transfers.find((x) => x.id === id && x.direction === "in");
    if (!t) return;
    t.progress = 1;
    t.done = true;
    t.url = URL.createObjectURL(blob);
    t.blob = blob;
    this._emit("transfer", { transfer: t });
  }

  _transferFailed(id, reason) {
    const t = this.transfers.find((x) => x.id === id && x.direction === "in");
    if (!t) return;
    t.failed = reason || "failed";
    t.done = true;
    this._emit("transfer", { transfer: t });
  }
}
