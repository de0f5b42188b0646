// The DOM side: views, banner and toasts, the tile grid, the draggable self-view,
// chat and transfer items, the file drop zone and the device pickers. It only draws
// and forwards user intent through callbacks; call.js holds the state.
//
// No inline styles anywhere (the CSP forbids them): state is expressed with classes
// and data- attributes that app.css styles.

const $ = (sel, root = document) => root.querySelector(sel);

export function showView(name) {
  for (const v of ["landing", "lobby", "call", "left"]) $(`#${v}`).hidden = v !== name;
  document.body.dataset.view = name;
}

// ---- banner (blocking problems) and toasts (news) ----

export function showBanner(code, text, action = null) {
  const b = $("#banner");
  b.dataset.code = code;
  $("#banner-text").textContent = text;
  const btn = $("#banner-action");
  if (action) {
    btn.textContent = action.label;
    btn.onclick = action.run;
    btn.hidden = false;
  } else {
    btn.hidden = true;
    btn.onclick = null;
  }
  b.hidden = false;
}

export function hideBanner(code = null) {
  const b = $("#banner");
  if (code && b.dataset.code !== code) return;
  b.hidden = true;
  delete b.dataset.code;
}

export function toast(text, { code = "", kind = "info", ms = 4500 } = {}) {
  const list = $("#toasts");
  const li = document.createElement("li");
  li.className = `toast toast-${kind}`;
  if (code) li.dataset.code = code;
  li.textContent = text;
  list.append(li);
  while (list.children.length > 4) list.firstElementChild.remove();
  setTimeout(() => {
    li.classList.add("leaving");
    setTimeout(() => li.remove(), 300);
  }, ms);
}

// ---- tiles ----

function initials(name) {
  const parts = String(name).trim().split(/\s+/).filter(Boolean);
  if (!parts.length) return "?";
  return (parts[0][0] + (parts.length > 1 ? parts[parts.length - 1][0] : "")).toUpperCase();
}

function fmtStats(s) {
  const bits = [];
  if (s.rttMs !== null && s.rttMs !== undefined) bits.push(`RTT ${Math.round(s.rttMs)} ms`);
  if (s.kbps !== null && s.kbps !== undefined) {
    bits.push(s.kbps >= 1000 ? `${(s.kbps / 1000).toFixed(1)} Mb/s` : `${Math.round(s.kbps)} kb/s`);
  }
  if (s.lossPct !== null && s.lossPct !== undefined) bits.push(`loss ${s.lossPct.toFixed(1)} %`);
  return bits.join(" · ") || "measuring…";
}

export class TileGrid {
  constructor(grid) {
    this.grid = grid;
    this.tiles = new Map();
    this.template = $("#tile-template");
  }

  ensure(id) {
    let tile = this.tiles.get(id);
    if (tile) return tile;
    tile = this.template.content.firstElementChild.cloneNode(true);
    tile.dataset.peer = id;
    tile.dataset.conn = "new";
    this.tiles.set(id, tile);
    this.grid.append(tile);
    this._count();
    return tile;
  }

  remove(id) {
    const tile = this.tiles.get(id);
    if (!tile) return;
    const v = $("video", tile);
    v.srcObject = null;
    tile.remove();
    this.tiles.delete(id);
    this._count();
  }

  clear() {
    for (const id of [...this.tiles.keys()]) this.remove(id);
  }

  _count() {
    const n = this.tiles.size;
    this.grid.dataset.count = String(n);
    document.body.classList.toggle("alone", n === 0);
  }

  setStream(id, stream) {
    const tile = this.ensure(id);
    const v = $("video", tile);
    if (v.srcObject !== stream) v.srcObject = stream;
    const p = v.play();
    if (p && p.catch) p.catch(() => tile.classList.add("needs-gesture"));
  }

  update(id, { name, info, connectionState, quality }) {
    const tile = this.ensure(id);
    $(".tile-name", tile).textContent = name;
    $(".initials", tile).textContent = initials(name);
    tile.setAttribute("aria-label", `${name}${info.muted ? ", muted" : ""}${info.cameraOff ? ", camera off" : ""}`);
    tile.classList.toggle("muted", !!info.muted);
    tile.classList.toggle("camera-off", !!info.cameraOff);
    tile.classList.toggle("sharing", !!info.sharing);
    tile.dataset.conn = connectionState;
    const poor = quality === "poor" || connectionState === "disconnected" || connectionState === "failed";
    tile.classList.toggle("poor", poor);
    tile.dataset.quality = poor ? "poor" : quality || "unknown";
    const q = $(".quality", tile);
    q.textContent = poor ? "Poor connection" : "";
    let status = "";
    if (connectionState === "new" || connectionState === "connecting") status = "Connecting…";
    else if (connectionState === "disconnected") status = "Reconnecting…";
    else if (connectionState === "failed") status = "Connection lost, retrying…";
    $(".tile-status", tile).textContent = status;
  }

  setSas(id, sas) {
    const tile = this.ensure(id);
    $(".sas", tile).textContent = sas ? sas.text : "";
    $(".sas-short", tile).textContent = sas ? sas.emoji : "…";
    $(".tile-info summary", tile).setAttribute("aria-label", sas ? `Security code: ${sas.words}` : "Security code pending");
    tile.dataset.sas = sas ? sas.words : "";
  }

  setStats(id, stats) {
    const tile = this.tiles.get(id);
    if (!tile) return;
    $(".stats", tile).textContent = fmtStats(stats);
  }
}

