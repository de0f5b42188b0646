"""The WebSocket adapter: protocol v1 frames in, hub calls out.

A thin layer around :mod:`rtcsvc.hub`. It checks the handshake (room name, origin, resume
token), parses frames with :mod:`rtcsvc.messages`, hands them to the hub, and writes what the
hub gives back. Every Autobahn option is set in one place, :meth:`SignalingFactory.configure`,
because Autobahn's own defaults are permissive. The wire contract is docs/protocol.md.

What one client may cost is metered here: every frame it sends takes a token (pings, pongs
and continuation fragments too, from Autobahn's ``onFrameBegin``), every byte queued for it
counts against ``--max-send-buffer`` once it stops reading (pongs and errors too), and each
client (an IPv4 address or an IPv6 /64) has a cap on sockets and a rate of handshakes. A
handshake that hits a bug is refused with one log line, never a traceback.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, replace

from autobahn.twisted.websocket import WebSocketServerFactory, WebSocketServerProtocol
from autobahn.websocket.types import ConnectionDeny
from twisted.internet import defer
from twisted.internet.interfaces import IPushProducer, ISSLTransport
from twisted.logger import Logger
from zope.interface import implementer

from rtcsvc import autobahn_internals, messages
from rtcsvc.admission import Admission, Handshake, Refused
from rtcsvc.hub import (
    IPeerConnection,
    IResumingHub,
    NotResumable,
    RoomFull,
    Unavailable,
    UnknownPeer,
)
from rtcsvc.ratelimit import ClientBuckets, TokenBucket
from rtcsvc.turn import TurnMinter

CLOSE_GOING_AWAY = 1001
CLOSE_INVALID_PAYLOAD = 1007
CLOSE_POLICY = 1008
CLOSE_INTERNAL_ERROR = 1011
CLOSE_TRY_AGAIN = 1013
CLOSE_ROOM_FULL = 4001
CLOSE_SUPERSEDED = 4002
CLOSE_NOT_INVITED = 4003
#: Close codes with which a client says "I am leaving" rather than "my network broke"; None is
#: a close frame without a code, which is what a browser's ``ws.close()`` sends.
LEAVING = frozenset({1000, 1001, None})
#: Reports counted per client address (its /64): a few a second on average, a minute's worth at
#: once, so an office behind one address is counted and one client cannot fake the metrics.
REPORTS_PER_CLIENT_RATE = 2.0
REPORTS_PER_CLIENT_BURST = 120
#: More reports than this from one connection are ignored: a mesh of six needs five.
MAX_REPORTS = 32
#: A probe socket (the lobby's network check, docs/protocol.md "Probe sockets") lives this
#: long at most, and so do the TURN credentials it is handed.
PROBE_SECONDS = 120

# One logger for all sockets. A Logger as a class attribute is a descriptor that builds a new
# Logger (bound to the instance) on every `self._log` access, three times per join+leave; the
# namespace is the one the class attribute gave, so the lines read exactly as before.
_log = Logger(namespace="rtcsvc.protocol.SignalingProtocol")


MAX_REQUEST_HEADER = autobahn_internals.MAX_REQUEST_HEADER
#: Seconds a socket closed for abuse has to take its close frame before it is cut.
ABUSER_FLUSH_TIMEOUT = 5.0


@dataclass(frozen=True)
class Limits:
    """What one client may cost the server; defaults documented in docs/reliability.md."""

    max_message_size: int = 65536
    rate: float = 50.0  # messages per second; 0 turns rate limiting off
    burst: int = 300
    max_connections: int = 10000
    max_per_client: int = 200
    max_send_buffer: int = 1 << 20  # bytes queued for a client that stopped reading
    handshake_rate: float = 10.0  # handshakes per second per client; 0 turns it off
    ping_interval: float = 20.0
    ping_timeout: float = 10.0
    room_secret: bytes | None = None


@implementer(IPeerConnection, IPushProducer)
class SignalingProtocol(autobahn_internals.OversizeHook, WebSocketServerProtocol):
    """One browser's signaling socket. Autobahn claims ``.log``; ours is the module's ``_log``."""

    _member = None
    _room = None
    _resume_token = None
    _client = "?"
    _client_key = "?"  # what the per-client limits count: the address, or its IPv6 /64
    _superseded = False
    _kicked = False
    _refresh = None
    _reports = 0
    _ticket = None  # the admission's ticket, from the handshake until the close
    _invited = True
    _bucket = None
    _limited = 0  # frames refused in a row by the rate limit
    _frame_refused = False  # the frame being read was refused by the rate limit
    _drop_message = False  # a frame of the message being read was refused
    _abort_call = None  # cuts a socket closed for abuse that does not take its close frame
    _paused = False  # the transport's buffer is full: the client is not reading
    _backlog_bytes = 0  # written while paused
    _probe = False  # ?probe=1: ICE servers for a network check, no seat

    # -- handshake

    def processHandshake(self):
        # Autobahn buffers a request until its blank line, however long: bounded here as
        # twisted.web bounds its headers (16 KiB), before any of it is parsed. Only called
        # while the handshake is in progress.
        if autobahn_internals.handshake_too_large(self):
            self.factory.refuse("header-too-large")
            self.failHandshake("The request header is larger than 16 KiB.", 431)
            autobahn_internals.discard_handshake(self)
            return
        super().processHandshake()

    def onConnect(self, request):
        factory = self.factory
        handshake = Handshake(getattr(self.transport.getPeer(), "host", ""),
                              ISSLTransport.providedBy(self.transport), request.path,
                              request.headers.get, request.params)
        try:
            ticket = factory.admission.admit(handshake, factory.clock.seconds())
        except Refused as refused:
            factory.refuse(refused.reason)
            raise ConnectionDeny(refused.status, refused.text) from None
        except Exception as e:
            # A bug, reached by whatever this client sent: one line for the operator (never
            # the exception's text, which may quote a token), a bare 500 for the client.
            factory.refuse("error")
            factory.unexpected("refusing a handshake", self._client, e)
            raise ConnectionDeny(500, "Internal server error") from None
        self._ticket = ticket
        self._client = ticket.client
        self._client_key = ticket.key
        self._room = ticket.room
        self._invited = ticket.invited
        self._resume_token = ticket.resume_token
        self._probe = request.params.get("probe") == ["1"]
        return None

    def onOpen(self):
        try:
            self._open()
        except Exception as e:
            self._unexpected("opening a socket", e)

    def _open(self):
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
        # The hub answers through seated() or refused(): at once in memory, later from Redis.
        # (No Deferred for an answer already there: building one and its callback chain was
        # ~10 % of rtcsvc's own work per join.)
        hub = factory.hub
        try:
            if self._probe and self._invited:
                self._open_probe()
            elif self._probe:
                self.refused(NotResumable(self._room))
            elif self._invited:
                hub.join(self._room, self, self._resume_token)
            elif self._resume_token is not None and factory.resumes_alone:
                # The invite may have expired during the call: a live resume token is proof
                # enough. A stale one gets NotResumable (not-invited), never a fresh seat.
                hub.resume(self._room, self, self._resume_token)
            else:
                self.refused(NotResumable(self._room))
        except Exception as e:
            self._unexpected("joining a room", e)

    def seated(self, result):
        if self.state != self.STATE_OPEN:
            # The socket died while a remote hub was answering: give the seat back.
            self.factory.hub.drop(result.member)
            return
        try:
            self._welcome(result)
        except Exception as e:
            self._unexpected("joining a room", e)

    def _welcome(self, result):
        factory = self.factory
        self._member = member = result.member
        now = factory.clock.seconds()
        with_turn = factory.ice.has_turn and factory.turn_minter.may_mint(self._client_key, now)
        if factory.ice.has_turn and not with_turn:
            factory.metrics.turn_mints_refused.inc()
        ice = factory.ice.ice_servers(member.id, now, with_turn)
        self.send(messages.welcome(member.id, self._room, result.peers, ice, result.token,
                                   factory.hub.max_peers, result.resumed))
        for payload in result.backlog:
            self.send(payload)
        if with_turn:
            self._refresh = factory.clock.callLater(factory.ice.refresh_interval,
                                                    self._refresh_ice)
        # The event word is part of the format, not a field: one field fewer to format.
        if factory.log_sessions:
            _log.info(
                _RESUMED if result.resumed else _JOINED,
                room=self._room, peer=member.id, client=self._client,
            )

    def refused(self, reason):
        if isinstance(reason, NotResumable):
            self.factory.refuse("invite")
            self._kick("not-invited", "This room needs a valid, unexpired invite link.",
                       CLOSE_NOT_INVITED)
        elif isinstance(reason, Unavailable):
            # A shared hub (Redis) cannot seat anyone now. 1013 is a standard code, which
            # sendClose() refuses, hence the frame.
            self._kicked = True
            self._error("unavailable", "The service cannot seat you right now; try again.")
            self.sendCloseFrame(CLOSE_TRY_AGAIN, b"Try again later.", isReply=False)
        elif isinstance(reason, RoomFull):
            self._kick("room-full", "This room is full.", CLOSE_ROOM_FULL,
                       maxPeers=self.factory.hub.max_peers)
        else:
            self._unexpected("joining a room", reason)

    def _open_probe(self):
        # The same admission as a join (origin, rates, per-client sockets, invite) and the
        # same per-client TURN budget, but no seat, and short-lived credentials.
        factory = self.factory
        now = factory.clock.seconds()
        with_turn = factory.ice.has_turn and factory.turn_minter.may_mint(self._client_key, now)
        if factory.ice.has_turn and not with_turn:
            factory.metrics.turn_mints_refused.inc()
        ice = replace(factory.ice, turn_ttl=min(factory.ice.turn_ttl, PROBE_SECONDS))
        self.send(messages.probe(ice.ice_servers("probe-" + os.urandom(9).hex(), now, with_turn)))
        self._refresh = factory.clock.callLater(PROBE_SECONDS, self.sendClose, 1000)

    def _refresh_ice(self):
        factory = self.factory
        self.send(messages.ice_servers(
            factory.ice.ice_servers(self._member.id, factory.clock.seconds())))
        self._refresh = factory.clock.callLater(factory.ice.refresh_interval, self._refresh_ice)

    # -- frames

    def onFrameBegin(self):
        # Every frame a client sends takes a token, whatever it is: a ping, a pong or an empty
        # continuation fragment costs us as much to parse as a message, and an answered ping
        # costs a write. Refused data frames drop their message (onMessageEnd); refused pings
        # go unanswered (onPing). Called for each frame header, before any of its payload.
        bucket = self._bucket
        if bucket is not None:
            if bucket.take(self.factory.clock.seconds()):
                self._limited = 0
                self._frame_refused = False
            else:
                self._frame_refused = True
                if autobahn_internals.frame_is_data(self):
                    self._drop_message = True
                self._rate_limited()
        _frame_begin(self)

    def onPing(self, payload):
        # Autobahn's answers every ping, and writes the pong whether or not the client reads.
        if self._frame_refused or self.state != self.STATE_OPEN:
            return
        if self._paused and self._over_send_buffer(len(payload) + 2):
            return
        self.sendPong(payload)

    def onMessageEnd(self):
        # Autobahn's version also fires its observer event "message" (a Deferred and its
        # callbacks per message) that nothing here listens to; deliver the message directly.
        if self._drop_message:
            self._drop_message = False  # refused by the rate limit, and told so then
        elif not autobahn_internals.failed_by_me(self):
            payload, binary = autobahn_internals.take_message(self)
            if binary or _is_utf8(payload):
                self.onMessage(payload, binary)
            else:
                # RFC 6455 8.1: invalid UTF-8 in a text message fails the connection.
                autobahn_internals.mark_failed_by_me(self)
                self.sendCloseFrame(CLOSE_INVALID_PAYLOAD, b"Text messages must be UTF-8.",
                                    isReply=False)
        autobahn_internals.drop_message(self)

    def onMessage(self, payload, isBinary):
        member = self._member
        if member is None:
            if self._probe and not isBinary and not self._reports:
                self._probe_message(payload)
            return  # still joining, or on the way out
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
            self._count(message)

    def _probe_message(self, payload):
        # A probe socket says one thing: its network check's verdict.
        try:
            message = messages.parse(payload)
        except messages.BadMessage as e:
            return self._error("bad-message", str(e))
        if message.__class__ is not messages.NetCheck:
            return self._error("bad-message", "A probe socket only sends 'netcheck'.")
        self._count(message)

    def _count(self, message):
        self._reports += 1
        factory = self.factory
        if self._reports <= MAX_REPORTS and factory.reports.take(self._client_key,
                                                                 factory.clock.seconds()):
            if message.__class__ is messages.NetCheck:
                factory.metrics.netchecks.labels(message.verdict, message.transport).inc()
            else:
                factory.metrics.record_report(message)

    def message_too_large(self, max_size):
        # Called from an over-long frame's header: nothing of its payload has been buffered.
        # Say why before the 1009 close Autobahn sends.
        self._kicked = True
        self._error("too-large", f"Messages are limited to {max_size} bytes.")

    def _rate_limited(self):
        self._limited += 1
        if self._limited == 1:
            # One error per burst of refusals: answering every flooded message would let
            # the flood make us write as much as it sends.
            self._error("rate-limited", "Too many messages; slow down.")
        elif self._limited > self.factory.limits.burst:
            self._close_abuser()

    def _close_abuser(self):
        """Close with 1008 and read nothing more: the rest of the flood is not worth parsing."""
        if self.state == self.STATE_CLOSED:
            return
        factory = self.factory
        self._kicked = True
        factory.metrics.errors.labels("rate-limit-close").inc()
        factory.admission.penalise(self._client_key, factory.clock.seconds())
        self.sendCloseFrame(CLOSE_POLICY, b"Rate limit exceeded.", isReply=False)
        autobahn_internals.set_unclean_reason(self, "closed with 1008 for exceeding the rate limit")
        transport = self.transport
        # Closed state: Autobahn stops parsing what was already read, and reads no more.
        # A client that is not reading cannot take the close frame either: cut it now, or
        # once it has had the time a closing handshake gets.
        self.dropConnection(abort=self._paused)
        if not self._paused:
            self._abort_call = factory.clock.callLater(ABUSER_FLUSH_TIMEOUT,
                                                       transport.abortConnection)

    # -- IPeerConnection

    def send(self, payload: bytes) -> None:
        if self._paused and self._over_send_buffer(len(payload)):
            return
        # The relay's hot path: one write of a pre-framed text frame. sendMessage() would
        # validate its arguments, consult compression (always off here), count traffic and
        # format a debug log line's arguments on every call, which costs as much as the relay
        # itself (docs/performance.md).
        if self.state == self.STATE_OPEN:
            self.transport.write(_text_frame(payload))

    def _over_send_buffer(self, size: int) -> bool:
        """Count ``size`` more bytes queued for a client that stopped reading; past
        ``--max-send-buffer`` drop it (it may resume and get what it missed from the hub's
        bounded queue) rather than buffer without bound."""
        self._backlog_bytes += size
        if self._backlog_bytes <= self.factory.limits.max_send_buffer:
            return False
        _log.info("dropping slow reader peer={peer}", peer=self._member_id())
        self.factory.metrics.errors.labels("slow-reader").inc()
        self._paused = False
        self.transport.abortConnection()
        return True

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
        if self._ticket is not None:
            self._ticket = None
            factory.admission.release(self._client_key)
        if self._refresh is not None and self._refresh.active():
            self._refresh.cancel()
        if self._abort_call is not None and self._abort_call.active():
            self._abort_call.cancel()
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
        # Through send(): an error is bytes queued for the client like any other message.
        self.send(messages.error(code, text, **details))

    def _unexpected(self, doing: str, error) -> None:
        """A bug while serving this socket: one log line, and close with 1011."""
        self.factory.unexpected(doing, self._client, error)
        self._kicked = True
        if self.state == self.STATE_OPEN:
            self.sendCloseFrame(CLOSE_INTERNAL_ERROR, b"Internal server error.", isReply=False)

    def _kick(self, code: str, text: str, close_code: int, **details) -> None:
        self._kicked = True
        self._error(code, text, **details)
        self.sendClose(close_code, text)


_frame_begin = autobahn_internals.frame_begin

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


def _where(error) -> str:
    """Where ``error`` (an exception or a Failure) was raised: "file.py:123 in function"."""
    tb = error.getTracebackObject() if hasattr(error, "getTracebackObject") else \
        error.__traceback__
    while tb is not None and tb.tb_next is not None:
        tb = tb.tb_next
    if tb is None:
        return "an unknown place"
    code = tb.tb_frame.f_code
    return f"{os.path.basename(code.co_filename)}:{tb.tb_lineno} in {code.co_name}"


def _error_name(error) -> str:
    value = getattr(error, "value", error)  # a Failure's exception
    return type(value).__name__


class SignalingFactory(WebSocketServerFactory):
    """Shared state of all signaling sockets of one service."""

    protocol = SignalingProtocol

    def __init__(self, hub, *, clock, ice, origins, proxies, metrics, limits=Limits(),
                 log_sessions: bool = True, turn_minter: TurnMinter | None = None):
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
        #: How many new TURN credentials each client may be handed (--turn-mint-rate).
        self.turn_minter = turn_minter or TurnMinter()
        #: Call-setup reports taken per client, however many sockets it opens.
        self.reports = ClientBuckets(REPORTS_PER_CLIENT_RATE, REPORTS_PER_CLIENT_BURST)
        self.connections: set[SignalingProtocol] = set()
        self.admission = Admission(origins, proxies, limits.max_connections,
                                   limits.max_per_client, limits.handshake_rate,
                                   limits.room_secret)
        #: Whether a resume token alone may resume (the hub can resume without seating).
        self.resumes_alone = IResumingHub.providedBy(hub)
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
        self.protocol = autobahn_internals.protocol_with_options(SignalingProtocol, self)

    def refuse(self, reason: str) -> None:
        self.metrics.refused.labels(reason).inc()

    def unexpected(self, doing: str, client: str, error) -> None:
        """Log a bug met while serving ``client`` as one line: no traceback, no message text
        (it could quote a token), only the exception's type and where it was raised."""
        _log.error("unexpected {error} while {doing} for {client}, at {where}",
                   error=_error_name(error), doing=doing, client=client, where=_where(error))

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
