// The chat panel's log: messages and file cards, in arrival order. Chat text is
// untrusted and only ever set as text. A file card is keyed by direction and transfer id
// (one card per transfer, updated in place) and drawn from the transfer the call's event
// carries; its words come from text.js.

import { transferText } from "./text.js";

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

  /** Whether this transfer has no card yet. */
  isNew(t) {
    return !this.transferItems.has(`${t.direction}:${t.id}`);
  }

  updateTransfer(t) {
    const key = `${t.direction}:${t.id}`;
    let li = this.transferItems.get(key);
    if (!li) {
      li = document.createElement("li");
      li.className = `transfer transfer-${t.direction}`;
      li.dataset.transfer = t.id;
      const head = document.createElement("p");
      head.className = "transfer-head";
      const bar = document.createElement("progress");
      bar.max = 1;
      bar.value = 0;
      const status = document.createElement("p");
      status.className = "transfer-status";
      li.append(head, bar, status);
      this.transferItems.set(key, li);
      this._append(li);
    }
    const [head, bar, status] = li.children;
    const words = transferText(t);
    head.textContent = words.heading;
    bar.value = t.progress;
    bar.setAttribute("aria-label", `${t.name}: ${Math.round(t.progress * 100)} %`);
    li.dataset.progress = String(Math.round(t.progress * 100));
    li.classList.toggle("done", !!t.done && !t.failed);
    li.classList.toggle("failed", !!t.failed);
    if (t.direction === "in" && t.url && !t.failed) {
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
    } else {
      status.textContent = words.status;
    }
  }
}
