// The security code (static/js/sas.js): both ends must derive the same words, and a changed
// fingerprint must change them.
import test from "node:test";
import assert from "node:assert/strict";
import { fingerprintOf, sasOfFingerprints } from "../../static/js/sas.js";

const FP_A = "sha-256 " + Array.from({ length: 32 }, (_, i) => (i * 7 % 256).toString(16).padStart(2, "0").toUpperCase()).join(":");
const FP_B = "sha-256 " + Array.from({ length: 32 }, (_, i) => (i * 13 % 256).toString(16).padStart(2, "0").toUpperCase()).join(":");

test("the fingerprint line of an SDP, normalised", () => {
  const sdp = "v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\na=fingerprint:SHA-256 ab:cd:EF\r\na=setup:actpass\r\n";
  assert.equal(fingerprintOf(sdp), "sha-256 AB:CD:EF");
  assert.equal(fingerprintOf("v=0\r\n"), null);
  assert.equal(fingerprintOf(null), null);
});

test("the code is five emoji and five words, the same whichever side computes it", async () => {
  const ab = await sasOfFingerprints(FP_A, FP_B);
  const ba = await sasOfFingerprints(FP_B, FP_A);
  assert.deepEqual(ab, ba);
  assert.equal(ab.words.split(" ").length, 5);
  assert.equal(ab.text, `${ab.emoji} · ${ab.words}`);
  assert.match(ab.words, /^[a-z]+( [a-z]+){4}$/);
});

test("one changed hex digit of either fingerprint changes the code", async () => {
  const base = (await sasOfFingerprints(FP_A, FP_B)).words;
  const flip = (fp, i) => fp.slice(0, i) + (fp[i] === "A" ? "B" : "A") + fp.slice(i + 1);
  assert.notEqual((await sasOfFingerprints(flip(FP_A, 8), FP_B)).words, base);
  assert.notEqual((await sasOfFingerprints(FP_A, flip(FP_B, FP_B.length - 1))).words, base);
});

test("both fingerprints are needed", async () => {
  await assert.rejects(sasOfFingerprints(FP_A, null));
});
