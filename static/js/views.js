// Which screen is shown, and the two ways news reaches a person: the banner (a problem
// that blocks or interrupts, in the page's flow above the screen) and toasts (short news
// over the stage, on the side away from the self-view). Nothing here knows about calls.
//
// No inline styles anywhere (the CSP forbids them): state is expressed with classes and
// data- attributes that app.css styles.

export const $ = (sel, root = document) => root.querySelector(sel);
export const $$ = (sel, root = document) => [...root.querySelectorAll(sel)];

export const VIEWS = ["landing", "lobby", "call", "left", "refused"];

export function showView(name) {
  const changed = document.body.dataset.view !== name;
  for (const v of VIEWS) $(`#${v}`).hidden = v !== name;
  document.body.dataset.view = name;
  // Toasts live over the call's stage (placed away from the self-view), elsewhere over the page.
  const toasts = $("#toasts");
  const host = name === "call" ? $("#stage") : document.body;
  if (toasts.parentElement !== host) host.append(toasts);
  // A new screen: move keyboard and screen-reader focus to its heading (not in the call,
  // where focus stays on the control the person used).
  if (changed && name !== "call") {
    const h = $(`#${name} h1`);
    if (h) {
      h.tabIndex = -1;
      h.focus({ preventScroll: true });
    }
  }
}

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

export function toast(text, { code = "", kind = "info", ms = 8000 } = {}) {
  const list = $("#toasts");
  const item = document.createElement("p");
  item.className = `toast toast-${kind}`;
  if (code) item.dataset.code = code;
  item.textContent = text;
  list.append(item);
  while (list.children.length > 3) list.firstElementChild.remove();
  setTimeout(() => {
    item.classList.add("leaving");
    setTimeout(() => item.remove(), 300);
  }, ms);
}
