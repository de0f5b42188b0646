// The stage's grid: one tile per remote peer, plus the self-view, laid out by how many
// people are in the call. Alone and one-to-one, the self-view floats in a corner (see
// selfview.js); with two or more others it takes its own place in the grid, so it never
// covers anyone. When someone in a group call presents their screen, their tile is the
// spotlight: it takes the large area and everybody else (the self-view too) moves to a strip
// beside or below it (app.css); the newest presenter wins, and when they stop the spotlight
// passes to another presenter or the equal grid comes back. Your own shared screen stays in
// your own cell: you see the faces of the people you present to. Each tile is drawn from the
// peer snapshot its call event carries (call.js `peerView`); nothing here reads the call back.

import { $ } from "./views.js";
import { initials, qualityText, tileStatus } from "./text.js";
import { ladderText, ladders } from "./escalation.js";

export class TileGrid {
  constructor(grid, self) {
    this.grid = grid;
    this.self = self;
    this.tiles = new Map();
    this.spotlight = null; // the id of the presenter whose tile takes the large area
    this.template = $("#tile-template");
    this._layout();
  }

  _ensure(id) {
    let tile = this.tiles.get(id);
    if (tile) return tile;
    tile = this.template.content.firstElementChild.cloneNode(true);
    tile.dataset.peer = id;
    tile.dataset.conn = "new";
    this.tiles.set(id, tile);
    this.grid.insertBefore(tile, this.self);
    this._layout();
    return tile;
  }

  remove(id) {
    const tile = this.tiles.get(id);
    if (!tile) return;
    $("video", tile).srcObject = null;
    tile.remove();
    this.tiles.delete(id);
    if (this.spotlight === id) this.spotlight = this._anotherPresenter();
    this._layout();
  }

  clear() {
    for (const id of [...this.tiles.keys()]) this.remove(id);
  }

  _layout() {
    const n = this.tiles.size;
    const layout = n === 0 ? "alone" : n === 1 ? "pair" : "mesh";
    this.grid.dataset.layout = layout;
    // In a mesh the self-view is one more cell of the grid.
    this.grid.dataset.count = String(layout === "mesh" ? n + 1 : n);
    this.self.draggable = layout !== "mesh";
    const focus = layout === "mesh" && this.spotlight !== null;
    if (focus) this.grid.dataset.focus = "presenter";
    else delete this.grid.dataset.focus;
    for (const [id, tile] of this.tiles) tile.classList.toggle("spotlight", focus && id === this.spotlight);
  }

  _anotherPresenter() {
    for (const [id, tile] of this.tiles) if (id !== this.spotlight && tile.classList.contains("sharing")) return id;
    return null;
  }

  /** Draw one peer from its snapshot {id, name, muted, cameraOff, sharing, connectionState, quality, stream}. */
  show(peer) {
    const tile = this._ensure(peer.id);
    if (peer.stream) {
      const v = $("video", tile);
      if (v.srcObject !== peer.stream) v.srcObject = peer.stream;
      const p = v.play();
      if (p && p.catch) p.catch(() => tile.classList.add("needs-gesture"));
    }
    $(".tile-name", tile).textContent = peer.name;
    $(".initials", tile).textContent = initials(peer.name);
    const about = [peer.name];
    if (peer.sharing) about.push("presenting");
    if (peer.muted) about.push("muted");
    if (peer.cameraOff) about.push("camera off");
    tile.setAttribute("aria-label", about.join(", "));
    tile.classList.toggle("muted", !!peer.muted);
    tile.classList.toggle("camera-off", !!peer.cameraOff && !peer.sharing);
    const wasSharing = tile.classList.contains("sharing");
    tile.classList.toggle("sharing", !!peer.sharing);
    if (peer.sharing && !wasSharing) this.spotlight = peer.id;
    else if (!peer.sharing && this.spotlight === peer.id) this.spotlight = this._anotherPresenter();
    if (!!peer.sharing !== wasSharing) this._layout();
    tile.dataset.conn = peer.connectionState;
    const broken = peer.connectionState === "disconnected" || peer.connectionState === "failed";
    const quality = broken ? "poor" : peer.quality;
    tile.dataset.quality = quality || "unknown";
    // Only a connection worth worrying about is labelled; a good one needs no mark.
    $(".quality", tile).textContent = quality === "fair" || quality === "poor" ? qualityText(quality) : "";
    // "Trying a relay…" / "Can't connect to …" while the call escalates, else the state.
    const ladder = ladderText(ladders.get(peer.id) || {}, peer.name);
    $(".tile-status", tile).textContent = ladder || tileStatus(peer.connectionState);
  }
}
