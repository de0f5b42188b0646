// Validation of what another browser sends over the data channels (static/js/transfer.js).
import test from "node:test";
import assert from "node:assert/strict";
import { parseAppMessage, parseFileHeader, MAX_FILE_SIZE } from "../../static/js/transfer.js";

test("chat text is kept as text, at most 2000 characters", () => {
  assert.deepEqual(parseAppMessage('{"t":"chat","text":"<b>hi</b>"}'), { t: "chat", text: "<b>hi</b>" });
  assert.equal(parseAppMessage(JSON.stringify({ t: "chat", text: "x".repeat(5000) })).text.length, 2000);
  assert.equal(parseAppMessage('{"t":"chat","text":42}'), null);
});

test("hello and state carry only the known fields, typed", () => {
  const m = parseAppMessage(JSON.stringify({ t: "hello", name: "A".repeat(99), muted: 1, cameraOff: 0, sharing: "yes", hasAudio: false, evil: "x" }));
  assert.deepEqual(m, { t: "state", state: { name: "A".repeat(40), muted: true, cameraOff: false, sharing: true, hasAudio: false, hasVideo: true } });
  assert.equal(parseAppMessage(JSON.stringify({ t: "state", name: { x: 1 } })).state.name, "");
});

test("anything else on the app channel is dropped", () => {
  for (const bad of ["", "not json", "null", "42", '"str"', "[]", '{"t":"nope"}', new ArrayBuffer(4), undefined]) {
    assert.equal(parseAppMessage(bad), null, String(bad));
  }
});

test("a file header is validated and its name made safe", () => {
  assert.deepEqual(parseFileHeader({ t: "file", id: "f1", name: "../../etc/passwd", size: 10, type: "text/plain" }),
    { id: "f1", name: ".._.._etc_passwd", size: 10, type: "text/plain" });
  assert.equal(parseFileHeader({ id: "f1", name: "", size: 0 }).name, "file");
  assert.equal(parseFileHeader({ id: "f1", name: "a", size: 1, type: "text/html; <script>" }).type, "text/html");
  assert.equal(parseFileHeader({ id: "f1", name: "a", size: 1, type: "nonsense" }).type, "");
  assert.equal(parseFileHeader({ id: "f1", name: "n".repeat(300), size: 1 }).name.length, 255);
});

test("a file header with a bad id or size is refused", () => {
  for (const bad of [null, {}, { id: 1, size: 1 }, { id: "f", size: -1 }, { id: "f", size: 1.5 },
    { id: "f", size: "12abc" }, { id: "f", size: MAX_FILE_SIZE + 1 }, { id: "f", size: 2 ** 60 }]) {
    assert.equal(parseFileHeader(bad), null, JSON.stringify(bad));
  }
});
