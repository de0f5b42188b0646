// Deciding, from successive getStats samples of one connection's selected candidate
// pair, that its media path is dead: nothing arrives (no media, no RTCP, no data
// channel bytes) and our connectivity checks go unanswered. Pure: no WebRTC, no timers,
// so it is unit tested with `node --test tests/js/`.
//
// Why not wait for connectionState: when a relay dies, Chromium says "disconnected"
// only once its checks have failed for about 5 s (6 s measured, longer on a loaded
// machine), and "failed" much later; the app then still waited out a grace period.
// Inbound bytes stop at once, and Chromium itself starts checking the pair quickly
// once it hears nothing; both show in getStats.
//
// A sample is {t, pairId, bytesReceived, requestsSent, responsesReceived,
// requestsReceived}: t in ms (any monotonic clock), the others from the selected
// RTCIceCandidatePairStats. Anything arriving (bytes, answers to our checks, the other
// side's checks) is a sign of life.

/** Defaults: see docs/client.md, "When the media path dies". */
export const STALL_MS = 3000;
export const MIN_UNANSWERED = 2;

export class StallDetector {
  /**
   * @param {object} [o]
   * @param {number} [o.stallMs]         nothing received for at least this long ...
   * @param {number} [o.minUnanswered]   ... while at least this many checks went unanswered
   */
  constructor({ stallMs = STALL_MS, minUnanswered = MIN_UNANSWERED } = {}) {
    this.stallMs = stallMs;
    this.minUnanswered = minUnanswered;
    this.reset();
  }

  /** Forget everything (a new pair, an ICE restart): the next sample is a new baseline. */
  reset() {
    this._last = null; // the previous sample
    this._progress = null; // the last sample at which something arrived
  }

  /**
   * Feed one sample; returns {stalled, arrived, silentMs, unanswered}: `arrived` when
   * something came in since the previous sample of the same pair (the path works). A
   * sample without a pair (not connected yet, or between pairs) resets the detector;
   * the first sample of a pair is its baseline. Neither is ever stalled.
   */
  sample(s) {
    if (!s || s.pairId == null || !Number.isFinite(s.t)) {
      this.reset();
      return { stalled: false, arrived: false, silentMs: 0, unanswered: 0 };
    }
    const last = this._last;
    const newPair = !last || last.pairId !== s.pairId || s.t < last.t;
    // Counters that go backwards mean a new pair behind the same id: start over.
    const wentBack = last && !newPair && (
      num(s.bytesReceived) < num(last.bytesReceived) ||
      num(s.responsesReceived) < num(last.responsesReceived) ||
      num(s.requestsSent) < num(last.requestsSent) ||
      num(s.requestsReceived) < num(last.requestsReceived));
    if (newPair || wentBack) {
      this._last = s;
      this._progress = s;
      return { stalled: false, arrived: false, silentMs: 0, unanswered: 0 };
    }
    const arrived =
      num(s.bytesReceived) > num(last.bytesReceived) ||
      num(s.responsesReceived) > num(last.responsesReceived) ||
      num(s.requestsReceived) > num(last.requestsReceived);
    if (arrived) this._progress = s;
    this._last = s;
    const silentMs = s.t - this._progress.t;
    const unanswered = num(s.requestsSent) - num(this._progress.requestsSent);
    return {
      stalled: silentMs >= this.stallMs && unanswered >= this.minUnanswered,
      arrived,
      silentMs,
      unanswered,
    };
  }
}

function num(x) {
  return Number.isFinite(x) ? x : 0;
}

/**
 * The selected pair of an RTCStatsReport (a Map-like of stats), as a sample at time t;
 * null when there is none. Only counters are read: never addresses or candidates.
 */
export function pairSample(report, t) {
  let sample = null;
  report.forEach((s) => {
    if (sample || s.type !== "transport" || !s.selectedCandidatePairId) return;
    const pair = report.get(s.selectedCandidatePairId);
    if (!pair) return;
    sample = {
      t,
      pairId: pair.id,
      bytesReceived: pair.bytesReceived,
      requestsSent: pair.requestsSent,
      responsesReceived: pair.responsesReceived,
      requestsReceived: pair.requestsReceived,
    };
  });
  return sample;
}

/**
 * When may the next ICE restart start? Restarts that do not bring the path back are
 * retried, further apart each time: `firstMs`, doubling, at most `maxMs`.
 * `failedInARow` counts the restarts since the path last worked (0 before the first).
 */
export function restartBackoffMs(failedInARow, { firstMs = 5000, maxMs = 30000 } = {}) {
  if (failedInARow <= 0) return 0;
  return Math.min(maxMs, firstMs * 2 ** Math.min(failedInARow - 1, 16));
}
