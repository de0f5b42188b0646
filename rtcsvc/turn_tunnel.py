"""TURN over the site's own TLS port: a caller behind a firewall that opens only 443 still relays.

Corporate firewalls often let out TCP 443 and nothing else, and some let it out only to names
they already allow. When rtcsvc itself listens on 443 (no Apache in front), browsers can reach
TURN at ``turns:<the site's name>:443?transport=tcp`` with the site's own certificate: rtcsvc
ends TLS as for any page, and a connection whose first bytes are a STUN message (TURN is STUN)
is passed, in clear, to coturn on loopback. coturn's ``tcp-proxy-port`` expects the PROXY
protocol (version 2, binary) in front, so coturn sees and limits the caller's own address, not
rtcsvc's. Every byte after that is copied both ways with flow control in each direction.

STUN and HTTP cannot be confused by their first bytes: a STUN message starts with two zero
bits and carries the magic cookie ``0x2112A442`` at offset 4; an HTTP request starts with a
method name in capital letters.
"""

from __future__ import annotations

import ipaddress
import struct
from collections import Counter
from collections.abc import Callable

from twisted.internet.defer import Deferred
from twisted.internet.interfaces import (
    IAddress,
    IConsumer,
    IProtocol,
    IProtocolFactory,
    IPushProducer,
    IReactorTime,
    ITCPTransport,
)
from twisted.internet.protocol import Factory, Protocol, connectionDone
from twisted.logger import Logger
from twisted.python.failure import Failure

from rtcsvc.log_budget import LogBudget
from rtcsvc.origin import client_key

_log = Logger()


class IStreamTransport(ITCPTransport, IPushProducer, IConsumer):
    """A TCP or TLS connection as Twisted makes one: a transport that is also a push producer
    and a consumer (Twisted declares the three apart). The tunnel pauses and couples them."""


#: ``connect_backend``: an endpoint's ``connect``, opening one connection to coturn.
ConnectBackend = Callable[[IProtocolFactory], Deferred[IProtocol]]

STUN_MAGIC_COOKIE = b"\x21\x12\xa4\x42"
#: Bytes needed to tell STUN from anything else.
STUN_PREFIX_LENGTH = 8
PROXY_V2_SIGNATURE = b"\r\n\r\n\x00\r\nQUIT\n"
#: What a caller may send before coturn answers the connection; a STUN request is < 1 KiB.
MAX_EARLY_BYTES = 64 * 1024


def looks_like_stun(data: bytes) -> bool | None:
    """True if ``data`` starts a STUN message, False if it cannot, None if too short to tell."""
    if not data:
        return None
    if data[0] & 0xC0:
        return False
    if len(data) < STUN_PREFIX_LENGTH:
        return None
    return data[4:8] == STUN_MAGIC_COOKIE


def proxy_v2_header(source: IAddress, destination: IAddress) -> bytes:
    """The PROXY protocol v2 header saying a TCP connection came from ``source`` to
    ``destination`` (Twisted addresses, or anything with ``host`` and ``port``)."""
    src: ipaddress.IPv4Address | ipaddress.IPv6Address | None
    dst: ipaddress.IPv4Address | ipaddress.IPv6Address | None
    # IAddress declares no host or port: IP addresses have both, and any other kind is LOCAL.
    try:
        src = ipaddress.ip_address(source.host)  # type: ignore[attr-defined]
        dst = ipaddress.ip_address(destination.host)  # type: ignore[attr-defined]
    except (AttributeError, ValueError):
        src = dst = None
    if src is None or dst is None or src.version != dst.version:
        # LOCAL: no address to report (coturn then uses the connection's own).
        return PROXY_V2_SIGNATURE + b"\x20\x00" + struct.pack("!H", 0)
    family = b"\x11" if src.version == 4 else b"\x21"  # AF_INET/AF_INET6, STREAM
    body = src.packed + dst.packed + struct.pack(
        "!HH", source.port, destination.port)  # type: ignore[attr-defined]
    return PROXY_V2_SIGNATURE + b"\x21" + family + struct.pack("!H", len(body)) + body


