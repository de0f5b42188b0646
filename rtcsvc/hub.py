"""The room core: who is in which room, who may hear whom, and in what order.

Everything protocol v1 promises about rooms lives here, in plain Python with no network:
capacity, join order, addressed and broadcast signals, per-pair ordering, and resume (a dropped
peer keeps its slot and a queue of its signals for a grace period). The WebSocket adapter
(:mod:`rtcsvc.protocol`) only parses frames and calls this; a Redis-backed hub can implement
the same :class:`IHub` so rooms span processes without touching the adapter.

Connections are anything providing :class:`IPeerConnection`; time comes from an injected
``IReactorTime`` so tests drive grace periods with ``twisted.internet.task.Clock``.
"""

from __future__ import annotations

import secrets
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from twisted.internet.interfaces import IDelayedCall, IReactorTime
from zope.interface import Attribute, Interface, implementer

from rtcsvc import messages

#: Signals queued for a dropped peer before it counts as gone; bounds memory per absent peer.
DEFAULT_BACKLOG_LIMIT = 1024
#: ... and their bytes: 1024 signals of 64 KiB would be 64 MiB held for one absent peer.
DEFAULT_BACKLOG_BYTES = 1 << 20


class Refusal(Exception):
    """Why a hub did not seat a connection (handed to :meth:`IPeerConnection.refused`)."""


class RoomFull(Refusal):
    """The room already holds its capacity of members (slots held for resume included)."""


class Unavailable(Refusal):
    """The hub cannot seat anyone now (a shared room store is unreachable): try again later."""


class NotResumable(Refusal):
    """A resume alone (:meth:`IResumingHub.resume`) named no live seat of the room."""


class UnknownPeer(Exception):
    """A signal named a recipient who is not a member of the sender's room."""


class IMembership(Interface):
    """A peer's seat in a room, as the adapter holds it between join and leave."""

    id = Attribute("The peer id: opaque, unguessable, unique across the deployment.")
    room = Attribute("The room (its name, or the hub's own record of it).")


class IPeerConnection(Interface):
    """What the hub needs of one client connection."""

    def send(payload: bytes) -> None:
        """Deliver one encoded server message (a UTF-8 JSON object) to the client."""

    def supersede() -> None:
        """Close this connection because a resume moved its session to a newer one."""

    def seated(result: JoinResult) -> None:
        """The answer to :meth:`IHub.join` (or :meth:`IResumingHub.resume`): a seat."""

    def refused(reason: Refusal) -> None:
        """The answer to :meth:`IHub.join` (or :meth:`IResumingHub.resume`): no seat."""


class IHubStatistics(Interface):
    """What the site (``/healthz``) and the metrics read of a hub, at request or scrape time."""

    available = Attribute(
        "Whether joins can be served now (a shared hub is cut off from its store when not); "
        "/healthz answers 503 while it is false, so a balancer sends new sockets elsewhere."
    )
    max_peers = Attribute("Room capacity (sent in welcome and room-full).")
    room_count = Attribute("Rooms with a seat in this process.")
    peer_count = Attribute("Seats (live or held for resume) in this process.")
    signals_relayed = Attribute("Signals handed to recipients so far (one per recipient).")


class IHub(IHubStatistics):
    """The room core as the WebSocket adapter sees it."""

    def join(room: str, connection: IPeerConnection, resume_token: str | None = None) -> None:
        """
        Seat ``connection`` in ``room``, or give it back its old seat if ``resume_token`` is the
        live token of a seat in that room. The answer always goes to ``connection``: its
        :meth:`~IPeerConnection.seated` with a :class:`JoinResult`, or its
        :meth:`~IPeerConnection.refused` with :class:`RoomFull` or :class:`Unavailable`; at
        once from a hub in memory, later from one that asks another process.
        """

    def signal(member: IMembership, to: str | None, data: bytes) -> None:
        """
        Relay the JSON text ``data`` from ``member`` to ``to`` (a peer id) or, when ``to`` is
        ``None``, to every other member of its room. Raises :class:`UnknownPeer`.
        """

    def leave(member: IMembership) -> None:
        """The client left on purpose: free the seat and tell the room at once."""

    def drop(member: IMembership) -> None:
        """The connection was lost: hold the seat for the grace period, queueing its signals."""

    def close() -> None:
        """The process is stopping: cancel timers; seats die with the process."""


