// Entry point: routing (/ is the landing page, /r/<room> the lobby then the call),
// wiring the Call's events to the UI, and the `window.rtcsvc` test/debug hook.

import { Call, shortId } from "./call.js";
import { LocalMedia, webrtcSupport } from "./media.js";
import { sasOfFingerprints, fingerprintOf } from "./sas.js";
import {
  showView, showBanner, hideBanner, toast, TileGrid, initSelfView, initFileDrop,
  ChatLog, fillDeviceSelect,
} from "./ui.js";

const ROOM_RE = /^[A-Za-z0-9_-]{1,64}$/;
const $ = (sel) => document.querySelector(sel);

/** A fresh room name: 128 random bits, base64url (22 characters). */
export function newRoomName() {
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  return btoa(String.fromCharCode(...bytes)).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
}

/** A room name from a pasted link (…/r/<room>) or a bare name; null if neither. */
export function parseRoom(input) {
  const text = String(input || "").trim();
  if (!text) return null;
  if (ROOM_RE.test(text)) return text;
  let path = text;
  try {
    path = new URL(text, window.location.origin).pathname;
  } catch {
    return null;
  }
  const m = path.match(/\/r\/([A-Za-z0-9_-]{1,64})\/?$/);
  return m ? m[1] : null;
}

function roomFromPath() {
  const m = window.location.pathname.match(/^\/r\/([A-Za-z0-9_-]{1,64})\/?$/);
  return m ? m[1] : null;
}

/** The invite token of a closed room, from the page's `?token=` (docs/protocol.md). */
function inviteToken() {
  const t = new URLSearchParams(window.location.search).get("token");
  return t && /^[A-Za-z0-9._~-]{1,512}$/.test(t) ? t : null;
}

const inviteLink = (room) => {
  const token = inviteToken();
  return `${window.location.origin}/r/${room}${token ? `?token=${encodeURIComponent(token)}` : ""}`;
};

const NAME_KEY = "rtcsvc.name";
function savedName() {
  try { return localStorage.getItem(NAME_KEY) || ""; } catch { return ""; }
}
function saveName(n) {
  try { localStorage.setItem(NAME_KEY, n); } catch { /* private mode */ }
}

// ---------------------------------------------------------------------------

const app = {
  room: null,
  media: null,
  call: null,
  grid: null,
  chat: null,
  selfView: null,
  notices: [], // codes, in order, for tests
  unread: 0,
};

function notice(code, text, opts = {}) {
  app.notices.push(code);
  if (opts.banner) showBanner(code, text, opts.action || null);
  else toast(text, { code, kind: opts.kind || "info" });
}

// ---- landing ----

function initLanding() {
  $("#start").addEventListener("click", () => go(`/r/${newRoomName()}`));
  $("#join-form").addEventListener("submit", (ev) => {
    ev.preventDefault();
    const room = parseRoom($("#join-input").value);
    if (!room) {
      $("#join-error").textContent = "That is not a room link or name (letters, digits, - and _ only).";
      $("#join-input").setAttribute("aria-invalid", "true");
      $("#join-input").focus();
      return;
    }
    $("#join-error").textContent = "";
    $("#join-input").removeAttribute("aria-invalid");
    go(`/r/${room}`);
  });
}

function go(path) {
  history.pushState({}, "", path);
  route();
}

// ---- lobby ----

async function refreshDevices() {
  if (!app.media) return;
  const { audio, video } = await app.media.devices();
  for (const sel of document.querySelectorAll(".cam-select")) fillDeviceSelect(sel, video, app.media.videoDeviceId, "camera");
  for (const sel of document.querySelectorAll(".mic-select")) fillDeviceSelect(sel, audio, app.media.audioDeviceId, "microphone");
}

function mediaProblemText(media) {
  if (media.problem === "unsupported") return "This browser cannot use a camera or microphone here. You can still see and hear the others.";
  const what = media.mode === "audio-only" ? "Camera" : media.mode === "video-only" ? "Microphone" : "Camera and microphone";
  if (media.problem === "denied") {
    return `${what} blocked. ${media.mode === "receive-only" ? "You will join without sending audio or video" : `You will join ${media.mode === "audio-only" ? "with audio only" : "without audio"}`}; allow access in the browser's site settings to be seen and heard.`;
  }
  return `${what} not found. ${media.mode === "receive-only" ? "You will join to watch and listen" : `You will join ${media.mode === "audio-only" ? "with audio only" : "without audio"}`}.`;
}

