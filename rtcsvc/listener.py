"""What sits behind each listening port: signaling upgrades straight to Autobahn, the rest to the site.

Pages and ``/ws/<room>`` share one port and one origin (the same-origin check and a single Apache
``ProxyPass`` rely on it). Through twisted.web alone, every signaling socket would pay for a
whole ``Request`` (header parsing, resource traversal, response headers that are never sent)
before Autobahn's ``WebSocketResource`` re-serialises that request and Autobahn parses it again:
about a fifth of a join/leave cycle (docs/performance.md). So a connection whose first bytes
are ``GET /ws/`` is given to the signaling factory's protocol directly, and any other to the
site's HTTP channel: the same split Crossbar's "unisocket" makes. With ``--turn-backend``, a
connection whose first bytes are a STUN message goes to coturn (``rtcsvc.turn_tunnel``): TURN
over TLS on the site's own name and port. The site keeps its
``/ws/`` resource for the rare client that upgrades on a kept-alive connection after fetching
something else, so nothing depends on how the first bytes arrive.

The chosen protocol gets the real transport (writes do not pass through here); only incoming
data and the end of the connection are forwarded, one call each. A connection that sends
nothing is closed after ``timeout`` seconds, as the HTTP channel would have done.

On a TLS port this factory is what Twisted asks, during each handshake, which application
protocols (ALPN) the server speaks. Since Twisted 26 a factory that names none makes OpenSSL
abort every handshake in which the client offers ALPN, which every browser and curl do; so
the factory names ``http/1.1``, the only protocol the site speaks (no h2: Autobahn cannot
upgrade an HTTP/2 stream). A handshake that fails for any reason is logged once, with it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, cast

from autobahn.twisted.websocket import WebSocketServerFactory, WebSocketServerProtocol
from OpenSSL import SSL
from twisted.internet.interfaces import (
    IAddress,
    IHandshakeListener,
    IProtocol,
    IProtocolNegotiationFactory,
    IReactorTime,
    ITCPTransport,
)
from twisted.internet.protocol import Factory, Protocol, connectionDone
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.protocols.policies import TimeoutMixin
from zope.interface import implementer

from rtcsvc.log_budget import LogBudget
from rtcsvc.turn_tunnel import looks_like_stun

if TYPE_CHECKING:
    from rtcsvc.turn_tunnel import TurnTunnel
    from rtcsvc.web import GuardedSite

SIGNALING_PREFIX = b"GET /ws/"
#: What this port speaks after TLS, offered over ALPN.
ALPN_PROTOCOLS = (b"http/1.1",)

_log = Logger()


@implementer(IProtocolNegotiationFactory)
class SharedPortFactory(Factory["SharedPortProtocol"]):
    """Builds a :class:`SharedPortProtocol` per connection, for one site and one signaling factory."""

    def __init__(self, site: GuardedSite, signaling: WebSocketServerFactory, clock: IReactorTime,
                 timeout: float,
                 turn_tunnel: Callable[[IAddress | None], TurnTunnel] | None = None):
        self.site = site
        self.signaling = signaling
        self.clock = clock
        self.timeout = timeout
        # Anyone can fail a TLS handshake or stall a request as often as they like: a line
        # each, up to a bound per minute, then a count.
        self.tls_failures = LogBudget(_log, clock, "failed TLS handshakes")
        self.cut_slow = LogBudget(_log, clock, "connections cut at the handshake deadline")
        #: Makes a ``rtcsvc.turn_tunnel.TurnTunnel`` for a connection that speaks STUN, or
        #: None when no TURN backend is configured (such connections then go to the site).
        self.turn_tunnel = turn_tunnel

    def buildProtocol(self, addr: IAddress | None) -> SharedPortProtocol:
        chooser = SharedPortProtocol()
        chooser.factory = self
        chooser.addr = addr
        return chooser

    # Twisted declares list[bytes]; it only iterates the answer, so the tuple constant does.
    def acceptableProtocols(self) -> tuple[bytes, ...]:  # type: ignore[override]
        return ALPN_PROTOCOLS

    # The site and the signaling factory are started and stopped with the port, as if each
    # were listening itself (the site opens its access log there).
    def doStart(self) -> None:
        self.site.doStart()  # type: ignore[no-untyped-call]
        self.signaling.doStart()

    def doStop(self) -> None:
        self.signaling.doStop()
        self.site.doStop()  # type: ignore[no-untyped-call]
        self.tls_failures.stop()
        self.cut_slow.stop()


@implementer(IHandshakeListener)
class SharedPortProtocol(Protocol, TimeoutMixin):
    """Holds a new connection until its first bytes say which protocol it speaks.

    It also keeps the deadline of a signaling socket's opening handshake: Autobahn's own
    timer is batched (it fires up to a second early) and would start only once the request
    reached it, so rtcsvc disables it and times the whole handshake from the first byte here.
    The deadline is absolute: bytes arriving do not push it back.
    """

    factory: SharedPortFactory
    addr: IAddress | None
    transport: ITCPTransport  # set by makeConnection, before any other call
    _inner: IProtocol | None = None
    _tls_handshake_done = False
    _held = b""

    def connectionMade(self) -> None:
        # TimeoutMixin's documented way to use another clock; it leaves callLater untyped.
        self.callLater = self.factory.clock.callLater  # type: ignore[method-assign, assignment]
        self.setTimeout(self.factory.timeout)  # type: ignore[no-untyped-call]

    def dataReceived(self, data: bytes) -> None:
        inner = self._inner
        if inner is None:
            factory = self.factory
            if factory.turn_tunnel is not None:
                data = self._held + data
                stun = looks_like_stun(data)
                if stun is None:
                    self._held = data  # fewer than 8 bytes: not enough to tell
                    return
                self._held = b""
            else:
                stun = False
            # A first read shorter than the prefix goes to the site, which routes /ws/ to
            # Autobahn too (its own request deadline then applies): correct either way, only
            # the fast path is missed.
            if stun and factory.turn_tunnel is not None:  # (stun implies a tunnel factory)
                # coturn keeps its own timers for TURN connections
                self.setTimeout(None)  # type: ignore[no-untyped-call]
                inner = factory.turn_tunnel(self.addr)
            elif data.startswith(SIGNALING_PREFIX):
                # Twisted types buildProtocol as possibly None; Autobahn's always builds one.
                inner = cast(WebSocketServerProtocol, factory.signaling.buildProtocol(self.addr))
            else:
                self.setTimeout(None)  # type: ignore[no-untyped-call]
                inner = factory.site.buildProtocol(self.addr)
            self._inner = inner
            inner.makeConnection(self.transport)  # type: ignore[no-untyped-call]
        inner.dataReceived(data)

    def handshakeCompleted(self) -> None:
        self._tls_handshake_done = True

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        self.setTimeout(None)  # type: ignore[no-untyped-call]
        if not self._tls_handshake_done and isinstance(reason.value, SSL.Error):
            self.factory.tls_failures.info(
                "TLS handshake with {peer} failed: {why}",
                peer=getattr(self.addr, "host", "?"), why=tls_failure_reason(reason.value))
        if self._inner is not None:
            inner, self._inner = self._inner, None
            inner.connectionLost(reason)

    def timeoutConnection(self) -> None:
        # Only a signaling protocol can be inside yet: the others took the deadline off.
        inner = cast("WebSocketServerProtocol | None", self._inner)
        if inner is not None and inner.state != inner.STATE_CONNECTING:
            return  # the signaling socket opened in time
        peer = getattr(self.addr, "host", "?")
        self.factory.cut_slow.info(
            "closing a connection whose request was not complete after {timeout}s from {peer}",
            timeout=self.factory.timeout, peer=peer)
        self.transport.abortConnection()


#: Alerts by which a client says it does not trust the certificate: with the generated
#: self-signed one, every browser sends one until the person accepts the warning.
_DISTRUST = ("certificate unknown", "unknown ca", "bad certificate")


def tls_failure_reason(error: SSL.Error) -> str:
    """OpenSSL's reasons for a failed handshake, in words ("no shared cipher", ...)."""
    reasons = []
    for entry in error.args[0] if error.args and isinstance(error.args[0], list) else ():
        reason = entry[-1] if isinstance(entry, tuple) and entry else entry
        if reason and reason not in reasons:
            reasons.append(str(reason))
    text = "; ".join(reasons) or "unknown reason"
    if any(alert in text for alert in _DISTRUST):
        text += " (the client does not trust this certificate)"
    return text