class TurnTunnels:
    """Makes the tunnels of one ``--turn-backend``, at most ``max_per_client`` open per client
    (:func:`rtcsvc.origin.client_key`): each one holds a connection to coturn too."""

    def __init__(self, connect_backend: ConnectBackend, backend_name: str, max_per_client: int,
                 clock: IReactorTime):
        self._connect_backend = connect_backend
        self._backend_name = backend_name
        self._max_per_client = max_per_client
        self._open: Counter[str] = Counter()
        # With coturn down, every caller's attempt fails: a line each, up to a bound.
        self._failures = LogBudget(_log, clock, "TURN connections not passed to coturn")

    def __call__(self, addr: IAddress | None) -> TurnTunnel:
        client = client_key(getattr(addr, "host", "") or "")
        admitted = self._open[client] < self._max_per_client
        if admitted:
            self._open[client] += 1
        return TurnTunnel(self._connect_backend, self._backend_name,
                          release=lambda: self._release(client) if admitted else None,
                          admitted=admitted, failures=self._failures)

    def _release(self, client: str) -> None:
        self._open[client] -= 1
        if self._open[client] <= 0:
            del self._open[client]

    def open_count(self) -> int:
        return sum(self._open.values())


class TurnTunnel(Protocol):
    """One caller's TURN connection, copied to and from coturn.

    Installed on the caller's transport by the shared port once the first bytes read as
    STUN. ``connect_backend(factory)`` opens the connection to coturn (an endpoint's
    ``connect``); until it is up the caller is paused and what it already sent is held.
    """

    transport: IStreamTransport  # set by makeConnection, before any other call
    _backend: _BackendProtocol | None = None

    def __init__(self, connect_backend: ConnectBackend, backend_name: str,
                 release: Callable[[], None] = lambda: None,
                 admitted: bool = True, failures: LogBudget | None = None):
        self._connect_backend = connect_backend
        self._backend_name = backend_name
        self._failures = failures
        self._release = release
        self._admitted = admitted
        self._early: list[bytes] = []
        self._early_size = 0
        self._closed = False

    def connectionMade(self) -> None:
        if not self._admitted:
            self._closed = True
            self.transport.abortConnection()  # over its client's cap: coturn never sees it
            return
        self.transport.pauseProducing()
        d = self._connect_backend(_BackendFactory(self))
        d.addErrback(self._backend_failed)

    def dataReceived(self, data: bytes) -> None:
        if not self._admitted:
            return
        if self._backend is not None:
            self._backend.transport.write(data)
            return
        self._early_size += len(data)
        if self._early_size > MAX_EARLY_BYTES:
            self.transport.abortConnection()
            return
        self._early.append(data)

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        self._closed = True
        release, self._release = self._release, lambda: None
        release()
        if self._backend is not None:
            self._backend.transport.loseConnection()

    def backend_up(self, backend: _BackendProtocol) -> None:
        if self._closed:
            backend.transport.loseConnection()
            return
        self._backend = backend
        caller = self.transport
        backend.transport.write(proxy_v2_header(caller.getPeer(), caller.getHost()))
        backend.transport.write(b"".join(self._early))
        self._early = []
        # Each side stops reading while the other cannot keep up.
        caller.registerProducer(backend.transport, True)
        backend.transport.registerProducer(caller, True)
        caller.resumeProducing()

    def backend_lost(self) -> None:
        if not self._closed:
            self.transport.loseConnection()

    def _backend_failed(self, failure: Failure) -> None:
        log = self._failures.warn if self._failures is not None else _log.warn
        log("cannot pass a TURN connection to {backend}: {why}",
            backend=self._backend_name, why=failure.getErrorMessage())
        if not self._closed:
            self.transport.abortConnection()


class _BackendProtocol(Protocol):
    transport: IStreamTransport  # set by makeConnection, before any other call

    def __init__(self, tunnel: TurnTunnel):
        self._tunnel = tunnel

    def connectionMade(self) -> None:
        self._tunnel.backend_up(self)

    def dataReceived(self, data: bytes) -> None:
        self._tunnel.transport.write(data)

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        self._tunnel.backend_lost()


class _BackendFactory(Factory):
    def __init__(self, tunnel: TurnTunnel):
        self._tunnel = tunnel

    def buildProtocol(self, addr: IAddress | None) -> _BackendProtocol:
        return _BackendProtocol(self._tunnel)