async function enterLobby(room) {
  app.room = room;
  showView("lobby");
  $("#lobby-room").textContent = room;
  $("#name-input").value = savedName();
  if (!app.media) {
    app.media = new LocalMedia();
    await app.media.start();
    app.media.addEventListener("change", () => renderSelf());
  }
  $("#preview").srcObject = app.media.stream;
  const note = $("#preview-note");
  if (app.media.mode !== "full") {
    note.textContent = mediaProblemText(app.media);
    note.hidden = false;
  } else {
    note.hidden = true;
  }
  await refreshDevices();
  document.body.classList.add("media-ready");
  $("#join-now").focus();
}

function initLobby() {
  $("#join-now").addEventListener("click", () => {
    const name = $("#name-input").value.trim().slice(0, 40);
    saveName(name);
    startCall(app.room, name);
  });
  $("#name-input").addEventListener("keydown", (ev) => {
    if (ev.key === "Enter") $("#join-now").click();
  });
  for (const sel of document.querySelectorAll(".cam-select")) {
    sel.addEventListener("change", () => switchDevice("video", sel.value));
  }
  for (const sel of document.querySelectorAll(".mic-select")) {
    sel.addEventListener("change", () => switchDevice("audio", sel.value));
  }
}

async function switchDevice(kind, deviceId) {
  if (!deviceId) return;
  const ok = app.call ? await app.call.switchDevice(kind, deviceId) : !!(await app.media.useDevice(kind, deviceId));
  if (!ok) toast(`Could not switch ${kind === "video" ? "camera" : "microphone"}.`, { kind: "warn" });
  $("#preview").srcObject = app.media.stream;
  renderSelf();
  refreshDevices();
}

// ---- call ----

function renderSelf() {
  if (!app.media) return;
  const m = app.media;
  const self = $("#self");
  const video = $("#self-video");
  if (video.srcObject !== m.stream) video.srcObject = m.stream;
  const camOff = m.cameraOff || !m.videoTrack;
  self.classList.toggle("camera-off", camOff && !m.screenTrack);
  self.classList.toggle("muted", m.muted || !m.audioTrack);
  self.classList.toggle("sharing", !!m.screenTrack);
  video.classList.toggle("mirror", !m.screenTrack);
  const name = (app.call && app.call.name) || "You";
  $("#self-label").textContent = app.call && app.call.name ? `${app.call.name} (you)` : "You";
  $("#self-initials").textContent = name.slice(0, 2).toUpperCase();

  const mic = $("#btn-mic");
  const muted = m.muted || !m.audioTrack;
  mic.setAttribute("aria-pressed", String(muted));
  mic.setAttribute("aria-label", muted ? "Unmute microphone" : "Mute microphone");
  mic.querySelector(".ctl-label").textContent = muted ? "Unmute" : "Mute";
  mic.disabled = !m.audioTrack;

  const cam = $("#btn-cam");
  cam.setAttribute("aria-pressed", String(camOff));
  cam.setAttribute("aria-label", camOff ? "Turn camera on" : "Turn camera off");
  cam.querySelector(".ctl-label").textContent = camOff ? "Start video" : "Stop video";
  cam.disabled = !m.cameraTrack;

  const share = $("#btn-share");
  share.setAttribute("aria-pressed", String(!!m.screenTrack));
  share.setAttribute("aria-label", m.screenTrack ? "Stop sharing screen" : "Share screen");
  share.querySelector(".ctl-label").textContent = m.screenTrack ? "Stop share" : "Share";
  share.disabled = !(navigator.mediaDevices && navigator.mediaDevices.getDisplayMedia);
}

function renderPeer(id) {
  const call = app.call;
  const link = call.links.get(id);
  if (!link) return;
  app.grid.update(id, {
    name: call.displayName(id),
    info: call.info.get(id) || {},
    connectionState: link.connectionState,
    quality: link.stats.quality,
  });
}

function setNet(status) {
  const dot = $("#net-dot");
  dot.dataset.status = status;
  const text = {
    connecting: "Connecting…",
    open: "Connected",
    reconnecting: "Reconnecting…",
    closed: "Offline",
  }[status] || status;
  $("#net-text").textContent = text;
}

