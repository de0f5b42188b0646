"""The web site: the app's files, the signaling socket, health and metrics, on one Site.

Sharing one port (and so one origin) between pages and ``/ws/<room>`` is what lets the
same-origin WebSocket check work and lets Apache forward a single host. Most signaling sockets
never reach this site (``rtcsvc.listener`` hands them to Autobahn directly); ``/ws/`` stays
here for the ones that do. Every response
carries the security headers a video-chat page needs; the HTTP-to-HTTPS redirect of the default
set-up is a separate tiny site.
"""

from __future__ import annotations

import ipaddress
import re
import sysconfig
from collections import Counter
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import IO, TYPE_CHECKING, cast

import orjson
from autobahn.twisted.resource import WebSocketResource
from prometheus_client.twisted import MetricsResource
from twisted.internet.interfaces import IAddress, IDelayedCall, IReactorTime, ITCPTransport
from twisted.internet.protocol import connectionDone
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.web import http, pages, resource, server, static

from rtcsvc.log_budget import LogBudget
from rtcsvc.origin import Network, TrustedProxies, client_key

if TYPE_CHECKING:
    from rtcsvc.hub import IHubStatistics
    from rtcsvc.metrics import Metrics
    from rtcsvc.protocol import SignalingFactory

#: Decides something about a request (may it read the metrics? did it come over TLS?).
RequestTest = Callable[[server.Request], bool]

ROOM_NAME = re.compile(rb"[A-Za-z0-9_-]{1,64}\Z")

#: No third-party origins anywhere: the app is served whole from this site.
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; "
    "media-src 'self' blob: mediastream:; connect-src 'self'; object-src 'none'; "
    "base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)
COMMON_HEADERS = (
    (b"content-security-policy", CSP.encode()),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"permissions-policy",
     b"camera=(self), microphone=(self), display-capture=(self), geolocation=()"),
    (b"x-frame-options", b"DENY"),
    (b"cross-origin-opener-policy", b"same-origin"),
)
HSTS = b"max-age=31536000"


def default_static_dir() -> Path:
    """The app next to the source tree, else where ``pip install`` put the data files."""
    here = Path(__file__).resolve().parent.parent / "static"
    if (here / "index.html").exists():
        return here
    return Path(sysconfig.get_path("data")) / "share" / "rtcsvc" / "static"


class SecurityHeaders(resource.Resource):
    """Wraps the root resource so every response, errors included, carries the headers."""

    def __init__(self, root: resource.IResource, is_secure: RequestTest):
        super().__init__()  # type: ignore[no-untyped-call]
        self._root = root
        self._is_secure = is_secure
        self.isLeaf = root.isLeaf  # a leaf root (the redirect) must see every path itself

    def getChildWithDefault(self, name: bytes, request: server.Request) -> resource.IResource:
        self._decorate(request)
        return self._root.getChildWithDefault(name, request)  # type: ignore[no-any-return]

    def render(self, request: server.Request) -> bytes | int:
        self._decorate(request)
        return self._root.render(request)  # type: ignore[no-any-return]

    def _decorate(self, request: server.Request) -> None:
        headers = request.responseHeaders
        headers.removeHeader(b"server")  # no version banner
        for name, value in COMMON_HEADERS:
            headers.setRawHeaders(name, [value])
        if self._is_secure(request):
            headers.setRawHeaders(b"strict-transport-security", [HSTS])


#: The one form of Range header served: a single range of bytes.
SINGLE_BYTE_RANGE = re.compile(rb"bytes=(\d{1,15})?-(\d{1,15})?\Z")


