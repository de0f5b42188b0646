// Unit tests of static/js/verdict.js: the lobby's network-check verdict, its words, the IT
// report and the telemetry. Run: node --test tests/js/

import { test } from "node:test";
import assert from "node:assert/strict";

import {
  decide, detailLines, expandIceServers, itReport, mediaCandidates, natKind, parseIceUrl, telemetry,
} from "../../static/js/verdict.js";

const SITE = "chat.test";
const stun = (ok, nat = ok ? "same-port" : null) => ({ url: "stun:turn.chat.test:3478", kind: "stun", transport: "udp", host: "turn.chat.test", port: 3478, ok, error: ok ? null : "701 timed out", nat });
const turn = (transport, port, ok, host = "turn.chat.test") => ({
  url: `${transport === "tls" ? "turns" : "turn"}:${host}:${port}?transport=${transport === "udp" ? "udp" : "tcp"}`,
  kind: "turn", transport, host, port, ok, error: ok ? null : "701 timed out", nat: null });
const media = (server, ok) => ({ url: server.url, transport: server.transport, host: server.host, port: server.port, ok, dtls: ok, rttMs: ok ? 12 : null, kbps: ok ? 2400 : null, error: ok ? null : "no connection" });

const ALL = (flags) => [stun(flags.udp), turn("udp", 3478, flags.udp), turn("tcp", 3478, flags.tcp),
  turn("tls", 5349, flags.tls5349), turn("tls", 443, flags.tls443, "turn443.chat.test")];

test("URLs parse into kind, transport, host and port", () => {
  assert.deepEqual(parseIceUrl("stun:turn.chat.test:3478"), { url: "stun:turn.chat.test:3478", kind: "stun", transport: "udp", host: "turn.chat.test", port: 3478 });
  assert.equal(parseIceUrl("turn:h:3478?transport=tcp").transport, "tcp");
  assert.equal(parseIceUrl("turn:h:3478").transport, "udp");
  assert.deepEqual(parseIceUrl("turns:h:443?transport=tcp"), { url: "turns:h:443?transport=tcp", kind: "turn", transport: "tls", host: "h", port: 443 });
  assert.equal(parseIceUrl("turns:h").port, 5349);
  assert.equal(parseIceUrl("https://h/"), null);
  const urls = expandIceServers([{ urls: ["stun:a:3478"] }, { urls: ["turn:a:3478?transport=udp", "bogus"], username: "u", credential: "c" }]);
  assert.deepEqual(urls.map((u) => [u.url, u.username ?? null]), [["stun:a:3478", null], ["turn:a:3478?transport=udp", "u"]]);
});

test("open network: UDP and a NAT that keeps ports (or none) give 'direct'", () => {
  for (const nat of ["none", "same-port"]) {
    const servers = ALL({ udp: true, tcp: true, tls5349: true, tls443: true });
    servers[0].nat = nat;
    const obs = { site: SITE, servers, media: [media(servers[1], true)] };
    const r = decide(obs);
    assert.equal(r.headline, "Calls will work (direct)");
    assert.deepEqual(telemetry(r), { verdict: "direct", transport: "udp" });
  }
});

test("UDP blocked: the relay over TCP, with the port", () => {
  const servers = ALL({ udp: false, tcp: true, tls5349: true, tls443: true });
  assert.deepEqual(mediaCandidates(servers).map((s) => `${s.transport}:${s.port}`), ["tcp:3478", "tls:443", "tls:5349"]);
  const r = decide({ site: SITE, servers, media: [media(servers[2], true)] });
  assert.equal(r.headline, "Calls will work through the relay (TCP, port 3478)");
  assert.deepEqual(telemetry(r), { verdict: "relay", transport: "tcp" });
});

test("only 443 (or a proxy): the relay over TLS on 443", () => {
  const servers = ALL({ udp: false, tcp: false, tls5349: false, tls443: true });
  const r = decide({ site: SITE, servers, media: [media(servers[4], true)] });
  assert.equal(r.headline, "Calls will work through the relay (TLS, port 443)");
  const lines = detailLines({ site: SITE, servers, media: [] });
  assert.ok(lines.includes("No answer from the relay over TCP to turn.chat.test:3478."), lines);
});

