// Pure: what the lobby's network check (netcheck.js) observed, turned into a verdict, the
// words on screen, the report for an IT department and the telemetry that leaves the page.
// Observations never hold an address of this device: netcheck.js compares them in the page
// and keeps only what the comparison says (the NAT kind), so nothing here can leak one.
//
// An observation:
//   {servers: [{url, kind: "stun"|"turn", transport: "udp"|"tcp"|"tls", host, port,
//               ok, error, nat: "none"|"same-port"|"new-port"|"unknown"|null}],
//    media:   [{url, transport, host, port, ok, dtls, rttMs, kbps, error}],
//    site: "chat.example.com", probeError: null | "text"}

const TRANSPORT_NAMES = { udp: "UDP", tcp: "TCP", tls: "TLS" };
// Relay transports in the order the check tries them: fastest first.
export const RELAY_ORDER = ["udp", "tcp", "tls"];

/** An ICE URL ("stun:h:p", "turn:h:p?transport=tcp", "turns:h:p?transport=tcp") as parts. */
export function parseIceUrl(url) {
  const m = /^(stuns?|turns?):(\[[^\]]+\]|[^:?]+)(?::(\d+))?(?:\?transport=(udp|tcp))?$/i.exec(String(url));
  if (!m) return null;
  const scheme = m[1].toLowerCase();
  const secure = scheme.endsWith("s");
  const kind = scheme.startsWith("stun") ? "stun" : "turn";
  const wire = (m[4] || (secure ? "tcp" : "udp")).toLowerCase();
  const transport = secure ? "tls" : wire;
  const port = m[3] ? Number(m[3]) : secure ? 5349 : 3478;
  return { url: String(url), kind, transport, host: m[2], port };
}

/** Every URL of an iceServers list, with its credentials, parsed; unknown URLs are skipped. */
export function expandIceServers(iceServers) {
  const out = [];
  for (const server of iceServers || []) {
    const urls = Array.isArray(server.urls) ? server.urls : [server.urls];
    for (const url of urls) {
      const parsed = parseIceUrl(url);
      if (parsed) out.push({ ...parsed, username: server.username, credential: server.credential });
    }
  }
  return out;
}

/** The relay entries worth a media test, in RELAY_ORDER, TLS on port 443 first among TLS. */
export function mediaCandidates(servers) {
  const ok = servers.filter((s) => s.kind === "turn" && s.ok);
  const rank = (s) => RELAY_ORDER.indexOf(s.transport) * 2 + (s.transport === "tls" && s.port !== 443 ? 1 : 0);
  return ok.sort((a, b) => rank(a) - rank(b));
}

function udpWorks(obs) {
  return obs.servers.some((s) => s.transport === "udp" && s.ok);
}

/** The verdict: {verdict: "direct"|"relay"|"none", transport, port, host, headline}. */
export function decide(obs) {
  const passed = obs.media.find((m) => m.ok) || null;
  const udpMediaFailed = obs.media.some((m) => m.transport === "udp" && !m.ok);
  const stun = obs.servers.filter((s) => s.kind === "stun" && s.ok);
  // Direct needs UDP and a NAT that keeps one mapping for every destination; a NAT that
  // picks a new port per destination (symmetric) defeats it. Without a hint either way
  // (no STUN server, addresses hidden), a working UDP relay stands in for it.
  const natOk = stun.some((s) => s.nat === "none" || s.nat === "same-port" || s.nat === "unknown");
  if (udpWorks(obs) && natOk && !udpMediaFailed) {
    return { verdict: "direct", transport: "udp", port: null, host: null,
             headline: "Calls will work (direct)" };
  }
  if (passed) {
    return { verdict: "relay", transport: passed.transport, port: passed.port, host: passed.host,
             headline: `Calls will work through the relay (${TRANSPORT_NAMES[passed.transport]}, port ${passed.port})` };
  }
  return { verdict: "none", transport: null, port: null, host: null,
           headline: "Calls cannot work from this network" };
}

function what(s) {
  if (s.kind === "stun") return `STUN over UDP to ${s.host}:${s.port}`;
  return `the relay over ${TRANSPORT_NAMES[s.transport]} to ${s.host}:${s.port}`;
}

