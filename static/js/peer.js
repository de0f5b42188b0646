// One RTCPeerConnection to one remote peer, negotiated with the "perfect negotiation"
// pattern of the WebRTC specification: both sides may offer at any time; on a
// collision the polite peer rolls back and accepts the other's offer, the impolite
// one ignores the incoming offer. The peer whose id sorts first is polite; both ends
// compute the same roles from the two ids, so glare never wedges a call.
//
// Also here: ICE restart when the media path dies, one call-setup report per attempt
// (report.js), the SAS of the DTLS fingerprints (sas.js), and a connection-quality
// readout from getStats.
//
// A dead path is noticed three ways, whichever comes first: getStats shows nothing
// arriving on the selected pair while our checks go unanswered (stall.js, sampled
// every second: the fast one, ~3-5 s), the connection stays "disconnected" (Chromium
// says so ~6 s after the path dies, then we wait a grace) or goes "failed". Either end
// may restart; the other end gets new ICE credentials by answering, so a restart
// started by one side heals both. A restart that does not bring the path back is
// retried with backoff (stall.js, restartBackoffMs). docs/client.md states the bound.
//
// When a call does not connect, or a restart does not bring it back, it escalates
// (escalation.js): ICE restart, then a new connection on both ends that uses only TURN
// over TLS (relay-only), then the person is told it cannot connect. docs/networks.md
// states the bounds; each setup report says which rung connected.
//
// Signals are `{description}`, `{candidate}` or `{relayOnly: gen}` objects inside the
// protocol's `signal.data`, each with `gen` (the connection's generation: 0, then 1 after
// the relay-only rung rebuilt it) once it is not 0; signals of an older generation are
// dropped. Nothing else of ours travels through the server.

import { SetupAttempt } from "./report.js";
import { sasOfConnection } from "./sas.js";
import { PeerChannels } from "./transfer.js";
import { StallDetector, pairSample, restartBackoffMs } from "./stall.js";
import { ladders, nextStep, relayOnlyServers, swappable } from "./escalation.js";
import { tuneSender } from "./media.js";

const DISCONNECTED_GRACE_MS = 4000;
const SAMPLE_INTERVAL_MS = 1000; // stall checks
const STATS_INTERVAL_MS = 2000; // the quality readout
const debug = () => { try { return localStorage.getItem("rtcsvc.debug") === "1"; } catch { return false; } };

export function isPolite(selfId, remoteId) {
  return selfId < remoteId;
}

export class PeerLink extends EventTarget {
  /**
   * @param {object} o
   * @param {string} o.selfId, o.remoteId
   * @param {RTCIceServer[]} o.iceServers
   * @param {(data) => void} o.sendSignal   delivers to this remote peer only
   * @param {(data) => void} o.sendReport   call-setup telemetry
   * @param {{audio: MediaStreamTrack|null, video: MediaStreamTrack|null, stream: MediaStream}} o.local
   * @param {RTCCertificate[]} [o.certificates]  our DTLS certificate, whose fingerprint the SAS uses
   */
  constructor({ selfId, remoteId, iceServers, sendSignal, sendReport, local, certificates }) {
    super();
    this.selfId = selfId;
    this.id = remoteId;
    this.polite = isPolite(selfId, remoteId);
    this.sendSignal = sendSignal;
    this.sendReport = sendReport;
    this.makingOffer = false;
    this.ignoreOffer = false;
    this.settingRemoteAnswer = false;
    this.inbox = Promise.resolve();
    this.closed = false;
    this.sas = null;
    this.path = null;
    this.stats = { rttMs: null, kbps: null, lossPct: null, quality: "unknown" };
    this._lastBytes = null;
    this.restarts = 0; // ICE restarts this side started
    this.iceRestarts = 0; // ICE restarts completed, started by either side
    this.lastRestartReason = null; // why this side last restarted ICE
    this._stall = new StallDetector();
    this._everConnected = false;
    this._notConnectedSince = null; // since when a once-connected link is not connected
    this._restartedAt = -Infinity; // the last restart, ours or theirs (performance.now())
    this._failedRestarts = 0; // restarts (by either side) since the path last worked
    this._iceUfrag = null; // of the negotiated local description; never logged
    this._lastQualityAt = -Infinity;
    this._sampling = false;
    this.iceServers = iceServers || [];
    this.certificates = certificates;
    // The escalation ladder (escalation.js): the rung now and since when, whether the link
    // is trying (not working), and whether it gave up.
    this.gen = 0;
    this.rung = "initial";
    this._rungSince = performance.now();
    this._ladderStartedAt = this._rungSince; // when the person started waiting
    this.trying = true;
    this.gaveUp = false;

    this.remoteStream = new MediaStream();
    this._localStream = local.stream;
    this.pc = this._makePc({ iceServers: this.iceServers }, [local.audio, local.video].filter(Boolean));
    this._channels = swappable(new PeerChannels(this.pc));
    this.channels = this._channels.proxy; // the same object across rebuilds
    this.attempt = this._newAttempt();

    this.statsTimer = setInterval(() => this._pollStats(), SAMPLE_INTERVAL_MS);
  }

