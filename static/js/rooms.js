// Room names and links, as pure functions of their inputs (no DOM, no window.location):
// the router, the lobby and the invite cards call them with the page's own location,
// and `node --test` calls them with made-up ones (tests/js/rooms.test.js).
//
// A room is /r/<room> with <room> in [A-Za-z0-9_-]{1,64}, as the server's router has it.
// A closed room's invite link carries `?token=` (docs/protocol.md, "Closed rooms").

export const ROOM_RE = /^[A-Za-z0-9_-]{1,64}$/;
const PATH_RE = /^\/r\/([A-Za-z0-9_-]{1,64})\/?$/;
const TOKEN_RE = /^[A-Za-z0-9._~-]{1,512}$/;

/** base64url of some bytes, without padding. */
export function base64url(bytes) {
  return btoa(String.fromCharCode(...bytes)).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
}

/** A fresh room name: 128 random bits, base64url (22 characters). */
export function newRoomName(bytes = crypto.getRandomValues(new Uint8Array(16))) {
  return base64url(bytes);
}

/** The room of a page path (/r/<room>), or null. */
export function roomFromPath(pathname) {
  const m = String(pathname || "").match(PATH_RE);
  return m ? m[1] : null;
}

/** A room name from a pasted link (…/r/<room>, any host) or a bare name; null if neither. */
export function parseRoom(input, base = "https://rtcsvc.invalid") {
  const text = String(input || "").trim();
  if (!text) return null;
  if (ROOM_RE.test(text)) return text;
  let path;
  try {
    path = new URL(text, base).pathname;
  } catch {
    return null;
  }
  return roomFromPath(path);
}

/** The invite token of a page's query string (`?token=`), or null when absent or malformed. */
export function inviteTokenFrom(search) {
  const t = new URLSearchParams(search || "").get("token");
  return t && TOKEN_RE.test(t) ? t : null;
}

/** The link that brings someone into `room` at `origin` (with the invite token of a closed room). */
export function inviteLink(origin, room, token = null) {
  return `${origin}/r/${room}${token ? `?token=${encodeURIComponent(token)}` : ""}`;
}