/** Short lines for the lobby: what failed (and, for a passed media test, what was measured). */
export function detailLines(obs) {
  const lines = [];
  if (obs.probeError) lines.push(`Could not ask the server for its relays: ${obs.probeError}.`);
  if (!obs.probeError && !obs.servers.some((s) => s.kind === "turn")) {
    lines.push("This service offers no relay: a strict firewall on either side stops calls.");
  }
  for (const s of obs.servers) {
    if (!s.ok) lines.push(`No answer from ${what(s)}.`);
  }
  if (obs.servers.some((s) => s.kind === "stun" && s.ok && s.nat === "new-port")) {
    lines.push("Your network's NAT picks a new port for every destination: direct calls need the relay.");
  }
  for (const m of obs.media) {
    if (m.ok) {
      lines.push(`Test data passed through the relay over ${TRANSPORT_NAMES[m.transport]}: `
        + `${Math.round(m.rttMs)} ms round trip, ${formatRate(m.kbps)}.`);
    } else {
      lines.push(`Test data did not pass through the relay over ${TRANSPORT_NAMES[m.transport]} (${m.error || "no connection"}).`);
    }
  }
  return lines;
}

export function formatRate(kbps) {
  if (!Number.isFinite(kbps)) return "rate unknown";
  return kbps >= 1000 ? `${(kbps / 1000).toFixed(1)} Mbit/s` : `${Math.round(kbps)} kbit/s`;
}

function ruleFor(s) {
  if (s.kind === "stun") return `UDP ${s.port} to ${s.host} (STUN)`;
  if (s.transport === "udp") return `UDP ${s.port} to ${s.host} (TURN relay over UDP)`;
  if (s.transport === "tcp") return `TCP ${s.port} to ${s.host} (TURN relay over TCP)`;
  return `TCP ${s.port} to ${s.host} (TURN relay over TLS, SNI ${s.host}, no ALPN)`;
}

/** The text an IT department needs: what to allow, what was observed. No addresses of ours. */
export function itReport(obs, result = decide(obs), when = new Date()) {
  const lines = [
    "Network check for video calls",
    `Service: https://${obs.site}`,
    `Checked: ${when.toISOString()}`,
    `Verdict: ${result.headline}`,
    "",
    "What to allow from this network (outbound; answers back):",
    `- TCP 443 to ${obs.site} (HTTPS and its WebSocket, TLS, SNI ${obs.site}): required`,
  ];
  const seen = new Set();
  for (const s of obs.servers) {
    const rule = ruleFor(s);
    if (seen.has(rule)) continue;
    seen.add(rule);
    const tls443 = s.transport === "tls" && s.port === 443;
    const status = s.ok ? "open" : "BLOCKED (no answer)";
    lines.push(`- ${rule}: ${tls443 ? "enough on its own" : "optional, faster"}; here ${status}`);
  }
  if (obs.servers.some((s) => s.kind === "turn" && s.transport === "udp")) {
    lines.push("- UDP to the relay's media ports (the operator's range, 49152-65535 by default): with UDP relays");
  }
  lines.push("A web proxy must allow CONNECT to port 443 of these names, and must not inspect (decrypt) TLS to the relay.");
  lines.push("", "Observed:");
  if (obs.probeError) lines.push(`- asking the server for its relays: failed (${obs.probeError})`);
  for (const s of obs.servers) {
    const nat = s.kind === "stun" && s.ok && s.nat ? `, NAT: ${natText(s.nat)}` : "";
    lines.push(`- ${s.url}: ${s.ok ? "answered" : `no answer${s.error ? ` (${s.error})` : ""}`}${nat}`);
  }
  for (const m of obs.media) {
    lines.push(m.ok
      ? `- data through ${m.url}: passed (DTLS done, ${Math.round(m.rttMs)} ms round trip, ${formatRate(m.kbps)})`
      : `- data through ${m.url}: failed (${m.error || "no connection"})`);
  }
  if (!obs.media.length) lines.push("- no relay could be tested with data");
  lines.push("", "This report holds no address of this computer or network.");
  return lines.join("\n");
}

function natText(nat) {
  return { none: "none (a public address)", "same-port": "keeps the port",
           "new-port": "a new port per destination (symmetric)", unknown: "not known" }[nat] || nat;
}

/** What the server counts (docs/protocol.md, "netcheck"): the verdict and the transport. */
export function telemetry(result) {
  return { verdict: result.verdict, transport: result.transport || "none" };
}

/** NAT kind from a server-reflexive candidate and its base (compared here, then dropped). */
export function natKind({ address, port, relatedAddress, relatedPort }) {
  if (!relatedAddress || relatedAddress === "0.0.0.0" || !relatedPort) return "unknown";
  if (address === relatedAddress && port === relatedPort) return "none";
  return port === relatedPort ? "same-port" : "new-port";
}