  /** A peer connection sending `tracks`; its events count only while it is `this.pc`. */
  _makePc(config, tracks) {
    const pc = new RTCPeerConnection({ ...config, ...(this.certificates ? { certificates: this.certificates } : {}) });
    for (const track of tracks) {
      const sender = pc.addTrack(track, this._localStream);
      if (track.kind === "video") tuneSender(sender, track);
    }
    const mine = (fn) => (ev) => { if (pc === this.pc && !this.closed) fn(ev); };
    pc.addEventListener("negotiationneeded", mine(() => this._negotiate()));
    pc.addEventListener("icecandidate", mine(({ candidate }) => {
      if (candidate) this._signal({ candidate: candidate.toJSON() });
    }));
    pc.addEventListener("track", mine(({ track }) => {
      // A rebuilt connection brings new tracks of the same kinds: they replace the old ones
      // in the same stream, so the tile's video element keeps playing it.
      for (const old of this.remoteStream.getTracks()) {
        if (old.kind === track.kind && old !== track) this.remoteStream.removeTrack(old);
      }
      if (!this.remoteStream.getTracks().includes(track)) this.remoteStream.addTrack(track);
      track.addEventListener("unmute", () => this._emit("media"));
      this._emit("media");
    }));
    pc.addEventListener("connectionstatechange", mine(() => this._onConnectionState()));
    pc.addEventListener("iceconnectionstatechange", mine(() => this._onIceState()));
    pc.addEventListener("signalingstatechange", mine(() => this._onSignalingState()));
    return pc;
  }

  /** Send a signal of this connection's generation. */
  _signal(data) {
    this.sendSignal(this.gen ? { ...data, gen: this.gen } : data);
  }

  _emit(type, detail = {}) {
    if (type === "state" && !this.closed) ladders.set(this.id, this.ladder); // for the tile
    this.dispatchEvent(new CustomEvent(type, { detail }));
  }

  _newAttempt() {
    // setupMs counts from when the person started waiting (the first attempt, or the
    // moment a working path died), whichever rung connects.
    return new SetupAttempt((data) => this.sendReport(data),
      { startedAt: this._ladderStartedAt, rung: this.rung });
  }

  /** Where the ladder is (escalation.js `ladders`, `ladderText`). */
  get ladder() {
    return { rung: this.rung, trying: this.trying, gaveUp: this.gaveUp };
  }

  _setRung(rung, now = performance.now()) {
    this.rung = rung;
    this._rungSince = now;
    this._emit("state");
  }

  /** The path stopped working (or never worked): the ladder counts from now. */
  _startTrying(now) {
    if (this.rung === "initial") this.rung = "ice-restart";
    if (this.trying) return;
    this.trying = true;
    this._ladderStartedAt = now;
    this._rungSince = now;
  }

