"""A room core shared by many rtcsvc processes through Redis (``twistd rtcsvc --redis URL``).

:class:`RedisHub` implements the same :class:`rtcsvc.hub.IHub` and :class:`rtcsvc.hub.IResumingHub`
as the in-memory hub, so the WebSocket adapter does not know which one it talks to. Seats live in
Redis (a sorted set per room scored by a global join counter, a hash per peer), each process renews
a lease, and every change runs as one Lua script (:mod:`rtcsvc.redis_lua`), so capacity holds
across processes. Each process subscribes to its own channel; scripts publish signals,
``peer-joined``/``peer-left`` and bookkeeping markers to the channels of the processes holding the
recipients, which gives each process one ordered stream and keeps per-pair order. Signals between
two live peers of the same process skip Redis. Dropped peers' signals queue in Redis, so a resume
works on any process. The topology, the keys and the failure bounds are in docs/scaling.md.

The hub itself only composes the parts, each with one job: :mod:`rtcsvc.redis_link` (the two
connections, the scripts, restart detection), :mod:`rtcsvc.redis_lease` (the lease and the
registration of our seats), :mod:`rtcsvc.redis_channel` (the channel messages, defined once for
Python and Lua), :mod:`rtcsvc.redis_seats` (this process's seats and delivery to them) and
:mod:`rtcsvc.redis_joins` (joins waiting for Redis's reply and the welcome marker).
"""

from __future__ import annotations

import os
import socket
from typing import Any

from twisted.application import service
from twisted.internet import defer
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger
from twisted.python.failure import Failure
from zope.interface import implementer

from rtcsvc import messages, redis_channel
from rtcsvc.hub import (
    DEFAULT_BACKLOG_BYTES,
    DEFAULT_BACKLOG_LIMIT,
    IHub,
    IPeerConnection,
    IResumingHub,
    NotResumable,
    Unavailable,
    new_peer_id,
)
from rtcsvc.redis_connection import RedisAddress, parse_redis_url
from rtcsvc.redis_joins import Joins
from rtcsvc.redis_lease import LeaseRegistrar
from rtcsvc.redis_link import RedisLink
from rtcsvc.redis_seats import Seat, SeatTable

__all__ = ["RedisHub", "RedisHubService", "RedisAddress", "parse_redis_url"]

_log = Logger()

#: A process whose lease is this old is dead: its seats are swept and its peers leave their rooms.
DEFAULT_LEASE_TTL = 10.0
#: A join that Redis has not answered in this time is refused with ``unavailable``.
DEFAULT_JOIN_TIMEOUT = 5.0


def _template(encode: Any) -> tuple[bytes, bytes]:
    # Lua splices peer ids into a server message made by rtcsvc.messages, so the wire format
    # keeps one source. Peer ids are URL-safe base64: nothing to escape.
    before, after = encode("PEERID").split(b"PEERID")
    return before, after