class IResumingHub(Interface):
    """A hub that can resume a session without ever seating a newcomer.

    The adapter uses it when a handshake carries a resume token but no valid invite (the
    invite may have expired during the call): a live resume token is enough to resume, while
    a stale one must not turn into a fresh join, which the room would see as ``peer-joined``.
    """

    def resume(room: str, connection: IPeerConnection, resume_token: str) -> None:
        """
        Give ``connection`` back the seat whose live resume token in ``room`` is
        ``resume_token``, answering as :meth:`IHub.join` does; when no seat has that token, the
        answer is :class:`NotResumable` and nothing changed.
        """


@implementer(IMembership)
@dataclass(eq=False)
class Member:
    """One seat. ``connection`` is ``None`` while the peer is dropped and may still resume."""

    id: str
    room: Room
    connection: IPeerConnection | None
    token: str
    encoded_id: bytes
    backlog: deque[bytes] = field(default_factory=deque)
    backlog_bytes: int = 0
    expiry: IDelayedCall | None = None


@dataclass(eq=False)
class Room:
    name: str
    members: dict[str, Member] = field(default_factory=dict)  # peer id -> Member, join order


@dataclass(frozen=True)
class JoinResult:
    """What the adapter needs to write ``welcome`` and anything queued for a resumed peer."""

    member: Any  # an IMembership: the hub's own record, handed back to signal/leave/drop
    peers: list[str]
    token: str
    resumed: bool
    backlog: list[bytes]


def new_peer_id() -> str:
    # 128 random bits; the protocol asks for at least 96.
    return secrets.token_urlsafe(16)


def new_resume_token() -> str:
    # 192 random bits; the protocol asks for at least 128.
    return secrets.token_urlsafe(24)