  /**
   * The relay-only rung: a new peer connection (new ICE, new DTLS) using only turns: URLs,
   * generation `gen`. `announce` tells the other end to do the same (it must: an end that
   * still sends over UDP loses its datagrams on the same broken path).
   */
  _goRelayOnly(gen, announce) {
    if (this.closed || gen <= this.gen) return;
    const tracks = this.pc.getSenders().map((s) => s.track).filter(Boolean);
    const old = this.pc;
    this.gen = gen;
    if (announce) this._signal({ relayOnly: gen });
    this.pc = this._makePc({ iceServers: relayOnlyServers(this.iceServers), iceTransportPolicy: "relay" }, tracks);
    const oldChannels = this._channels.swap(new PeerChannels(this.pc));
    try { oldChannels.close(); } catch { /* already closed */ }
    old.close();
    this.makingOffer = false;
    this.ignoreOffer = false;
    this.settingRemoteAnswer = false;
    this._iceUfrag = null;
    this._stall.reset();
    this._restartedAt = performance.now();
    this._failedRestarts = 0;
    this._notConnectedSince = null;
    this.trying = true;
    this.gaveUp = false;
    this.attempt.cancel();
    this._setRung("relay-only");
    this.attempt = this._newAttempt();
    this._emit("restart");
    // The impolite end offers first, as for any new connection (negotiationneeded).
  }

  /** Every second: climb the ladder while the link is not working. */
  _climb(now) {
    if (!this.trying) return;
    const step = nextStep({ rung: this.rung, since: this._rungSince, now,
      hasRelayUrl: relayOnlyServers(this.iceServers).length > 0, gaveUp: this.gaveUp });
    if (step === "ice-restart") {
      if (this._restartIce("setup-timeout")) this._setRung("ice-restart", now);
    } else if (step === "relay-only") {
      this._goRelayOnly(this.gen + 1, true);
    } else if (step === "give-up") {
      this.gaveUp = true;
      this.attempt.failed(this.pc.connectionState === "failed" ? "ice-failed" : "timeout");
      this._emit("state");
    }
  }

  get connectionState() {
    return this.pc.connectionState;
  }

  // ---- negotiation ----

  async _negotiate() {
    if (this.closed) return;
    // The first offer is always the impolite peer's. Rolling back an *initial* offer
    // (the polite side's half of a glare) can leave Chromium's ICE transport without
    // candidates, so the polite side waits for the first remote description; what it
    // still needs to send is renegotiated after that (the browser fires
    // negotiationneeded again once the answer leaves it stable). Later glare, such as
    // both ends restarting ICE, is resolved by the rollback below as usual.
    if (this.polite && !this.pc.remoteDescription) return;
    try {
      this.makingOffer = true;
      await this.pc.setLocalDescription();
      if (debug()) console.debug(`rtcsvc: ${this.id.slice(0, 6)} -> ${this.pc.localDescription.type}`);
      this._signal({ description: this.pc.localDescription.toJSON() });
    } catch (err) {
      this._emit("warning", { message: `offer failed: ${err.message}` });
    } finally {
      this.makingOffer = false;
    }
  }

  /** Feed one `signal.data` from this peer. Signals are processed strictly in order. */
  handleSignal(data) {
    this.inbox = this.inbox.then(() => this._handle(data)).catch((err) => {
      this._emit("warning", { message: `signal failed: ${err.message}` });
    });
    return this.inbox;
  }

  async _handle(data) {
    if (this.closed || !data || typeof data !== "object") return;
    const gen = Number.isSafeInteger(data.gen) && data.gen > 0 ? data.gen : 0;
    if (gen < this.gen) return; // for a connection we closed
    if (Number.isSafeInteger(data.relayOnly)) {
      // One step at a time: a peer cannot make us skip generations.
      if (data.relayOnly === this.gen + 1) this._goRelayOnly(data.relayOnly, false);
      return;
    }
    if (gen > this.gen) return; // a generation never announced
    const { description, candidate } = data;
    if (description && debug()) console.debug(`rtcsvc: ${this.id.slice(0, 6)} <- ${description.type} in ${this.pc.signalingState} makingOffer=${this.makingOffer} polite=${this.polite}`);
    if (description) {
      const readyForOffer =
        !this.makingOffer && (this.pc.signalingState === "stable" || this.settingRemoteAnswer);
      const offerCollision = description.type === "offer" && !readyForOffer;
      this.ignoreOffer = !this.polite && offerCollision;
      if (this.ignoreOffer) return;
      this.settingRemoteAnswer = description.type === "answer";
      try {
        await this.pc.setRemoteDescription(description); // rolls back our offer if needed
      } finally {
        this.settingRemoteAnswer = false;
      }
      if (description.type === "offer") {
        await this.pc.setLocalDescription();
        this._signal({ description: this.pc.localDescription.toJSON() });
      }
      this._updateSas();
    } else if (candidate) {
      try {
        await this.pc.addIceCandidate(candidate);
      } catch (err) {
        if (!this.ignoreOffer) throw err;
      }
    }
  }

