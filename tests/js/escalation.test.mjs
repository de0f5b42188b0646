// Unit tests of static/js/escalation.js: the ladder's steps and bounds, the relay-only
// servers, what the tile says, and the swappable stand-in for a peer's data channels.
// Run: node --test tests/js/

import { test } from "node:test";
import assert from "node:assert/strict";

import { BOUNDS, RUNGS, ladderText, nextStep, relayOnlyServers, swappable } from "../../static/js/escalation.js";

// Walk a link that never works, one second at a time, applying each step as peer.js does.
function climb({ hasRelayUrl, seconds = 60 }) {
  let state = { rung: "initial", since: 0, gaveUp: false };
  const steps = [];
  for (let t = 0; t <= seconds * 1000; t += 1000) {
    const step = nextStep({ ...state, now: t, hasRelayUrl });
    if (!step) continue;
    steps.push([step, t]);
    if (step === "give-up") state = { ...state, gaveUp: true };
    else state = { rung: step, since: t, gaveUp: false };
  }
  return steps;
}

test("a call that never connects: ICE restart at 10 s, relay-only at 20 s, given up at 35 s", () => {
  assert.deepEqual(climb({ hasRelayUrl: true }), [["ice-restart", 10000], ["relay-only", 20000], ["give-up", 35000]]);
});

test("without a turns: URL there is no relay rung: given up at 20 s", () => {
  assert.deepEqual(climb({ hasRelayUrl: false }), [["ice-restart", 10000], ["give-up", 20000]]);
});

test("the bounds are the ones docs/client.md states", () => {
  assert.deepEqual(BOUNDS, { initialMs: 10000, iceRestartMs: 10000, relayOnlyMs: 15000 });
  assert.deepEqual(RUNGS, ["initial", "ice-restart", "relay-only"]);
});

test("a path that died restarts ICE first (peer.js), and goes relay-only 10 s later", () => {
  assert.equal(nextStep({ rung: "ice-restart", since: 5000, now: 14999, hasRelayUrl: true }), null);
  assert.equal(nextStep({ rung: "ice-restart", since: 5000, now: 15000, hasRelayUrl: true }), "relay-only");
});

test("nothing more once given up", () => {
  assert.equal(nextStep({ rung: "relay-only", since: 0, now: 1e9, hasRelayUrl: true, gaveUp: true }), null);
});

test("relay-only keeps only the turns: URLs on 443, with their credentials", () => {
  const servers = [
    { urls: ["stun:chat.test:3478"] },
    { urls: ["turn:chat.test:3478?transport=udp", "turns:chat.test:5349?transport=tcp", "turns:chat.test:443?transport=tcp"], username: "u", credential: "c" },
    { urls: "TURNS:other.test:443?transport=tcp", username: "v", credential: "d" },
  ];
  assert.deepEqual(relayOnlyServers(servers), [
    { urls: ["turns:chat.test:443?transport=tcp"], username: "u", credential: "c" },
    { urls: ["TURNS:other.test:443?transport=tcp"], username: "v", credential: "d" },
  ]);
  // No turns: on 443: any turns: URL.
  assert.deepEqual(relayOnlyServers([{ urls: ["turns:t.test:5349?transport=tcp", "turn:t.test:3478"] }]),
    [{ urls: ["turns:t.test:5349?transport=tcp"] }]);
  assert.deepEqual(relayOnlyServers([{ urls: ["turns:t.test:4430"] }]), [{ urls: ["turns:t.test:4430"] }]);
  assert.deepEqual(relayOnlyServers([{ urls: ["stun:x:3478"] }]), []);
  assert.deepEqual(relayOnlyServers(undefined), []);
});

test("the tile says what is happening", () => {
  assert.equal(ladderText({ rung: "relay-only", trying: true, gaveUp: false }, "Bob"), "Trying a relay…");
  assert.equal(ladderText({ rung: "relay-only", trying: false, gaveUp: false }, "Bob"), "");
  assert.equal(ladderText({ rung: "ice-restart", trying: true, gaveUp: false }, "Bob"), "");
  assert.match(ladderText({ rung: "ice-restart", trying: true, gaveUp: true }, "Bob"), /^Can't connect to Bob\./);
});

test("swappable: calls reach the current target and listeners follow it", () => {
  class Channels extends EventTarget {
    constructor(label) { super(); this.label = label; this.sent = []; }
    get isOpen() { return this.label === "new"; }
    sendJson(x) { this.sent.push(x); return true; }
    fire(type, detail) { this.dispatchEvent(new CustomEvent(type, { detail })); }
  }
  const first = new Channels("old");
  const s = swappable(first);
  const heard = [];
  s.proxy.addEventListener("chat", (ev) => heard.push(ev.detail));
  s.proxy.sendJson(1);
  assert.equal(s.proxy.isOpen, false);
  first.fire("chat", "a");
  const second = new Channels("new");
  assert.equal(s.swap(second), first);
  s.proxy.sendJson(2);
  second.fire("chat", "b");
  assert.deepEqual(first.sent, [1]);
  assert.deepEqual(second.sent, [2]);
  assert.equal(s.proxy.isOpen, true);
  assert.equal(s.proxy.label, "new");
  assert.deepEqual(heard, ["a", "b"]);
  const off = (ev) => heard.push(`x${ev.detail}`);
  s.proxy.addEventListener("chat", off);
  s.proxy.removeEventListener("chat", off);
  s.swap(new Channels("third"));
  s.current.fire("chat", "c");
  assert.deepEqual(heard, ["a", "b", "c"]);
});
