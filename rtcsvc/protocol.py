"""The WebSocket adapter: protocol v1 frames in, hub calls out.

A thin layer around :mod:`rtcsvc.hub`. It has the handshake judged (:mod:`rtcsvc.admission`:
room name, origin, per-client caps, invite), reassembles and checks frames, hands each whole
message to the socket's :class:`~rtcsvc.session.Session` (the seat's rules: join, welcome,
relay, leave), writes what the hub gives back, and closes with the codes docs/protocol.md
names. Every Autobahn option is set in one place, :meth:`SignalingFactory.configure`, because
Autobahn's own defaults are permissive.

What one client may cost is metered here, by policies kept in their own modules so each is
plain Python tested on a fake clock: every frame it sends takes a token
(:mod:`rtcsvc.frame_meter`: pings, pongs and continuation fragments too, from Autobahn's
``onFrameBegin``), every byte queued for it counts against ``--max-send-buffer`` once it stops
reading (:mod:`rtcsvc.send_budget`: pongs and errors too), its TURN credentials against
``--turn-mint-rate`` (:mod:`rtcsvc.ice_handout`), and each client (an IPv4 address or an IPv6
/64) has a cap on sockets and a rate of handshakes (:mod:`rtcsvc.admission`). A handshake that
hits a bug is refused with one log line, never a traceback.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from types import TracebackType
from typing import TYPE_CHECKING

from autobahn.twisted.websocket import WebSocketServerFactory, WebSocketServerProtocol
from autobahn.websocket.types import ConnectionDeny, ConnectionRequest
from twisted.internet import defer
from twisted.internet.interfaces import (
    IConsumer,
    IPushProducer,
    IReactorTime,
    ISSLTransport,
    ITCPTransport,
)
from twisted.logger import Logger
from twisted.python.failure import Failure
from zope.interface import implementer

from rtcsvc import autobahn_internals, messages
from rtcsvc.admission import Admission, Handshake, Refused, Ticket
from rtcsvc.frame_meter import ABUSER_FLUSH_TIMEOUT as ABUSER_FLUSH_TIMEOUT
from rtcsvc.frame_meter import FrameMeter
from rtcsvc.hub import (
    IHub,
    IMembership,
    IResumingHub,
    JoinResult,
    NotResumable,
    Refusal,
    RoomFull,
    Unavailable,
)
from rtcsvc.ice_handout import PROBE_SECONDS as PROBE_SECONDS
from rtcsvc.log_budget import LogBudget
from rtcsvc.ratelimit import ClientBuckets
from rtcsvc.send_budget import SendBudget
from rtcsvc.session import MAX_REPORTS as MAX_REPORTS
from rtcsvc.session import ISignalingSocket, Session
from rtcsvc.turn import TurnMinter

if TYPE_CHECKING:
    from rtcsvc.metrics import Metrics
    from rtcsvc.origin import OriginPolicy, TrustedProxies
    from rtcsvc.turn import IceConfig

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

# One logger for all sockets. A Logger as a class attribute is a descriptor that builds a new
# Logger (bound to the instance) on every `self._log` access, three times per join+leave; the
# namespace is the one the class attribute gave, so the lines read exactly as before.
_log = Logger(namespace="rtcsvc.protocol.SignalingProtocol")


MAX_REQUEST_HEADER = autobahn_internals.MAX_REQUEST_HEADER


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


class ISocketTransport(ITCPTransport, IConsumer):
    """What a signaling socket needs of its transport, for the type checker: a TCP (or TLS)
    connection that can be cut and takes a producer, as Twisted's transports are."""