class StaticFiles(static.File):
    """The app's files, without directory listings, with at most one byte range per response.

    twisted.web answers several ranges (``bytes=0-,0-,0-1960``) with a producer that can read a
    negative length and stall for ever, holding the socket; and it logs a malformed header's
    bytes as they came. The app's files are small, so anything but one plain range is ignored
    (RFC 9110 lets a server do that): the whole file, 200.
    """

    def directoryListing(self) -> resource.IResource:
        return pages.notFound()

    def makeProducer(self, request: server.Request,
                     fileForReading: IO[bytes]) -> static.StaticProducer:
        byte_range = request.getHeader(b"range")
        if byte_range is not None and not SINGLE_BYTE_RANGE.match(byte_range.strip()):
            request.requestHeaders.removeHeader(b"range")
        return super().makeProducer(  # type: ignore[no-untyped-call, no-any-return]
            request, fileForReading)

    def createSimilarFile(self, path: str) -> StaticFiles:
        similar: StaticFiles = super().createSimilarFile(path)  # type: ignore[no-untyped-call]
        similar.__class__ = StaticFiles
        return similar


class RoomPage(resource.Resource):
    """``/r/<room>``: a shareable link that loads the app, which reads the room from the path."""

    def __init__(self, index: Path):
        super().__init__()  # type: ignore[no-untyped-call]
        self._index = index

    def getChild(self, name: bytes, request: server.Request) -> resource.IResource:
        if ROOM_NAME.match(name) and not request.postpath:
            page = StaticFiles(str(self._index), defaultType="text/html")
            page.isLeaf = True
            return page
        return pages.notFound(message="No such room link.")


class Health(resource.Resource):
    """``/healthz``: up or not for anyone (load balancers, uptime checks); the counts of
    rooms, peers and connections only for the clients allowed to read the metrics. With the
    TURN watchdog, ``turn`` says ``ok`` or ``degraded`` (to anyone; still 200: calls that need
    no relay work on)."""

    isLeaf = True

    def __init__(self, hub: IHubStatistics, connections_open: Callable[[], int],
                 may_read_metrics: RequestTest = lambda request: True,
                 turn_status: Callable[[], str | None] = lambda: None):
        super().__init__()  # type: ignore[no-untyped-call]
        self._hub = hub
        self._connections_open = connections_open
        self._may_read_metrics = may_read_metrics
        self._turn_status = turn_status

    def render_GET(self, request: server.Request) -> bytes:
        request.setHeader(b"content-type", b"application/json")
        request.setHeader(b"cache-control", b"no-store")
        if not self._hub.available:
            request.setResponseCode(503)
        status: dict[str, str | int] = {"status": "ok" if self._hub.available else "unavailable"}
        turn = self._turn_status()
        if turn is not None:
            status["turn"] = turn
        if self._may_read_metrics(request):
            status.update(rooms=self._hub.room_count, peers=self._hub.peer_count,
                          connections=self._connections_open())
        return orjson.dumps(status)


class Restricted(resource.Resource):
    """Serves ``inner`` to the clients ``allowed(request)`` admits, 403 to anyone else."""

    isLeaf = True

    def __init__(self, inner: resource.IResource, allowed: RequestTest):
        super().__init__()  # type: ignore[no-untyped-call]
        self._inner = inner
        self._allowed = allowed

    def render(self, request: server.Request) -> bytes | int:
        if not self._allowed(request):
            request.setResponseCode(403)
            request.setHeader(b"content-type", b"text/plain; charset=utf-8")
            return b"Metrics are readable from the addresses in --metrics-allow only.\n"
        return self._inner.render(request)  # type: ignore[no-any-return]


class MetricsReaders:
    """Who may read ``/metrics`` and the counts in ``/healthz``: the ``--metrics-allow``
    networks (loopback by default), judged by the real client (behind a trusted proxy, the
    forwarded one), so a public proxy in front does not open them to everyone."""

    def __init__(self, networks: Iterable[Network], proxies: TrustedProxies):
        # The same address test as for trusted proxies (IPv4-mapped addresses included).
        self._readers = TrustedProxies(networks)
        self._proxies = proxies

    def __call__(self, request: server.Request) -> bool:
        peer = getattr(request.getClientAddress(), "host", "")
        client = self._proxies.view(peer, False, request.getHeader).client
        return self._readers.trusts(client)