// ---- the draggable self-view (HTML5 drag and drop + keyboard) ----

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
    $("#self-corner").textContent = c.replace("-", " ");
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

// ---- file drop anywhere on the call ----

export function initFileDrop({ stage, overlay, onFiles }) {
  let depth = 0;
  const hasFiles = (ev) => ev.dataTransfer && [...ev.dataTransfer.types].includes("Files");
  stage.addEventListener("dragenter", (ev) => {
    if (!hasFiles(ev)) return;
    ev.preventDefault();
    depth += 1;
    overlay.classList.add("show");
  });
  stage.addEventListener("dragover", (ev) => {
    if (!hasFiles(ev)) return;
    ev.preventDefault();
    ev.dataTransfer.dropEffect = "copy";
  });
  stage.addEventListener("dragleave", (ev) => {
    if (!hasFiles(ev)) return;
    depth = Math.max(0, depth - 1);
    if (depth === 0) overlay.classList.remove("show");
  });
  stage.addEventListener("drop", (ev) => {
    if (!hasFiles(ev)) return;
    ev.preventDefault();
    depth = 0;
    overlay.classList.remove("show");
    const files = [...ev.dataTransfer.files];
    if (files.length) onFiles(files);
  });
  // Never let a file dropped beside the stage navigate away from the call.
  window.addEventListener("dragover", (ev) => { if (hasFiles(ev)) ev.preventDefault(); });
  window.addEventListener("drop", (ev) => { if (hasFiles(ev)) ev.preventDefault(); });
}

// ---- chat log and transfers ----

export function fmtBytes(n) {
  if (n < 1024) return `${n} B`;
  const units = ["KB", "MB", "GB"];
  let v = n / 1024;
  let i = 0;
  while (v >= 1024 && i < units.length - 1) { v /= 1024; i += 1; }
  return `${v < 10 ? v.toFixed(1) : Math.round(v)} ${units[i]}`;
}

export class ChatLog {
  constructor(list) {
    this.list = list;
    this.transferItems = new Map();
  }

  _append(li) {
    const atBottom = this.list.scrollHeight - this.list.scrollTop - this.list.clientHeight < 40;
    this.list.append(li);
    if (atBottom) this.list.scrollTop = this.list.scrollHeight;
  }

  addMessage({ name, text, self, at }) {
    const li = document.createElement("li");
    li.className = self ? "msg msg-self" : "msg";
    const who = document.createElement("span");
    who.className = "msg-who";
    who.textContent = name;
    const time = document.createElement("time");
    const d = new Date(at);
    time.dateTime = d.toISOString();
    time.textContent = d.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
    const body = document.createElement("p");
    body.className = "msg-text";
    body.textContent = text; // never innerHTML: chat is untrusted
    li.append(who, time, body);
    this._append(li);
  }

  addNote(text) {
    const li = document.createElement("li");
    li.className = "note";
    li.textContent = text;
    this._append(li);
  }

  updateTransfer(t) {
    let li = this.transferItems.get(`${t.direction}:${t.id}`);
    if (!li) {
      li = document.createElement("li");
      li.className = `transfer transfer-${t.direction}`;
      li.dataset.transfer = t.id;
      li.dataset.direction = t.direction;
      const head = document.createElement("p");
      head.className = "transfer-head";
      const bar = document.createElement("progress");
      bar.max = 1;
      bar.value = 0;
      const status = document.createElement("p");
      status.className = "transfer-status";
      li.append(head, bar, status);
      this.transferItems.set(`${t.direction}:${t.id}`, li);
      this._append(li);
    }
    const [head, bar, status] = li.children;
    const label = `${t.name} (${fmtBytes(t.size)}${t.type ? `, ${t.type}` : ""})`;
    head.textContent = t.direction === "out" ? `You are sending ${label}` : `${t.fromName} sent ${label}`;
    bar.value = t.progress;
    bar.setAttribute("aria-label", `${t.name}: ${Math.round(t.progress * 100)} %`);
    li.dataset.progress = String(Math.round(t.progress * 100));
    li.classList.toggle("done", !!t.done && !t.failed);
    li.classList.toggle("failed", !!t.failed);
    if (t.failed) {
      status.textContent = `Failed: ${t.failed}`;
    } else if (t.direction === "in" && t.url) {
      if (!status.querySelector("a")) {
        status.textContent = "";
        const a = document.createElement("a");
        a.href = t.url;
        a.download = t.name;
        a.className = "btn btn-small download";
        a.textContent = `Download ${t.name}`;
        a.dataset.size = String(t.size);
        a.dataset.type = t.type || "";
        status.append(a);
      }
    } else if (t.done) {
      status.textContent = "Delivered";
    } else {
      status.textContent = `${Math.round(t.progress * 100)} %`;
    }
  }
}

// ---- device pickers ----

export function fillDeviceSelect(select, devices, currentId, fallbackLabel) {
  select.textContent = "";
  if (!devices.length) {
    const o = document.createElement("option");
    o.textContent = `No ${fallbackLabel}`;
    o.value = "";
    select.append(o);
    select.disabled = true;
    return;
  }
  select.disabled = false;
  devices.forEach((d, i) => {
    const o = document.createElement("option");
    o.value = d.deviceId;
    o.textContent = d.label || `${fallbackLabel} ${i + 1}`;
    if (d.deviceId === currentId) o.selected = true;
    select.append(o);
  });
}
