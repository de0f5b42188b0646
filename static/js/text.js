// The words a person reads, as pure functions of the state they describe: names and
// initials, counts, sizes, connection quality, media problems, file cards and notices.
// One place for them keeps the screens consistent (the self-view and the tiles use the same
// initials) and lets `node --test` check them (tests/js/text.test.js).

import { LIMITS } from "./intake.js";

/** Initials of a display name: first letters of its first and last words ("Ada Lovelace" -> "AL"). */
export function initials(name) {
  const parts = String(name || "").trim().split(/\s+/).filter(Boolean);
  if (!parts.length) return "?";
  const first = [...parts[0]][0];
  const last = parts.length > 1 ? [...parts[parts.length - 1]][0] : "";
  return (first + last).toUpperCase();
}

/** What the top bar says about who is here: "Just you", "2 people", ... */
export function peopleText(others) {
  return others <= 0 ? "Just you" : `${others + 1} people`;
}

/** The signaling socket's status in words. */
export function netText(status) {
  return {
    connecting: "Connecting…",
    open: "Connected",
    reconnecting: "Reconnecting…",
    closed: "Offline",
  }[status] || String(status);
}

export function fmtBytes(n) {
  if (n < 1024) return `${n} B`;
  const units = ["KB", "MB", "GB"];
  let v = n / 1024;
  let i = 0;
  while (v >= 1024 && i < units.length - 1) { v /= 1024; i += 1; }
  return `${v < 10 ? v.toFixed(1) : Math.round(v)} ${units[i]}`;
}

const QUALITY = { good: "Good connection", fair: "Weak connection", poor: "Poor connection" };

/** A peer connection's quality in words ("" while unknown). */
export function qualityText(quality) {
  return QUALITY[quality] || "";
}

/** The readout under a security code: quality, round trip, bitrate, loss. */
export function statsText(s) {
  const bits = [];
  if (s && QUALITY[s.quality]) bits.push(QUALITY[s.quality]);
  if (s && s.rttMs !== null && s.rttMs !== undefined) bits.push(`round trip ${Math.round(s.rttMs)} ms`);
  if (s && s.kbps !== null && s.kbps !== undefined) {
    bits.push(s.kbps >= 1000 ? `${(s.kbps / 1000).toFixed(1)} Mb/s` : `${Math.round(s.kbps)} kb/s`);
  }
  if (s && s.lossPct !== null && s.lossPct !== undefined) bits.push(`${s.lossPct.toFixed(1)} % lost`);
  return bits.join(" · ") || "Measuring the connection…";
}

/** A remote tile's status over its video, from the peer connection's state ("" when connected). */
export function tileStatus(connectionState) {
  if (connectionState === "new" || connectionState === "connecting") return "Connecting…";
  if (connectionState === "disconnected") return "Reconnecting…";
  if (connectionState === "failed") return "Connection lost, retrying…";
  return "";
}

/** Why we join without camera and/or microphone, and what happens; null when all is well. */
export function mediaProblemText({ mode, problem }) {
  if (mode === "full" || mode === "none") return null;
  if (problem === "unsupported") return "This browser cannot use a camera or microphone here. You can still see and hear the others.";
  const what = mode === "audio-only" ? "Camera" : mode === "video-only" ? "Microphone" : "Camera and microphone";
  const join = mode === "audio-only" ? "with audio only" : "without audio";
  if (problem === "denied") {
    const then = mode === "receive-only" ? "You will join without sending audio or video" : `You will join ${join}`;
    return `${what} blocked. ${then}; allow access in the browser's site settings to be seen and heard.`;
  }
  const then = mode === "receive-only" ? "You will join to watch and listen" : `You will join ${join}`;
  return `${what} not found. ${then}.`;
}

/** The labels of the microphone and camera toggles: {label, more} (more completes the name). */
export function micToggle({ hasAudio, muted }) {
  if (!hasAudio) return { label: "No mic", more: "", off: true };
  return muted ? { label: "Unmute", more: " microphone", off: true } : { label: "Mute", more: " microphone", off: false };
}

export function camToggle({ hasCamera, cameraOff }) {
  if (!hasCamera) return { label: "No camera", more: "", off: true };
  return cameraOff ? { label: "Start video", more: "", off: true } : { label: "Stop video", more: "", off: false };
}

/** Names joined for a sentence: "Grace", "Grace and Linus", "Ada, Grace and Linus". */
export function namesText(names) {
  if (names.length <= 1) return names.join("");
  return `${names.slice(0, -1).join(", ")} and ${names[names.length - 1]}`;
}

/** Why an offer of `who` was refused here without asking (intake.js's reasons), in words. */
export function refusalText(reason, who = "them") {
  switch (reason) {
    case "reused": return "it reused the id of an earlier file";
    case "too-many": return `too many files from ${who} in this call`;
    case "busy": return `another file from ${who} is waiting or arriving (one at a time)`;
    case "too-large": return `larger than the ${fmtBytes(LIMITS.heldBytes)} this browser keeps for received files`;
    case "no-room": return `not enough room: received files may take ${fmtBytes(LIMITS.heldBytes)} at most here; save or dismiss some first`;
    default: return String(reason || "refused");
  }
}

const SENT_REFUSAL = {
  busy: "busy with another file", "too-large": "too large", "no-room": "no room left",
  reused: "reused id", "too-many": "too many files", cancelled: "cancelled",
};

