// The self-view: your own picture with your name, drawn from the local media's state,
// and its placement. Alone and one-to-one it floats in a corner of the stage, moved by
// HTML5 drag and drop into one of four docks or with the arrow keys; in a group call it
// is a cell of the grid (tiles.js) and stays put.

import { $ } from "./views.js";
import { initials } from "./text.js";

/** Draw the self-view from a media snapshot (media.js `view()`) and our name. */
export function renderSelf(m, name) {
  const self = $("#self");
  const video = $("#self-video");
  if (video.srcObject !== m.stream) video.srcObject = m.stream;
  const camOff = m.cameraOff || !m.hasCamera;
  self.classList.toggle("camera-off", camOff && !m.sharing);
  self.classList.toggle("muted", m.muted || !m.hasAudio);
  self.classList.toggle("sharing", m.sharing);
  video.classList.toggle("mirror", !m.sharing);
  $("#self-label").textContent = name ? `${name} (you)` : "You";
  $("#self-initials").textContent = initials(name || "You");
}

export const CORNERS = ["top-left", "top-right", "bottom-left", "bottom-right"];
const SELF_MIME = "application/x-rtcsvc-self-view";

export function initSelfView({ stage, self, onMove }) {
  let corner = "bottom-right";
  const docks = [...stage.querySelectorAll(".dock")];

  const place = (c, { announce = true } = {}) => {
    if (!CORNERS.includes(c)) return;
    corner = c;
    for (const k of CORNERS) self.classList.toggle(`corner-${k}`, k === c);
    self.dataset.corner = c;
    $("#self-corner").textContent = `In the ${c.replace("-", " ")} corner. Drag it, or press the arrow keys, to move it.`;
    document.body.dataset.selfCorner = c;
    if (announce && onMove) onMove(c);
  };

  self.addEventListener("dragstart", (ev) => {
    ev.dataTransfer.setData(SELF_MIME, "self");
    ev.dataTransfer.setData("text/plain", "rtcsvc self view");
    ev.dataTransfer.effectAllowed = "move";
    stage.classList.add("dragging-self");
  });
  self.addEventListener("dragend", () => {
    stage.classList.remove("dragging-self");
    for (const d of docks) d.classList.remove("over");
  });

  const isSelfDrag = (ev) => ev.dataTransfer && [...ev.dataTransfer.types].includes(SELF_MIME);

  for (const dock of docks) {
    dock.addEventListener("dragenter", (ev) => {
      if (!isSelfDrag(ev)) return;
      ev.preventDefault();
      dock.classList.add("over");
    });
    dock.addEventListener("dragover", (ev) => {
      if (!isSelfDrag(ev)) return;
      ev.preventDefault(); // allows the drop
      ev.dataTransfer.dropEffect = "move";
    });
    dock.addEventListener("dragleave", () => dock.classList.remove("over"));
    dock.addEventListener("drop", (ev) => {
      if (!isSelfDrag(ev)) return;
      ev.preventDefault();
      ev.stopPropagation();
      if (ev.dataTransfer.getData(SELF_MIME) !== "self") return;
      dock.classList.remove("over");
      stage.classList.remove("dragging-self");
      place(dock.dataset.corner);
    });
  }

  // Dropped elsewhere on the stage: dock in the nearest corner.
  stage.addEventListener("dragover", (ev) => {
    if (isSelfDrag(ev)) {
      ev.preventDefault();
      ev.dataTransfer.dropEffect = "move";
    }
  });
  stage.addEventListener("drop", (ev) => {
    if (!isSelfDrag(ev)) return;
    ev.preventDefault();
    stage.classList.remove("dragging-self");
    const r = stage.getBoundingClientRect();
    const v = ev.clientY < r.top + r.height / 2 ? "top" : "bottom";
    const h = ev.clientX < r.left + r.width / 2 ? "left" : "right";
    place(`${v}-${h}`);
  });

  // Keyboard: arrows move between corners.
  self.addEventListener("keydown", (ev) => {
    if (!self.draggable) return; // a cell of the grid (three or more people): no corners
    let [v, h] = corner.split("-");
    if (ev.key === "ArrowUp") v = "top";
    else if (ev.key === "ArrowDown") v = "bottom";
    else if (ev.key === "ArrowLeft") h = "left";
    else if (ev.key === "ArrowRight") h = "right";
    else return;
    ev.preventDefault();
    place(`${v}-${h}`);
  });

  return { place, get corner() { return corner; } };
}
