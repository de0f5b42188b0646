// Screen sharing's two fixes, without a browser: a refusal says why (media.js classifies the
// browser's error, controls.js words it), and a shared screen's sender is told to keep its
// resolution (tuneSender), while a camera's gets the browser's balance back.
import { test } from "node:test";
import assert from "node:assert/strict";

// The little of the browser LocalMedia touches.
class FakeStream {
  constructor(tracks = []) { this.tracks = [...tracks]; }
  getTracks() { return this.tracks; }
  getVideoTracks() { return this.tracks.filter((t) => t.kind === "video"); }
  getAudioTracks() { return this.tracks.filter((t) => t.kind === "audio"); }
  addTrack(t) { this.tracks.push(t); }
  removeTrack(t) { this.tracks = this.tracks.filter((x) => x !== t); }
}
class FakeTrack extends EventTarget {
  constructor(kind) { super(); this.kind = kind; this.stopped = false; }
  stop() { this.stopped = true; }
}
globalThis.MediaStream = FakeStream;
let displayMedia = null; // what getDisplayMedia does next
Object.defineProperty(globalThis, "navigator", {
  value: { mediaDevices: { getDisplayMedia: async () => displayMedia() } },
  configurable: true,
});

const { LocalMedia, ScreenShareError, screenShareProblem, tuneSender } = await import("../../static/js/media.js");
const { screenShareText } = await import("../../static/js/controls.js");

const domError = (name, message = "") => Object.assign(new Error(message), { name });

test("each way getDisplayMedia fails becomes a problem a person can act on", () => {
  assert.equal(screenShareProblem(domError("NotAllowedError", "Permission denied")), "denied");
  assert.equal(screenShareProblem(domError("NotAllowedError", "Permission denied by system")), "system-denied");
  assert.equal(screenShareProblem(domError("SecurityError")), "blocked");
  assert.equal(screenShareProblem(domError("NotFoundError")), "absent"); // Firefox without a display
  assert.equal(screenShareProblem(domError("NotReadableError")), "unreadable");
  assert.equal(screenShareProblem(domError("AbortError")), "unreadable");
  assert.equal(screenShareProblem(domError("TypeError")), "unsupported");
  assert.equal(screenShareProblem(domError("WeirdError")), "failed");
  assert.equal(screenShareProblem(undefined), "failed");
});

test("every problem has its own words, and none is the old catch-all", () => {
  const problems = ["denied", "system-denied", "blocked", "absent", "unreadable", "unsupported", "failed"];
  const texts = problems.map(screenShareText);
  assert.equal(new Set(texts).size, problems.length);
  for (const t of texts) {
    assert.ok(t.length > 20, t);
    assert.doesNotMatch(t, /cancelled or is not available/);
  }
  assert.match(screenShareText("absent"), /no screen/);
  assert.match(screenShareText("system-denied"), /privacy settings/);
});

test("a refused screen share throws a ScreenShareError saying why, and shares nothing", async () => {
  const media = new LocalMedia();
  displayMedia = () => { throw domError("NotAllowedError", "Permission denied"); };
  await assert.rejects(media.startScreenShare(), (err) => {
    assert.ok(err instanceof ScreenShareError);
    assert.equal(err.problem, "denied");
    assert.equal(err.cause.name, "NotAllowedError");
    return true;
  });
  assert.equal(media.screenTrack, null);
  assert.equal(media.view().sharing, false);
});

test("a share that yields no video track stops what it got and says there is no screen", async () => {
  const audio = new FakeTrack("audio");
  displayMedia = () => new FakeStream([audio]);
  await assert.rejects(new LocalMedia().startScreenShare(), (err) => err.problem === "absent");
  assert.ok(audio.stopped);
});

function fakeSender(params = { encodings: [{ active: true }] }, fail = false) {
  const calls = [];
  return {
    calls,
    getParameters: () => structuredClone(params),
    setParameters: async (p) => {
      calls.push(p.degradationPreference);
      if (fail) throw domError("InvalidModificationError");
      params = p;
    },
  };
}

test("a shared screen's sender keeps resolution; the camera after it gets the balance back", async () => {
  const screen = new FakeTrack("video");
  displayMedia = () => new FakeStream([screen]);
  const media = new LocalMedia();
  assert.equal(await media.startScreenShare(), screen);
  const sender = fakeSender();
  await tuneSender(sender, screen);
  assert.deepEqual(sender.calls, ["maintain-resolution"]);
  const camera = new FakeTrack("video");
  await tuneSender(sender, camera);
  assert.deepEqual(sender.calls, ["maintain-resolution", "balanced"]);
  await tuneSender(sender, camera); // already balanced: nothing to set
  assert.equal(sender.calls.length, 2);
});

test("tuneSender leaves audio, null tracks and browsers without the API alone, and never throws", async () => {
  const audioSender = fakeSender();
  await tuneSender(audioSender, new FakeTrack("audio"));
  await tuneSender(audioSender, null);
  assert.deepEqual(audioSender.calls, []);
  await tuneSender({}, new FakeTrack("video"));
  await tuneSender(null, new FakeTrack("video"));
  const screen = new FakeTrack("video");
  displayMedia = () => new FakeStream([screen]);
  await new LocalMedia().startScreenShare();
  const refusing = fakeSender(undefined, true);
  await tuneSender(refusing, screen); // rejected by the browser: the default stays, no throw
  assert.deepEqual(refusing.calls, ["maintain-resolution"]);
});