function startCall(room, name) {
  hideBanner();
  showView("call");
  $("#call-room").textContent = room;
  $("#call-name").value = name;
  document.title = `rtcsvc · ${room.slice(0, 8)}…`;
  app.grid.clear();
  const call = new Call(room, app.media, { name, token: inviteToken() });
  app.call = call;
  renderSelf();

  if (app.media.mode !== "full") {
    notice(app.media.problem === "denied" ? "media-denied" : "media-absent", mediaProblemText(app.media), { kind: "warn" });
  }

  call.addEventListener("signaling", (ev) => {
    setNet(ev.detail.status);
    if (ev.detail.status === "open") {
      hideBanner("server-unreachable");
      hideBanner("connection-lost");
    }
  });
  call.addEventListener("joined", (ev) => {
    if (ev.detail.rejoined) app.grid.clear();
  });
  call.addEventListener("peer-added", (ev) => {
    const { id } = ev.detail;
    const link = call.links.get(id);
    app.grid.ensure(id);
    app.grid.setStream(id, link.remoteStream);
    renderPeer(id);
  });
  call.addEventListener("peer-removed", (ev) => app.grid.remove(ev.detail.id));
  call.addEventListener("peer-state", (ev) => renderPeer(ev.detail.id));
  call.addEventListener("peer-media", (ev) => {
    const link = call.links.get(ev.detail.id);
    if (link) app.grid.setStream(ev.detail.id, link.remoteStream);
  });
  call.addEventListener("peer-sas", (ev) => {
    const link = call.links.get(ev.detail.id);
    if (link) app.grid.setSas(ev.detail.id, link.sas);
  });
  call.addEventListener("peer-stats", (ev) => {
    const link = call.links.get(ev.detail.id);
    if (!link) return;
    app.grid.setStats(ev.detail.id, link.stats);
    renderPeer(ev.detail.id);
  });
  call.addEventListener("membership", () => {
    const n = call.links.size;
    document.body.classList.toggle("alone", n === 0);
    $("#people-count").textContent = n === 0 ? "Just you" : `${n + 1} in call`;
  });
  call.addEventListener("chat", (ev) => {
    app.chat.addMessage(ev.detail);
    if (!ev.detail.self && $("#side").hidden) {
      app.unread += 1;
      const b = $("#unread");
      b.textContent = String(app.unread);
      b.hidden = false;
      toast(`${ev.detail.name}: ${ev.detail.text.slice(0, 80)}`, { code: "chat" });
    }
  });
  call.addEventListener("transfer", (ev) => {
    const t = ev.detail.transfer;
    const fresh = !app.chat.transferItems.has(`${t.direction}:${t.id}`);
    app.chat.updateTransfer(t);
    if (fresh && t.direction === "in") {
      openSide("side");
      toast(`${t.fromName} is sending ${t.name}`, { code: "file" });
    }
  });
  call.addEventListener("notice", (ev) => {
    const d = ev.detail;
    switch (d.code) {
      case "peer-left":
        notice("peer-left", `${d.name} left the call.`);
        break;
      case "connection-lost":
        notice("connection-lost", "Connection to the server lost. Reconnecting… (the call goes on meanwhile)", { banner: true });
        break;
      case "server-unreachable":
        notice("server-unreachable", "Can't reach the server. Retrying…", { banner: true });
        break;
      case "superseded":
        notice("superseded", "This call continues in another window or tab.", {
          banner: true,
          action: { label: "Use this window", run: () => { hideBanner(); call.signaling.restart(); } },
        });
        break;
      case "resumed":
      case "rejoined":
        hideBanner();
        notice(d.code, "Reconnected.", { kind: "ok" });
        break;
      case "peer-reconnecting":
        notice("peer-reconnecting", `Connection to ${d.name} lost. Trying again…`, { kind: "warn" });
        break;
      case "not-invited":
        notice("not-invited", "This invite link is not valid or has expired. Ask for a new one.",
          { banner: true });
        setNet("closed");
        break;
      case "room-full":
        notice("room-full", `This room is full${d.maxPeers ? ` (${d.maxPeers} people)` : ""}. Try again later or start a new call.`, {
          banner: true,
          action: { label: "Try again", run: () => { hideBanner(); call.signaling.restart(); } },
        });
        setNet("closed");
        break;
      default:
        break;
    }
  });
  call.join();
}