#: ``--metrics-allow``'s default: this host only.
LOOPBACK = (ipaddress.ip_network("127.0.0.0/8"), ipaddress.ip_network("::1/128"))

# The namespace the connection guards' lines always had.
_log = Logger(namespace="rtcsvc.web.GuardedHTTPChannel")


class SignalingEndpoint(WebSocketResource):
    """``/ws/<room>``: Autobahn's resource; the protocol checks the room name and origin."""

    def getChildWithDefault(self, name: bytes, request: server.Request) -> resource.IResource:
        return self

    def render(self, request: server.Request) -> bytes | int:
        # Twisted types the channel as an HTTPChannel; this resource is only on a GuardedSite.
        channel = cast(GuardedHTTPChannel, request.channel)
        body: bytes | int = super().render(request)  # type: ignore[no-untyped-call]
        if channel.transport is None:  # Autobahn took the connection over
            channel.handed_over()
        return body


class GuardedHTTPChannel(http.HTTPChannel):
    """HTTP/1.1 with a deadline for each whole request, not just between bytes.

    twisted.web's idle timeout restarts with every byte, so a client that drips a header a
    minute (slowloris) would hold its socket forever. Here a request must be complete within
    ``requestTimeout`` seconds of its first byte; the WebSocket upgrade is such a request, so
    this also bounds the time to open a signaling socket. (No HTTP/2: Autobahn's
    WebSocketResource cannot upgrade an h2 stream.)
    """

    requestTimeout = 10.0
    lifetime = 300.0
    site: GuardedSite
    #: None once Autobahn's WebSocketResource has taken the connection over.
    transport: ITCPTransport | None
    _deadline: IDelayedCall | None = None
    _end_of_life: IDelayedCall | None = None
    _client: str | None = None  # the per-client slot this connection holds, if any
    _refused = False

    def connectionMade(self) -> None:
        transport = cast(ITCPTransport, self.transport)  # makeConnection has just set it
        client = self.site.client_of(transport.getPeer())
        if client is not None and not self.site.claim(client):
            # Over the per-client cap: say so once, then close, without parsing anything.
            self._refused = True
            transport.write(TOO_MANY_CONNECTIONS)
            transport.loseConnection()
            return
        self._client = client
        super().connectionMade()  # type: ignore[no-untyped-call]
        self._arm()
        self._end_of_life = self.callLater(  # type: ignore[no-untyped-call]
            self.lifetime, self._too_old)

    def dataReceived(self, data: bytes) -> None:
        if self._refused:
            return
        if self._deadline is None and not self._handlingRequest:
            self._arm()  # the next request on a kept-alive connection starts now
        super().dataReceived(data)  # type: ignore[no-untyped-call]

    def allContentReceived(self) -> None:
        self._disarm()
        super().allContentReceived()  # type: ignore[no-untyped-call]

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        if self._refused:
            return
        self.handed_over()
        super().connectionLost(reason)  # type: ignore[no-untyped-call]

    def handed_over(self) -> None:
        """The connection is no longer an HTTP one (upgraded, or gone): drop its limits."""
        # The idle timer too: the WebSocket protocol keeps its own.
        self.setTimeout(None)  # type: ignore[no-untyped-call]
        self._disarm()
        if self._end_of_life is not None:
            if self._end_of_life.active():
                self._end_of_life.cancel()
            self._end_of_life = None
        if self._client is not None:
            self.site.release(self._client)
            self._client = None

    def _too_old(self) -> None:
        self._end_of_life = None
        if self.transport is None:
            return  # taken over by the WebSocket protocol
        peer = getattr(self.transport.getPeer(), "host", "?")
        self.site.cut_old.info("closing an HTTP connection open for {lifetime}s from {peer}",
                               lifetime=self.lifetime, peer=peer)
        self.transport.abortConnection()

    def _arm(self) -> None:
        self._deadline = self.callLater(  # type: ignore[no-untyped-call]
            self.requestTimeout, self._too_slow)

    def _disarm(self) -> None:
        if self._deadline is not None:
            if self._deadline.active():
                self._deadline.cancel()
            self._deadline = None

    def _too_slow(self) -> None:
        self._deadline = None
        transport = cast(ITCPTransport, self.transport)  # a hand-over disarms this first
        peer = getattr(transport.getPeer(), "host", "?")
        self.site.cut_slow.info("closing a request not finished in {timeout}s from {peer}",
                                timeout=self.requestTimeout, peer=peer)
        transport.abortConnection()


