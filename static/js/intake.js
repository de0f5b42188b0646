// What the other people in a call can make this browser hold or show, and the limits on
// it: pure rules, no DOM, no WebRTC, unit tested (tests/js/intake.test.js).
//
// Every field another browser sends is chosen by whoever runs that browser, who may be
// hostile. So names are cleaned before anyone reads them (no bidi overrides or control
// characters that would make "report<U+202E>fdp.exe" read as "reportexe.pdf"), transfer ids are
// remembered per peer and never reused (one peer's messages never reach another peer's
// file), and what received files may take in memory has a stated ceiling: an offer over it
// is refused with a reason the receiver can read. docs/client.md ("Receiving files") and
// docs/reliability.md state the limits.

const MiB = 1024 * 1024;

export const LIMITS = Object.freeze({
  /** Bytes of received files held in memory at once: files being received (reserved when the
   * receiver accepts) and received ones not yet saved or dismissed, from everyone together. */
  heldBytes: 512 * MiB,
  /** Transfer ids remembered per peer (to refuse a reused one); past it that peer's offers are refused. */
  idsPerPeer: 1000,
  /** File cards kept per peer: past it, the oldest finished ones go (their memory freed). */
  cardsPerPeer: 20,
  /** Chat messages kept per sender (and list items on screen). */
  chatPerPeer: 200,
});

// C0 and C1 controls, the Unicode bidi controls (LRE, RLE, PDF, LRO, RLO, LRI, RLI, FSI, PDI,
// LRM, RLM, ALM), line and paragraph separators, interlinear annotation marks.
const UNSAFE = /[\p{Cc}\p{Bidi_Control}\u2028\u2029\uFFF9-\uFFFB]/gu;

/**
 * A name another peer chose (a display name, a file name), safe to show: no control or bidi
 * characters, runs of white space made one space, trimmed, at most `max` code points.
 */
export function cleanName(value, max) {
  if (typeof value !== "string") return "";
  const clean = value.replace(UNSAFE, "").replace(/\s+/gu, " ").trim();
  return [...clean].slice(0, max).join("").trim();
}

/** A received file's name: cleaned, no path separators, at most 255 code points, never empty. */
export function cleanFileName(value) {
  return cleanName(typeof value === "string" ? value.replace(/[\\/]/g, "_") : "", 255) || "file";
}

/** A transfer id as our own app makes them (16 hex digits); other shapes are refused. */
export function validTransferId(id) {
  return typeof id === "string" && /^[A-Za-z0-9_-]{1,64}$/.test(id);
}

/**
 * The receiving side's bookkeeping across all peers: which transfer ids each peer used, and
 * the bytes held for received files. `judge` decides on an offer before anyone sees it.
 */
export class Intake {
  constructor(limits = LIMITS) {
    this.limits = limits;
    this.held = 0;
    this.seen = new Map(); // peer id -> Set of transfer ids it offered
  }

  /**
   * An offer {id, size} from `peer`: null to ask the person, or why it is refused:
   * "reused" (that peer used this id before), "too-many" (it offered too many files), "busy"
   * (another file of that peer is waiting or arriving: files come one at a time), "too-large"
   * (over the whole allowance), "no-room" (over what is left of it now).
   * Ids are per peer on purpose: refusing an id another peer used would let a fast peer make
   * someone else's file be refused.
   */
  judge(peer, { id, size }, { busy = false } = {}) {
    let ids = this.seen.get(peer);
    if (!ids) {
      ids = new Set();
      this.seen.set(peer, ids);
    }
    if (ids.has(id)) return "reused";
    if (ids.size >= this.limits.idsPerPeer) return "too-many";
    ids.add(id);
    if (busy) return "busy";
    if (size > this.limits.heldBytes) return "too-large";
    if (size > this.room) return "no-room";
    return null;
  }

  /** Bytes that received files may still take. */
  get room() {
    return Math.max(0, this.limits.heldBytes - this.held);
  }

  /** Hold `size` bytes for a file being accepted; false (nothing held) if they do not fit. */
  reserve(size) {
    if (size > this.room) return false;
    this.held += size;
    return true;
  }

  release(size) {
    this.held = Math.max(0, this.held - size);
  }

  /** A peer left: its ids can never come back (a peer's id is never reused). */
  forget(peer) {
    this.seen.delete(peer);
  }
}

/**
 * Of `items` (oldest first), the ones to drop so that at most `max` remain whose
 * `belongs(item)` is true, taking only items `removable(item)` allows, oldest first.
 */
export function overflow(items, max, belongs, removable = () => true) {
  const mine = items.filter(belongs);
  let excess = mine.length - max;
  const out = [];
  for (const item of mine) {
    if (excess <= 0) break;
    if (!removable(item)) continue;
    out.push(item);
    excess -= 1;
  }
  return out;
}