# (The ignore: Autobahn's own two base classes declare `peer` and `_transport_details` with
# different types; mypy sees it once a class derives from theirs and another.)
@implementer(ISignalingSocket, IPushProducer)
class SignalingProtocol(autobahn_internals.OversizeHook,  # type: ignore[misc]
                        WebSocketServerProtocol):
    """One browser's signaling socket. Autobahn claims ``.log``; ours is the module's ``_log``."""

    factory: SignalingFactory
    transport: ISocketTransport

    _client = "?"
    _client_key = "?"  # what the per-client limits count: the address, or its IPv6 /64
    _kicked = False  # closed by us on purpose: the peer leaves, no seat is held for it
    _ticket: Ticket | None = None  # the admission's ticket, from the handshake until the close
    _session: Session  # from the handshake
    _meter: FrameMeter | None = None  # None: --rate-limit 0
    _budget: SendBudget | None = None  # while the client is not reading (IPushProducer)

    # -- handshake

    def processHandshake(self) -> None:
        # Autobahn buffers a request until its blank line, however long: bounded here as
        # twisted.web bounds its headers (16 KiB), before any of it is parsed. Only called
        # while the handshake is in progress.
        if autobahn_internals.handshake_too_large(self):
            self.factory.refuse("header-too-large")
            self.failHandshake("The request header is larger than 16 KiB.", 431)
            autobahn_internals.discard_handshake(self)
            return
        super().processHandshake()

    def onConnect(self, request: ConnectionRequest) -> None:
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
        self._session = Session(factory, self, ticket, request.params.get("probe") == ["1"])

    def onOpen(self) -> None:
        try:
            self._open()
        except Exception as e:
            self._unexpected("opening a socket", e)

    def _open(self) -> None:
        factory = self.factory
        limits = factory.limits
        factory.connections.add(self)
        factory.metrics.connections.inc()
        if limits.rate > 0:
            self._meter = FrameMeter(self, factory.clock, limits.rate, limits.burst)
        # We are the transport's producer, so that a client that stops reading shows up as
        # pauseProducing() instead of silent buffering. (On the site's route, twisted.web's
        # channel still is; most sockets come straight from rtcsvc.listener, with none.)
        self.transport.unregisterProducer()
        self.transport.registerProducer(self, True)
        try:
            self._session.open()
        except Exception as e:
            self._unexpected("joining a room", e)

    # -- the hub's answers (IPeerConnection)

    def seated(self, result: JoinResult) -> None:
        if self.state != self.STATE_OPEN:
            # The socket died while a remote hub was answering: give the seat back.
            self.factory.hub.drop(result.member)
            return
        try:
            self._session.welcome(result)
        except Exception as e:
            self._unexpected("joining a room", e)

    def refused(self, reason: Refusal) -> None:
        if isinstance(reason, NotResumable):
            self.factory.refuse("invite")
            self._kick("not-invited", "This room needs a valid, unexpired invite link.",
                       CLOSE_NOT_INVITED)
        elif isinstance(reason, Unavailable):
            # A shared hub (Redis) cannot seat anyone now. 1013 is a standard code, which
            # sendClose() refuses, hence the frame.
            self._kicked = True
            self.tell("unavailable", "The service cannot seat you right now; try again.")
            self.sendCloseFrame(CLOSE_TRY_AGAIN, b"Try again later.", isReply=False)
        elif isinstance(reason, RoomFull):
            self._kick("room-full", "This room is full.", CLOSE_ROOM_FULL,
                       maxPeers=self.factory.hub.max_peers)
        else:
            self._unexpected("joining a room", reason)

    def supersede(self) -> None:
        self._session.superseded()
        self.sendClose(CLOSE_SUPERSEDED, "Resumed on another connection.")

    def send(self, payload: bytes) -> None:
        budget = self._budget
        if budget is not None and self._over_send_buffer(budget, len(payload)):
            return
        # The relay's hot path: one write of a pre-framed text frame. sendMessage() would
        # validate its arguments, consult compression (always off here), count traffic and
        # format a debug log line's arguments on every call, which costs as much as the relay
        # itself (docs/performance.md).
        if self.state == self.STATE_OPEN:
            self.transport.write(_text_frame(payload))

    def _over_send_buffer(self, budget: SendBudget, size: int) -> bool:
        """Count ``size`` more bytes queued for a client that stopped reading; past
        ``--max-send-buffer`` drop it (rtcsvc.send_budget) rather than buffer without bound."""
        if not budget.over(size):
            return False
        self._budget = None  # nothing more to count: it is being dropped
        member = self._session.member
        self.factory.slow_readers.info("dropping slow reader peer={peer}",
                                       peer=member.id if member is not None else "-")
        self.factory.metrics.errors.labels("slow-reader").inc()
        self.transport.abortConnection()
        return True

    # -- frames

    def onFrameBegin(self) -> None:
        # Each frame takes a token at its header, before any payload (rtcsvc.frame_meter): a
        # refused data frame drops its message (onMessageEnd), a refused ping goes unanswered.
        meter = self._meter
        if meter is not None:
            meter.frame_begins()
        _frame_begin(self)

    def onPing(self, payload: bytes) -> None:
        # Autobahn's answers every ping, and writes the pong whether or not the client reads.
        meter = self._meter
        if (meter is not None and meter.frame_refused) or self.state != self.STATE_OPEN:
            return
        budget = self._budget
        if budget is not None and self._over_send_buffer(budget, len(payload) + 2):
            return
        self.sendPong(payload)  # type: ignore[no-untyped-call]  # Autobahn: unannotated

    def onMessageEnd(self) -> None:
        # Autobahn's version fires an observer event (a Deferred and callbacks per message)
        # that nothing here listens to, then onMessage(); this goes straight to the session.
        meter = self._meter
        if meter is not None and meter.drop_message:
            meter.drop_message = False  # refused by the rate limit, and told so then
        elif not autobahn_internals.failed_by_me(self):
            payload, binary = autobahn_internals.take_message(self)
            if binary or _is_utf8(payload):
                self._session.message(payload, binary)
            else:
                # RFC 6455 8.1: invalid UTF-8 in a text message fails the connection.
                autobahn_internals.mark_failed_by_me(self)
                self.sendCloseFrame(CLOSE_INVALID_PAYLOAD, b"Text messages must be UTF-8.",
                                    isReply=False)
        autobahn_internals.drop_message(self)

    def message_too_large(self, max_size: int) -> None:
        # Called from an over-long frame's header: nothing of its payload has been buffered.
        # Say why before the 1009 close Autobahn sends.
        self._kicked = True
        self.tell("too-large", f"Messages are limited to {max_size} bytes.")

    # -- what the frame meter asks of the socket (rtcsvc.frame_meter.MeteredSocket)

    frame_is_data = autobahn_internals.frame_is_data

    def close_for_abuse(self) -> bool:
        """Close with 1008 and read nothing more: the rest of the flood is not worth parsing."""
        if self.state == self.STATE_CLOSED:
            return False
        factory = self.factory
        self._kicked = True
        factory.metrics.errors.labels("rate-limit-close").inc()
        factory.admission.penalise(self._client_key, factory.clock.seconds())
        self.sendCloseFrame(CLOSE_POLICY, b"Rate limit exceeded.", isReply=False)
        autobahn_internals.set_unclean_reason(self, "closed with 1008 for exceeding the rate limit")
        # Closed state: Autobahn parses nothing more. A client that is not reading cannot take
        # the close frame either: cut it now (else the meter does, once the close had its time).
        paused = self._budget is not None
        self.dropConnection(abort=paused)
        return not paused

    def abort(self) -> None:
        self.transport.abortConnection()

    # -- IPushProducer: the transport tells us when the client stops reading

    def pauseProducing(self) -> None:
        if self._budget is None:  # a second pause keeps counting
            self._budget = SendBudget(self.factory.limits.max_send_buffer)

    def resumeProducing(self) -> None:
        self._budget = None  # the client read what was queued

    def stopProducing(self) -> None:
        self._budget = None

    # -- leaving

    def onClose(self, wasClean: bool, code: int | None, reason: str | None) -> None:
        factory = self.factory
        factory.connections.discard(self)
        if self._meter is not None:
            self._meter.stop()
        if self._ticket is None:
            return  # refused at the handshake: never admitted, no session
        self._ticket = None
        factory.admission.release(self._client_key)
        self._session.end(self._kicked or (
            wasClean and not self.closedByMe and self.remoteCloseCode in LEAVING), code)

    def going_away(self) -> None:
        """The server is stopping: close with 1001 so clients reconnect (and resume)."""
        # sendClose() only takes application codes (1000, 3000-4999); 1001 is the standard
        # "going away" that browsers and libraries treat as "reconnect later".
        self.sendCloseFrame(CLOSE_GOING_AWAY, b"Server restarting.", isReply=False)

    def finish(self) -> None:
        self.sendClose(1000)

    # -- helpers

    @property
    def _member(self) -> IMembership | None:
        """The seat, once the handshake is through (bench/hotpath.py reads its peer id)."""
        return self._session.member

    def tell(self, code: str, text: str, **details: object) -> None:
        """Send the client an ``error`` (counted by ``code``), if it can still be sent."""
        if self.state != self.STATE_OPEN:
            # Frames that arrived after our close (a flood closed with 1008 keeps coming in
            # the same read): sendMessage() would raise Disconnected and drop the socket
            # before the client reads why.
            return
        self.factory.metrics.errors.labels(code).inc()
        # Through send(): an error is bytes queued for the client like any other message.
        self.send(messages.error(code, text, **details))

    def _unexpected(self, doing: str, error: BaseException | Failure) -> None:
        """A bug while serving this socket: one log line, and close with 1011."""
        self.factory.unexpected(doing, self._client, error)
        self._kicked = True
        if self.state == self.STATE_OPEN:
            self.sendCloseFrame(CLOSE_INTERNAL_ERROR, b"Internal server error.", isReply=False)

    def _kick(self, code: str, text: str, close_code: int, **details: object) -> None:
        self._kicked = True
        self.tell(code, text, **details)
        self.sendClose(close_code, text)


