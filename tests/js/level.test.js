// The microphone level meter's arithmetic (static/js/level.js).
import test from "node:test";
import assert from "node:assert/strict";
import { levelOf } from "../../static/js/level.js";

test("silence is zero", () => {
  assert.equal(levelOf(new Uint8Array(512).fill(128)), 0);
  assert.equal(levelOf(new Uint8Array(0)), 0);
  assert.equal(levelOf(null), 0);
});

test("louder is higher, and full scale is capped at one", () => {
  const tone = (amp) => Uint8Array.from({ length: 512 }, (_, i) => 128 + Math.round(amp * Math.sin(i / 5)));
  const quiet = levelOf(tone(4));
  const speech = levelOf(tone(30));
  const loud = levelOf(tone(127));
  assert.ok(quiet > 0 && quiet < speech && speech < loud, [quiet, speech, loud]);
  assert.ok(speech > 0.3 && speech < 0.8, speech);
  assert.equal(levelOf(Uint8Array.from({ length: 512 }, (_, i) => (i % 2 ? 255 : 0))), 1);
});