#: What a client over the per-client cap of page connections gets before the close.
TOO_MANY_CONNECTIONS = (b"HTTP/1.1 429 Too Many Requests\r\nContent-Type: text/plain\r\n"
                        b"Content-Length: 27\r\nConnection: close\r\n\r\n"
                        b"Too many connections open.\n")
#: Seconds a connection may stay an HTTP one, however busy (pages are small; a stalled response
#: or a client that keeps one connection for ever is cut off).
HTTP_LIFETIME = 300.0


class GuardedSite(server.Site):
    """A Site whose connections use :class:`GuardedHTTPChannel`, at most ``max_per_client``
    of them open per client (see :func:`rtcsvc.origin.client_key`) unless the peer is a
    trusted proxy, whose connections carry many clients and are bounded by the proxy."""

    # Twisted types this as a maker of its h2-capable wrapper; any channel class serves.
    protocol = GuardedHTTPChannel  # type: ignore[assignment]

    def __init__(self, root: resource.IResource, idle: float, request: float,
                 lifetime: float = HTTP_LIFETIME,
                 max_per_client: int | None = None, proxies: TrustedProxies | None = None,
                 clock: IReactorTime | None = None):
        super().__init__(  # type: ignore[no-untyped-call]
            root, timeout=idle, logFormatter=_access_log_line, reactor=clock)
        # Strangers decide how many connections are cut: a line each, up to a bound.
        self.cut_slow = LogBudget(_log, self.reactor, "requests cut for being slow")
        self.cut_old = LogBudget(_log, self.reactor, "HTTP connections cut at their lifetime")
        self.request_timeout = request
        self.lifetime = lifetime
        self.displayTracebacks = False
        self._max_per_client = max_per_client
        self._proxies = proxies
        self._open: Counter[str] = Counter()

    # (Twisted declares the h2-capable wrapper that `protocol` above replaces.)
    def buildProtocol(self, addr: IAddress | None) -> GuardedHTTPChannel:  # type: ignore[override]
        channel: GuardedHTTPChannel = super().buildProtocol(addr)  # type: ignore[no-untyped-call]
        channel.requestTimeout = self.request_timeout
        channel.lifetime = self.lifetime
        return channel

    def stopFactory(self) -> None:
        super().stopFactory()
        self.cut_slow.stop()
        self.cut_old.stop()

    def client_of(self, peer: IAddress) -> str | None:
        """Whose budget a connection from ``peer`` counts against (None: no cap applies)."""
        host = getattr(peer, "host", None)
        if self._max_per_client is None or host is None:
            return None
        if self._proxies is not None and self._proxies.trusts(host):
            return None
        return client_key(host)

    def claim(self, client: str) -> bool:
        # client_of names a client only when there is a cap.
        if self._open[client] >= cast(int, self._max_per_client):
            return False
        self._open[client] += 1
        return True

    def release(self, client: str) -> None:
        self._open[client] -= 1
        if self._open[client] <= 0:
            del self._open[client]


