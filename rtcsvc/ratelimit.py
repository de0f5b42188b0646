"""A token bucket per connection: generous for a real call's bursts, firm with floods.

A mesh call's start is bursty (every peer trickles a few dozen ICE candidates to every other
within a second), so the bucket is deep; a steady rate above what any call needs is abuse. The
bucket only answers "may this message pass?"; what to do about a "no" (an error, a close) is the
adapter's business.
"""

from __future__ import annotations


class TokenBucket:
    """``rate`` tokens per second up to ``burst``; each message takes one."""

    __slots__ = ("rate", "burst", "_tokens", "_last")

    def __init__(self, rate: float, burst: int, now: float):
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
