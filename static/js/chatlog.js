// The chat panel's log: messages and file cards, in arrival order. Chat text is
// untrusted and only ever set as text. A file card is keyed by the transfer's key (its
// direction, for incoming files its sender, and its id: one card per transfer, updated in
// place, and nothing one peer sends can reach another peer's card), drawn from the transfer
// the call's event carries; its words come from text.js (retry.js for a transfer the connection
// interrupted). Its buttons (Accept and Decline an offer, Dismiss a finished card, Send again an
// interrupted outgoing file) and its Download link report back through `onAction(key, action)`. Each sender keeps its newest LIMITS.chatPerPeer messages on screen.

import { transferText } from "./text.js";
import { retryText, sendAgainTo } from "./retry.js";
import { LIMITS } from "./intake.js";

let cardCount = 0;

export class ChatLog {
  constructor(list, { onAction = () => {} } = {}) {
    this.list = list;
    this.onAction = onAction;
    this.transferItems = new Map(); // transfer key -> li
    this.messagesByFrom = new Map(); // sender id -> its message items, oldest first
  }

  _append(li) {
    const atBottom = this.list.scrollHeight - this.list.scrollTop - this.list.clientHeight < 40;
    this.list.append(li);
    if (atBottom) this.list.scrollTop = this.list.scrollHeight;
  }

  addMessage({ from, name, text, self, at }) {
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
    body.dir = "auto";
    body.textContent = text; // never innerHTML: chat is untrusted
    li.append(who, time, body);
    this._append(li);
    const mine = this.messagesByFrom.get(from) || [];
    mine.push(li);
    this.messagesByFrom.set(from, mine);
    while (mine.length > LIMITS.chatPerPeer) mine.shift().remove();
  }

  /** Whether this transfer has no card yet. */
  isNew(t) {
    return !this.transferItems.has(t.key);
  }

  removeTransfer(key) {
    const li = this.transferItems.get(key);
    if (!li) return;
    const hadFocus = li.contains(document.activeElement);
    li.remove();
    this.transferItems.delete(key);
    if (hadFocus) document.getElementById("chat-input")?.focus();
  }

  _button(label, className, action, key, head) {
    const b = document.createElement("button");
    b.type = "button";
    b.className = `btn btn-small ${className}`;
    b.textContent = label;
    b.setAttribute("aria-describedby", head.id);
    b.addEventListener("click", () => this.onAction(key, action));
    return b;
  }

  updateTransfer(t) {
    let li = this.transferItems.get(t.key);
    if (!li) {
      li = document.createElement("li");
      li.className = `transfer transfer-${t.direction}`;
      li.dataset.transfer = t.id;
      li.tabIndex = -1; // focus lands on the card when the button pressed in it goes
      const head = document.createElement("p");
      head.className = "transfer-head";
      head.id = `transfer-head-${++cardCount}`;
      const bar = document.createElement("progress");
      bar.max = 1;
      bar.value = 0;
      const status = document.createElement("p");
      status.className = "transfer-status";
      const actions = document.createElement("div");
      actions.className = "transfer-actions";
      li.append(head, bar, status, actions);
      this.transferItems.set(t.key, li);
      this._append(li);
    }
    const [head, bar, status, actions] = li.children;
    const words = retryText(t) || transferText(t);
    head.textContent = words.heading;
    status.textContent = words.status;
    bar.value = t.progress || 0;
    bar.setAttribute("aria-label", `${t.name}: ${Math.round((t.progress || 0) * 100)} %`);
    li.dataset.progress = String(Math.round((t.progress || 0) * 100));
    const state = t.direction === "in" ? t.state : t.done ? (t.failed ? "failed" : "done") : "sending";
    const failed = t.direction === "in" ? ["refused", "failed"].includes(state) : !!t.failed;
    bar.hidden = t.direction === "in" && !["receiving", "received", "saved"].includes(state);
    li.dataset.state = state;
    li.classList.toggle("done", !!(t.direction === "in" ? ["received", "saved"].includes(state) : t.done && !t.failed));
    li.classList.toggle("failed", failed);
    if (t.direction !== "in") {
      // An outgoing card has one control: "Send again", while the connection interrupted it.
      const again = sendAgainTo(t).length ? "send-again" : "";
      if ((actions.dataset.state || "") === again) return;
      const hadFocus = actions.contains(document.activeElement);
      actions.dataset.state = again;
      actions.replaceChildren();
      if (again) actions.append(this._button("Send again", "btn-primary", "send-again", t.key, head));
      if (hadFocus) (actions.querySelector("button") || li).focus();
      return;
    }
    if (actions.dataset.state === state) return;
    // The controls change only with the state (never under a pointer mid-transfer).
    const hadFocus = actions.contains(document.activeElement);
    actions.dataset.state = state;
    actions.replaceChildren();
    if (state === "offered") {
      actions.append(this._button("Accept", "btn-primary", "accept", t.key, head),
        this._button("Decline", "", "decline", t.key, head));
    } else if (state !== "receiving") {
      if (state === "received" && t.url) {
        const a = document.createElement("a");
        a.href = t.url;
        a.download = t.name;
        a.className = "btn btn-small download";
        a.textContent = `Download ${t.name}`;
        a.dataset.size = String(t.size);
        // After the click has started the download (the link must outlive its own click).
        a.addEventListener("click", () => setTimeout(() => this.onAction(t.key, "saved"), 0));
        actions.append(a);
      }
      actions.append(this._button("Dismiss", "btn-quiet", "dismiss", t.key, head));
    }
    if (hadFocus) (actions.querySelector("a, button") || li).focus();
  }
}
