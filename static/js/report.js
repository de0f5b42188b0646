// Call-setup telemetry: one `{"type":"report"}` per peer-connection attempt
// (docs/protocol.md, "report"). An attempt starts when a peer connection is created
// or its ICE is restarted, and ends at the first `connected` or failure. Only the
// outcome, the elapsed time, the path kind (direct/relay), the escalation rung that
// connected (escalation.js) and a failure reason are sent: never addresses, candidates
// or SDP.

export const SETUP_TIMEOUT_MS = 30000;
const MAX_REPORTS = 32; // the server ignores more per connection anyway
const REASONS = new Set(["ice-failed", "dtls-failed", "timeout", "negotiation-failed", "media-denied", "other"]);

let sentThisSocket = 0;

/** Forget the per-socket count (a new signaling socket gets a fresh allowance). */
export function resetReportBudget() {
  sentThisSocket = 0;
}

/** Which path the selected candidate pair uses: "relay" when either end is a TURN relay. */
export async function selectedPath(pc) {
  const stats = await pc.getStats();
  let pair = null;
  stats.forEach((s) => {
    if (s.type === "transport" && s.selectedCandidatePairId) pair = stats.get(s.selectedCandidatePairId) || pair;
  });
  if (!pair) {
    stats.forEach((s) => {
      if (s.type === "candidate-pair" && s.state === "succeeded" && (s.nominated || s.selected)) pair = pair || s;
    });
  }
  if (!pair) return null;
  const local = stats.get(pair.localCandidateId);
  const remote = stats.get(pair.remoteCandidateId);
  const types = [local && local.candidateType, remote && remote.candidateType];
  return types.includes("relay") ? "relay" : "direct";
}

/** One connection attempt's report; `send(data)` delivers it over signaling. */
export class SetupAttempt {
  constructor(send, { startedAt = performance.now(), timeoutMs = SETUP_TIMEOUT_MS, onTimeout = null, rung = null } = {}) {
    this.send = send;
    this.rung = rung;
    this.startedAt = startedAt;
    this.done = false;
    this.outcome = null;
    this.timer = setTimeout(() => {
      if (this.done) return;
      this.failed("timeout");
      if (onTimeout) onTimeout();
    }, timeoutMs);
  }

  _elapsed() {
    const ms = Math.round(performance.now() - this.startedAt);
    return Math.min(600000, Math.max(0, ms));
  }

  _deliver(data) {
    this.done = true;
    clearTimeout(this.timer);
    this.outcome = data;
    if (sentThisSocket >= MAX_REPORTS) return;
    sentThisSocket += 1;
    this.send(data);
  }

  async connected(pc) {
    if (this.done) return;
    const setupMs = this._elapsed();
    this.done = true; // claim it before awaiting, so a racing failure cannot report too
    let path = null;
    try {
      path = await selectedPath(pc);
    } catch {
      path = null;
    }
    this._deliver({ outcome: "connected", setupMs, path: path || "direct", ...(this.rung ? { rung: this.rung } : {}) });
  }

  failed(reason) {
    if (this.done) return;
    this._deliver({ outcome: "failed", setupMs: this._elapsed(), reason: REASONS.has(reason) ? reason : "other" });
  }

  cancel() {
    this.done = true;
    clearTimeout(this.timer);
  }
}