  // ---- outgoing media ----

  /**
   * Send `track` (or nothing, with null) as our `kind` media, without renegotiating
   * when a sender for that kind exists (replaceTrack); otherwise add one, which
   * triggers negotiation.
   */
  async setOutgoing(kind, track, stream) {
    if (this.closed) return;
    const trs = this.pc.getTransceivers().filter(
      (t) => !t.stopped && t.receiver.track && t.receiver.track.kind === kind,
    );
    const tr = trs.find((t) => t.sender.track) || trs.find((t) => t.direction !== "inactive") || trs[0];
    if (tr) {
      await tr.sender.replaceTrack(track);
      await tuneSender(tr.sender, track);
      if (track && stream && tr.sender.setStreams) tr.sender.setStreams(stream);
      if (track && (tr.direction === "recvonly" || tr.direction === "inactive")) {
        tr.direction = tr.direction === "recvonly" ? "sendrecv" : "sendonly";
      }
    } else if (track) {
      tuneSender(this.pc.addTrack(track, stream), track);
    }
  }

  /** The tracks we currently send (a test/debug aid). */
  outgoingTracks() {
    return this.pc.getSenders().filter((s) => s.track).map((s) => ({ kind: s.track.kind, id: s.track.id, label: s.track.label }));
  }

  // ---- connection state, ICE restart, reports ----

  _onConnectionState() {
    const st = this.pc.connectionState;
    if (st === "connected") {
      this._everConnected = true;
      this._notConnectedSince = null;
      this.trying = false;
      this.gaveUp = false;
      this.attempt.connected(this.pc).then(() => {
        if (this.attempt.outcome) this.path = this.attempt.outcome.path || null;
        this._emit("state");
      });
      this._updateSas();
    } else if (st === "failed") {
      const dtls = this.pc.getSenders().map((s) => s.transport).find(Boolean);
      const reason = dtls && dtls.state === "failed" && this.pc.iceConnectionState !== "failed" ? "dtls-failed" : "ice-failed";
      this.attempt.failed(reason);
      this._restartIce(reason);
    }
    // "disconnected" may heal by itself: _checkPath restarts after a grace.
    if (st !== "connected" && this._everConnected && this._notConnectedSince === null) {
      this._notConnectedSince = performance.now();
    }
    this._emit("state");
  }

  _onIceState() {
    if (this.pc.iceConnectionState === "failed" && this.pc.connectionState !== "failed") {
      this.attempt.failed("ice-failed");
      this._restartIce("ice-failed");
    }
    this._emit("state");
  }

  // A negotiation that changed our ICE credentials completed an ICE restart, whichever
  // side started it: count it, and give the new path time before judging it.
  _onSignalingState() {
    if (this.pc.signalingState !== "stable") return;
    const desc = this.pc.currentLocalDescription;
    const m = desc && /^a=ice-ufrag:(\S+)/m.exec(desc.sdp);
    const ufrag = m ? m[1] : null;
    if (!ufrag) return;
    if (this._iceUfrag !== null && ufrag !== this._iceUfrag) {
      this.iceRestarts += 1;
      this._restartedAt = performance.now();
      this._failedRestarts = Math.max(this._failedRestarts, 1); // judged like one of ours
      this._stall.reset();
      this._emit("state");
    }
    this._iceUfrag = ufrag;
  }

  /**
   * Restart ICE unless a restart (ours or the other side's) is still being given its
   * chance: restarts that do not bring the path back are spaced out (restartBackoffMs).
   */
  _restartIce(reason) {
    if (this.closed) return false;
    const now = performance.now();
    if (now - this._restartedAt < restartBackoffMs(this._failedRestarts)) return false;
    this._restartedAt = now;
    this._failedRestarts += 1;
    this._stall.reset();
    this.lastRestartReason = reason;
    this.restarts += 1;
    this._startTrying(now);
    this.attempt.cancel();
    this.attempt = this._newAttempt();
    this._emit("restart");
    // restartIce() flags negotiation-needed; the next offer carries new ICE credentials.
    this.pc.restartIce();
    return true;
  }

