"""What may pile up for a client that stopped reading: ``--max-send-buffer`` bytes, then it goes.

A browser that stops reading (a frozen tab, a network gone dead under a live TCP connection)
leaves the transport buffering whatever is written for it, without bound. The transport says
so by pausing its producer, the signaling socket; from then until it resumes, every byte
written for that client (relayed signals, pongs, errors alike) is counted here, and past the
budget the adapter drops the client: it may resume and get what it missed from the hub's
bounded queue. Plain Python apart from the adapter so the accounting is tested without a
transport (tests/test_send_budget.py); the adapter keeps the relay's hot path to one attribute
test and reaches :meth:`SendBudget.over` only while paused.
"""

from __future__ import annotations


class SendBudget:
    """The IPushProducer state of one socket and the bytes written while it is paused."""

    __slots__ = ("limit", "paused", "backlog")

    def __init__(self, limit: int):
        self.limit = limit
        #: The transport's buffer is full: the client is not reading.
        self.paused = False
        self.backlog = 0  # bytes written since the pause

    def pause(self) -> None:
        self.paused = True

    def resume(self) -> None:
        self.paused = False
        self.backlog = 0

    def stop(self) -> None:
        self.paused = False

    def over(self, size: int) -> bool:
        """Count ``size`` more bytes written while paused; whether that is past the limit.
        Past it, the pause is forgotten: the client is being dropped and nothing more is
        counted."""
        self.backlog += size
        if self.backlog <= self.limit:
            return False
        self.paused = False
        return True
