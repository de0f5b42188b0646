// The escalation ladder of one peer connection: what to try next when a call does not
// connect, or stops, and what the person is told meanwhile. Pure (no WebRTC, no timers,
// no DOM) except `swappable`, so it is unit tested with `node --test tests/js/`.
//
// Rungs, in order (docs/networks.md, "When a call does not connect: the escalation ladder"):
//   initial      the first attempt, every ICE server the welcome named;
//   ice-restart  an ICE restart on the same connection (peer.js already restarts a path
//                that dies; here it also happens to a first attempt that hangs);
//   relay-only   a NEW peer connection on both ends, iceTransportPolicy "relay", only the
//                turns: URLs on 443 (TURN over TLS, the one that passes 443-only firewalls,
//                proxies and paths that lose large UDP datagrams). A new connection because a DTLS
//                handshake that cannot get through stays "connecting" for good: an ICE
//                restart moves the candidate pair, never the stuck handshake (checked).
// Past the last rung the person is told the call cannot connect. A link that had worked
// keeps restarting ICE with backoff (peer.js), so a network that heals is picked up; one
// that never connected stays given up until someone rejoins.

export const RUNGS = ["initial", "ice-restart", "relay-only"];

/**
 * How long each rung gets before the next, in ms. A first attempt on a loaded 2-core
 * machine connects in 1-3 s through any relay (the network matrix): 10 s is generous.
 * Total: the relay rung begins 20 s after a call that never connects starts (or 10 s
 * after a restart of a path that died), and "cannot connect" shows at 35 s (20 s without
 * a turns: URL to try).
 */
export const BOUNDS = { initialMs: 10000, iceRestartMs: 10000, relayOnlyMs: 15000 };

/**
 * What to do now for a link that is not working. `rung` is the current rung, `since` when
 * it began (ms, any monotonic clock), `hasRelayUrl` whether a turns: URL exists to try.
 * Returns "ice-restart", "relay-only", "give-up" or null (wait).
 */
export function nextStep({ rung, since, now, hasRelayUrl, gaveUp = false }, bounds = BOUNDS) {
  if (gaveUp) return null;
  const waited = now - since;
  if (rung === "initial") return waited >= bounds.initialMs ? "ice-restart" : null;
  if (rung === "ice-restart") {
    if (waited < bounds.iceRestartMs) return null;
    return hasRelayUrl ? "relay-only" : "give-up";
  }
  if (rung === "relay-only") return waited >= bounds.relayOnlyMs ? "give-up" : null;
  return null;
}

/**
 * The ICE servers of the relay-only rung: only their turns: URLs on port 443 (with the
 * credentials), the ones that pass 443-only firewalls and proxies; any turns: URL when none
 * is on 443.
 */
export function relayOnlyServers(iceServers) {
  const pick = (test) => {
    const out = [];
    for (const server of iceServers || []) {
      const urls = [].concat(server.urls || []).filter((u) => typeof u === "string" && test(u));
      if (urls.length) out.push({ ...server, urls });
    }
    return out;
  };
  const on443 = pick((u) => /^turns:[^?]*:443(\?|$)/i.test(u));
  return on443.length ? on443 : pick((u) => /^turns:/i.test(u));
}

/**
 * Each peer's ladder now, by peer id ({rung, trying, gaveUp}): peer.js keeps it current
 * before it announces a state change, tiles.js reads it when it draws that peer's tile.
 */
export const ladders = new Map();

/** What a person sees on the tile of a peer, or "" to leave the tile's own status. */
export function ladderText({ rung, trying, gaveUp }, name) {
  if (gaveUp) return `Can't connect to ${name || "this person"}. Their network or yours may block calls.`;
  if (trying && rung === "relay-only") return "Trying a relay…";
  return "";
}

/**
 * A stand-in for an EventTarget-based object that can be replaced underneath: property reads
 * and method calls go to the current target, and listeners added through the stand-in follow
 * it to each new target. peer.js hands one out as `channels`, so a new peer connection's
 * data channels keep everything the call attached to the old ones.
 */
export function swappable(initial) {
  let target = initial;
  const listeners = [];
  const proxy = new Proxy({}, {
    get(_, key) {
      if (key === "addEventListener") {
        return (type, fn, options) => {
          listeners.push([type, fn, options]);
          target.addEventListener(type, fn, options);
        };
      }
      if (key === "removeEventListener") {
        return (type, fn, options) => {
          const i = listeners.findIndex(([t, f]) => t === type && f === fn);
          if (i >= 0) listeners.splice(i, 1);
          target.removeEventListener(type, fn, options);
        };
      }
      const value = Reflect.get(target, key);
      return typeof value === "function" ? value.bind(target) : value;
    },
    set(_, key, value) {
      return Reflect.set(target, key, value);
    },
    has(_, key) {
      return key in target;
    },
  });
  return {
    proxy,
    get current() {
      return target;
    },
    /** Make `next` the target; returns the old one (its listeners stay on it too). */
    swap(next) {
      const old = target;
      target = next;
      for (const [type, fn, options] of listeners) next.addEventListener(type, fn, options);
      return old;
    },
  };
}
