"""This process's seats in the rooms shared through Redis, and what reaches them.

The seat table is the local half of :class:`rtcsvc.redis_hub.RedisHub`: which of its peers this
process holds (live, joining, or dropped and resumable), its view of their rooms' members, and
delivery. Signals between two live local peers skip Redis; everything else arrives as channel
messages (:mod:`rtcsvc.redis_channel`) in the order Redis ran the scripts. A seat that is
joining holds what arrives until the adapter has its welcome; a dropped seat keeps the
"stragglers" (routed while it was live, delivered after) until Redis confirms the drop, then
hands them back to be queued in front. Changes Redis must know of go through ``call(script,
*args)``; time through ``clock``. Pure: tests drive it with a fake clock and a fake runner.
"""

from __future__ import annotations

from typing import Any, Callable

from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.logger import Logger
from twisted.python.failure import Failure
from zope.interface import implementer

from rtcsvc import messages, redis_channel
from rtcsvc.hub import IMembership, IPeerConnection, JoinResult, Unavailable, UnknownPeer

_log = Logger(namespace="rtcsvc.redis_hub")

#: Runs one of rtcsvc.redis_lua's scripts with its own arguments (the common ones are added).
ScriptRunner = Callable[..., "Deferred[Any]"]

#: Failures that only mean "Redis is not there now" (the caller retries or gives up quietly).
QUIET_FAILURES: tuple[type[BaseException], ...] = (Unavailable,)


def quietly(failure: Failure, what: str) -> None:
    """An errback for fire-and-forget script calls: Redis being down is not worth a line."""
    if not failure.check(*QUIET_FAILURES):
        _log.failure("Redis {what}", failure, what=what)


@implementer(IMembership)
class Seat:
    """This process's view of one of its seats (live, joining, or dropped and resumable)."""

    def __init__(self, peer_id: str, room: str, connection: IPeerConnection | None, token: str):
        self.id = peer_id
        self.room = room
        self.connection = connection
        self.token = token
        self.encoded_id = messages.encode_id(peer_id)
        #: Local senders may hand signals straight to the connection. False once resumed: a
        #: signal routed through Redis before the resume may still be on its way to us, and a
        #: direct one must not overtake it.
        self.direct = True
        #: Between the welcome marker and the hub's answer to the adapter: deliveries wait.
        self.joining = True
        self.held: list[bytes] = []
        self.dropped = False
        #: Dropped, and Redis has not yet confirmed it (the 'D' marker): deliveries that arrive
        #: meanwhile were routed while the peer was live, and belong in front of its queue.
        self.draining = False
        self.stragglers: list[bytes] = []
        self.expiry: IDelayedCall | None = None


class RoomView:
    """A room this process holds seats in: all its members (id -> join seq) in join order."""

    __slots__ = ("members", "local")

    def __init__(self, members: dict[str, int]):
        self.members = members
        self.local: set[str] = set()


