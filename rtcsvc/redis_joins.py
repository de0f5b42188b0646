"""Joins in flight through Redis: the join script's reply and the welcome marker, matched.

A join (or a resume alone) runs the ``join`` script. Its reply says what happened (``joined``,
``resumed`` with the queued backlog, ``full``, ``stale``); the welcome marker ('W') arrives on
our channel after every event the script published before it, so once both are in, everything
published to us later comes after the seat exists. The answer goes to the connection
(``seated``/``refused``, :class:`rtcsvc.hub.IPeerConnection`); a join Redis has not answered
within ``timeout`` is refused with :class:`rtcsvc.hub.Unavailable` and its seat given back.
"""

from __future__ import annotations

import itertools
from typing import Any

from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.logger import Logger
from twisted.python.failure import Failure

from rtcsvc import messages, redis_channel
from rtcsvc.hub import (
    IPeerConnection,
    NotResumable,
    Refusal,
    RoomFull,
    Unavailable,
    new_peer_id,
    new_resume_token,
)
from rtcsvc.redis_seats import ScriptRunner, Seat, SeatTable

_log = Logger(namespace="rtcsvc.redis_hub")


class PendingJoin:
    __slots__ = ("req", "room", "connection", "token", "peer_id", "timeout", "seat",
                 "resumed", "replied", "backlog", "answered")

    def __init__(self, req: bytes, room: str, connection: IPeerConnection, token: str,
                 peer_id: str):
        self.req = req
        self.room = room
        self.connection = connection
        self.token = token
        self.peer_id = peer_id
        self.timeout: IDelayedCall | None = None
        self.seat: Seat | None = None
        self.resumed = False
        self.replied = False
        self.backlog: list[bytes] = []
        self.answered = False


class Joins:
    """The joins this process has asked Redis for and not yet answered."""

    def __init__(self, clock: IReactorTime, call: ScriptRunner, seats: SeatTable,
                 max_peers: int, timeout: float):
        self._clock = clock
        self._call = call
        self._seats = seats
        self.max_peers = max_peers
        self.timeout = timeout
        self._pending: dict[bytes, PendingJoin] = {}
        self._requests = itertools.count(1)

    def begin(self, room: str, connection: IPeerConnection, resume_token: str,
              only: bool) -> None:
        """Run the join script; ``only``: resume ``resume_token``'s seat or refuse."""
        req = str(next(self._requests)).encode()
        peer_id = new_peer_id()
        pending = PendingJoin(req, room, connection, new_resume_token(), peer_id)
        self._pending[req] = pending
        self._seats.joining_ids.add(peer_id)
        pending.timeout = self._clock.callLater(self.timeout, self._failed, None, pending)
        d = self._call("join", room, peer_id, pending.token, self.max_peers,
                       messages.peer_joined(peer_id), req, resume_token, "1" if only else "0")
        d.addCallbacks(self._replied, self._failed,
                       callbackArgs=(pending,), errbackArgs=(pending,))

    def welcome(self, marker: redis_channel.Welcome) -> None:
        """The 'W' marker: the seat exists in Redis; events for it follow on our channel."""
        pending = self._pending.get(marker.req)
        if pending is None:
            self._seats.give_back(marker.peer)  # the join timed out meanwhile
            return
        pending.seat = self._seats.seat(marker.peer, pending.room, pending.connection,
                                        pending.token, marker.resumed, marker.members)
        if pending.replied:
            self._complete(pending)

    def close(self) -> None:
        for pending in list(self._pending.values()):
            if pending.timeout is not None and pending.timeout.active():
                pending.timeout.cancel()

    def _replied(self, reply: list[Any], pending: PendingJoin) -> None:
        kind = reply[0]
        if pending.answered:
            if kind in (b"joined", b"resumed"):
                self._seats.give_back(reply[1].decode())
            return
        if kind == b"stale":
            self._answer(pending, NotResumable(pending.room))
        elif kind == b"full":
            self._answer(pending, RoomFull(pending.room))
        else:
            pending.replied = True
            if kind == b"resumed":
                pending.resumed = True
                pending.backlog = reply[2]
            if pending.seat is not None:
                self._complete(pending)

    def _failed(self, failure: Failure | None, pending: PendingJoin) -> None:
        if pending.answered:
            return
        seat = pending.seat
        if seat is not None:
            self._seats.forget(seat)
            self._seats.give_back(seat.id)
        if failure is not None and not failure.check(Unavailable):
            _log.failure("join in {room}", failure, room=pending.room)
        self._answer(pending, Unavailable("the room store (Redis) did not answer in time"))

    def _complete(self, pending: PendingJoin) -> None:
        assert pending.seat is not None
        self._answer(pending, self._seats.complete(pending.seat, pending.backlog,
                                                   pending.resumed))

    def _answer(self, pending: PendingJoin, answer: object) -> None:
        pending.answered = True
        self._pending.pop(pending.req, None)
        self._seats.joining_ids.discard(pending.peer_id)
        if pending.timeout is not None and pending.timeout.active():
            pending.timeout.cancel()
        if isinstance(answer, Refusal):
            pending.connection.refused(answer)
        else:
            pending.connection.seated(answer)  # type: ignore[arg-type]