function openSide(which) {
  for (const id of ["side", "settings"]) {
    const open = id === which ? true : false;
    $(`#${id}`).hidden = !open;
  }
  $("#btn-chat").setAttribute("aria-expanded", String(which === "side"));
  $("#btn-settings").setAttribute("aria-expanded", String(which === "settings"));
  document.body.classList.toggle("side-open", !!which);
  if (which === "side") {
    app.unread = 0;
    $("#unread").hidden = true;
  }
}

function initCallControls() {
  app.grid = new TileGrid($("#grid"));
  app.chat = new ChatLog($("#chat-log"));
  app.selfView = initSelfView({
    stage: $("#stage"),
    self: $("#self"),
    onMove: (corner) => toast(`Your video moved to the ${corner.replace("-", " ")} corner.`, { code: "self-moved", ms: 1500 }),
  });
  initFileDrop({
    stage: $("#stage"),
    overlay: $("#drop-overlay"),
    onFiles: (files) => {
      openSide("side");
      if (app.call) app.call.sendFiles(files);
    },
  });
  $("#file-input").addEventListener("change", (ev) => {
    const files = [...ev.target.files];
    ev.target.value = "";
    if (files.length && app.call) app.call.sendFiles(files);
  });
  $("#chat-form").addEventListener("submit", (ev) => {
    ev.preventDefault();
    const input = $("#chat-input");
    if (app.call && app.call.sendChat(input.value)) input.value = "";
  });
  $("#btn-mic").addEventListener("click", () => {
    if (!app.call) return;
    app.call.setMuted(!app.media.muted);
    renderSelf();
  });
  $("#btn-cam").addEventListener("click", () => {
    if (!app.call) return;
    app.call.setCameraOff(!app.media.cameraOff);
    renderSelf();
  });
  $("#btn-share").addEventListener("click", async () => {
    if (!app.call) return;
    if (app.media.screenTrack) await app.call.stopScreenShare();
    else if (!(await app.call.startScreenShare())) toast("Screen sharing was cancelled or is not available.", { kind: "warn" });
    renderSelf();
  });
  $("#btn-chat").addEventListener("click", () => {
    openSide($("#side").hidden ? "side" : null);
    if (!$("#side").hidden) $("#chat-input").focus();
  });
  $("#btn-settings").addEventListener("click", () => {
    openSide($("#settings").hidden ? "settings" : null);
  });
  $("#side-close").addEventListener("click", () => openSide(null));
  $("#settings-close").addEventListener("click", () => openSide(null));
  $("#call-name").addEventListener("change", (ev) => {
    const name = ev.target.value.trim().slice(0, 40);
    saveName(name);
    if (app.call) app.call.setName(name);
    renderSelf();
  });
  $("#btn-leave").addEventListener("click", () => {
    if (app.call) app.call.leave();
    app.grid.clear();
    showView("left");
  });
  $("#rejoin").addEventListener("click", () => startCall(app.room, app.call ? app.call.name : ""));
  $("#copy-link").addEventListener("click", async () => {
    const link = inviteLink(app.room);
    try {
      await navigator.clipboard.writeText(link);
      toast("Invite link copied.", { code: "copied", kind: "ok" });
    } catch {
      // Clipboard refused (no permission, insecure origin): show it to copy by hand.
      window.prompt("Copy this invite link:", link);
    }
  });
  document.addEventListener("keydown", (ev) => {
    if (ev.key === "Escape" && document.body.classList.contains("side-open")) openSide(null);
  });
}

// ---- routing ----

function route() {
  const room = roomFromPath();
  if (app.call && !app.call.ended && app.call.room !== room) {
    app.call.leave();
    app.grid.clear();
  }
  if (room) {
    if (app.call && !app.call.ended && app.call.room === room) return;
    enterLobby(room);
  } else {
    showView("landing");
    document.title = "rtcsvc · video call";
  }
}

function boot() {
  const support = webrtcSupport();
  initLanding();
  initLobby();
  initCallControls();
  window.addEventListener("popstate", route);
  if (!support.ok) {
    app.notices.push("no-webrtc");
    showBanner("no-webrtc", "This browser does not support WebRTC video calls. Please use a current Firefox, Chrome, Edge or Safari.");
    showView("landing");
    $("#start").disabled = true;
    return;
  }
  route();
}