def make_site(factory: SignalingFactory, metrics: Metrics, static_dir: Path, idle: float = 60,
              request: float = 10, max_per_client: int | None = None,
              proxies: TrustedProxies | None = None, metrics_allow: Iterable[Network] = LOOPBACK,
              turn_status: Callable[[], str | None] = lambda: None,
              clock: IReactorTime | None = None) -> GuardedSite:
    """The one site that serves the app, ``/ws/<room>``, ``/healthz`` and ``/metrics``."""
    readers = MetricsReaders(metrics_allow, proxies if proxies is not None else TrustedProxies())
    files = StaticFiles(str(static_dir))
    files.putChild(b"ws", SignalingEndpoint(factory))  # type: ignore[no-untyped-call]
    files.putChild(b"r", RoomPage(static_dir / "index.html"))
    files.putChild(b"healthz", Health(factory.hub, lambda: len(factory.connections), readers,
                                      turn_status))
    files.putChild(b"metrics", Restricted(
        MetricsResource(registry=metrics.registry), readers))  # type: ignore[no-untyped-call]
    # HSTS is set by whoever ends TLS, and only there, so a response carries it once. On
    # rtcsvc's own TLS listeners that is rtcsvc. Behind a proxy it is the proxy (the shipped
    # Apache site sets it), not rtcsvc from the forwarded scheme: the proxy also answers when
    # rtcsvc is down or refuses a path (its 502/503/403 pages), which only it can cover, and two
    # different Strict-Transport-Security headers on one response were what rtcsvc plus Apache
    # sent before. The forwarded scheme therefore plays no part here.
    return GuardedSite(SecurityHeaders(files, lambda request: request.isSecure()), idle, request,
                       max_per_client=max_per_client, proxies=proxies, clock=clock)


def make_redirect_site(https_port: int, hosts: tuple[str, ...] = ("localhost", "127.0.0.1"),
                       idle: float = 60, request: float = 10,
                       clock: IReactorTime | None = None) -> GuardedSite:
    """Plain HTTP that only sends browsers to the HTTPS listener on ``https_port``.

    ``hosts`` are the names that listener answers to (the default listeners bind 127.0.0.1 and
    the generated certificate names localhost and 127.0.0.1); the first is the fallback.
    """
    return GuardedSite(SecurityHeaders(_ToHTTPS(https_port, hosts), lambda request: False), idle,
                       request, clock=clock)


class _ToHTTPS(resource.Resource):
    """308 to the same path on the HTTPS listener, at a host this service chose.

    The request's Host header is kept only when it is one of ``hosts``: a name a client made up
    (``Host: evil.example``) must not turn this service into a redirector to other sites.
    """

    isLeaf = True

    def __init__(self, https_port: int, hosts: tuple[str, ...]):
        super().__init__()  # type: ignore[no-untyped-call]
        self._port = https_port
        self._hosts = tuple(host.lower() for host in hosts)

    def render(self, request: server.Request) -> bytes | int:
        asked = _hostname(request.getHeader("host") or "").lower()
        host = asked if asked in self._hosts else self._hosts[0]
        port = "" if self._port == 443 else f":{self._port}"
        path = request.uri.decode("latin-1")
        if not path.startswith("/"):
            path = "/"  # an absolute-form or "*" target names no path of ours
        request.redirect(f"https://{host}{port}{path}".encode("latin-1"))
        request.setResponseCode(308)
        return b""


def _hostname(host: str) -> str:
    """``host[:port]`` or ``[v6]:port`` without the port."""
    if host.startswith("["):
        return host[: host.find("]") + 1]
    return host.rsplit(":", 1)[0]


def _access_log_line(timestamp: str, request: server.Request) -> str:
    # Like the combined log format, minus the query string: resume tokens travel there.
    path = request.uri.split(b"?", 1)[0].decode("latin-1", "replace")
    peer = request.getClientAddress()
    return '{} - - {} "{} {} {}" {} {}'.format(
        getattr(peer, "host", "-"), timestamp,
        request.method.decode("latin-1", "replace"), path,
        request.clientproto.decode("latin-1", "replace"),
        request.code, request.sentLength or "-",
    )

