// The security-codes panel: for each person in the call, the short authentication string
// of your connection to them (sas.js) and how that connection is doing. One entry per
// peer, keyed by its id and drawn from the snapshot its call events carry.

import { $ } from "./views.js";
import { statsText } from "./text.js";

export class SecurityList {
  constructor(list) {
    this.list = list;
    this.items = new Map();
    this.template = $("#security-template");
  }

  show(peer) {
    let li = this.items.get(peer.id);
    if (!li) {
      li = this.template.content.firstElementChild.cloneNode(true);
      li.dataset.peer = peer.id;
      this.items.set(peer.id, li);
      this.list.append(li);
    }
    $(".security-name", li).textContent = peer.name;
    $(".sas", li).textContent = peer.sas ? peer.sas.text : "Waiting for the connection…";
    $(".link-quality", li).textContent = statsText(peer.stats);
  }

  remove(id) {
    const li = this.items.get(id);
    if (li) li.remove();
    this.items.delete(id);
  }

  clear() {
    for (const id of [...this.items.keys()]) this.remove(id);
  }
}