test("a symmetric NAT with STUN only (no relay): calls cannot work", () => {
  const obs = { site: SITE, servers: [stun(true, "new-port")], media: [] };
  const r = decide(obs);
  assert.equal(r.headline, "Calls cannot work from this network");
  assert.deepEqual(telemetry(r), { verdict: "none", transport: "none" });
  const lines = detailLines(obs);
  assert.ok(lines.some((l) => l.startsWith("This service offers no relay")), lines);
  assert.ok(lines.some((l) => l.includes("new port for every destination")), lines);
});

test("a symmetric NAT with a UDP relay: through the relay over UDP", () => {
  const servers = [stun(true, "new-port"), turn("udp", 3478, true)];
  assert.equal(decide({ site: SITE, servers, media: [media(servers[1], true)] }).headline,
               "Calls will work through the relay (UDP, port 3478)");
});

test("UDP that passes STUN but not data (a blackhole): not direct, the next relay", () => {
  const servers = ALL({ udp: true, tcp: true, tls5349: true, tls443: true });
  const r = decide({ site: SITE, servers, media: [media(servers[1], false), media(servers[2], true)] });
  assert.equal(r.verdict, "relay");
  assert.equal(r.transport, "tcp");
});

test("nothing answers, or no relay passes data: cannot work", () => {
  const servers = ALL({ udp: false, tcp: false, tls5349: false, tls443: false });
  assert.equal(decide({ site: SITE, servers, media: [] }).verdict, "none");
  const some = ALL({ udp: false, tcp: true, tls5349: false, tls443: false });
  assert.equal(decide({ site: SITE, servers: some, media: [media(some[2], false)] }).verdict, "none");
  const probe = { site: SITE, servers: [], media: [], probeError: "refused" };
  assert.equal(decide(probe).verdict, "none");
  assert.match(detailLines(probe)[0], /Could not ask the server/);
});

test("the IT report names what to allow and the blocked ports, and no address", () => {
  const servers = ALL({ udp: false, tcp: false, tls5349: false, tls443: true });
  const obs = { site: SITE, servers, media: [media(servers[4], true)] };
  const text = itReport(obs, decide(obs), new Date(0));
  assert.match(text, /TCP 443 to chat\.test \(HTTPS and its WebSocket, TLS, SNI chat\.test\): required/);
  assert.match(text, /UDP 3478 to turn\.chat\.test \(STUN\): optional, faster; here BLOCKED/);
  assert.match(text, /TCP 3478 to turn\.chat\.test \(TURN relay over TCP\): optional, faster; here BLOCKED/);
  assert.match(text, /TCP 5349 to turn\.chat\.test \(TURN relay over TLS, SNI turn\.chat\.test, no ALPN\): optional, faster; here BLOCKED/);
  assert.match(text, /TCP 443 to turn443\.chat\.test \(TURN relay over TLS, SNI turn443\.chat\.test, no ALPN\): enough on its own; here open/);
  assert.match(text, /Verdict: Calls will work through the relay \(TLS, port 443\)/);
  assert.match(text, /data through turns:turn443\.chat\.test:443\?transport=tcp: passed \(DTLS done, 12 ms round trip, 2\.4 Mbit\/s\)/);
  assert.doesNotMatch(text, /\b\d{1,3}(\.\d{1,3}){3}\b/);
});

test("the NAT kind comes from a candidate and its base, and says no address", () => {
  assert.equal(natKind({ address: "192.0.2.5", port: 5000, relatedAddress: "192.0.2.5", relatedPort: 5000 }), "none");
  assert.equal(natKind({ address: "192.0.2.18", port: 5000, relatedAddress: "100.64.1.2", relatedPort: 5000 }), "same-port");
  assert.equal(natKind({ address: "192.0.2.18", port: 61234, relatedAddress: "100.64.1.2", relatedPort: 5000 }), "new-port");
  assert.equal(natKind({ address: "192.0.2.18", port: 1, relatedAddress: "0.0.0.0", relatedPort: 0 }), "unknown");
});
