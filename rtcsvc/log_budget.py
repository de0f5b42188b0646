"""A bound on the log lines that strangers can make the service write.

Some events are worth a line each while they are rare and worthless by the thousand: a failed
TLS handshake (every browser meeting the self-signed certificate makes one; so does a scanner,
as fast as it likes) or a request that missed its deadline (a slowloris flood). Unbounded,
such lines are an attacker's way to fill the disk and bury the lines that matter. A
:class:`LogBudget` lets a few lines of one kind through per period and counts the rest; when
the period ends it writes one line saying how many were left out, so the operator still
learns that a flood happened and how large it was.
"""

from __future__ import annotations

from typing import Any

from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.logger import Logger

#: Lines of one kind written per period before the rest are only counted.
DEFAULT_LINES = 20
#: The period, in seconds.
DEFAULT_PERIOD = 60.0


class LogBudget:
    """At most ``lines`` lines per ``period`` seconds for one kind of event (``what``)."""

    def __init__(self, log: Logger, clock: IReactorTime, what: str,
                 lines: int = DEFAULT_LINES, period: float = DEFAULT_PERIOD):
        self._log = log
        self._clock = clock
        self._what = what
        self._lines = lines
        self._period = period
        self._written = 0
        self._left_out = 0
        self._period_end: IDelayedCall | None = None

    def info(self, format: str, **fields: Any) -> None:
        """Log ``format`` at info level if this period's budget allows, else count it."""
        if self._spend():
            self._log.info(format, **fields)

    def warn(self, format: str, **fields: Any) -> None:
        """Log ``format`` at warn level if this period's budget allows, else count it."""
        if self._spend():
            self._log.warn(format, **fields)

    def _spend(self) -> bool:
        if self._period_end is None:
            self._period_end = self._clock.callLater(self._period, self._end_period)
        if self._written < self._lines:
            self._written += 1
            return True
        self._left_out += 1
        return False

    def _end_period(self) -> None:
        self._period_end = None
        self._written = 0
        left_out, self._left_out = self._left_out, 0
        if left_out:
            self._log.warn("{count} more {what} were not logged in the last {period:g}s",
                           count=left_out, what=self._what, period=self._period)

    def stop(self) -> None:
        """Say what is left out so far and stop the period's timer (the service stops)."""
        if self._period_end is not None:
            self._period_end.cancel()
            self._end_period()
