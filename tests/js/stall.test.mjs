// Unit tests of static/js/stall.js: when is a connection's media path dead?
// Run: node --test tests/js/

import { test } from "node:test";
import assert from "node:assert/strict";

import {
  StallDetector, pairSample, restartBackoffMs, STALL_MS, MIN_UNANSWERED,
} from "../../static/js/stall.js";

// One sample a second of a pair; `live` decides whether something arrived in that second.
function feed(detector, seconds, { live, pairId = "CP1", start = {}, checksPerSecond = 2 }) {
  let s = { t: 0, pairId, bytesReceived: 1000, requestsSent: 10, responsesReceived: 10, requestsReceived: 10, ...start };
  const verdicts = [];
  for (let i = 0; i <= seconds; i++) {
    if (i > 0) {
      s = { ...s, t: s.t + 1000, requestsSent: s.requestsSent + checksPerSecond };
      if (live(i)) s = { ...s, bytesReceived: s.bytesReceived + 5000, responsesReceived: s.responsesReceived + checksPerSecond };
    }
    verdicts.push(detector.sample(s));
  }
  return verdicts;
}

test("a path that carries media is never stalled", () => {
  const v = feed(new StallDetector(), 60, { live: () => true });
  assert.ok(v.every((x) => !x.stalled));
  assert.ok(v.slice(1).every((x) => x.arrived));
});

test("a path on which nothing arrives and checks go unanswered is stalled after STALL_MS", () => {
  const v = feed(new StallDetector(), 10, { live: (i) => i <= 2 }); // the relay dies after 2 s
  const first = v.findIndex((x) => x.stalled);
  assert.equal(first, 2 + STALL_MS / 1000);
  assert.ok(v.slice(first).every((x) => x.stalled));
  assert.ok(v[first].unanswered >= MIN_UNANSWERED);
});

test("silence with no checks sent is not proof of a dead path", () => {
  const v = feed(new StallDetector(), 20, { live: (i) => i <= 1, checksPerSecond: 0 });
  assert.ok(v.every((x) => !x.stalled));
});

test("a path with no media whose checks are answered is alive", () => {
  const d = new StallDetector();
  let s = { t: 0, pairId: "CP1", bytesReceived: 500, requestsSent: 1, responsesReceived: 1 };
  d.sample(s);
  for (let i = 1; i <= 30; i++) {
    // One check every 2.5 s, answered; no bytes at all (both sides receive-only, channels idle).
    const sent = 1 + Math.floor(i / 2.5);
    s = { ...s, t: i * 1000, requestsSent: sent, responsesReceived: sent };
    assert.equal(d.sample(s).stalled, false, `at ${i} s`);
  }
});

test("the other side's checks arriving count as a sign of life", () => {
  const d = new StallDetector();
  let s = { t: 0, pairId: "CP1", bytesReceived: 0, requestsSent: 0, responsesReceived: 0, requestsReceived: 0 };
  d.sample(s);
  for (let i = 1; i <= 10; i++) {
    s = { ...s, t: i * 1000, requestsSent: i * 2, requestsReceived: i };
    assert.equal(d.sample(s).stalled, false);
  }
});

test("a new selected pair is a new baseline, not a stall", () => {
  const d = new StallDetector();
  feed(d, 10, { live: (i) => i <= 2 });
  const after = d.sample({ t: 11000, pairId: "CP2", bytesReceived: 0, requestsSent: 1, responsesReceived: 1 });
  assert.deepEqual([after.stalled, after.arrived, after.silentMs], [false, false, 0]);
});

test("counters that go backwards on the same pair id start over", () => {
  const d = new StallDetector();
  feed(d, 10, { live: (i) => i <= 2 });
  const v = d.sample({ t: 11000, pairId: "CP1", bytesReceived: 3, requestsSent: 1, responsesReceived: 1 });
  assert.equal(v.stalled, false);
});

test("no pair (not connected yet, or between pairs) resets and is never stalled", () => {
  const d = new StallDetector();
  feed(d, 10, { live: (i) => i <= 2 });
  assert.equal(d.sample(null).stalled, false);
  // Its silence is forgotten: the same pair again is a fresh baseline.
  assert.equal(d.sample({ t: 12000, pairId: "CP1", bytesReceived: 11000, requestsSent: 40, responsesReceived: 14 }).stalled, false);
  assert.equal(d.sample({ t: 13000, pairId: "CP1", bytesReceived: 11000, requestsSent: 42, responsesReceived: 14 }).stalled, false);
});

test("reset() forgets the silence so far (after an ICE restart)", () => {
  const d = new StallDetector();
  const v = feed(d, 6, { live: (i) => i <= 1 });
  assert.equal(v.at(-1).stalled, true);
  d.reset();
  let s = { t: 7000, pairId: "CP1", bytesReceived: 6000, requestsSent: 30, responsesReceived: 12 };
  assert.equal(d.sample(s).stalled, false);
  s = { ...s, t: 9000, requestsSent: 34 };
  assert.equal(d.sample(s).stalled, false); // 2 s of silence since the reset
  s = { ...s, t: 10000, requestsSent: 36 };
  assert.equal(d.sample(s).stalled, true);
});

test("irregular sampling (a loaded machine) uses the samples' own times", () => {
  const d = new StallDetector();
  d.sample({ t: 0, pairId: "CP1", bytesReceived: 100, requestsSent: 5, responsesReceived: 5 });
  // The page was starved: the next sample comes 4.2 s later, nothing arrived meanwhile.
  const v = d.sample({ t: 4200, pairId: "CP1", bytesReceived: 100, requestsSent: 15, responsesReceived: 5 });
  assert.equal(v.stalled, true);
  assert.equal(v.silentMs, 4200);
});

test("thresholds are options", () => {
  const d = new StallDetector({ stallMs: 10000, minUnanswered: 5 });
  const v = feed(d, 12, { live: (i) => i <= 1 });
  assert.equal(v.findIndex((x) => x.stalled), 11);
});

test("pairSample reads only the selected pair's counters", () => {
  const report = new Map([
    ["T1", { id: "T1", type: "transport", selectedCandidatePairId: "CPa" }],
    ["CPa", { id: "CPa", type: "candidate-pair", bytesReceived: 7, requestsSent: 3, responsesReceived: 2, requestsReceived: 1, localCandidateId: "L" }],
    ["CPb", { id: "CPb", type: "candidate-pair", bytesReceived: 99 }],
    ["L", { id: "L", type: "local-candidate", address: "192.0.2.1" }],
  ]);
  assert.deepEqual(pairSample(report, 42), {
    t: 42, pairId: "CPa", bytesReceived: 7, requestsSent: 3, responsesReceived: 2, requestsReceived: 1,
  });
  assert.equal(pairSample(new Map([["T1", { id: "T1", type: "transport" }]]), 1), null);
});

test("restarts that do not help are retried further apart, bounded", () => {
  assert.equal(restartBackoffMs(0), 0);
  assert.deepEqual([1, 2, 3, 4, 5, 6, 50].map((n) => restartBackoffMs(n)), [5000, 10000, 20000, 30000, 30000, 30000, 30000]);
  assert.equal(restartBackoffMs(2, { firstMs: 100, maxMs: 150 }), 150);
});