@implementer(IHub, IResumingHub)
class RedisHub:
    """Rooms shared by every rtcsvc process connected to one Redis database."""

    def __init__(self, clock: IReactorTime, address: RedisAddress, max_peers: int = 6,
                 resume_grace: float = 30.0, backlog_limit: int = DEFAULT_BACKLOG_LIMIT,
                 backlog_bytes: int = DEFAULT_BACKLOG_BYTES,
                 lease_ttl: float = DEFAULT_LEASE_TTL, join_timeout: float = DEFAULT_JOIN_TIMEOUT,
                 prefix: str = "rtcsvc:", process_id: str | None = None, reactor: Any = None):
        self.address = address
        self.max_peers = max_peers
        #: Unique per process start: a restarted process must not inherit its old lease.
        self.process_id = process_id or f"{socket.gethostname()}-{os.getpid()}-{new_peer_id()[:8]}"
        left_before, left_after = _template(messages.peer_left)
        # The first six arguments of every script (see rtcsvc.redis_lua).
        common = (prefix, left_before, left_after, f"{backlog_limit}:{backlog_bytes}",
                  max(1, int(resume_grace * 1000)), self.process_id)
        self._link = RedisLink(clock, reactor or clock, address, f"{prefix}proc:{self.process_id}",
                               common, self._up, self._down, self._received)
        self._seats = SeatTable(clock, self._link.call, resume_grace, backlog_limit)
        self._joins = Joins(clock, self._link.call, self._seats, max_peers, join_timeout)
        self._lease = LeaseRegistrar(clock, self._link, self._seats, lease_ttl)
        self._clock = clock
        self._closed: defer.Deferred[None] = defer.Deferred()
        #: Signals that could not be routed because Redis was unreachable.
        self.signals_lost = 0

    # -- IHubStatistics (per process)

    @property
    def signals_relayed(self) -> int:
        return self._seats.signals_relayed

    @property
    def room_count(self) -> int:
        return len(self._seats.rooms)

    @property
    def peer_count(self) -> int:
        return len(self._seats.seats)

    @property
    def available(self) -> bool:
        """Connected, subscribed and registered: joins can be served."""
        return self._lease.registered and self._link.up

    def members_of(self, room: str) -> list[str]:
        return self._seats.members_of(room)

    # -- life cycle

    def start(self) -> None:
        self._link.start()
        self._lease.start()

    def stop(self, wait: float = 5.0) -> defer.Deferred[Any]:
        """Wait (up to ``wait`` s) for :meth:`close`, let Redis see our last commands, hang up."""
        self._link.stopping = True
        self._lease.stop()
        closed: defer.Deferred[None] = defer.Deferred()

        def done(_: object = None) -> None:
            if not closed.called:
                closed.callback(None)

        self._closed.addBoth(done)
        timer = self._clock.callLater(wait, done)

        def flush(_: object) -> defer.Deferred[Any]:
            if timer.active():
                timer.cancel()
            return self._link.stop()

        return closed.addCallback(flush)

    # -- IHub

    def join(self, room: str, connection: IPeerConnection,
             resume_token: str | None = None) -> None:
        if not self.available:
            connection.refused(Unavailable("the room store (Redis) is unreachable"))
            return
        self._joins.begin(room, connection, resume_token or "", False)

    def resume(self, room: str, connection: IPeerConnection, resume_token: str) -> None:
        """The resume half of :meth:`join` alone, in the same script: a token that is not live
        in ``room`` is answered NotResumable, and Redis changed nothing."""
        if not resume_token:
            connection.refused(NotResumable(room))
        elif not self.available:
            connection.refused(Unavailable("the room store (Redis) is unreachable"))
        else:
            self._joins.begin(room, connection, resume_token, True)

    def signal(self, member: Seat, to: str | None, data: bytes) -> None:  # type: ignore[override]
        payload, remote = self._seats.route(member, to, data)
        if remote:
            d = self._link.call("route", payload, *remote)
            d.addErrback(self._route_failed, len(remote))

    def leave(self, member: Seat) -> None:  # type: ignore[override]
        self._seats.leave(member)

    def drop(self, member: Seat) -> None:  # type: ignore[override]
        self._seats.drop(member)

    def close(self) -> None:
        """Stop timers; our seats stay in Redis until our lease runs out, so that peers the
        shutdown dropped can resume on another process meanwhile."""
        self._seats.close()
        self._joins.close()
        if not self._closed.called:
            self._closed.callback(None)

    # -- the parts' callbacks

    def _up(self, restarted: bool) -> None:
        self._lease.register(restarted)

    def _down(self) -> None:
        self._lease.lost()

    def _received(self, message: bytes) -> None:
        """What arrives on our channel, in the order Redis executed the scripts."""
        try:
            decoded = redis_channel.decode(message)
        except redis_channel.UnknownMessage:
            _log.warn("ignoring an unknown message on {channel}", channel=self._link.channel)
            return
        if isinstance(decoded, redis_channel.Welcome):
            self._joins.welcome(decoded)
        else:
            self._seats.receive(decoded)

    def _route_failed(self, failure: Failure, count: int) -> None:
        self.signals_lost += count
        if not failure.check(Unavailable):
            _log.failure("routing a signal", failure)


class RedisHubService(service.Service):
    """Connects the hub to Redis on start; on stop, hangs up after the sockets are closed."""

    def __init__(self, hub: RedisHub):
        self.hub = hub

    def startService(self) -> None:
        super().startService()  # type: ignore[no-untyped-call]
        self.hub.start()

    def stopService(self) -> defer.Deferred[Any]:
        super().stopService()  # type: ignore[no-untyped-call]
        return self.hub.stop()