// ---------------------------------------------------------------------------
// Test / debug hook. Browser tests read the app's state through this object instead
// of scraping pixels; it is also handy from the devtools console. It exposes nothing
// a page script could not already see, and changes nothing by itself.
//
//   rtcsvc.state            snapshot: {view, room, id, joined, signaling, media, selfCorner,
//                             notices, peers: [{id, name, connectionState, iceConnectionState,
//                             polite, muted, cameraOff, sharing, sas, path, stats, restarts}]}
//   rtcsvc.sas(peerId)      Promise of that peer's SAS text (null until negotiated)
//   rtcsvc.sasOf(fpA, fpB)  Promise of the SAS of two fingerprint strings (for tamper tests)
//   rtcsvc.fingerprints(id) {local, remote} fingerprints of a peer connection
//   rtcsvc.sendChat(text)   send a chat message to everyone
//   rtcsvc.chat             chat entries [{from, name, text, self, at}]
//   rtcsvc.transfers        file transfers [{id, direction, name, size, type, progress, done, failed, url}]
//   rtcsvc.receivedSha256(id) Promise of the hex SHA-256 of a received file
//   rtcsvc.outgoing(peerId) tracks we send to that peer [{kind, id, label}]
//   rtcsvc.remoteTracks(id) tracks we receive [{kind, readyState, muted, enabled}]
//   rtcsvc.newRoomName()    a fresh random room name
// ---------------------------------------------------------------------------

function peerSnapshot(call, id) {
  const link = call.links.get(id);
  const info = call.info.get(id) || {};
  return {
    id,
    short: shortId(id),
    name: call.displayName(id),
    connectionState: link.pc.connectionState,
    iceConnectionState: link.pc.iceConnectionState,
    signalingState: link.pc.signalingState,
    channelOpen: link.channels.isOpen,
    polite: link.polite,
    muted: !!info.muted,
    cameraOff: !!info.cameraOff,
    sharing: !!info.sharing,
    sas: link.sas ? link.sas.text : null,
    path: link.path,
    stats: { ...link.stats },
    restarts: link.restarts,
  };
}

window.rtcsvc = Object.freeze({
  get state() {
    const call = app.call;
    return {
      view: document.body.dataset.view || null,
      room: app.room,
      id: call ? call.id : null,
      joined: !!(call && call.joined && !call.ended),
      signaling: call ? call.signaling.status : "closed",
      maxPeers: call ? call.maxPeers : null,
      media: app.media ? { mode: app.media.mode, problem: app.media.problem, muted: app.media.muted, cameraOff: app.media.cameraOff, sharing: !!app.media.screenTrack } : null,
      selfCorner: app.selfView ? app.selfView.corner : null,
      notices: [...app.notices],
      peers: call ? [...call.links.keys()].map((id) => peerSnapshot(call, id)) : [],
    };
  },
  async sas(peerId) {
    const link = app.call && app.call.links.get(peerId);
    if (!link) return null;
    await link._updateSas();
    return link.sas ? link.sas.text : null;
  },
  async sasOf(a, b) {
    return (await sasOfFingerprints(a, b)).text;
  },
  fingerprints(peerId) {
    const link = app.call && app.call.links.get(peerId);
    if (!link) return null;
    return {
      local: link.pc.localDescription && fingerprintOf(link.pc.localDescription.sdp),
      remote: link.pc.remoteDescription && fingerprintOf(link.pc.remoteDescription.sdp),
    };
  },
  sendChat(text) {
    return app.call ? app.call.sendChat(text) : false;
  },
  get chat() {
    return app.call ? app.call.chatLog.map((e) => ({ ...e })) : [];
  },
  get transfers() {
    return app.call ? app.call.transfers.map(({ blob, ...t }) => ({ ...t })) : [];
  },
  async receivedSha256(transferId) {
    // The CSP (connect-src 'self') keeps fetch() away from blob: URLs, so read the Blob itself.
    const t = app.call && app.call.transfers.find((x) => x.id === transferId && x.blob);
    if (!t) return null;
    const digest = new Uint8Array(await crypto.subtle.digest("SHA-256", await t.blob.arrayBuffer()));
    return Array.from(digest, (x) => x.toString(16).padStart(2, "0")).join("");
  },
  outgoing(peerId) {
    const link = app.call && app.call.links.get(peerId);
    return link ? link.outgoingTracks() : [];
  },
  remoteTracks(peerId) {
    const link = app.call && app.call.links.get(peerId);
    return link
      ? link.remoteStream.getTracks().map((t) => ({ kind: t.kind, id: t.id, readyState: t.readyState, muted: t.muted, enabled: t.enabled }))
      : [];
  },
  newRoomName,
  parseRoom,
});

boot();
