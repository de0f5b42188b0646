"""Token buckets: generous for a real call's bursts, firm with floods.

A mesh call's start is bursty (every peer trickles a few dozen ICE candidates to every other
within a second), so a connection's bucket is deep; a steady rate above what any call needs is
abuse. Every frame a client sends takes a token, control frames and continuation fragments
included: a frame that costs nothing is a frame a client can send without end.
:class:`ClientBuckets` keeps one bucket per client for handshakes, so that opening sockets is
metered too. The buckets only answer "may this pass?"; what to do about a "no" (an error, a
close, an HTTP status) is the adapter's business.
"""

from __future__ import annotations


class TokenBucket:
    """``rate`` tokens per second up to ``burst``; each message takes one."""

    __slots__ = ("rate", "burst", "_tokens", "_last")

    def __init__(self, rate: float, burst: float, now: float):
        self.rate = rate
        self.burst = burst
        self._tokens = float(burst)
        self._last = now

    def take(self, now: float) -> bool:
        tokens = self._tokens + (now - self._last) * self.rate
        self._last = now
        if tokens >= 1.0:
            self._tokens = min(tokens, self.burst) - 1.0
            return True
        self._tokens = tokens
        return False

    def empty(self, now: float) -> None:
        self._tokens = 0.0
        self._last = now

    def full(self, now: float) -> bool:
        """Whether the bucket has refilled to ``burst``: forgetting it would change nothing."""
        return self._tokens + (now - self._last) * self.rate >= self.burst


class ClientBuckets:
    """A :class:`TokenBucket` per key (a client), made on first use, forgotten once full.

    Memory stays bounded by how many clients were active in the last ``burst / rate``
    seconds: the table is swept for full buckets whenever it has doubled since the last sweep,
    so each sweep's cost is paid for by the insertions before it.
    """

    #: Below this many keys the table is never swept.
    MIN_SWEEP = 1024

    def __init__(self, rate: float, burst: float):
        self.rate = rate
        self.burst = burst
        self._buckets: dict[str, TokenBucket] = {}
        self._sweep_at = self.MIN_SWEEP

    def __len__(self) -> int:
        return len(self._buckets)

    def take(self, key: str, now: float) -> bool:
        bucket = self._buckets.get(key)
        if bucket is None:
            if len(self._buckets) >= self._sweep_at:
                self._sweep(now)
            bucket = self._buckets[key] = TokenBucket(self.rate, self.burst, now)
        return bucket.take(now)

    def drain(self, key: str, now: float) -> None:
        """Empty ``key``'s bucket: it was caught abusing what the bucket let through."""
        bucket = self._buckets.get(key)
        if bucket is None:
            bucket = self._buckets[key] = TokenBucket(self.rate, self.burst, now)
        bucket.empty(now)

    def _sweep(self, now: float) -> None:
        self._buckets = {k: b for k, b in self._buckets.items() if not b.full(now)}
        self._sweep_at = max(self.MIN_SWEEP, 2 * len(self._buckets))
