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

The client is txredisapi: Twisted-native, maintained, and reconnecting by itself (its factories
are built on ``ClientService``); we re-subscribe and re-register our seats on every reconnection.
:mod:`rtcsvc.redis_connection` turns the URL into an endpoint (TLS for ``rediss://``) and logs
in on every connection; a connection Redis refuses is reported here once per reason, and retried.
"""

from __future__ import annotations

import hashlib
import itertools
import os
import socket

import txredisapi
from twisted.application import service
from twisted.internet import defer, task
from twisted.logger import Logger
from zope.interface import implementer

from rtcsvc import messages
from rtcsvc.hub import (
    DEFAULT_BACKLOG_BYTES,
    DEFAULT_BACKLOG_LIMIT,
    IHub,
    IMembership,
    IResumingHub,
    JoinResult,
    NotResumable,
    Refusal,
    RoomFull,
    Unavailable,
    UnknownPeer,
    new_peer_id,
    new_resume_token,
)
from rtcsvc.redis_connection import (
    HandshakeRefused,
    RedisAddress,
    explain,
    handshake,
    parse_redis_url,
)
from rtcsvc.redis_lua import SCRIPTS

__all__ = ["RedisHub", "RedisHubService", "RedisAddress", "parse_redis_url"]

_log = Logger()

#: A process whose lease is this old is dead: its seats are swept and its peers leave their rooms.
DEFAULT_LEASE_TTL = 10.0
#: A join that Redis has not answered in this time is refused with ``unavailable``.
DEFAULT_JOIN_TIMEOUT = 5.0
#: Reconnection back-off cap: after a Redis restart, seats are re-registered within about this.
RECONNECT_MAX_DELAY = 2.0
#: Seconds for TLS, the login and a PING on a new connection before it is abandoned.
HANDSHAKE_TIMEOUT = 5.0


@implementer(IMembership)
class Seat:
    """This process's view of one of its seats (live, joining, or dropped and resumable)."""

    def __init__(self, peer_id: str, room: str, connection, token: str):
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
        self.expiry = None


class _RoomView:
    """A room this process holds seats in: all its members (id -> join seq) in join order."""

    __slots__ = ("members", "local")

    def __init__(self, members: dict):
        self.members = members
        self.local: set[str] = set()


class _PendingJoin:
    __slots__ = ("req", "room", "connection", "token", "deferred", "timeout", "seat",
                 "resumed", "replied", "backlog")

    def __init__(self, req, room, connection, token):
        self.req = req
        self.room = room
        self.connection = connection
        self.token = token
        self.deferred = defer.Deferred()
        self.timeout = None
        self.seat = None
        self.resumed = False
        self.replied = False
        self.backlog = []


class _Handshaking:
    """Logs in (AUTH, SELECT, PING) before txredisapi sees the connection, so that a refusal is
    reported by us in one line and the connection is retried with back-off, not given up."""

    def connectionMade(self):
        self._usable = False
        self._reported = False
        hub = self.factory.hub
        # A server that takes TCP but never answers (a TLS port spoken to in clear may wait for
        # a ClientHello, a black hole) must not leave us waiting: hang up and retry.
        self._deadline = hub._clock.callLater(HANDSHAKE_TIMEOUT, self._too_slow)
        d = handshake(self, hub.address)
        d.addCallbacks(self._logged_in, self._refused)

    def _too_slow(self):
        self._reported = True
        self.factory.hub._trouble(f"did not answer within {HANDSHAKE_TIMEOUT:g} s "
                                  "(a TLS port reached with redis://? then use rediss://)")
        self.transport.abortConnection()

    def _logged_in(self, _):
        self._usable = True
        if self._deadline.active():
            self._deadline.cancel()
        self.whenConnected().addCallback(self._up)
        # No password and no dbid: txredisapi only marks the connection ready.
        return txredisapi.RedisProtocol.connectionMade(self)

    def _refused(self, failure):
        if failure.check(HandshakeRefused):
            self._reported = True
            self.factory.hub._trouble(str(failure.value))
            self.transport.loseConnection()
        elif not failure.check(txredisapi.ConnectionError):
            self._reported = True
            self.factory.hub._trouble(f"failed to log in ({failure.getErrorMessage()})")
            self.transport.loseConnection()
        # A lost connection: connectionLost says why.

    def connectionLost(self, why):
        if self._deadline.active():
            self._deadline.cancel()
        if not self._usable and not self._reported:
            self._reported = True
            self.factory.hub._trouble(explain(why))
        self._down()
        super().connectionLost(why)


class _CommandProtocol(_Handshaking, txredisapi.RedisProtocol):
    def _up(self, _):
        return self.factory.hub._commands_up(self)

    def _down(self):
        self.factory.hub._commands_down(self)


class _SubscriberProtocol(_Handshaking, txredisapi.SubscriberProtocol):
    def _up(self, _):
        self.factory.hub._subscriber_up(self)

    def _down(self):
        self.factory.hub._subscriber_down(self)

    def messageReceived(self, pattern, channel, message):
        self.factory.hub._received(message)


def _factory(hub, protocol):
    # charset=None, convertNumbers=False: payloads stay bytes end to end, no decoding per message.
    # No password or dbid here: _Handshaking logs in (txredisapi would stop retrying for good
    # after one refused AUTH, e.g. while Redis restarts without its ACL loaded yet).
    factory = txredisapi.RedisFactory(
        None, None, 1, isLazy=True, charset=None, convertNumbers=False,
    )
    factory.protocol = protocol
    factory.hub = hub
    factory.initialDelay = 0.25
    factory.maxDelay = RECONNECT_MAX_DELAY
    return factory


def _template(encode) -> tuple[bytes, bytes]:
    # Lua splices peer ids into a server message made by rtcsvc.messages, so the wire format
    # keeps one source. Peer ids are URL-safe base64: nothing to escape.
    before, after = encode("PEERID").split(b"PEERID")
    return before, after


@implementer(IHub, IResumingHub)
class RedisHub:
    """Rooms shared by every rtcsvc process connected to one Redis database."""

    def __init__(self, clock, address: RedisAddress, max_peers: int = 6,
                 resume_grace: float = 30.0, backlog_limit: int = DEFAULT_BACKLOG_LIMIT,
                 backlog_bytes: int = DEFAULT_BACKLOG_BYTES,
                 lease_ttl: float = DEFAULT_LEASE_TTL, join_timeout: float = DEFAULT_JOIN_TIMEOUT,
                 prefix: str = "rtcsvc:", process_id: str | None = None, reactor=None):
        self._clock = clock
        self._reactor = reactor or clock
        self.address = address
        self.max_peers = max_peers
        self.resume_grace = resume_grace
        self.backlog_limit = backlog_limit
        self.backlog_bytes = backlog_bytes
        self.lease_ttl = lease_ttl
        self.join_timeout = join_timeout
        self.prefix = prefix
        #: Unique per process start: a restarted process must not inherit its old lease.
        self.process_id = process_id or f"{socket.gethostname()}-{os.getpid()}-{new_peer_id()[:8]}"
        self.channel = f"{prefix}proc:{self.process_id}"
        left_before, left_after = _template(messages.peer_left)
        # The first six arguments of every script (see rtcsvc.redis_lua).
        self._common = (prefix, left_before, left_after, f"{backlog_limit}:{backlog_bytes}",
                        max(1, int(resume_grace * 1000)), self.process_id)
        self._sha = {name: hashlib.sha1(text.encode()).hexdigest()
                     for name, text in SCRIPTS.items()}
        self._seats: dict[str, Seat] = {}
        self._rooms: dict[str, _RoomView] = {}
        self._pending: dict[bytes, _PendingJoin] = {}
        self._joining_ids: set[str] = set()
        self._requests = itertools.count(1)
        self._commands = None
        self._subscriber = None
        self._subscribed = False
        self._registered = False
        self._registering = False
        self._restarted = False
        self._run_id = None
        self._factories = []
        self._heartbeat = None
        self._closed = defer.Deferred()
        self._stopping = False
        self._trouble_reported = None
        self.signals_relayed = 0
        #: Signals that could not be routed because Redis was unreachable.
        self.signals_lost = 0

    # -- introspection (per process), for metrics, health and tests

    @property
    def room_count(self) -> int:
        return len(self._rooms)

    @property
    def peer_count(self) -> int:
        return len(self._seats)

    @property
    def available(self) -> bool:
        """Connected, subscribed and registered: joins can be served."""
        return self._registered and self._commands is not None and self._subscribed

    def members_of(self, room: str) -> list[str]:
        view = self._rooms.get(room)
        return list(view.members) if view else []

    # -- life cycle

    def start(self) -> None:
        for protocol in (_CommandProtocol, _SubscriberProtocol):
            factory = _factory(self, protocol)
            factory.startConnecting(self.address.endpoint(self._reactor))
            self._factories.append(factory)
        self._heartbeat = task.LoopingCall(self._beat)
        self._heartbeat.clock = self._clock
        self._heartbeat.start(self.lease_ttl / 3, now=False)

    def stop(self, wait: float = 5.0):
        """Wait (up to ``wait`` s) for :meth:`close`, let Redis see our last commands, hang up."""
        self._stopping = True
        if self._heartbeat is not None and self._heartbeat.running:
            self._heartbeat.stop()
        closed = defer.Deferred()
        self._closed.addBoth(lambda _: closed.called or closed.callback(None))
        timer = self._clock.callLater(wait, lambda: closed.called or closed.callback(None))

        def flush(_):
            if timer.active():
                timer.cancel()
            if self._commands is not None:
                # Commands are answered in order: once PING is, every drop has been applied.
                return self._commands.execute_command("PING").addErrback(lambda f: None)

        def hang_up(_):
            return defer.DeferredList([f.disconnect() for f in self._factories],
                                      consumeErrors=True)

        return closed.addCallback(flush).addCallback(hang_up)

    # -- IHub

    def join(self, room: str, connection, resume_token: str | None = None):
        self._answer(connection, self._join(room, connection, resume_token or "", False))

    def resume(self, room: str, connection, resume_token: str):
        """The resume half of :meth:`join` alone, in the same script: a token that is not live
        in ``room`` is answered NotResumable, and Redis changed nothing."""
        if not resume_token:
            connection.refused(NotResumable(room))
            return
        self._answer(connection, self._join(room, connection, resume_token, True))

    def _answer(self, connection, d):
        def answered(result):
            if result is None:
                connection.refused(NotResumable(""))
            else:
                connection.seated(result)

        def failed(failure):
            failure.trap(Refusal)
            connection.refused(failure.value)

        d.addCallbacks(answered, failed)
        d.addErrback(lambda f: _log.failure("answering a join", f))

    def _join(self, room: str, connection, resume_token: str, only: bool):
        if not self.available:
            return defer.fail(Unavailable("the room store (Redis) is unreachable"))
        req = str(next(self._requests)).encode()
        token = new_resume_token()
        peer_id = new_peer_id()
        pending = self._pending[req] = _PendingJoin(req, room, connection, token)
        self._joining_ids.add(peer_id)
        pending.timeout = self._clock.callLater(self.join_timeout, self._join_failed, None,
                                                pending)
        d = self._call("join", room, peer_id, token, self.max_peers,
                       messages.peer_joined(peer_id), req, resume_token, "1" if only else "0")
        d.addCallbacks(self._join_replied, self._join_failed,
                       callbackArgs=(pending,), errbackArgs=(pending,))
        pending.deferred.addBoth(self._joined_or_not, peer_id)
        return pending.deferred

    def signal(self, member: Seat, to: str | None, data: bytes) -> None:
        view = self._rooms.get(member.room)
        if view is None or self._seats.get(member.id) is not member:
            return  # superseded or removed: the adapter is closing this socket
        members = view.members
        if to is None:
            recipients = [peer for peer in members if peer != member.id]
            if not recipients:
                return
        else:
            if to == member.id or to not in members:
                raise UnknownPeer(to)
            recipients = (to,)
        payload = messages.signal(member.encoded_id, data)
        seats = self._seats
        remote = None
        for peer in recipients:
            seat = seats.get(peer)
            if seat is not None and seat.direct and not seat.dropped:
                self.signals_relayed += 1
                if seat.joining:
                    seat.held.append(payload)
                else:
                    seat.connection.send(payload)
            elif remote is None:
                remote = [peer]
            else:
                remote.append(peer)
        if remote is not None:
            if self._commands is None:
                self.signals_lost += len(remote)
                return
            self._call("route", payload, *remote).addErrback(self._route_failed, len(remote))

    def leave(self, member: Seat) -> None:
        if self._seats.get(member.id) is not member:
            return
        self._forget(member)
        # peer-left reaches this process's other members of the room through our channel too.
        self._call("leave", member.id).addErrback(self._ignore_when_down, "leave")

    def drop(self, member: Seat) -> None:
        if self._seats.get(member.id) is not member or member.dropped:
            return
        member.connection = None
        member.dropped = True
        if self.resume_grace <= 0:
            self.leave(member)
            return
        member.draining = True
        member.stragglers = []
        member.expiry = self._clock.callLater(self.resume_grace, self._expire, member)
        self._call("drop", member.id).addErrback(self._ignore_when_down, "drop")

    def close(self) -> None:
        """Stop timers; our seats stay in Redis until our lease runs out, so that peers the
        shutdown dropped can resume on another process meanwhile."""
        for seat in list(self._seats.values()):
            self._cancel_expiry(seat)
        for pending in list(self._pending.values()):
            if pending.timeout is not None and pending.timeout.active():
                pending.timeout.cancel()
        if not self._closed.called:
            self._closed.callback(None)

    # -- joining

    def _joined_or_not(self, result, peer_id):
        self._joining_ids.discard(peer_id)
        return result

    def _join_replied(self, reply, pending: _PendingJoin):
        kind = reply[0]
        if pending.deferred.called:
            if kind in (b"joined", b"resumed"):
                self._give_back(reply[1].decode())
            return
        if kind == b"stale":
            self._finish_pending(pending)
            pending.deferred.callback(None)
            return
        if kind == b"full":
            self._finish_pending(pending)
            pending.deferred.errback(RoomFull(pending.room))
            return
        pending.replied = True
        if kind == b"resumed":
            pending.resumed = True
            pending.backlog = reply[2]
        if pending.seat is not None:
            self._complete(pending)

    def _join_failed(self, failure, pending: _PendingJoin):
        if pending.deferred.called:
            return
        self._finish_pending(pending)
        seat = pending.seat
        if seat is not None:
            self._forget(seat)
            self._give_back(seat.id)
        if failure is not None and not failure.check(txredisapi.ConnectionError):
            _log.failure("join in {room}", failure, room=pending.room)
        pending.deferred.errback(Unavailable("the room store (Redis) did not answer in time"))

    def _finish_pending(self, pending):
        self._pending.pop(pending.req, None)
        if pending.timeout is not None and pending.timeout.active():
            pending.timeout.cancel()

    def _welcome_marker(self, req: bytes, peer_id: str, resumed: bool, snapshot: bytes):
        pending = self._pending.get(req)
        if pending is None:
            self._give_back(peer_id)  # the join timed out meanwhile
            return
        room = pending.room
        seat = self._seats.get(peer_id)
        if seat is not None:
            # Resumed on this very process, maybe while its old socket is still half-open.
            self._cancel_expiry(seat)
            previous = seat.connection
            if previous is not None and previous is not pending.connection:
                previous.supersede()
            seat.connection = pending.connection
            seat.token = pending.token
        else:
            seat = self._seats[peer_id] = Seat(peer_id, room, pending.connection, pending.token)
        seat.dropped = seat.draining = False
        seat.stragglers = []
        seat.joining = True
        seat.held = []
        seat.direct = not resumed
        members = {}
        for entry in snapshot.decode().split(","):
            member, _, seq = entry.rpartition(":")
            members[member] = int(float(seq))
        view = self._rooms.get(room)
        if view is None:
            view = self._rooms[room] = _RoomView(members)
        else:
            view.members = members
        view.local.add(peer_id)
        pending.seat = seat
        if pending.replied:
            self._complete(pending)

    def _complete(self, pending: _PendingJoin):
        self._finish_pending(pending)
        seat = pending.seat
        backlog = list(pending.backlog)
        backlog.extend(seat.held)
        seat.held = []
        seat.joining = False
        view = self._rooms[seat.room]
        peers = [peer for peer in view.members if peer != seat.id]
        pending.deferred.callback(JoinResult(seat, peers, seat.token, pending.resumed, backlog))

    def _give_back(self, peer_id: str):
        if self._commands is not None:
            self._call("leave", peer_id).addErrback(self._ignore_when_down, "give back")

    # -- what arrives on our channel, in the order Redis executed the scripts

    def _received(self, message: bytes) -> None:
        kind = message[:1]
        if kind == b"S":
            _, ids, payload = message.split(b"\n", 2)
            seats = self._seats
            for peer in ids.decode().split(","):
                seat = seats.get(peer)
                if seat is not None:
                    self.signals_relayed += 1
                    self._hand(seat, payload)
        elif kind == b"J":
            _, room, peer, seq, live = message.decode().split("\n")
            view = self._rooms.get(room)
            if view is not None and peer not in self._joining_ids:
                view.members[peer] = int(seq)
            self._hand_all(live, messages.peer_joined(peer))
        elif kind == b"L":
            _, room, peer, live = message.decode().split("\n")
            view = self._rooms.get(room)
            if view is not None:
                view.members.pop(peer, None)
            seat = self._seats.get(peer)
            if seat is not None and seat.room == room:
                self._forget(seat)  # removed by a sweep or an overflow, not by us
                if seat.connection is not None:
                    seat.connection.supersede()
            self._hand_all(live, messages.peer_left(peer))
        elif kind == b"W":
            _, req, peer, resumed, snapshot = message.split(b"\n", 4)
            self._welcome_marker(req, peer.decode(), resumed == b"1", snapshot)
        elif kind == b"D":
            _, peer, epoch = message.decode().split("\n")
            self._drop_confirmed(peer, epoch)
        elif kind == b"M":
            seat = self._seats.get(message[2:].decode())
            if seat is not None:
                self._forget(seat, gone=False)  # resumed on another process
                if seat.connection is not None:
                    seat.connection.supersede()

    def _hand_all(self, live: str, payload: bytes) -> None:
        if live:
            seats = self._seats
            for peer in live.split(","):
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
        seat = self._seats.get(peer)
        if seat is None or not seat.draining:
            return
        seat.draining = False
        stragglers, seat.stragglers = seat.stragglers, []
        if stragglers:
            self._call("stragglers", peer, epoch, *stragglers).addErrback(
                self._ignore_when_down, "stragglers")

    # -- seats

    def _expire(self, seat: Seat) -> None:
        seat.expiry = None
        if self._seats.get(seat.id) is seat and seat.dropped:
            self._forget(seat)
            self._call("expire", seat.id).addErrback(self._ignore_when_down, "expire")

    def _forget(self, seat: Seat, gone: bool = True) -> None:
        """This process no longer holds ``seat``; ``gone``: nor is it in the room any more."""
        self._cancel_expiry(seat)
        if self._seats.get(seat.id) is seat:
            del self._seats[seat.id]
        view = self._rooms.get(seat.room)
        if view is not None:
            view.local.discard(seat.id)
            if gone:
                view.members.pop(seat.id, None)
            if not view.local:
                del self._rooms[seat.room]

    def _cancel_expiry(self, seat: Seat) -> None:
        if seat.expiry is not None and seat.expiry.active():
            seat.expiry.cancel()
        seat.expiry = None

    # -- Redis plumbing

    def _call(self, script: str, *args):
        commands = self._commands
        if commands is None:
            return defer.fail(Unavailable("not connected to Redis"))
        return commands.execute_command("EVALSHA", self._sha[script], 0, *self._common, *args)

    def _route_failed(self, failure, count):
        self.signals_lost += count
        if not failure.check(txredisapi.ConnectionError, Unavailable):
            _log.failure("routing a signal", failure)

    def _ignore_when_down(self, failure, what):
        if not failure.check(txredisapi.ConnectionError, Unavailable):
            _log.failure("Redis {what}", failure, what=what)

    def _trouble(self, why: str) -> None:
        """Redis cannot be used, for a reason retrying alone may not fix: one line per reason
        (both connections, and every retry, report the same one), none once it is solved."""
        if why != self._trouble_reported and not self._stopping:
            self._trouble_reported = why
            _log.error("Redis {address}: {why}; joins are refused, retrying", address=self.address,
                       why=why)

    @defer.inlineCallbacks
    def _commands_up(self, protocol):
        try:
            for name, text in SCRIPTS.items():
                yield protocol.execute_command("SCRIPT", "LOAD", text)
            info = yield protocol.execute_command("INFO", "server")
        except txredisapi.ResponseError as e:
            # NOPERM: an ACL without these commands (docs/scaling.md has the one we need).
            self._trouble(f"refused a command ({e})")
            protocol.transport.loseConnection()
            return
        except Exception:
            _log.failure("preparing the Redis connection")
            protocol.transport.loseConnection()
            return
        self._trouble_reported = None
        run_id = None
        for line in info.splitlines():
            if line.startswith(b"run_id:"):
                run_id = line[7:].strip()
        restarted = self._run_id is not None and run_id != self._run_id
        self._run_id = run_id
        self._commands = protocol
        _log.info("Redis {address} connected{restarted}", address=self.address,
                  restarted=" (it restarted: re-registering our seats)" if restarted else "")
        self._register(restarted)

    def _commands_down(self, protocol):
        if self._commands is protocol:
            self._commands = None
            self._registered = False
            if not self._stopping:
                _log.warn("Redis {address}: command connection lost; joins are refused until "
                          "it is back", address=self.address)

    def _subscriber_up(self, protocol):
        self._subscriber = protocol

        def subscribed(_):
            if self._subscriber is protocol:
                self._subscribed = True
                self._register(False)

        def refused(failure):
            self._trouble(f"refused SUBSCRIBE ({failure.getErrorMessage()})")
            protocol.transport.loseConnection()

        d = protocol.subscribe(self.channel)
        d.addCallbacks(subscribed, refused)

    def _subscriber_down(self, protocol):
        if self._subscriber is protocol:
            self._subscriber = None
            self._subscribed = False
            self._registered = False

    def _register(self, restarted: bool):
        """Once both connections are up, (re-)register our lease and our seats."""
        if restarted:
            self._restarted = True
        if self._registering or self._commands is None or not self._subscribed:
            return
        self._registering = True
        restarted, self._restarted = self._restarted, False
        records = []
        for seat in self._seats.values():
            view = self._rooms.get(seat.room)
            seq = view.members.get(seat.id, 0) if view else 0
            records += [seat.id, seat.room, str(seq), seat.token,
                        "dropped" if seat.dropped else "live"]
        d = self._call("register", int(self.lease_ttl * 1000), "1" if restarted else "0",
                       *records)

        def registered(lost):
            self._registering = False
            for peer in lost:
                seat = self._seats.get(peer.decode())
                if seat is not None:
                    self._forget(seat, gone=False)
                    if seat.connection is not None:
                        seat.connection.supersede()
            self._registered = self._commands is not None and self._subscribed

        def failed(failure):
            self._registering = False
            self._restarted = self._restarted or restarted
            self._ignore_when_down(failure, "register")

        d.addCallbacks(registered, failed)

    def _beat(self):
        commands = self._commands
        if commands is None or not self._registered:
            return
        d = self._call("heartbeat", int(self.lease_ttl * 1000))
        # A Redis that stopped answering (not a closed socket) is noticed here.
        timer = self._clock.callLater(self.lease_ttl / 3, commands.transport.abortConnection)

        def answered(had_lease):
            if timer.active():
                timer.cancel()
            if not had_lease:
                self._registered = False
                self._register(True)

        def failed(failure):
            if timer.active():
                timer.cancel()
            self._ignore_when_down(failure, "heartbeat")

        d.addCallbacks(answered, failed)


class RedisHubService(service.Service):
    """Connects the hub to Redis on start; on stop, hangs up after the sockets are closed."""

    def __init__(self, hub: RedisHub):
        self.hub = hub

    def startService(self):
        super().startService()
        self.hub.start()

    def stopService(self):
        super().stopService()
        return self.hub.stop()