_frame_begin = autobahn_internals.frame_begin


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


def _where(error: BaseException | Failure) -> str:
    """Where ``error`` (an exception or a Failure) was raised: "file.py:123 in function"."""
    tb: TracebackType | None = error.getTracebackObject() if isinstance(error, Failure) else \
        error.__traceback__
    while tb is not None and tb.tb_next is not None:
        tb = tb.tb_next
    if tb is None:
        return "an unknown place"
    code = tb.tb_frame.f_code
    return f"{os.path.basename(code.co_filename)}:{tb.tb_lineno} in {code.co_name}"


def _error_name(error: BaseException | Failure) -> str:
    value = getattr(error, "value", error)  # a Failure's exception
    return type(value).__name__


class SignalingFactory(WebSocketServerFactory):
    """Shared state of all signaling sockets of one service."""

    protocol: type[WebSocketServerProtocol] = SignalingProtocol

    def __init__(self, hub: IHub, *, clock: IReactorTime, ice: IceConfig, origins: OriginPolicy,
                 proxies: TrustedProxies, metrics: Metrics, limits: Limits = Limits(),
                 log_sessions: bool = True, turn_minter: TurnMinter | None = None):
        # server=None: no "Server: AutobahnPython/x.y" banner in the handshake response.
        super().__init__(server=None, reactor=clock)  # type: ignore[no-untyped-call]  # Autobahn
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
        #: Clients can make themselves slow readers at will: a line each, up to a bound.
        self.slow_readers = LogBudget(_log, clock, "slow readers dropped")
        self.configure(limits)

    def configure(self, limits: Limits) -> None:
        """Every Autobahn option that matters, set explicitly."""
        self.setProtocolOptions(  # type: ignore[no-untyped-call]  # Autobahn: unannotated
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

    def unexpected(self, doing: str, client: str, error: BaseException | Failure) -> None:
        """Log a bug met while serving ``client`` as one line: no traceback, no message text
        (it could quote a token), only the exception's type and where it was raised."""
        _log.error("unexpected {error} while {doing} for {client}, at {where}",
                   error=_error_name(error), doing=doing, client=client, where=_where(error))

    def shut_down(self, timeout: float = 3.0) -> defer.Deferred[None]:
        """Close every socket with 1001; fires when all are closed or ``timeout`` passed."""
        self.slow_readers.stop()
        if not self.connections:
            return defer.succeed(None)
        done: defer.Deferred[None] = defer.Deferred()
        for connection in list(self.connections):
            connection.going_away()

        def check() -> None:
            if not self.connections or self.clock.seconds() >= deadline:
                done.callback(None)
            else:
                self.clock.callLater(0.05, check)

        deadline = self.clock.seconds() + timeout
        self.clock.callLater(0.05, check)
        return done
