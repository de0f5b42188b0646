// Entry point: routing (/ is the landing page, /r/<room> the lobby then the call, and
// the screens after it), and wiring the modules together. Each screen's drawing lives in
// its own module: lobby.js, callview.js (with tiles.js, selfview.js, chatlog.js,
// security.js), controls.js; the words in text.js; room names and links in rooms.js.

import { webrtcSupport } from "./media.js";
import { newRoomName, parseRoom, roomFromPath, inviteTokenFrom, inviteLink } from "./rooms.js";
import { noticeText } from "./text.js";
import { $, showView, showBanner, toast } from "./views.js";
import { initSelfView } from "./selfview.js";
import { initFileDrop } from "./filedrop.js";
import { initDevicePickers } from "./devices.js";
import { enterLobby, initLobby, leaveLobby, renderPreview, saveName } from "./lobby.js";
import { initControls, openPanel, renderControls } from "./controls.js";
import { CallView } from "./callview.js";
import { installHook } from "./hook.js";

const app = {
  room: null,
  token: inviteTokenFrom(window.location.search),
  media: null,
  call: null,
  unread: 0,
  inviteLink: () => inviteLink(window.location.origin, app.room, app.token),
  mediaChanged: () => {},
};

function go(path) {
  history.pushState({}, "", path);
  app.token = inviteTokenFrom(window.location.search);
  route();
}

function initLanding() {
  $("#start").addEventListener("click", () => go(`/r/${newRoomName()}`));
  $("#join-form").addEventListener("submit", (ev) => {
    ev.preventDefault();
    const input = $("#join-input");
    const room = parseRoom(input.value, window.location.origin);
    if (!room) {
      $("#join-error").textContent = "That is not a room link or name (letters, digits, - and _ only).";
      input.setAttribute("aria-invalid", "true");
      input.focus();
      return;
    }
    $("#join-error").textContent = "";
    input.removeAttribute("aria-invalid");
    // A pasted invite link of a closed room keeps its token.
    let search = "";
    try { search = new URL(input.value.trim(), window.location.origin).search; } catch { /* a bare name */ }
    const token = inviteTokenFrom(search);
    go(`/r/${room}${token ? `?token=${encodeURIComponent(token)}` : ""}`);
  });
}

function route() {
  const room = roomFromPath(window.location.pathname);
  if (app.call && !app.call.ended && app.call.room !== room) {
    app.call.leave();
    view.reset();
  }
  if (room) {
    if (app.call && !app.call.ended && app.call.room === room) return;
    enterLobby(app, room);
  } else {
    leaveLobby();
    showView("landing");
    document.title = "rtcsvc · video call";
  }
}

const view = new CallView(app);

function boot() {
  initLanding();
  initLobby(app, { onJoin: (name) => view.start(app.room, name) });
  initControls(app, { onLeave: () => view.leave() });
  initDevicePickers(app, {
    onError: (kind) => toast(`Could not switch ${kind === "video" ? "camera" : "microphone"}.`, { kind: "warn" }),
  });
  initSelfView({
    stage: $("#stage"),
    self: $("#self"),
    onMove: (corner) => toast(`Your video moved to the ${corner.replace("-", " ")} corner.`, { code: "self-moved", ms: 1500 }),
  });
  initFileDrop({
    stage: $("#stage"),
    overlay: $("#drop-overlay"),
    onFiles: (files) => {
      openPanel(app, "side");
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
  $("#call-name").addEventListener("change", (ev) => {
    const name = ev.target.value.trim().slice(0, 40);
    saveName(name);
    if (app.call) app.call.setName(name);
    view.mediaChanged(app.media.view());
  });
  $("#rejoin").addEventListener("click", () => view.start(app.room, app.call ? app.call.name : ""));
  $("#refused-retry").addEventListener("click", (ev) => {
    ev.currentTarget.disabled = true;
    ev.currentTarget.textContent = "Trying…";
    if (app.call) app.call.signaling.restart();
  });
  $("#refused-new").addEventListener("click", () => {
    if (app.call) app.call.leave();
    view.reset();
    go(`/r/${newRoomName()}`);
  });
  app.mediaChanged = (m) => {
    renderPreview(m);
    renderControls(m);
    view.mediaChanged(m);
  };
  installHook(app);
  window.addEventListener("popstate", () => {
    app.token = inviteTokenFrom(window.location.search);
    route();
  });

  if (!webrtcSupport().ok) {
    showBanner("no-webrtc", noticeText("no-webrtc").text);
    showView("landing");
    $("#start").disabled = true;
    return;
  }
  route();
}

boot();
