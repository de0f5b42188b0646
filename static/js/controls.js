// The call's controls: the bar (microphone, camera, share, chat, devices, leave), the
// top bar's buttons (security codes, copy the invite link), the lobby's two toggles, the
// side panels they open, and "Stop presenting". Each button's visible label is the start
// of its accessible name; its state is in the label ("Mute" / "Unmute"), not in a second
// attribute that could disagree with it.

import { $, $$, toast } from "./views.js";
import { micToggle, camToggle } from "./text.js";

function setLabel(button, { label, more = "", off = false }) {
  $(".ctl-label", button).textContent = label;
  const rest = $(".ctl-more", button);
  if (rest) rest.textContent = more;
  button.classList.toggle("is-off", !!off);
}

/** Draw every microphone and camera toggle (bar and lobby) and the share button from a media snapshot. */
export function renderControls(m) {
  for (const b of $$(".ctl-mic")) {
    setLabel(b, micToggle(m));
    b.disabled = !m.hasAudio;
  }
  for (const b of $$(".ctl-cam")) {
    setLabel(b, camToggle(m));
    b.disabled = !m.hasCamera;
  }
  const share = $("#btn-share");
  setLabel(share, m.sharing ? { label: "Stop share", more: " screen", off: false } : { label: "Share", more: " screen" });
  share.classList.toggle("is-active", m.sharing);
  share.disabled = !(navigator.mediaDevices && navigator.mediaDevices.getDisplayMedia);
}

/** What a person is told when their screen share did not start, by ScreenShareError.problem. */
export function screenShareText(problem) {
  switch (problem) {
    case "denied": return "Screen sharing did not start: it was cancelled or not allowed. Press Share screen again and choose what to share.";
    case "system-denied": return "Screen sharing did not start: your computer does not let this browser record the screen. Allow it in the system's privacy settings, then try again.";
    case "blocked": return "Screen sharing is blocked on this page by the browser's settings or policy.";
    case "absent": return "Screen sharing did not start: the browser found no screen to share.";
    case "unreadable": return "Screen sharing did not start: the screen could not be captured (the system or another program stopped it). Try again.";
    case "unsupported": return "This browser cannot share a screen.";
    default: return "Screen sharing did not start because of an error in the browser. Try again.";
  }
}

const PANELS = { side: "#btn-chat", settings: "#btn-settings", security: "#btn-security" };

/** Open one side panel (or none): chat & files, devices, security codes. */
export function openPanel(app, which) {
  for (const [id, button] of Object.entries(PANELS)) {
    $(`#${id}`).hidden = id !== which;
    $(button).setAttribute("aria-expanded", String(id === which));
  }
  document.body.classList.toggle("side-open", !!which);
  if (which === "side") setUnread(app, 0);
}

export function setUnread(app, n) {
  app.unread = n;
  $("#unread-count").textContent = String(n);
  $("#unread").hidden = n === 0;
}

/** Put the invite link on the clipboard; when the browser refuses, show it to copy by hand. */
export async function copyLink(link, field = null) {
  try {
    await navigator.clipboard.writeText(link);
    toast("Invite link copied. Paste it to whoever you want to call.", { code: "copied", kind: "ok" });
  } catch {
    if (field) {
      field.focus();
      field.select();
      toast("Copying is blocked here: the link is selected, copy it with Ctrl+C or your menu.", { kind: "warn" });
    } else {
      toast(`Copy this link: ${link}`, { kind: "warn", ms: 15000 });
    }
  }
}

export function initControls(app, { onLeave }) {
  const media = () => app.media;
  const toggleMic = () => {
    const m = media();
    if (!m) return;
    if (app.call) app.call.setMuted(!m.muted);
    else m.setMuted(!m.muted);
  };
  const toggleCam = () => {
    const m = media();
    if (!m) return;
    if (app.call) app.call.setCameraOff(!m.cameraOff);
    else m.setCameraOff(!m.cameraOff);
  };
  for (const b of $$(".ctl-mic")) b.addEventListener("click", toggleMic);
  for (const b of $$(".ctl-cam")) b.addEventListener("click", toggleCam);

  const share = async () => {
    if (!app.call) return;
    if (app.media.screenTrack) {
      await app.call.stopScreenShare();
      return;
    }
    let problem = null;
    try {
      if (!(await app.call.startScreenShare())) problem = "absent";
    } catch (err) {
      problem = err && err.problem ? err.problem : "failed";
      if (!(err && err.problem)) console.warn("screen share:", err);
    }
    // Said where the person looks (a toast over the stage, read out politely), long enough to read.
    if (problem) toast(screenShareText(problem), { code: "screen-share", kind: "warn", ms: 12000 });
  };
  $("#btn-share").addEventListener("click", share);
  $("#stop-presenting").addEventListener("click", () => app.call && app.call.stopScreenShare());

  $("#btn-chat").addEventListener("click", () => {
    openPanel(app, $("#side").hidden ? "side" : null);
    if (!$("#side").hidden) $("#chat-input").focus();
  });
  $("#btn-settings").addEventListener("click", () => openPanel(app, $("#settings").hidden ? "settings" : null));
  $("#btn-security").addEventListener("click", () => openPanel(app, $("#security").hidden ? "security" : null));
  for (const id of ["#side-close", "#settings-close", "#security-close"]) {
    $(id).addEventListener("click", () => openPanel(app, null));
  }
  document.addEventListener("keydown", (ev) => {
    if (ev.key === "Escape" && document.body.classList.contains("side-open")) openPanel(app, null);
  });

  $("#btn-leave").addEventListener("click", onLeave);

  for (const b of $$(".copy-link")) {
    b.addEventListener("click", () => {
      const row = b.closest(".row");
      copyLink(app.inviteLink(), row ? $(".link-field", row) : null);
    });
  }
  for (const f of $$(".link-field")) f.addEventListener("focus", () => f.select());
}
