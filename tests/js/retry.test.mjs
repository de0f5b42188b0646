// Which interrupted file transfers can be sent again, and what their cards say (static/js/retry.js).
import test from "node:test";
import assert from "node:assert/strict";
import {
  interruption, canSendAgain, sendAgainTo, interruptedWhy, outgoingRetryText, incomingRetryText, retryText,
} from "../../static/js/retry.js";

const here = { present: true, replaced: true };

test("only a failure with the channel closed under it is an interruption", () => {
  assert.equal(interruption({ state: "failed", reason: "connection closed", closed: true }, here), "replaced");
  assert.equal(interruption({ state: "failed", closed: true }, { present: true, replaced: false }), "closed");
  assert.equal(interruption({ state: "failed", closed: true }, { present: false, replaced: false }), "left");
  // We left (or rejoined as someone new): the peer did not leave, and it is not sent again either.
  assert.equal(interruption({ state: "failed", closed: true }, { present: false, replaced: false, ended: true }), "ended");
  assert.equal(canSendAgain({ state: "failed", interrupted: "ended" }), false);
  // The receiver's say, or a failure on an open channel: never an interruption.
  assert.equal(interruption({ state: "declined", reason: "declined" }, here), null);
  assert.equal(interruption({ state: "declined", reason: "busy" }, here), null);
  assert.equal(interruption({ state: "failed", reason: "cancelled by the receiver" }, here), null);
  assert.equal(interruption({ state: "failed", reason: "connection closed" }, here), null, "closed must be said, not guessed from words");
  assert.equal(interruption({ state: "delivered", closed: true }, here), null);
  assert.equal(interruption(null, here), null);
});

test("a part can be sent again when the connection was replaced or closed, not when its peer left", () => {
  assert.ok(canSendAgain({ state: "failed", interrupted: "replaced" }));
  assert.ok(canSendAgain({ state: "failed", interrupted: "closed" }));
  assert.equal(canSendAgain({ state: "failed", interrupted: "left" }), false);
  assert.equal(canSendAgain({ state: "failed", interrupted: null }), false);
  assert.equal(canSendAgain({ state: "declined", interrupted: null }), false);
  assert.equal(canSendAgain({ state: "reconnecting", interrupted: null }), false);
});

const part = (id, name, state, interrupted = null, reason = null) => ({ id, name, state, interrupted, reason, sent: 0 });
const out = (peers, done = true) => ({ direction: "out", name: "big.bin", size: 3 * 1024 * 1024, type: "", done, peers });

test("send again goes to the interrupted peers still here, and only once the transfer is over", () => {
  const t = out([
    part("g", "Grace", "failed", "replaced"),
    part("l", "Linus", "delivered"),
    part("d", "Dee", "declined"),
    part("h", "Hedy", "failed", "left"),
    part("k", "Ken", "failed", "closed"),
  ]);
  assert.deepEqual(sendAgainTo(t), ["g", "k"]);
  assert.deepEqual(sendAgainTo({ ...t, done: false }), []);
  assert.deepEqual(sendAgainTo({ ...t, direction: "in" }), []);
  assert.deepEqual(sendAgainTo(out([part("d", "Dee", "declined")])), []);
});

test("the reason is said in words", () => {
  assert.equal(interruptedWhy("replaced", "Grace"), "the connection to Grace was replaced");
  assert.equal(interruptedWhy("closed", "Grace"), "the connection to Grace closed");
  assert.equal(interruptedWhy("left", "Grace"), "Grace left the call");
});

test("the sender's card says the transfer was interrupted, and how the others ended", () => {
  assert.deepEqual(outgoingRetryText(out([part("g", "Grace", "failed", "replaced", "connection closed")])), {
    heading: "You tried to send big.bin (3.0 MB)",
    status: "Interrupted: the connection to Grace was replaced",
  });
  const mixed = outgoingRetryText(out([
    part("g", "Grace", "failed", "replaced"), part("l", "Linus", "delivered"), part("k", "Ken", "failed", "replaced"),
    part("h", "Hedy", "failed", "left"), part("d", "Dee", "declined", null, "declined"),
  ]));
  assert.equal(mixed.heading, "You sent big.bin (3.0 MB)");
  assert.equal(mixed.status, "Interrupted: the connections to Grace and Ken were replaced. Interrupted: Hedy left the call. "
    + "Delivered to Linus. Declined by Dee");
});

test("a card with nothing interrupted is left to text.js", () => {
  assert.equal(outgoingRetryText(out([part("g", "Grace", "delivered")])), null);
  assert.equal(outgoingRetryText(out([part("g", "Grace", "failed", null, "cancelled")])), null);
  assert.equal(outgoingRetryText(out([part("g", "Grace", "sending")], false)), null);
  assert.equal(retryText(out([part("g", "Grace", "declined")])), null);
  assert.equal(incomingRetryText({ direction: "in", state: "failed", reason: "more bytes than announced", name: "x", size: 1 }), null);
});

test("sent again while the connection is still down, the card says what it waits for", () => {
  const t = out([part("g", "Grace", "reconnecting"), part("l", "Linus", "delivered")], false);
  assert.deepEqual(outgoingRetryText(t), {
    heading: "You are sending big.bin (3.0 MB) again",
    status: "Waiting for the connection to Grace to send it again… Delivered to Linus",
  });
});

test("the receiver's card says the file was interrupted and that nothing of it was kept", () => {
  const t = { direction: "in", fromName: "Ada", name: "big.bin", size: 1024, type: "", state: "failed", reason: "connection closed" };
  assert.deepEqual(retryText({ ...t, interrupted: "replaced", interruptedWhile: "receiving" }), {
    heading: "Ada was sending big.bin (1.0 KB)",
    status: "Interrupted: the connection to Ada was replaced; the part received was not kept. Ada can send it again",
  });
  assert.deepEqual(retryText({ ...t, interrupted: "closed", interruptedWhile: "offered" }), {
    heading: "Ada offered big.bin (1.0 KB)",
    status: "Interrupted: the connection to Ada closed before you answered. Ada can send it again",
  });
  assert.equal(retryText({ ...t, interrupted: "left", interruptedWhile: "receiving" }).status,
    "Interrupted: Ada left the call; the part received was not kept");
  assert.equal(retryText({ ...t, interrupted: "ended", interruptedWhile: "receiving" }).status,
    "Interrupted: the call with Ada ended; the part received was not kept");
  assert.equal(outgoingRetryText(out([part("g", "Grace", "failed", "ended")])).status, "Interrupted: the call with Grace ended");
});
