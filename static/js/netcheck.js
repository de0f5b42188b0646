// The lobby's network check: ask the server for its ICE servers over a probe socket (no seat
// in the room; TURN credentials from the same per-client budget as a join), gather candidates
// from each URL on its own, then send data between two relay-only peer connections inside
// this page through the best relay that answered. What it saw goes to verdict.js (pure); only
// the verdict and the transport go back to the server (docs/protocol.md, "Probe sockets").
//
// Bounds: the probe answers within PROBE_MS; every URL gathers at once, for GATHER_MS at
// most; each media test gets CONNECT_MS to open its channel and DATA_MS of data, and at most
// MAX_MEDIA_TESTS run, one after the other (docs/networks.md, "The lobby's network check").

import { signalingUrl } from "./signaling.js";
import { decide, expandIceServers, mediaCandidates, natKind, telemetry } from "./verdict.js";

export const BOUNDS = { PROBE_MS: 5000, GATHER_MS: 6000, CONNECT_MS: 8000, DATA_MS: 2000, MAX_MEDIA_TESTS: 3 };
const CHUNK = 16 * 1024;

function withTimeout(promise, ms, fallback) {
  let timer;
  return Promise.race([
    promise,
    new Promise((resolve) => { timer = setTimeout(() => resolve(fallback), ms); }),
  ]).finally(() => clearTimeout(timer));
}

/** Open a probe socket: resolves {socket, iceServers}, or rejects with a short reason. */
export function openProbe(room, token) {
  const query = new URLSearchParams({ probe: "1" });
  if (token) query.set("token", token);
  const ws = new WebSocket(`${signalingUrl(room)}?${query}`);
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => { ws.close(); reject(new Error("no answer")); }, BOUNDS.PROBE_MS);
    ws.addEventListener("message", (ev) => {
      let msg;
      try { msg = JSON.parse(ev.data); } catch { return; }
      clearTimeout(timer);
      if (msg.type === "probe") resolve({ socket: ws, iceServers: msg.iceServers || [] });
      else { ws.close(); reject(new Error(msg.type === "error" ? msg.code : "unexpected answer")); }
    });
    ws.addEventListener("close", () => { clearTimeout(timer); reject(new Error("refused")); });
  });
}

function serverConfig(entry) {
  const server = { urls: [entry.url] };
  if (entry.username) Object.assign(server, { username: entry.username, credential: entry.credential });
  return server;
}

/** Close these peer connections when `signal` aborts (the person joined the call: the check
 *  must not keep relays and test traffic going underneath it). */
function closeOnAbort(signal, ...connections) {
  if (!signal) return;
  const close = () => connections.forEach((pc) => pc.close());
  if (signal.aborted) close();
  else signal.addEventListener("abort", close, { once: true });
}

/** Gather candidates from one URL alone. Keeps whether it answered and the NAT kind only. */
export async function gatherFrom(entry, signal = null) {
  const pc = new RTCPeerConnection({
    iceServers: [serverConfig(entry)],
    iceTransportPolicy: entry.kind === "turn" ? "relay" : "all",
  });
  closeOnAbort(signal, pc);
  const result = { url: entry.url, kind: entry.kind, transport: entry.transport, host: entry.host,
                   port: entry.port, ok: false, error: null, nat: null };
  let hosts = 0;
  const done = new Promise((resolve) => {
    pc.addEventListener("icecandidate", (ev) => {
      const c = ev.candidate;
      if (!c) { resolve("complete"); return; }
      if (c.type === "host") hosts += 1;
      if (entry.kind === "stun" && c.type === "srflx") {
        result.ok = true;
        result.nat = natKind(c);
        resolve("answered");
      }
      if (entry.kind === "turn" && c.type === "relay") { result.ok = true; resolve("answered"); }
    });
    pc.addEventListener("icecandidateerror", (ev) => {
      // Which server failed and how: a code and its text, never an address.
      result.error = `${ev.errorCode}${ev.errorText ? ` ${ev.errorText}` : ""}`.slice(0, 80);
    });
  });
  try {
    pc.createDataChannel("gather");
    await pc.setLocalDescription(await pc.createOffer());
    const how = await withTimeout(done, BOUNDS.GATHER_MS, "timeout");
    // Chromium drops a server-reflexive candidate equal to its host one: STUN answered
    // from a public address without a NAT (gathering completed, no error).
    if (entry.kind === "stun" && !result.ok && how === "complete" && !result.error && hosts > 0) {
      result.ok = true;
      result.nat = "none";
    }
    if (!result.ok && !result.error) result.error = how === "timeout" ? "timed out" : "no candidate";
  } catch (e) {
    result.error = e.name || "error";
  } finally {
    pc.close();
  }
  return result;
}

