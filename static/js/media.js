// Local media: camera and microphone (with graceful fallback), device lists,
// mute / camera-off, and screen sharing. Every "change" event carries a `view()` snapshot.
//
// getUserMedia is asked for audio+video first; when that is denied or a device is
// missing we step down to audio-only, then video-only, then receive-only, and say
// why (`problem`: "denied" or "absent"), so a person without a camera still joins.
// Outgoing tracks are swapped with RTCRtpSender.replaceTrack by the caller (see
// call.js), so switching devices or sharing the screen never renegotiates.
//
// A shared screen keeps its resolution and gives up frame rate when bandwidth is short
// (text stays legible): Chromium reads the track's contentHint "detail"; Firefox has no
// contentHint and sent a 1280x800 screen at 640x400 for its first ~10 s, so the sender is
// also told directly (`tuneSender`, RTCRtpSendParameters.degradationPreference).
// A refused or failed screen share throws a ScreenShareError whose `problem` says why.

export function webrtcSupport() {
  const hasPc = typeof window.RTCPeerConnection === "function";
  const hasDc = hasPc && typeof RTCPeerConnection.prototype.createDataChannel === "function";
  const hasMedia = !!(navigator.mediaDevices && navigator.mediaDevices.getUserMedia);
  return { ok: hasPc && hasDc, media: hasMedia, secure: window.isSecureContext };
}

function classify(err) {
  if (!err) return "absent";
  if (err.name === "NotAllowedError" || err.name === "SecurityError") return "denied";
  if (err.name === "NotFoundError" || err.name === "OverconstrainedError" || err.name === "NotReadableError") return "absent";
  return "absent";
}

/** Why getDisplayMedia failed, as one of a few problems a person can act on. */
export function screenShareProblem(err) {
  const name = err && err.name;
  if (name === "NotAllowedError") {
    // Chromium says "Permission denied by system" when the OS forbids screen recording.
    return /system/i.test(String(err.message || "")) ? "system-denied" : "denied";
  }
  if (name === "SecurityError") return "blocked";
  if (name === "NotFoundError") return "absent";
  if (name === "NotReadableError" || name === "AbortError") return "unreadable";
  if (name === "NotSupportedError" || name === "TypeError" || name === "InvalidStateError") return "unsupported";
  return "failed";
}

/** A screen share that did not start: `problem` from screenShareProblem, `cause` the browser's error. */
export class ScreenShareError extends Error {
  constructor(problem, cause = null) {
    super(`screen share ${problem}${cause ? `: ${cause.name}: ${cause.message}` : ""}`);
    this.name = "ScreenShareError";
    this.problem = problem;
    this.cause = cause;
  }
}

// The tracks of shared screens this page started (tuneSender tells them from cameras).
const screenTracks = new WeakSet();

/**
 * Tell `sender` how to degrade the video `track` it now sends: a shared screen keeps its
 * resolution, anything else gets the browser's balance back. Never throws: a browser without
 * degradationPreference (or a sender not negotiated yet) keeps its defaults.
 */
export async function tuneSender(sender, track) {
  if (!sender || typeof sender.getParameters !== "function" || typeof sender.setParameters !== "function") return;
  if (!track || track.kind !== "video") return;
  const want = track && screenTracks.has(track) ? "maintain-resolution" : "balanced";
  try {
    const params = sender.getParameters();
    if ((params.degradationPreference || "balanced") === want) return;
    params.degradationPreference = want;
    await sender.setParameters(params);
  } catch {
    // Not supported here, or not negotiated yet: the browser's default stays.
  }
}

const VIDEO_CONSTRAINTS = { width: { ideal: 1280 }, height: { ideal: 720 }, frameRate: { ideal: 30 } };

function constraintsFor(kind, deviceId) {
  if (kind === "audio") {
    const c = { echoCancellation: true, noiseSuppression: true, autoGainControl: true };
    return deviceId ? { ...c, deviceId: { exact: deviceId } } : c;
  }
  return deviceId ? { ...VIDEO_CONSTRAINTS, deviceId: { exact: deviceId } } : VIDEO_CONSTRAINTS;
}

export class LocalMedia extends EventTarget {
  constructor() {
    super();
    this.stream = new MediaStream();
    this.cameraTrack = null;
    this.audioTrack = null;
    this.screenTrack = null;
    this.mode = "none"; // "full" | "audio-only" | "video-only" | "receive-only"
    this.problem = null; // "denied" | "absent" | "unsupported" | null
    this.muted = false;
    this.cameraOff = false;
    this.audioDeviceId = null;
    this.videoDeviceId = null;
  }

  /** Ask for camera and microphone, stepping down on failure. Never throws. */
  async start({ audioDeviceId = null, videoDeviceId = null } = {}) {
    if (!navigator.mediaDevices || !navigator.mediaDevices.getUserMedia) {
      this.problem = "unsupported";
      this._setMode();
      return this;
    }
    const attempts = [
      { audio: constraintsFor("audio", audioDeviceId), video: constraintsFor("video", videoDeviceId) },
      { audio: constraintsFor("audio", audioDeviceId), video: false },
      { audio: false, video: constraintsFor("video", videoDeviceId) },
    ];
    let firstError = null;
    for (const c of attempts) {
      try {
        const s = await navigator.mediaDevices.getUserMedia(c);
        this._adopt(s);
        break;
      } catch (err) {
        firstError = firstError || err;
        // A denied permission is denied for both kinds in practice; still try the rest,
        // the user may have allowed only one of them.
      }
    }
    if (firstError) this.problem = classify(firstError);
    this._setMode();
    return this;
  }