  setIceServers(iceServers) {
    this.iceServers = iceServers || [];
    if (this.gen > 0) iceServers = relayOnlyServers(this.iceServers); // stays relay-only
    try {
      this.pc.setConfiguration({ ...this.pc.getConfiguration(), iceServers });
    } catch {
      /* a config the browser refuses keeps the old one */
    }
  }

  async _updateSas() {
    try {
      const s = await sasOfConnection(this.pc);
      if (s && (!this.sas || s.text !== this.sas.text)) {
        this.sas = s;
        this._emit("sas", s);
      }
    } catch {
      /* not negotiated yet */
    }
  }

  /** Every second: is the path dead (restart ICE)? Every other: the quality readout. */
  async _pollStats() {
    if (this.closed) return;
    this._climb(performance.now());
    if (this._sampling || !this._everConnected) return;
    this._sampling = true;
    let report;
    try {
      report = await this.pc.getStats();
    } catch {
      return;
    } finally {
      this._sampling = false;
    }
    if (this.closed) return;
    const now = performance.now();
    this._checkPath(report, now);
    if (now - this._lastQualityAt < STATS_INTERVAL_MS - SAMPLE_INTERVAL_MS / 2) return;
    this._lastQualityAt = now;
    const st = this.pc.connectionState;
    if (st === "connected") {
      this._readQuality(report, now);
    } else if (st === "disconnected" || st === "failed") {
      this.stats = { ...this.stats, quality: "poor" };
      this._emit("stats", this.stats);
    }
  }

  _checkPath(report, now) {
    const verdict = this._stall.sample(pairSample(report, now));
    const st = this.pc.connectionState;
    if (verdict.arrived && st === "connected") this._failedRestarts = 0; // the path works (again)
    if (verdict.stalled) {
      this._restartIce("media-stalled");
    } else if (st === "failed") {
      this._restartIce("failed");
    } else if (st !== "connected" && this._notConnectedSince !== null &&
               now - this._notConnectedSince >= DISCONNECTED_GRACE_MS) {
      // Disconnected (or still checking after a restart) for too long.
      this._restartIce("disconnected");
    }
  }

  _readQuality(report, now) {
    let rtt = null;
    let bytes = 0;
    let lost = 0;
    let received = 0;
    report.forEach((s) => {
      if (s.type === "transport" && s.selectedCandidatePairId) {
        const pair = report.get(s.selectedCandidatePairId);
        if (pair && typeof pair.currentRoundTripTime === "number") rtt = pair.currentRoundTripTime * 1000;
      }
      if (s.type === "inbound-rtp") {
        bytes += s.bytesReceived || 0;
        lost += Math.max(0, s.packetsLost || 0);
        received += s.packetsReceived || 0;
      }
    });
    let kbps = null;
    if (this._lastBytes) {
      const dt = (now - this._lastBytes.t) / 1000;
      if (dt > 0) kbps = Math.max(0, ((bytes - this._lastBytes.bytes) * 8) / 1000 / dt);
    }
    let lossPct = null;
    if (this._lastBytes) {
      const dLost = lost - this._lastBytes.lost;
      const dRecv = received - this._lastBytes.received;
      lossPct = dLost + dRecv > 0 ? (100 * dLost) / (dLost + dRecv) : 0;
    }
    this._lastBytes = { t: now, bytes, lost, received };
    let quality = "good";
    if ((rtt !== null && rtt > 400) || (lossPct !== null && lossPct > 8)) quality = "poor";
    else if ((rtt !== null && rtt > 200) || (lossPct !== null && lossPct > 3)) quality = "fair";
    this.stats = { rttMs: rtt, kbps, lossPct, quality };
    this._emit("stats", this.stats);
  }

  close() {
    if (this.closed) return;
    this.closed = true;
    clearInterval(this.statsTimer);
    ladders.delete(this.id);
    this.attempt.cancel();
    this.channels.close();
    this.pc.close();
    this._emit("closed");
  }
}
