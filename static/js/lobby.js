// The lobby, before entering a room: the camera preview with the microphone and camera
// toggles and a microphone level meter, the camera and microphone pickers, your name, and
// the link to share (with a copy button), so the person who starts a call can send it
// before anyone is there. "Join call" hands over to the call (callview.js). Once the camera
// preview runs, the network check (netcheck.js) runs by itself and says whether calls will
// work from here; "Check again" reruns it, and its report can be copied for IT.

import { $, showView, toast } from "./views.js";
import { LocalMedia } from "./media.js";
import { MicLevel } from "./level.js";
import { initials, mediaProblemText } from "./text.js";
import { refreshDevices } from "./devices.js";
import { renderControls } from "./controls.js";
import { runNetworkCheck } from "./netcheck.js";
import { detailLines, itReport } from "./verdict.js";

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
  // After the camera: with its permission the browser shows real candidates, which the
  // check compares (in the page only) to tell a NAT that changes ports.
  checkNetwork(app);
}

let checking = null;
let stopChecking = null; // aborts the running check when the person leaves the lobby
let report = "";

/** Run the network check once at a time and draw its progress and verdict. */
export function checkNetwork(app) {
  if (checking) return checking;
  const box = $("#netcheck");
  const verdict = $("#netcheck-verdict");
  box.dataset.state = "running";
  box.setAttribute("aria-busy", "true");
  $("#netcheck-again").disabled = true;
  $("#netcheck-details").replaceChildren();
  verdict.textContent = "Checking your network…";
  stopChecking = new AbortController();
  checking = runNetworkCheck({
    room: app.room, token: app.token, signal: stopChecking.signal,
    onProgress: (text) => { verdict.textContent = text; },
  }).then(({ obs, result }) => {
    box.dataset.state = result.verdict;
    box.dataset.transport = result.transport || "none";
    verdict.textContent = result.headline;
    $("#netcheck-details").replaceChildren(...detailLines(obs).map((line) => {
      const li = document.createElement("li");
      li.textContent = line;
      return li;
    }));
    report = itReport(obs, result);
    $("#netcheck-report").textContent = report;
    $("#netcheck-copy").disabled = false;
  }, () => {
    box.dataset.state = "error";
    verdict.textContent = "The network check could not run in this browser.";
  }).finally(() => {
    checking = null;
    stopChecking = null;
    box.removeAttribute("aria-busy");
    $("#netcheck-again").disabled = false;
  });
  return checking;
}

export function leaveLobby() {
  if (level) level.close();
  level = null;
  if (stopChecking) stopChecking.abort();
}

export function initLobby(app, { onJoin }) {
  $("#netcheck-again").addEventListener("click", () => checkNetwork(app));
  $("#netcheck-copy").addEventListener("click", async () => {
    try {
      await navigator.clipboard.writeText(report);
      toast("Report copied: paste it into a message to your IT department.", { ms: 4000 });
    } catch {
      // The browser refused the clipboard: open the report to be selected by hand.
      $(".netcheck-more").open = true;
    }
  });
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