/** How one receiver's part of an offer ended, for the sender's card. */
function outcomeText(p) {
  if (p.state === "delivered") return `delivered to ${p.name}`;
  if (p.state === "declined") {
    if (!p.reason || p.reason === "declined") return `declined by ${p.name}`;
    return `refused by ${p.name}'s browser (${SENT_REFUSAL[p.reason] || p.reason})`;
  }
  return `not delivered to ${p.name}${p.reason ? ` (${p.reason})` : ""}`;
}

const capital = (text) => text.charAt(0).toUpperCase() + text.slice(1);

/**
 * A file card's heading and status line, for the sender ("out": one offer to everyone, each
 * receiver accepting or declining) or the receiver ("in": by `state`, see call.js).
 */
export function transferText(t) {
  const label = `${t.name} (${fmtBytes(t.size)}${t.type ? `, ${t.type}` : ""})`;
  const pct = `${Math.round((t.progress || 0) * 100)} %`;
  if (t.direction === "out") {
    const peers = t.peers || [];
    if (t.failed && !peers.some((p) => p.state === "delivered")) {
      return { heading: `You tried to send ${label}`, status: `Failed: ${t.failed}` };
    }
    const waiting = peers.filter((p) => p.state === "waiting").map((p) => p.name);
    const sending = peers.some((p) => p.state === "sending");
    if (!t.done && sending) {
      const more = waiting.length ? `; waiting for ${namesText(waiting)} to accept` : "";
      return { heading: `You are sending ${label}`, status: `Sending… ${pct}${more}` };
    }
    if (!t.done) return { heading: `You are offering ${label}`, status: `Waiting for ${namesText(waiting)} to accept` };
    const delivered = peers.filter((p) => p.state === "delivered").length;
    if (delivered === peers.length) return { heading: `You sent ${label}`, status: "Delivered" };
    return {
      heading: delivered ? `You sent ${label}` : `You offered ${label}`,
      status: capital(peers.map(outcomeText).join("; ")),
    };
  }
  const who = t.fromName || "Someone";
  switch (t.state) {
    case "offered": return { heading: `${who} wants to send you ${label}`, status: "Accept to receive it, or decline." };
    case "refused": return { heading: `${who} tried to send ${label}`, status: `Refused: ${refusalText(t.reason, who)}` };
    case "declined": return { heading: `${who} offered ${label}`, status: "You declined it" };
    case "receiving": return { heading: `${who} is sending ${label}`, status: `Receiving… ${pct}` };
    case "received": return { heading: `${who} sent ${label}`, status: "Received" };
    case "saved": return { heading: `${who} sent ${label}`, status: "Saved to your downloads" };
    case "expired": return { heading: `${who} sent ${label}`, status: "No longer kept (you left the call)" };
    default: return { heading: `${who} tried to send ${label}`, status: `Failed: ${t.reason || "failed"}` };
  }
}

/** The toast when a file card first appears on the receiver's side (null: no toast). */
export function transferToast(t) {
  if (t.direction !== "in") return null;
  if (t.state === "offered") return `${t.fromName} wants to send you ${t.name}`;
  if (t.state === "refused") return `Refused ${t.name} from ${t.fromName}: ${refusalText(t.reason, t.fromName)}`;
  return null;
}

/** Who is presenting, for the strip over the stage ("" when nobody). */
export function presentingText({ self, others }) {
  if (self) return "You are presenting your screen to everyone";
  if (!others.length) return "";
  if (others.length === 1) return `${others[0]} is presenting their screen`;
  return `${others.slice(0, -1).join(", ")} and ${others[others.length - 1]} are presenting`;
}

/**
 * What a notice says, and where: `{text, kind}` for a toast, `banner: true` for the strip
 * above the screen, `screen: true` for the refused screen (with its `title`).
 */
export function noticeText(code, d = {}) {
  switch (code) {
    case "peer-left": return { text: `${d.name} left the call.`, kind: "info" };
    case "peer-reconnecting": return { text: `Connection to ${d.name} lost. Trying again…`, kind: "warn" };
    case "connection-lost": return { text: "Connection to the server lost. Reconnecting… (the call goes on meanwhile)", banner: true };
    case "server-unreachable": return { text: "Can't reach the server. Retrying…", banner: true };
    case "superseded": return { text: "This call continues in another window or tab.", banner: true };
    case "resumed":
    case "rejoined": return { text: "Reconnected.", kind: "ok" };
    case "room-full": return {
      screen: true,
      title: "This call is full",
      text: `It already has ${d.maxPeers ? `${d.maxPeers} people, as many as a call can hold` : "as many people as a call can hold"}. Try again when someone leaves, or start a new call of your own.`,
    };
    case "not-invited": return {
      screen: true,
      title: "This invite link does not work",
      text: "The link is not valid or has expired. Ask for a new one, or start a new call of your own.",
    };
    case "media-denied":
    case "media-absent": return { text: mediaProblemText(d) || "", kind: "warn" };
    case "file-refused": return { text: `Refused ${d.file} from ${d.name}: ${refusalText(d.reason, d.name)}`, kind: "warn" };
    case "no-webrtc": return { text: "This browser does not support WebRTC video calls. Please use a current Firefox, Chrome, Edge or Safari.", banner: true };
    default: return { text: String(d.text || code), kind: "info" };
  }
}
