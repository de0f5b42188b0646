// The lobby, before entering a room: the camera preview with the microphone and camera
// toggles and a microphone level meter, the camera and microphone pickers, your name, and
// the link to share (with a copy button), so the person who starts a call can send it
// before anyone is there. "Join call" hands over to the call (callview.js).

import { $, showView } from "./views.js";
import { LocalMedia } from "./media.js";
import { MicLevel } from "./level.js";
import { initials, mediaProblemText } from "./text.js";
import { refreshDevices } from "./devices.js";
import { renderControls } from "./controls.js";

const NAME_KEY = "rtcsvc.name";
export function savedName() {
  try { return localStorage.getItem(NAME_KEY) || ""; } catch { return ""; }
}
export function saveName(n) {
  try { localStorage.setItem(NAME_KEY, n); } catch { /* private mode */ }
}

let level = null;

/** Draw the lobby's preview from a media snapshot. */
export function renderPreview(m) {
  const preview = $("#preview");
  if (preview.srcObject !== m.stream) preview.srcObject = m.stream;
  $("#preview-box").classList.toggle("camera-off", m.cameraOff || !m.hasCamera);
  $("#preview-initials").textContent = initials($("#name-input").value || "You");
  const note = $("#preview-note");
  const problem = mediaProblemText(m);
  note.textContent = problem || "";
  note.hidden = !problem;
  if (level) level.attach(m.hasAudio && !m.muted ? m.audioTrack : null);
}

export async function enterLobby(app, room) {
  app.room = room;
  showView("lobby");
  $("#lobby-link").value = app.inviteLink();
  $("#name-input").value = savedName();
  if (!app.media) {
    app.media = new LocalMedia();
    app.media.addEventListener("change", (ev) => app.mediaChanged(ev.detail));
    // The browser's own "Stop sharing" button ended the screen track.
    app.media.addEventListener("screen-ended", () => app.call && app.call.stopScreenShare());
    await app.media.start();
  }
  level = level || new MicLevel($("#mic-level"));
  const m = app.media.view();
  renderPreview(m);
  renderControls(m);
  await refreshDevices(app.media);
  document.body.classList.add("media-ready");
}

export function leaveLobby() {
  if (level) level.close();
  level = null;
}

export function initLobby(app, { onJoin }) {
  $("#join-now").addEventListener("click", () => {
    const name = $("#name-input").value.trim().slice(0, 40);
    saveName(name);
    leaveLobby();
    onJoin(name);
  });
  $("#name-input").addEventListener("keydown", (ev) => {
    if (ev.key === "Enter") $("#join-now").click();
  });
  $("#name-input").addEventListener("input", () => {
    $("#preview-initials").textContent = initials($("#name-input").value || "You");
  });
}