@implementer(IHub, IResumingHub)
class Hub:
    """The in-memory hub: all rooms of one process."""

    def __init__(self, clock: IReactorTime, max_peers: int = 6, resume_grace: float = 30.0,
                 backlog_limit: int = DEFAULT_BACKLOG_LIMIT,
                 backlog_bytes: int = DEFAULT_BACKLOG_BYTES):
        self._clock = clock
        self.max_peers = max_peers
        self.resume_grace = resume_grace
        self.backlog_limit = backlog_limit
        self.backlog_bytes = backlog_bytes
        self._rooms: dict[str, Room] = {}
        self._tokens: dict[str, Member] = {}
        #: Signals handed to recipients (a delivery per recipient). A plain int: the metrics
        #: collector reads it at scrape time, so the relay path pays no metrics cost.
        self.signals_relayed = 0

    #: Rooms in this process's memory are always there.
    available = True

    # -- introspection, for metrics, health and tests

    @property
    def room_count(self) -> int:
        return len(self._rooms)

    @property
    def peer_count(self) -> int:
        return sum(len(room.members) for room in self._rooms.values())

    def members_of(self, room: str) -> list[str]:
        found = self._rooms.get(room)
        return list(found.members) if found else []

    # -- IHub

    def join(self, room: str, connection: IPeerConnection,
             resume_token: str | None = None) -> None:
        member = self._resumable(room, resume_token)
        if member is not None:
            connection.seated(self._resume(member, connection))
            return
        found = self._rooms.get(room)
        if found is None:
            found = self._rooms[room] = Room(room)
        elif len(found.members) >= self.max_peers:
            connection.refused(RoomFull(room))
            return
        # 128 random bits make a collision across the deployment negligible without a registry.
        peer_id = new_peer_id()
        member = Member(peer_id, found, connection, "", messages.encode_id(peer_id))
        peers = list(found.members)
        joined = messages.peer_joined(peer_id)
        for other in found.members.values():
            self._deliver(other, joined)
        found.members[peer_id] = member
        connection.seated(JoinResult(member, peers, self._new_token(member), False, []))

    def signal(self, member: Member, to: str | None, data: bytes) -> None:  # type: ignore[override]
        members = member.room.members
        if to is None:
            recipients = [m for m in members.values() if m is not member]
        else:
            recipient = members.get(to)
            if recipient is None or recipient is member:
                raise UnknownPeer(to)
            recipients = [recipient]
        if not recipients:
            return
        payload = messages.signal(member.encoded_id, data)
        self.signals_relayed += len(recipients)
        for recipient in recipients:
            self._deliver(recipient, payload)

    def leave(self, member: Member) -> None:  # type: ignore[override]
        self._remove(member)

    def drop(self, member: Member) -> None:  # type: ignore[override]
        if not self._is_seated(member) or member.connection is None:
            return
        member.connection = None
        if self.resume_grace <= 0:
            self._remove(member)
            return
        member.expiry = self._clock.callLater(self.resume_grace, self._expire, member)

    def close(self) -> None:
        for room in list(self._rooms.values()):
            for member in list(room.members.values()):
                self._cancel_expiry(member)
        self._rooms.clear()
        self._tokens.clear()

    # -- IResumingHub

    def resume(self, room: str, connection: IPeerConnection, resume_token: str) -> None:
        member = self._resumable(room, resume_token)
        if member is None:
            connection.refused(NotResumable(room))
        else:
            connection.seated(self._resume(member, connection))

    # -- internals

    def _resumable(self, room: str, resume_token: str | None) -> Member | None:
        member = self._tokens.get(resume_token) if resume_token else None
        if member is None or member.room.name != room:
            return None
        return member

    def _resume(self, member: Member, connection: IPeerConnection) -> JoinResult:
        self._cancel_expiry(member)
        previous, member.connection = member.connection, connection
        if previous is not None:
            # The old socket is half-open (the client saw the drop before we did): it must not
            # receive anything more, or the same signal could reach the client twice.
            previous.supersede()
        backlog = list(member.backlog)
        member.backlog.clear()
        member.backlog_bytes = 0
        peers = [peer_id for peer_id in member.room.members if peer_id != member.id]
        return JoinResult(member, peers, self._new_token(member), True, backlog)

    def _new_token(self, member: Member) -> str:
        self._tokens.pop(member.token, None)
        member.token = new_resume_token()
        self._tokens[member.token] = member
        return member.token

    def _deliver(self, member: Member, payload: bytes) -> None:
        connection = member.connection
        if connection is not None:
            connection.send(payload)
        elif (len(member.backlog) < self.backlog_limit
              and member.backlog_bytes + len(payload) <= self.backlog_bytes):
            member.backlog.append(payload)
            member.backlog_bytes += len(payload)
        else:
            # Too much for a peer that is not there: give up its seat rather than grow.
            self._remove(member)

    def _expire(self, member: Member) -> None:
        member.expiry = None
        self._remove(member)

    def _cancel_expiry(self, member: Member) -> None:
        if member.expiry is not None and member.expiry.active():
            member.expiry.cancel()
        member.expiry = None

    def _is_seated(self, member: Member) -> bool:
        return member.room.members.get(member.id) is member

    def _remove(self, member: Member) -> None:
        if not self._is_seated(member):
            return
        self._cancel_expiry(member)
        room = member.room
        del room.members[member.id]
        self._tokens.pop(member.token, None)
        member.backlog.clear()
        member.backlog_bytes = 0
        member.connection = None
        if not room.members:
            del self._rooms[room.name]
            return
        left = messages.peer_left(member.id)
        for other in list(room.members.values()):
            self._deliver(other, left)
