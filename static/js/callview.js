// The call screen, fed by the Call's events: the tiles, who is presenting, the security
// codes, the chat and file cards, the people count, and the notices (toasts, the banner,
// or the refused screen). Every handler draws from the data its event carries; nothing
// here reads the call's links or peer connections.

import { Call } from "./call.js";
import { $, showView, showBanner, hideBanner, toast } from "./views.js";
import { netText, noticeText, peopleText, presentingText, transferToast } from "./text.js";
import { TileGrid } from "./tiles.js";
import { ChatLog } from "./chatlog.js";
import { SecurityList } from "./security.js";
import { openPanel, setUnread } from "./controls.js";
import { renderSelf } from "./selfview.js";

export class CallView {
  constructor(app) {
    this.app = app;
    this.grid = new TileGrid($("#grid"), $("#self"));
    this.chat = new ChatLog($("#chat-log"), {
      onAction: (key, action) => {
        // A card of an earlier call (before Leave and Rejoin) is only dismissed.
        const known = this.app.call && this.app.call.answerTransfer(key, action);
        if (!known && action === "dismiss") this.chat.removeTransfer(key);
      },
    });
    this.security = new SecurityList($("#security-list"));
    this.presenters = new Map(); // peer id -> name, of those sharing a screen
  }

  reset() {
    this.grid.clear();
    this.security.clear();
    this.presenters.clear();
    this._renderPresenting();
    this._renderCount(0);
  }

  _renderCount(n) {
    document.body.classList.toggle("alone", n === 0);
    $("#people-count").textContent = peopleText(n);
    $("#btn-security").hidden = n === 0;
    if (n === 0 && !$("#security").hidden) openPanel(this.app, null);
  }

  _renderPresenting() {
    const selfSharing = !!(this.app.media && this.app.media.screenTrack);
    const text = presentingText({ self: selfSharing, others: [...this.presenters.values()] });
    $("#presenting").hidden = !text;
    $("#presenting-text").textContent = text;
    $("#stop-presenting").hidden = !selfSharing;
    document.body.classList.toggle("presenting", !!text);
  }

  _setNet(status) {
    $("#net-dot").dataset.status = status;
    $("#net-text").textContent = netText(status);
  }

  _showPeer(peer) {
    this.grid.show(peer);
    this.security.show(peer);
    if (peer.sharing) this.presenters.set(peer.id, peer.name);
    else this.presenters.delete(peer.id);
    this._renderPresenting();
  }

  _dropPeer(id) {
    this.grid.remove(id);
    this.security.remove(id);
    this.presenters.delete(id);
    this._renderPresenting();
  }

  _notice(code, detail = {}) {
    const n = noticeText(code, detail);
    if (n.screen) {
      $("#refused-title").textContent = n.title;
      $("#refused-text").textContent = n.text;
      $("#refused-retry").hidden = code !== "room-full";
      $("#refused-retry").disabled = false;
      $("#refused-retry").textContent = "Try again";
      hideBanner();
      showView("refused");
    } else if (n.banner) {
      const action = code === "superseded"
        ? { label: "Use this window", run: () => { hideBanner(); this.app.call.signaling.restart(); } }
        : null;
      showBanner(code, n.text, action);
    } else {
      if (code === "resumed" || code === "rejoined") hideBanner();
      toast(n.text, { code, kind: n.kind });
    }
  }

  /** Start a call in `room` as `name`: a new Call wired to this view. */
  start(room, name) {
    const app = this.app;
    hideBanner();
    showView("call");
    $("#call-room").textContent = room;
    $("#call-link").value = app.inviteLink();
    $("#call-name").value = name;
    document.title = `rtcsvc · ${room.slice(0, 8)}…`;
    this.reset();
    setUnread(app, 0);
    this._setNet("connecting");
    const call = new Call(room, app.media, { name, token: app.token });
    app.call = call;
    renderSelf(app.media.view(), name);

    const problem = app.media.view();
    if (problem.mode !== "full") {
      this._notice(problem.problem === "denied" ? "media-denied" : "media-absent", problem);
    }

    call.addEventListener("signaling", (ev) => {
      this._setNet(ev.detail.status);
      if (ev.detail.status === "open") {
        hideBanner("server-unreachable");
        hideBanner("connection-lost");
      }
    });
    call.addEventListener("joined", (ev) => {
      if (ev.detail.rejoined) this.reset();
      // Let in after "Try again" on the refused screen.
      if (document.body.dataset.view === "refused") showView("call");
    });
    call.addEventListener("peer-added", (ev) => this._showPeer(ev.detail.peer));
    call.addEventListener("peer-state", (ev) => this._showPeer(ev.detail.peer));
    call.addEventListener("peer-media", (ev) => this.grid.show(ev.detail.peer));
    call.addEventListener("peer-sas", (ev) => this.security.show(ev.detail.peer));
    call.addEventListener("peer-stats", (ev) => {
      this.grid.show(ev.detail.peer);
      this.security.show(ev.detail.peer);
    });
    call.addEventListener("peer-removed", (ev) => this._dropPeer(ev.detail.id));
    call.addEventListener("membership", (ev) => this._renderCount(ev.detail.count));
    call.addEventListener("chat", (ev) => {
      this.chat.addMessage(ev.detail);
      if (!ev.detail.self && $("#side").hidden) {
        setUnread(app, app.unread + 1);
        toast(`${ev.detail.name}: ${ev.detail.text.slice(0, 80)}`, { code: "chat" });
      }
    });
    call.addEventListener("transfer", (ev) => {
      const t = ev.detail.transfer;
      const fresh = this.chat.isNew(t);
      this.chat.updateTransfer(t);
      const news = fresh ? transferToast(t) : null;
      if (news) {
        if (t.state === "offered") openPanel(app, "side");
        toast(news, { code: "file", kind: t.state === "refused" ? "warn" : "info" });
      }
    });
    call.addEventListener("transfer-removed", (ev) => this.chat.removeTransfer(ev.detail.key));
    call.addEventListener("notice", (ev) => {
      const d = ev.detail;
      this._notice(d.code, d);
      if (d.code === "room-full" || d.code === "not-invited") this._setNet("closed");
    });
    call.join();
    return call;
  }

  /** The person pressed Leave: end the call and show the screen after it. */
  leave() {
    const call = this.app.call;
    if (call && call.media.screenTrack) call.stopScreenShare();
    if (call) call.leave();
    this.reset();
    hideBanner();
    openPanel(this.app, null);
    showView("left");
  }

  /** Our own media changed (mute, camera, sharing): the self-view and the presenting strip follow. */
  mediaChanged(m) {
    renderSelf(m, this.app.call ? this.app.call.name : "");
    this._renderPresenting();
  }
}