/** Two relay-only peer connections in this page, one data channel through `entry`'s relay:
 *  connected with DTLS done, then the round-trip time and the throughput. */
export async function mediaThrough(entry, signal = null) {
  const config = { iceServers: [serverConfig(entry)], iceTransportPolicy: "relay" };
  const a = new RTCPeerConnection(config);
  const b = new RTCPeerConnection(config);
  closeOnAbort(signal, a, b);
  const result = { url: entry.url, transport: entry.transport, host: entry.host, port: entry.port,
                   ok: false, dtls: false, rttMs: null, kbps: null, error: null };
  a.addEventListener("icecandidate", (ev) => ev.candidate && b.addIceCandidate(ev.candidate).catch(() => {}));
  b.addEventListener("icecandidate", (ev) => ev.candidate && a.addIceCandidate(ev.candidate).catch(() => {}));
  const received = { bytes: 0 };
  b.addEventListener("datachannel", (ev) => {
    const ch = ev.channel;
    ch.binaryType = "arraybuffer";
    ch.addEventListener("message", (m) => {
      if (typeof m.data === "string") ch.send(m.data); // a ping: echo it
      else received.bytes += m.data.byteLength;
    });
  });
  try {
    const ch = a.createDataChannel("check", { ordered: true });
    ch.binaryType = "arraybuffer";
    const opened = new Promise((resolve) => ch.addEventListener("open", () => resolve(true)));
    await a.setLocalDescription(await a.createOffer());
    await b.setRemoteDescription(a.localDescription);
    await b.setLocalDescription(await b.createAnswer());
    await a.setRemoteDescription(b.localDescription);
    if (!(await withTimeout(opened, BOUNDS.CONNECT_MS, false))) {
      result.error = a.connectionState === "connecting" && a.iceConnectionState === "connected"
        ? "DTLS did not complete" : "no connection";
      return result;
    }
    result.dtls = a.sctp ? a.sctp.transport.state === "connected" : true;
    const rtts = [];
    for (let i = 0; i < 5; i += 1) {
      const sent = performance.now();
      const echo = new Promise((resolve) => ch.addEventListener("message", () => resolve(true), { once: true }));
      ch.send(String(i));
      if (!(await withTimeout(echo, 1000, false))) break;
      rtts.push(performance.now() - sent);
    }
    const chunk = new ArrayBuffer(CHUNK);
    ch.bufferedAmountLowThreshold = 256 * 1024;
    const start = performance.now();
    while (performance.now() - start < BOUNDS.DATA_MS && ch.readyState === "open") {
      if (ch.bufferedAmount > 1024 * 1024) {
        await withTimeout(new Promise((r) => ch.addEventListener("bufferedamountlow", r, { once: true })), 200, null);
        continue;
      }
      ch.send(chunk);
    }
    const elapsed = performance.now() - start;
    rtts.sort((x, y) => x - y);
    result.rttMs = rtts.length ? rtts[Math.floor(rtts.length / 2)] : null;
    result.kbps = (received.bytes * 8) / elapsed;
    result.ok = result.dtls && rtts.length > 0 && received.bytes > 0;
    if (!result.ok) result.error = "no data came back";
  } catch (e) {
    result.error = e.name || "error";
  } finally {
    a.close();
    b.close();
  }
  return result;
}

/** The whole check. `onProgress(text)` says what is being tried. Resolves the observation
 *  and its verdict; the verdict (no addresses) is sent on the probe socket, then it closes. */
export async function runNetworkCheck({ room, token, site = window.location.host,
                                        onProgress = () => {}, signal = null }) {
  const obs = { site, servers: [], media: [], probeError: null };
  let probe = null;
  onProgress("Asking the server for its relays…");
  try {
    probe = await openProbe(room, token);
  } catch (e) {
    obs.probeError = e.message;
  }
  try {
    const entries = probe ? expandIceServers(probe.iceServers) : [];
    onProgress("Trying each way to reach the server…");
    obs.servers = await Promise.all(entries.map((entry) => gatherFrom(entry, signal)));
    const credentials = new Map(entries.map((e) => [e.url, e]));
    for (const s of mediaCandidates(obs.servers).slice(0, BOUNDS.MAX_MEDIA_TESTS)) {
      if (signal && signal.aborted) throw new DOMException("the person joined the call", "AbortError");
      onProgress(`Sending test data through the relay (${s.transport.toUpperCase()})…`);
      const m = await mediaThrough(credentials.get(s.url), signal);
      obs.media.push(m);
      if (m.ok) break;
    }
    const result = decide(obs);
    if (probe && probe.socket.readyState === WebSocket.OPEN) {
      probe.socket.send(JSON.stringify({ type: "netcheck", data: telemetry(result) }));
    }
    return { obs, result };
  } finally {
    if (probe) probe.socket.close(1000);
  }
}
