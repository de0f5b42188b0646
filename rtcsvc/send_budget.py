"""What may pile up for a client that stopped reading: ``--max-send-buffer`` bytes, then it goes.

A browser that stops reading (a frozen tab, a network gone dead under a live TCP connection)
leaves the transport buffering whatever is written for it, without bound. The transport says
so by pausing its producer, the signaling socket, which then holds a :class:`SendBudget` until
the transport resumes it: every byte written for that client meanwhile (relayed signals, pongs,
errors alike) is counted, and past the budget the socket drops the client, which may resume
and get what it missed from the hub's bounded queue. A socket that is read holds no budget at
all, so the relay's hot path tests one attribute and idle sockets carry nothing for it
(docs/performance.md). Plain Python, tested without a transport (tests/test_send_budget.py).
"""

from __future__ import annotations


class SendBudget:
    """The bytes written for one client since it stopped reading, against the limit."""

    __slots__ = ("limit", "backlog")

    def __init__(self, limit: int):
        self.limit = limit
        self.backlog = 0

    def over(self, size: int) -> bool:
        """Count ``size`` more bytes; whether the backlog is now past the limit."""
        self.backlog += size
        return self.backlog > self.limit
