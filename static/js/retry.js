// File transfers the connection broke: which ones can be sent again, and what their cards say.
// A transfer fails for many reasons; only a failure that came with the data channel closed
// under it (the peer connection was replaced, e.g. by the relay-only rung, or its channels
// closed) is an interruption, and only one whose receiver is still in the call can be sent
// again. A decline, a cancel or a refusal was the receiver's say and is never retried.
// Pure functions of the transfers call.js keeps (see its sendFile and _incomingOffer), so
// `node --test` checks them (tests/js/retry.test.mjs).

import { fmtBytes, namesText } from "./text.js";

/**
 * Why one peer's part of a transfer ended unfinished, as far as sending it again goes:
 * "replaced" (the data channels it ran on were replaced by new ones), "closed" (they closed
 * and no new ones are open yet), "left" (that peer left the call), "ended" (we dropped that
 * peer ourselves: we left, or rejoined as someone new), or null (not interrupted: delivered,
 * declined, cancelled, refused, or still going).
 * `result`: {state, closed} as PeerChannels reports it (`closed`: the channel was closed when
 * it failed); `present`: the peer is still in the call; `replaced`: its channels now are new
 * ones, not the ones that closed; `ended`: we ended our side with that peer.
 */
export function interruption(result, { present, replaced, ended = false }) {
  if (!result || result.state !== "failed" || !result.closed) return null;
  if (!present) return ended ? "ended" : "left";
  return replaced ? "replaced" : "closed";
}

/** Whether a sender's part (a peer of an outgoing transfer) may be sent again. */
export function canSendAgain(part) {
  return !!part && part.state === "failed" && (part.interrupted === "replaced" || part.interrupted === "closed");
}

/** The ids of the peers an outgoing transfer can be sent again to: none while any part is going. */
export function sendAgainTo(t) {
  if (!t || t.direction !== "out" || !t.done) return [];
  return (t.peers || []).filter(canSendAgain).map((p) => p.id);
}

/** What happened, in words: "the connection to Grace was replaced", "Grace left the call". */
export function interruptedWhy(kind, name) {
  const who = name || "them";
  switch (kind) {
    case "replaced": return `the connection to ${who} was replaced`;
    case "closed": return `the connection to ${who} closed`;
    case "left": return `${who} left the call`;
    case "ended": return `the call with ${who} ended`;
    default: return "the connection closed";
  }
}

const WHY_MANY = {
  replaced: (names) => `the connections to ${names} were replaced`,
  closed: (names) => `the connections to ${names} closed`,
  left: (names) => `${names} left the call`,
  ended: (names) => `the call with ${names} ended`,
};

function label(t) {
  return `${t.name} (${fmtBytes(t.size)}${t.type ? `, ${t.type}` : ""})`;
}

/** How one non-interrupted part ended, for the sender's card. */
function partText(p) {
  if (p.state === "delivered") return `Delivered to ${p.name}`;
  if (p.state === "declined") return p.reason && p.reason !== "declined" ? `Refused by ${p.name}'s browser` : `Declined by ${p.name}`;
  if (p.state === "sending") return `Sending to ${p.name}`;
  if (p.state === "waiting") return `Waiting for ${p.name} to accept`;
  return `Not delivered to ${p.name}${p.reason ? ` (${p.reason})` : ""}`;
}

/**
 * The sender's card while a part is interrupted or waits for its connection to come back:
 * {heading, status}, or null when text.js's transferText says it all (nothing interrupted).
 */
export function outgoingRetryText(t) {
  if (!t || t.direction !== "out") return null;
  const peers = t.peers || [];
  const reconnecting = peers.filter((p) => p.state === "reconnecting");
  const cut = peers.filter((p) => p.state === "failed" && p.interrupted);
  if (!t.done && reconnecting.length) {
    const others = peers.filter((p) => p.state !== "reconnecting").map(partText);
    const wait = `Waiting for the connection to ${namesText(reconnecting.map((p) => p.name))} to send it again…`;
    const status = others.length ? `${wait} ${others.join(". ")}` : wait;
    return { heading: `You are sending ${label(t)} again`, status };
  }
  if (!t.done || !cut.length) return null;
  const lines = [];
  for (const kind of ["replaced", "closed", "left", "ended"]) {
    const names = cut.filter((p) => p.interrupted === kind).map((p) => p.name);
    if (!names.length) continue;
    const why = names.length === 1 ? interruptedWhy(kind, names[0]) : WHY_MANY[kind](namesText(names));
    lines.push(`Interrupted: ${why}`);
  }
  for (const p of peers) if (!cut.includes(p)) lines.push(partText(p));
  const delivered = peers.some((p) => p.state === "delivered");
  return { heading: `${delivered ? "You sent" : "You tried to send"} ${label(t)}`, status: lines.join(". ") };
}

/** The receiver's card of a file the connection interrupted: {heading, status}, or null. */
export function incomingRetryText(t) {
  if (!t || t.direction !== "in" || t.state !== "failed" || !t.interrupted) return null;
  const who = t.fromName || "Someone";
  const why = interruptedWhy(t.interrupted, who);
  const kept = t.interruptedWhile === "receiving" ? "; the part received was not kept" : " before you answered";
  const again = t.interrupted === "left" || t.interrupted === "ended" ? "" : `. ${who} can send it again`;
  const heading = t.interruptedWhile === "receiving" ? `${who} was sending ${label(t)}` : `${who} offered ${label(t)}`;
  return { heading, status: `Interrupted: ${why}${kept}${again}` };
}

/** The words of a card that an interruption concerns, or null (then text.js's transferText). */
export function retryText(t) {
  return t && t.direction === "out" ? outgoingRetryText(t) : incomingRetryText(t);
}
