"""One socket's place in a room, from the admission's ticket to leaving or dropping.

The Autobahn adapter (:mod:`rtcsvc.protocol`) deals in frames, bytes and close codes; what a
socket means to the rooms lives here: which hub call its ticket earns (a join; a resume on a
live token alone, once the invite has expired; a probe's ICE servers and no seat; or
not-invited), the ``welcome`` and whatever a resumed seat missed, what it may send once seated
(signals relayed, reports and network checks counted within their budgets), and at the close
whether its peer left or dropped (held for a resume), each in one log line. Apart from the
adapter so that a seat's rules read in one place and are tested with a fake socket
(tests/test_session.py); the socket is anything providing :class:`ISignalingSocket`. The relay's
hot path is one call here per message, as it was one method of the adapter.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from twisted.logger import Logger

from rtcsvc import messages
from rtcsvc.hub import (
    IMembership,
    IPeerConnection,
    IResumingHub,
    JoinResult,
    NotResumable,
    UnknownPeer,
)
from rtcsvc.ice_handout import IceHandout

if TYPE_CHECKING:
    from rtcsvc.admission import Ticket
    from rtcsvc.protocol import SignalingFactory

#: More reports than this from one connection are ignored: a mesh of six needs five.
MAX_REPORTS = 32

# The adapter's namespace: the session lines read exactly as they did when the adapter wrote them.
_log = Logger(namespace="rtcsvc.protocol.SignalingProtocol")

_JOINED = "joined room={room} peer={peer} client={client}"
_RESUMED = "resumed room={room} peer={peer} client={client}"
_LEFT = "left room={room} peer={peer} client={client} code={code}"
_DROPPED = "dropped room={room} peer={peer} client={client} code={code}"


class ISignalingSocket(IPeerConnection):
    """What a session asks of its socket, besides what the hub does."""

    def tell(code: str, text: str, **details: object) -> None:
        """Send the client an ``error`` (counted by ``code``), if it can still be sent."""

    def finish() -> None:
        """Close normally (1000): the socket's business is done."""


class Session:
    """The seat (or probe) of one socket, and the reports it has sent."""

    __slots__ = ("_factory", "_hub", "_socket", "_ticket", "_probe", "member", "_handout",
                 "_reports")

    def __init__(self, factory: SignalingFactory, socket: ISignalingSocket, ticket: Ticket,
                 probe: bool):
        self._factory = factory
        self._hub = factory.hub
        self._socket = socket
        self._ticket = ticket
        self._probe = probe  # ?probe=1: ICE servers for a network check, no seat
        #: The hub's record of the seat, from the welcome until the seat is given up.
        self.member: IMembership | None = None
        self._handout: IceHandout | None = None
        self._reports = 0

    def open(self) -> None:
        """Ask the hub for what the ticket earns; it answers through the socket's ``seated``
        or ``refused``: at once in memory, later from Redis. (No Deferred for an answer already
        there: building one and its callback chain was ~10 % of rtcsvc's own work per join.)"""
        ticket = self._ticket
        socket = self._socket
        if self._probe and ticket.invited:
            # The same admission as a join (origin, rates, per-client sockets, invite) and
            # the same per-client TURN budget, but no seat.
            self._handout = handout = self._new_handout()
            handout.for_probe(ticket.key, socket.finish)
        elif self._probe:
            socket.refused(NotResumable(ticket.room))
        elif ticket.invited:
            self._hub.join(ticket.room, socket, ticket.resume_token)
        elif ticket.resume_token is not None and self._factory.resumes_alone:
            # The invite may have expired during the call: a live resume token is proof
            # enough. A stale one gets NotResumable (not-invited), never a fresh seat.
            IResumingHub(self._hub).resume(ticket.room, socket, ticket.resume_token)
        else:
            socket.refused(NotResumable(ticket.room))

    def welcome(self, result: JoinResult) -> None:
        """The hub seated us: say so, with the ICE servers and what a resumed seat missed."""
        factory = self._factory
        ticket = self._ticket
        socket = self._socket
        self.member = member = result.member
        handout = self._new_handout()
        ice = handout.for_seat(member.id, ticket.key)
        if handout.pending:  # TURN credentials to refresh; else nothing to keep per seat
            self._handout = handout
        socket.send(messages.welcome(member.id, ticket.room, result.peers, ice, result.token,
                                     self._hub.max_peers, result.resumed))
        for payload in result.backlog:
            socket.send(payload)
        # The event word is part of the format, not a field: one field fewer to format.
        if factory.log_sessions:
            _log.info(
                _RESUMED if result.resumed else _JOINED,
                room=ticket.room, peer=member.id, client=ticket.client,
            )

    def _new_handout(self) -> IceHandout:
        factory = self._factory
        return IceHandout(factory.ice, factory.turn_minter, factory.clock,
                          factory.metrics.turn_mints_refused, self._socket)

    def message(self, payload: bytes, binary: bool) -> None:
        """A whole message from the client (its UTF-8 checked if text)."""
        member = self.member
        if member is None:
            if self._probe and not binary and not self._reports:
                self._probe_message(payload)
            return  # still joining, or on the way out
        if binary:
            return self._socket.tell("bad-message", "Binary frames are not part of protocol v1.")
        try:
            message = messages.parse(payload)
        except messages.BadMessage as e:
            return self._socket.tell("bad-message", str(e))
        if message.__class__ is messages.Signal:
            try:
                self._hub.signal(member, message.to, message.data)
            except UnknownPeer:
                self._socket.tell("unknown-peer", "No such peer in this room.")
        else:
            self._count(message)

    def _probe_message(self, payload: bytes) -> None:
        # A probe socket says one thing: its network check's verdict.
        try:
            message = messages.parse(payload)
        except messages.BadMessage as e:
            return self._socket.tell("bad-message", str(e))
        if message.__class__ is messages.NetCheck:
            self._count(message)
        else:
            self._socket.tell("bad-message", "A probe socket only sends 'netcheck'.")

    def _count(self, message: messages.Signal | messages.Report | messages.NetCheck) -> None:
        """Count a report or a netcheck in /metrics, within the socket's and the client's
        budgets (a signal is never one: it is relayed)."""
        self._reports += 1
        factory = self._factory
        if self._reports <= MAX_REPORTS and factory.reports.take(self._ticket.key,
                                                                 factory.clock.seconds()):
            if isinstance(message, messages.NetCheck):
                factory.metrics.netchecks.labels(message.verdict, message.transport).inc()
            elif isinstance(message, messages.Report):
                factory.metrics.record_report(message)

    def superseded(self) -> None:
        """The seat was resumed on another socket: it is no longer this one's to give up."""
        self.member = None

    def end(self, leaving: bool, code: int | None) -> None:
        """The socket closed: the peer ``leaving`` gives up its seat, any other is dropped
        (held for a resume)."""
        if self._handout is not None:
            self._handout.stop()
        member, self.member = self.member, None
        if member is None:
            return
        factory = self._factory
        if leaving:
            self._hub.leave(member)
        else:
            self._hub.drop(member)
        if factory.log_sessions:
            ticket = self._ticket
            _log.info(
                _LEFT if leaving else _DROPPED,
                room=ticket.room, peer=member.id, client=ticket.client, code=code,
            )
