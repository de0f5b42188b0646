"""The WebSocket adapter: protocol v1 frames in, hub calls out.

A thin layer around :mod:`rtcsvc.hub`. It checks the handshake (room name, origin, resume
token), parses frames with :mod:`rtcsvc.messages`, hands them to the hub, and writes what the
hub gives back. Every Autobahn option is set in one place, :meth:`SignalingFactory.configure`,
because Autobahn's own defaults are permissive. The wire contract is docs/protocol.md.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass
from types import FunctionType

from autobahn.twisted.websocket import WebSocketServerFactory, WebSocketServerProtocol
from autobahn.websocket.types import ConnectionDeny
from twisted.internet import defer
from twisted.internet.interfaces import IPushProducer, ISSLTransport
from twisted.logger import Logger
from zope.interface import implementer

from rtcsvc import messages
from rtcsvc.hub import IPeerConnection, RoomFull, Unavailable, UnknownPeer
from rtcsvc.invite import room_token_valid
from rtcsvc.ratelimit import TokenBucket

ROOM_PATH = re.compile(r"/ws/([A-Za-z0-9_-]{1,64})\Z")

CLOSE_GOING_AWAY = 1001
CLOSE_INVALID_PAYLOAD = 1007
CLOSE_POLICY = 1008
CLOSE_TRY_AGAIN = 1013
CLOSE_ROOM_FULL = 4001
CLOSE_SUPERSEDED = 4002
CLOSE_NOT_INVITED = 4003
#: Close codes with which a client says "I am leaving" rather than "my network broke"; None is
#: a close frame without a code, which is what a browser's ``ws.close()`` sends.
LEAVING = frozenset({1000, 1001, None})
#: More reports than this from one connection are ignored: a mesh of six needs five.
MAX_REPORTS = 32

# One logger for all sockets. A Logger as a class attribute is a descriptor that builds a new
# Logger (bound to the instance) on every `self._log` access, three times per join+leave; the
# namespace is the one the class attribute gave, so the lines read exactly as before.
_log = Logger(namespace="rtcsvc.protocol.SignalingProtocol")


#: The largest handshake request header, as twisted.web's ``HTTPChannel.totalHeadersSize``.
MAX_REQUEST_HEADER = 16384


@dataclass(frozen=True)
class Limits:
    """What one client may cost the server; defaults documented in docs/reliability.md."""

    max_message_size: int = 65536
    rate: float = 50.0  # messages per second; 0 turns rate limiting off
    burst: int = 300
    max_connections: int = 10000
    max_per_client: int = 200
    max_send_buffer: int = 1 << 20  # bytes queued for a client that stopped reading
    ping_interval: float = 20.0
    ping_timeout: float = 10.0
    room_secret: bytes | None = None


@implementer(IPeerConnection, IPushProducer)
class SignalingProtocol(WebSocketServerProtocol):
    """One browser's signaling socket. Autobahn claims ``.log``; ours is the module's ``_log``."""

    _member = None
    _room = None
    _resume_token = None
    _client = "?"
    _superseded = False
    _kicked = False
    _refresh = None
    _reports = 0
    _admitted = False
    _invited = True
    _bucket = None
    _limited = 0  # messages refused in a row by the rate limit
    _paused = False  # the transport's buffer is full: the client is not reading
    _backlog_bytes = 0  # written while paused

    # -- handshake

    def processHandshake(self):
        # Autobahn buffers a request until its blank line, however long: bounded here as
        # twisted.web bounds its headers (16 KiB), before any of it is parsed. Only called
        # while the handshake is in progress.
        if (len(self.data) > MAX_REQUEST_HEADER
                and self.data.find(b"\r\n\r\n", 0, MAX_REQUEST_HEADER + 4) < 0):
            self.factory.refuse("header-too-large")
            self.failHandshake("The request header is larger than 16 KiB.", 431)
            self.data = b""
            return
        super().processHandshake()

    def onConnect(self, request):
        factory = self.factory
        match = ROOM_PATH.match(request.path)
        if match is None:
            factory.refuse("bad-room")
            raise ConnectionDeny(400, "The room name must match [A-Za-z0-9_-]{1,64}.")
        headers = request.headers
        view = factory.proxies.view(
            getattr(self.transport.getPeer(), "host", ""),
            ISSLTransport.providedBy(self.transport),
            headers.get,
        )
        self._client = view.client
        if not factory.origins.allows(headers.get("origin"), view):
            factory.refuse("origin")
            raise ConnectionDeny(403, "This origin may not open a signaling socket here.")
        self._room = match.group(1)
        limits = factory.limits
        if factory.admitted >= limits.max_connections:
            factory.refuse("server-full")
            raise ConnectionDeny(503, "The server is at its connection limit; try again later.")
        if factory.per_client[self._client] >= limits.max_per_client:
            factory.refuse("client-limit")
            raise ConnectionDeny(429, "Too many connections from your address.")
        factory.admit(self._client)
        self._admitted = True
        if limits.room_secret is not None:
            # Refused after the upgrade (see onOpen): a browser cannot read an HTTP status,
            # and "your invite link has expired" is worth telling the person.
            self._invited = room_token_valid(limits.room_secret, self._room,
                                             _param(request, "token"), factory.clock.seconds())
        self._resume_token = _param(request, "resume")
        return None

    def onOpen(self):
        factory = self.factory
        factory.connections.add(self)
        factory.metrics.connections.inc()
        if factory.limits.rate > 0:
            self._bucket = TokenBucket(factory.limits.rate, factory.limits.burst,
                                       factory.clock.seconds())
        # We are the transport's producer, so that a client that stops reading shows up as
        # pauseProducing() instead of silent buffering. (On the site's route, twisted.web's
        # channel still is; most sockets come straight from rtcsvc.listener, with none.)
        self.transport.unregisterProducer()
        self.transport.registerProducer(self, True)
        if not self._invited:
            factory.refuse("invite")
            self._kick("not-invited", "This room needs a valid, unexpired invite link.",
                       CLOSE_NOT_INVITED)
            return
        # The in-memory hub answers at once; only a remote hub (Redis) returns a Deferred.
        # Building a Deferred and its callback chain for an answer already there was ~10 % of
        # rtcsvc's own work per join.
        try:
            result = factory.hub.join(self._room, self, self._resume_token)
        except Exception:
            result = defer.fail()
        if isinstance(result, defer.Deferred):
            result.addCallbacks(self._joined, self._not_joined)
            result.addErrback(lambda f: _log.failure("joining {room}", f, room=self._room))
            return
        try:
            self._joined(result)
        except Exception:
            _log.failure("joining {room}", room=self._room)

    def _joined(self, result):
        if self.state != self.STATE_OPEN:
            # The socket died while a remote hub was answering: give the seat back.
            self.factory.hub.drop(result.member)
            return
        factory = self.factory
        self._member = member = result.member
        ice = factory.ice.ice_servers(member.id, factory.clock.seconds())
        self.send(messages.welcome(member.id, self._room, result.peers, ice, result.token,
                                   factory.hub.max_peers, result.resumed))
        for payload in result.backlog:
            self.send(payload)
        if factory.ice.has_turn:
            self._refresh = factory.clock.callLater(factory.ice.refresh_interval,
                                                    self._refresh_ice)
        # The event word is part of the format, not a field: one field fewer to format.
        if factory.log_sessions:
            _log.info(
                _RESUMED if result.resumed else _JOINED,
                room=self._room, peer=member.id, client=self._client,
            )

    def _not_joined(self, failure):
        if failure.check(Unavailable):
            # A shared hub (Redis) cannot seat anyone now. 1013 is a standard code, which
            # sendClose() refuses, hence the frame.
            self._kicked = True
            self._error("unavailable", "The service cannot seat you right now; try again.")
            self.sendCloseFrame(CLOSE_TRY_AGAIN, b"Try again later.", isReply=False)
            return None
        failure.trap(RoomFull)
        self._kick("room-full", "This room is full.", CLOSE_ROOM_FULL,
                   maxPeers=self.factory.hub.max_peers)

    def _refresh_ice(self):
        factory = self.factory
        self.send(messages.ice_servers(
            factory.ice.ice_servers(self._member.id, factory.clock.seconds())))
        self._refresh = factory.clock.callLater(factory.ice.refresh_interval, self._refresh_ice)

    # -- frames

    def onMessageEnd(self):
        # Autobahn's version also fires its observer event "message" (a Deferred and its
        # callbacks per message) that nothing here listens to; deliver the message directly.
        if not self.failedByMe:
            payload = b"".join(self.message_data)
            if self.message_is_binary or _is_utf8(payload):
                self.onMessage(payload, self.message_is_binary)
            else:
                # RFC 6455 8.1: invalid UTF-8 in a text message fails the connection.
                self.failedByMe = True
                self.sendCloseFrame(CLOSE_INVALID_PAYLOAD, b"Text messages must be UTF-8.",
                                    isReply=False)
        self.message_data = None

    def onMessage(self, payload, isBinary):
        member = self._member
        if member is None:
            return  # still joining, or on the way out
        if self._bucket is not None and not self._bucket.take(self.factory.clock.seconds()):
            return self._rate_limited()
        self._limited = 0
        if isBinary:
            return self._error("bad-message", "Binary frames are not part of protocol v1.")
        try:
            message = messages.parse(payload)
        except messages.BadMessage as e:
            return self._error("bad-message", str(e))
        if message.__class__ is messages.Signal:
            try:
                self.factory.hub.signal(member, message.to, message.data)
            except UnknownPeer:
                self._error("unknown-peer", "No such peer in this room.")
        else:
            self._reports += 1
            if self._reports <= MAX_REPORTS:
                self.factory.metrics.record_report(message)

    def _max_message_size_exceeded(self, msg_size, max_msg_size, reason):
        # Autobahn's hook for an over-long frame, called from the frame *header*: nothing of
        # the payload has been buffered. Say why before the 1009 close it sends.
        self._kicked = True
        self._error("too-large", f"Messages are limited to {max_msg_size} bytes.")
        super()._max_message_size_exceeded(msg_size, max_msg_size, reason)

    def _rate_limited(self):
        self._limited += 1
        if self._limited == 1:
            # One error per burst of refusals: answering every flooded message would let
            # the flood make us write as much as it sends.
            self._error("rate-limited", "Too many messages; slow down.")
        elif self._limited > self.factory.limits.burst and not self._kicked:
            # Once: the rest of the flood already read arrives after our close frame.
            self._kicked = True
            self.factory.metrics.errors.labels("rate-limit-close").inc()
            self.sendCloseFrame(CLOSE_POLICY, b"Rate limit exceeded.", isReply=False)

    # -- IPeerConnection

    def send(self, payload: bytes) -> None:
        if self._paused:
            self._backlog_bytes += len(payload)
            if self._backlog_bytes > self.factory.limits.max_send_buffer:
                # It stopped reading: drop it (it may resume and get what it missed from the
                # hub's bounded queue) rather than buffer without bound.
                _log.info("dropping slow reader peer={peer}", peer=self._member_id())
                self.factory.metrics.errors.labels("slow-reader").inc()
                self._paused = False
                self.transport.abortConnection()
                return
        # The relay's hot path: one write of a pre-framed text frame. sendMessage() would
        # validate its arguments, consult compression (always off here), count traffic and
        # format a debug log line's arguments on every call, which costs as much as the relay
        # itself (docs/performance.md).
        if self.state == self.STATE_OPEN:
            self.transport.write(_text_frame(payload))

    # -- IPushProducer: the transport tells us when the client stops reading

    def pauseProducing(self):
        self._paused = True

    def resumeProducing(self):
        self._paused = False
        self._backlog_bytes = 0

    def stopProducing(self):
        self._paused = False

    def supersede(self) -> None:
        self._superseded = True
        self._member = None
        self.sendClose(CLOSE_SUPERSEDED, "Resumed on another connection.")

    # -- leaving

    def onClose(self, wasClean, code, reason):
        factory = self.factory
        factory.connections.discard(self)
        if self._admitted:
            self._admitted = False
            factory.release(self._client)
        if self._refresh is not None and self._refresh.active():
            self._refresh.cancel()
        member, self._member = self._member, None
        if member is None:
            return
        leaving = self._kicked or (
            wasClean and not self.closedByMe and self.remoteCloseCode in LEAVING)
        if leaving:
            factory.hub.leave(member)
        else:
            factory.hub.drop(member)
        if factory.log_sessions:
            _log.info(
                _LEFT if leaving else _DROPPED,
                room=self._room, peer=member.id, client=self._client, code=code,
            )

    def going_away(self) -> None:
        """The server is stopping: close with 1001 so clients reconnect (and resume)."""
        # sendClose() only takes application codes (1000, 3000-4999); 1001 is the standard
        # "going away" that browsers and libraries treat as "reconnect later".
        self.sendCloseFrame(CLOSE_GOING_AWAY, b"Server restarting.", isReply=False)

    # -- helpers

    def _member_id(self):
        return self._member.id if self._member is not None else "-"

    def _error(self, code: str, text: str, **details) -> None:
        if self.state != self.STATE_OPEN:
            # Frames that arrived after our close (a flood closed with 1008 keeps coming in
            # the same read): sendMessage() would raise Disconnected and drop the socket
            # before the client reads why.
            return
        self.factory.metrics.errors.labels(code).inc()
        self.sendMessage(messages.error(code, text, **details), False)

    def _kick(self, code: str, text: str, close_code: int, **details) -> None:
        self._kicked = True
        self._error(code, text, **details)
        self.sendClose(close_code, text)


_JOINED = "joined room={room} peer={peer} client={client}"
_RESUMED = "resumed room={room} peer={peer} client={client}"
_LEFT = "left room={room} peer={peer} client={client} code={code}"
_DROPPED = "dropped room={room} peer={peer} client={client} code={code}"


def _is_utf8(data: bytes) -> bool:
    """Strict UTF-8 (no surrogates, no overlong forms), as RFC 6455 asks of text messages."""
    if data.isascii():
        return True
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def _text_frame(payload: bytes) -> bytes:
    """One unmasked, unfragmented server-to-client text frame (RFC 6455 section 5.2)."""
    n = len(payload)
    if n < 126:
        return _SHORT_HEADERS[n] + payload
    if n < 65536:
        return b"\x81\x7e" + n.to_bytes(2, "big") + payload
    return b"\x81\x7f" + n.to_bytes(8, "big") + payload


_SHORT_HEADERS = tuple(bytes((0x81, n)) for n in range(126))


def _param(request, name):
    values = request.params.get(name)
    return values[0] if values else None


class SignalingFactory(WebSocketServerFactory):
    """Shared state of all signaling sockets of one service."""

    protocol = SignalingProtocol

    def __init__(self, hub, *, clock, ice, origins, proxies, metrics, limits=Limits(),
                 log_sessions: bool = True):
        # server=None: no "Server: AutobahnPython/x.y" banner in the handshake response.
        super().__init__(server=None, reactor=clock)
        self.hub = hub
        self.clock = clock
        self.ice = ice
        self.origins = origins
        self.proxies = proxies
        self.metrics = metrics
        self.limits = limits
        self.log_sessions = log_sessions
        self.connections: set[SignalingProtocol] = set()
        self.admitted = 0  # handshakes accepted and not yet closed
        self.per_client: Counter[str] = Counter()
        self.configure(limits)

    def configure(self, limits: Limits) -> None:
        """Every Autobahn option that matters, set explicitly."""
        self.setProtocolOptions(
            webStatus=False,  # no status page with a version on plain GETs of /ws/
            # Text messages are checked whole in onMessageEnd (_is_utf8): Autobahn's
            # byte-at-a-time validator costs 13 us per 4 KB message, str.isascii() 0.1 us.
            utf8validateIncoming=False,
            requireMaskedClientFrames=True,
            # Checked against each frame's header: a 1 GB frame is refused before any of it
            # is buffered.
            maxFramePayloadSize=limits.max_message_size,
            maxMessagePayloadSize=limits.max_message_size,
            # Close with a code (1009, 1002...) instead of dropping TCP, so clients learn why.
            failByDrop=False,
            # The handshake's deadline is kept by rtcsvc.listener, from the first byte and to
            # the second (Autobahn's batched timer fires up to a second early).
            openHandshakeTimeout=0,
            closeHandshakeTimeout=5,
            # A peer that stops answering pings is dropped (then held for the resume grace).
            autoPingInterval=limits.ping_interval,
            autoPingTimeout=limits.ping_timeout,
            perMessageCompressionAccept=lambda offers: None,  # compression bombs: no thanks
            # rtcsvc checks Origin itself in onConnect (it knows about trusted proxies and
            # answers 403); Autobahn's own check would compare with one fixed host and port.
            # For the same reason "null" passes Autobahn and is refused (403) by rtcsvc.
            allowedOrigins=["*"],
            allowNullOrigin=True,
            trustXForwardedFor=0,
            serveFlashSocketPolicy=False,
        )
        # Autobahn copies every option onto each protocol instance unless the protocol already
        # has it. As class attributes of a protocol class of this factory's own, they cost
        # nothing per connection: 29 fewer attributes in every socket's __dict__ (idle memory,
        # docs/performance.md). Functions become staticmethods so they stay plain callables.
        # With nothing left to copy, CONFIG_ATTRS is emptied: Autobahn also pretty-prints the
        # list of copied options for a debug line on every connection, whatever the log level
        # (pprint.pformat, ~120 us per handshake, the largest single cost of a join).
        options = {"CONFIG_ATTRS": ()}
        for name in SignalingProtocol.CONFIG_ATTRS:
            value = getattr(self, name)
            options[name] = staticmethod(value) if isinstance(value, FunctionType) else value
        self.protocol = type(SignalingProtocol.__name__, (SignalingProtocol,), options)

    def refuse(self, reason: str) -> None:
        self.metrics.refused.labels(reason).inc()

    def admit(self, client: str) -> None:
        self.admitted += 1
        self.per_client[client] += 1

    def release(self, client: str) -> None:
        self.admitted -= 1
        self.per_client[client] -= 1
        if self.per_client[client] <= 0:
            del self.per_client[client]

    def shut_down(self, timeout: float = 3.0):
        """Close every socket with 1001; fires when all are closed or ``timeout`` passed."""
        if not self.connections:
            return defer.succeed(None)
        done = defer.Deferred()
        for connection in list(self.connections):
            connection.going_away()

        def check():
            if not self.connections or self.clock.seconds() >= deadline:
                done.callback(None)
            else:
                self.clock.callLater(0.05, check)

        deadline = self.clock.seconds() + timeout
        self.clock.callLater(0.05, check)
        return done