  _adopt(s) {
    const a = s.getAudioTracks()[0] || null;
    const v = s.getVideoTracks()[0] || null;
    if (a) this._setTrack("audio", a);
    if (v) this._setTrack("video", v);
  }

  _setTrack(kind, track) {
    const old = kind === "audio" ? this.audioTrack : this.cameraTrack;
    if (old) {
      this.stream.removeTrack(old);
      old.stop();
    }
    if (kind === "audio") {
      this.audioTrack = track;
      track.enabled = !this.muted;
      this.audioDeviceId = track.getSettings().deviceId || null;
    } else {
      this.cameraTrack = track;
      track.enabled = !this.cameraOff;
      this.videoDeviceId = track.getSettings().deviceId || null;
    }
    if (kind === "audio" || !this.screenTrack) this.stream.addTrack(track);
  }

  _setMode() {
    const a = !!this.audioTrack;
    const v = !!this.cameraTrack;
    this.mode = a && v ? "full" : a ? "audio-only" : v ? "video-only" : "receive-only";
    if (this.mode === "full") this.problem = null;
    this._emit("change", this.view());
  }

  /** A snapshot of what a person sees of their own media; every "change" event carries one. */
  view() {
    return {
      mode: this.mode,
      problem: this.problem,
      muted: this.muted,
      cameraOff: this.cameraOff,
      sharing: !!this.screenTrack,
      hasAudio: !!this.audioTrack,
      hasCamera: !!this.cameraTrack,
      stream: this.stream,
      audioTrack: this.audioTrack,
    };
  }

  /** The video track we send now: the screen while sharing, else the camera. */
  get videoTrack() {
    return this.screenTrack || this.cameraTrack;
  }

  setMuted(muted) {
    this.muted = !!muted;
    if (this.audioTrack) this.audioTrack.enabled = !this.muted;
    this._emit("change", this.view());
  }

  setCameraOff(off) {
    this.cameraOff = !!off;
    if (this.cameraTrack) this.cameraTrack.enabled = !this.cameraOff;
    this._emit("change", this.view());
  }

  async devices() {
    if (!navigator.mediaDevices || !navigator.mediaDevices.enumerateDevices) return { audio: [], video: [] };
    const list = await navigator.mediaDevices.enumerateDevices();
    return {
      audio: list.filter((d) => d.kind === "audioinput"),
      video: list.filter((d) => d.kind === "videoinput"),
    };
  }

  /** Switch to another camera or microphone; returns the new track (or null on failure). */
  async useDevice(kind, deviceId) {
    try {
      const s = await navigator.mediaDevices.getUserMedia({
        audio: kind === "audio" ? constraintsFor("audio", deviceId) : false,
        video: kind === "video" ? constraintsFor("video", deviceId) : false,
      });
      const track = kind === "audio" ? s.getAudioTracks()[0] : s.getVideoTracks()[0];
      this._setTrack(kind, track);
      this._setMode();
      return track;
    } catch (err) {
      this._emit("device-error", { kind, problem: classify(err) });
      return null;
    }
  }

  /** Start sharing the screen; returns the screen track, or throws a ScreenShareError saying why not. */
  async startScreenShare() {
    if (!navigator.mediaDevices || !navigator.mediaDevices.getDisplayMedia) throw new ScreenShareError("unsupported");
    let s;
    try {
      s = await navigator.mediaDevices.getDisplayMedia({ video: { frameRate: { ideal: 15 } }, audio: false });
    } catch (err) {
      throw new ScreenShareError(screenShareProblem(err), err);
    }
    const track = s.getVideoTracks()[0];
    if (!track) {
      for (const t of s.getTracks()) t.stop();
      throw new ScreenShareError("absent");
    }
    if ("contentHint" in track) track.contentHint = "detail";
    screenTracks.add(track);
    this.screenTrack = track;
    if (this.cameraTrack) this.stream.removeTrack(this.cameraTrack);
    this.stream.addTrack(track);
    // The browser's own "Stop sharing" button ends the track.
    track.addEventListener("ended", () => {
      if (this.screenTrack === track) this._emit("screen-ended");
    });
    this._emit("change", this.view());
    return track;
  }

  /** Stop sharing; returns the camera track (possibly null) to send again. */
  stopScreenShare() {
    const t = this.screenTrack;
    if (!t) return this.cameraTrack;
    this.screenTrack = null;
    this.stream.removeTrack(t);
    t.stop();
    if (this.cameraTrack) this.stream.addTrack(this.cameraTrack);
    this._emit("change", this.view());
    return this.cameraTrack;
  }

  stop() {
    for (const t of [this.audioTrack, this.cameraTrack, this.screenTrack]) if (t) t.stop();
    this.audioTrack = this.cameraTrack = this.screenTrack = null;
    this.stream = new MediaStream();
  }

  _emit(type, detail = {}) {
    this.dispatchEvent(new CustomEvent(type, { detail }));
  }
}