class SeatTable:
    """The seats this process holds, their rooms as it sees them, and delivery to them."""

    def __init__(self, clock: IReactorTime, call: ScriptRunner, resume_grace: float,
                 backlog_limit: int):
        self._clock = clock
        self._call = call
        self.resume_grace = resume_grace
        self.backlog_limit = backlog_limit
        self.seats: dict[str, Seat] = {}
        self.rooms: dict[str, RoomView] = {}
        #: Peers whose join script ran but whose welcome has not been applied yet.
        self.joining_ids: set[str] = set()
        self.signals_relayed = 0

    def members_of(self, room: str) -> list[str]:
        view = self.rooms.get(room)
        return list(view.members) if view else []

    # -- joining

    def seat(self, peer_id: str, room: str, connection: IPeerConnection, token: str,
             resumed: bool, members: dict[str, int]) -> Seat:
        """Apply a welcome marker: ``peer_id`` holds a seat here now, still joining."""
        seat = self.seats.get(peer_id)
        if seat is not None:
            # Resumed on this very process, maybe while its old socket is still half-open.
            self._cancel_expiry(seat)
            previous = seat.connection
            if previous is not None and previous is not connection:
                previous.supersede()
            seat.connection = connection
            seat.token = token
        else:
            seat = self.seats[peer_id] = Seat(peer_id, room, connection, token)
        seat.dropped = seat.draining = False
        seat.stragglers = []
        seat.joining = True
        seat.held = []
        seat.direct = not resumed
        view = self.rooms.get(room)
        if view is None:
            view = self.rooms[room] = RoomView(members)
        else:
            view.members = members
        view.local.add(peer_id)
        return seat

    def complete(self, seat: Seat, backlog: list[bytes], resumed: bool) -> JoinResult:
        """The adapter is told now: what was held goes after the queued ``backlog``."""
        backlog = list(backlog)
        backlog.extend(seat.held)
        seat.held = []
        seat.joining = False
        peers = [peer for peer in self.rooms[seat.room].members if peer != seat.id]
        return JoinResult(seat, peers, seat.token, resumed, backlog)

    def give_back(self, peer_id: str) -> None:
        """A seat Redis gave us that nobody will use (the join was abandoned)."""
        self._call("leave", peer_id).addErrback(quietly, "give back")

    # -- what the adapter does

    def route(self, member: Seat, to: str | None, data: bytes) -> tuple[bytes, list[str]]:
        """Deliver ``member``'s signal to the live local recipients; return the payload and
        the recipients it must go to through Redis."""
        view = self.rooms.get(member.room)
        if view is None or self.seats.get(member.id) is not member:
            return b"", []  # superseded or removed: the adapter is closing this socket
        members = view.members
        if to is None:
            recipients = [peer for peer in members if peer != member.id]
            if not recipients:
                return b"", []
        else:
            if to == member.id or to not in members:
                raise UnknownPeer(to)
            recipients = [to]
        payload = messages.signal(member.encoded_id, data)
        seats = self.seats
        remote: list[str] = []
        for peer in recipients:
            seat = seats.get(peer)
            if seat is not None and seat.direct and not seat.dropped:
                self.signals_relayed += 1
                if seat.joining:
                    seat.held.append(payload)
                elif seat.connection is not None:
                    seat.connection.send(payload)
            else:
                remote.append(peer)
        return payload, remote

    def leave(self, member: Seat) -> None:
        if self.seats.get(member.id) is not member:
            return
        self.forget(member)
        # peer-left reaches this process's other members of the room through our channel too.
        self._call("leave", member.id).addErrback(quietly, "leave")

    def drop(self, member: Seat) -> None:
        if self.seats.get(member.id) is not member or member.dropped:
            return
        member.connection = None
        member.dropped = True
        if self.resume_grace <= 0:
            self.leave(member)
            return
        member.draining = True
        member.stragglers = []
        member.expiry = self._clock.callLater(self.resume_grace, self._expire, member)
        self._call("drop", member.id).addErrback(quietly, "drop")

    def close(self) -> None:
        for seat in list(self.seats.values()):
            self._cancel_expiry(seat)

    # -- what arrives on our channel

    def receive(self, message: redis_channel.Message) -> None:
        """Apply one channel message (all but the welcome marker, which joins apply)."""
        if isinstance(message, redis_channel.Signal):
            seats = self.seats
            for peer in message.ids:
                seat = seats.get(peer)
                if seat is not None:
                    self.signals_relayed += 1
                    self._hand(seat, message.payload)
        elif isinstance(message, redis_channel.Joined):
            view = self.rooms.get(message.room)
            if view is not None and message.peer not in self.joining_ids:
                view.members[message.peer] = message.seq
            self._hand_all(message.live, messages.peer_joined(message.peer))
        elif isinstance(message, redis_channel.Left):
            view = self.rooms.get(message.room)
            if view is not None:
                view.members.pop(message.peer, None)
            gone = self.seats.get(message.peer)
            if gone is not None and gone.room == message.room:
                self.let_go(gone)  # removed by a sweep or an overflow, not by us
            self._hand_all(message.live, messages.peer_left(message.peer))
        elif isinstance(message, redis_channel.Dropped):
            self._drop_confirmed(message.peer, message.epoch)
        elif isinstance(message, redis_channel.Moved):
            moved = self.seats.get(message.peer)
            if moved is not None:
                self.let_go(moved, gone=False)  # resumed on another process

    def _hand_all(self, live: list[str], payload: bytes) -> None:
        seats = self.seats
        for peer in live:
            seat = seats.get(peer)
            if seat is not None:
                self._hand(seat, payload)

    def _hand(self, seat: Seat, payload: bytes) -> None:
        if seat.joining:
            seat.held.append(payload)
        elif seat.connection is not None:
            seat.connection.send(payload)
        elif seat.draining and len(seat.stragglers) < self.backlog_limit:
            seat.stragglers.append(payload)

    def _drop_confirmed(self, peer: str, epoch: str) -> None:
        seat = self.seats.get(peer)
        if seat is None or not seat.draining:
            return
        seat.draining = False
        stragglers, seat.stragglers = seat.stragglers, []
        if stragglers:
            self._call("stragglers", peer, epoch, *stragglers).addErrback(quietly, "stragglers")

    # -- for the lease registrar

    def records(self) -> list[str]:
        """Our seats as (id, room, seq, token, state) quintuples, for the register script."""
        records = []
        for seat in self.seats.values():
            view = self.rooms.get(seat.room)
            seq = view.members.get(seat.id, 0) if view else 0
            records += [seat.id, seat.room, str(seq), seat.token,
                        "dropped" if seat.dropped else "live"]
        return records

    def lost(self, peers: list[bytes]) -> None:
        """Redis no longer has these seats as ours (removed, or taken over by a resume)."""
        for peer in peers:
            seat = self.seats.get(peer.decode())
            if seat is not None:
                self.let_go(seat, gone=False)

    # -- seats

    def let_go(self, seat: Seat, gone: bool = True) -> None:
        """Forget ``seat`` and close its socket, if it has one."""
        self.forget(seat, gone)
        if seat.connection is not None:
            seat.connection.supersede()

    def forget(self, seat: Seat, gone: bool = True) -> None:
        """This process no longer holds ``seat``; ``gone``: nor is it in the room any more."""
        self._cancel_expiry(seat)
        if self.seats.get(seat.id) is seat:
            del self.seats[seat.id]
        view = self.rooms.get(seat.room)
        if view is not None:
            view.local.discard(seat.id)
            if gone:
                view.members.pop(seat.id, None)
            if not view.local:
                del self.rooms[seat.room]

    def _expire(self, seat: Seat) -> None:
        seat.expiry = None
        if self.seats.get(seat.id) is seat and seat.dropped:
            self.forget(seat)
            self._call("expire", seat.id).addErrback(quietly, "expire")

    def _cancel_expiry(self, seat: Seat) -> None:
        if seat.expiry is not None and seat.expiry.active():
            seat.expiry.cancel()
        seat.expiry = None
