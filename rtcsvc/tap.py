"""``twistd rtcsvc``: the command-line options and the service tree they build.

Wiring only. :class:`Options` checks the shape and range of every value and turns the command
line into a frozen :class:`~rtcsvc.config.ServiceConfig`, reading no file; a bad value raises
``UsageError`` naming the option, which twistd shows in one line. ``makeService`` reads the files
the config names, then assembles the hub, the signaling factory and the web site into a
MultiService of endpoint services, so twistd's own flags (--pidfile, --logfile, --uid/--gid
after binding 443, ...) work unchanged; a file it cannot use stops start-up with one line too.
"""

from __future__ import annotations

import gc
from pathlib import Path
from typing import Any

from twisted.application import service
from twisted.internet.defer import Deferred
from twisted.internet.endpoints import clientFromString, serverFromString
from twisted.internet.interfaces import IProtocolFactory
from twisted.python import usage

from rtcsvc import __version__
from rtcsvc.config import (
    DEFAULT_HTTP_PORT,
    DEFAULT_HTTPS_PORT,
    ConfigError,
    Network,
    ServiceConfig,
    default_state_dir,
    read_files,
)
from rtcsvc.hub import Hub, IHub
from rtcsvc.listener import SharedPortFactory
from rtcsvc.metrics import Metrics
from rtcsvc.origin import OriginPolicy, TrustedProxies
from rtcsvc.protocol import Limits, SignalingFactory
from rtcsvc.redis_connection import RedisUrl
from rtcsvc.redis_hub import RedisHub, RedisHubService
from rtcsvc.startup import ListenerService, StartupError
from rtcsvc.tls import CertificateError, ensure_certificate
from rtcsvc.turn import IceConfig, TurnMinter
from rtcsvc.turn_tunnel import TurnTunnels
from rtcsvc.turn_watchdog import TurnWatchdog
from rtcsvc.web import LOOPBACK, default_static_dir, make_redirect_site, make_site

#: twistd rtcsvc's defaults, defined once (in ServiceConfig) for --help and for programs.
_DEFAULTS = ServiceConfig(state_dir=default_state_dir())


class _Bounded:
    """A coercer for optParameters: parse as ``kind`` and check ``low <= value <= high``."""

    coerceDoc = ""  # the help text says the range itself

    def __init__(self, option: str, kind: type[int] | type[float], low: float,
                 high: float | None = None):
        self._option, self._kind, self._low, self._high = option, kind, low, high

    def __call__(self, text: str) -> int | float:
        try:
            value = self._kind(text)
        except ValueError:
            raise ValueError(f"--{self._option} must be a number, not {text!r}") from None
        low, high = self._low, self._high
        if value < low or (high is not None and value > high):
            limit = f"from {low} to {high}" if high is not None else f"at least {low}"
            raise ValueError(f"--{self._option} must be {limit}, not {text}")
        return value


class Options(usage.Options):
    synopsis = "[options]"
    longdesc = """\
Serve the rtcsvc video-chat app and its signaling relay (WebSocket at /ws/<room>) on one
site, with /healthz and /metrics (Prometheus).

Without --listen: HTTPS on 127.0.0.1:8443 with a self-signed certificate made in the state
directory on first start, and plain HTTP on 127.0.0.1:8080 that redirects to it.
With --listen, exactly the given listeners serve the whole site (no redirect).

Behind Apache (see deploy/README.md):
    twistd -n rtcsvc --listen tcp:8080:interface=127.0.0.1 --trusted-proxy 127.0.0.1
Directly, on all interfaces, with the self-signed certificate (an ssl: listener without
privateKey=/certKey= uses it):
    twistd -n rtcsvc --listen ssl:8443:interface=0.0.0.0
Port 443 with a real certificate, dropping root after binding:
    twistd -n --uid rtcsvc --gid rtcsvc rtcsvc \\
        --listen ssl:443:privateKey=/etc/ssl/private/chat.key:certKey=/etc/ssl/chat.pem

Dead peers are noticed within --ping-interval + --ping-timeout and leave their rooms after
--resume-grace more (20 + 10 + 30 = 60 s by default). The signaling protocol is
docs/protocol.md; threats and limits are docs/reliability.md.
"""

    optParameters = [
        ["state-dir", None, str(_DEFAULTS.state_dir),
         "Directory for state kept across restarts (the self-signed TLS key and certificate)."],
        ["static", None, None,
         "Serve the web app from this directory instead of the one installed with rtcsvc."],
        ["turn-secret-file", None, None,
         "File holding the secret shared with coturn (its static-auth-secret) for minting "
         "time-limited TURN credentials. Needs --turn-url."],
        ["turn-backend", None, None,
         "Where coturn takes TURN connections that arrive on this site's own listeners "
         "(turns:<site name>:443?transport=tcp in --turn-url), as a Twisted client endpoint, "
         "e.g. tcp:127.0.0.1:3479 for coturn's tcp-proxy-port=3479 on loopback. rtcsvc ends "
         "TLS and passes them on with a PROXY protocol v2 header carrying the caller's "
         "address. Without it, TURN goes to coturn's own ports only."],
        ["turn-ttl", None, _DEFAULTS.turn_ttl,
         "Lifetime of minted TURN credentials, in seconds. Live sockets are sent fresh ones "
         "before they expire, so calls outlast it; a leaked one dies with it.",
         _Bounded("turn-ttl", int, 60, 7 * 86400)],
        ["turn-mint-rate", None, _DEFAULTS.turn_mint_rate,
         "New TURN credentials a client address (its /64 for IPv6) may be handed per hour, "
         "as many at once; past it a join is welcomed with STUN only. Each credential opens "
         "coturn allocations up to its user-quota. 0: no limit.",
         _Bounded("turn-mint-rate", float, 0)],
        ["turn-check-interval", None, _DEFAULTS.turn_check_interval,
         "Seconds between the service's own checks of each --turn-url (an allocation and a "
         "relayed round trip with fresh credentials, by rtcsvc-check in a child process), "
         "exported as rtcsvc_turn_check_ok{url} in /metrics and as \"turn\": \"degraded\" "
         "in /healthz. 0: no checks.",
         _Bounded("turn-check-interval", float, 0)],
        ["max-peers", None, _DEFAULTS.max_peers, "Room capacity: members per room (mesh calls).",
         _Bounded("max-peers", int, 2, 64)],
        ["max-message-size", None, _DEFAULTS.max_message_size,
         "Largest signaling message accepted, in bytes; larger ones close the socket with 1009.",
         _Bounded("max-message-size", int, 1024, 16 * 1024 * 1024)],
        ["resume-grace", None, _DEFAULTS.resume_grace,
         "Seconds a dropped peer keeps its seat and queued signals, so it can resume.",
         _Bounded("resume-grace", float, 0, 3600)],
        ["rate-limit", None, _DEFAULTS.rate_limit,
         "Messages per second each connection may send on average (0: no limit). Excess "
         "gets a rate-limited error; a flood of more than --rate-burst refused messages in a "
         "row closes the socket with 1008.",
         _Bounded("rate-limit", float, 0)],
        ["rate-burst", None, _DEFAULTS.rate_burst,
         "Messages a connection may send at once (a mesh call's ICE burst) before "
         "--rate-limit applies.",
         _Bounded("rate-burst", int, 1)],
        ["max-connections", None, _DEFAULTS.max_connections,
         "Signaling sockets the process holds at most; more are refused with HTTP 503. "
         "Keep it under the file-descriptor limit (ulimit -n).",
         _Bounded("max-connections", int, 1)],
        ["max-connections-per-client", None, _DEFAULTS.max_connections_per_client,
         "Signaling sockets per client address (the real one behind a --trusted-proxy; "
         "an IPv6 address counts by its /64); more are refused with HTTP 429. Page (HTTP) "
         "connections have the same cap, counted apart, except from a --trusted-proxy. "
         "Offices behind one NAT share an address.",
         _Bounded("max-connections-per-client", int, 1)],
        ["handshake-rate", None, _DEFAULTS.handshake_rate,
         "New signaling sockets per second each client address (an IPv6 address counts "
         "by its /64) may open on average, after a burst of ten seconds' worth; more are "
         "refused with HTTP 429. A client closed for flooding loses its burst. 0: no limit.",
         _Bounded("handshake-rate", float, 0)],
        ["max-send-buffer", None, _DEFAULTS.max_send_buffer,
         "Bytes queued for a client that stopped reading before it is dropped (it may "
         "resume).",
         _Bounded("max-send-buffer", int, 4096)],
        ["ping-interval", None, _DEFAULTS.ping_interval,
         "Seconds between WebSocket pings; a peer that misses one for --ping-timeout is "
         "dropped, then held --resume-grace before peer-left.",
         _Bounded("ping-interval", float, 0.1, 3600)],
        ["ping-timeout", None, _DEFAULTS.ping_timeout,
         "Seconds to wait for a ping's pong. At least 2: Autobahn rounds its timers down "
         "to whole seconds, so a shorter wait could drop a healthy peer.",
         _Bounded("ping-timeout", float, 2, 3600)],
        ["handshake-timeout", None, _DEFAULTS.handshake_timeout,
         "Seconds a client has to send a complete HTTP request (and finish the WebSocket "
         "handshake); slower ones are disconnected.",
         _Bounded("handshake-timeout", float, 0.1, 600)],
        ["idle-timeout", None, _DEFAULTS.idle_timeout,
         "Seconds an idle HTTP keep-alive connection is kept.",
         _Bounded("idle-timeout", float, 1, 3600)],
        ["room-secret-file", None, None,
         "Only admit joins carrying a valid, unexpired invite token for the room, minted "
         "with the secret in this file (see rtcsvc-invite). Without it, rooms are open to "
         "whoever knows their name."],
        ["redis", None, None,
         "Share rooms with every rtcsvc process using this Redis, e.g. "
         "redis://127.0.0.1:6379/0, or over TLS as an ACL user: "
         "rediss://rtcsvc@HOST:6380/0?ca=CA.pem&password-file=FILE (see docs/scaling.md). "
         "Without it, rooms live in this process only."],
    ]

    optFlags = [
        ["no-session-log", None,
         "Do not log a line each time a peer joins or leaves a room. Those two lines are "
         "about a quarter of the server's work per join and leave (docs/performance.md); "
         "/metrics counts connections, rooms and peers either way, and refusals, drops and "
         "errors are still logged or counted."],
    ]

    #: The parsed command line, set once parseOptions() succeeds.
    config: ServiceConfig

    def __init__(self) -> None:
        super().__init__()  # type: ignore[no-untyped-call]
        for repeatable in ("listen", "ice-server", "turn-url", "allowed-origin",
                           "trusted-proxy", "metrics-allow"):
            self[repeatable] = []
        # One line of help per option: usage.Options keeps a docstring's line breaks and
        # indentation as runs of spaces.
        self.docs = {name: " ".join(doc.split()) if doc else doc
                     for name, doc in self.docs.items()}

    def opt_version(self) -> None:
        """Print rtcsvc's version and exit."""
        print(f"rtcsvc {__version__}")
        raise SystemExit(0)

    def opt_listen(self, description: str) -> None:
        """Add a listener, as a Twisted endpoint string (repeatable), e.g.
        tcp:8080:interface=127.0.0.1 or ssl:443:privateKey=key.pem:certKey=cert.pem."""
        if not description or ":" not in description and not description.isdigit():
            raise usage.UsageError(f"--listen must be an endpoint string, not {description!r}")
        self["listen"].append(description)

    def opt_ice_server(self, url: str) -> None:
        """Add a STUN/TURN URL handed to browsers as is (repeatable), e.g.
        stun:stun.example.com:3478."""
        if not url.startswith(("stun:", "stuns:", "turn:", "turns:")):
            raise usage.UsageError("--ice-server must be a stun:, stuns:, turn: or turns: URL, "
                                   f"not {url!r}")
        self["ice-server"].append(url)

    def opt_turn_url(self, url: str) -> None:
        """Add a TURN URL whose credentials rtcsvc mints (repeatable), e.g.
        turn:turn.example.com:3478?transport=udp. Needs --turn-secret-file."""
        if not url.startswith(("turn:", "turns:")):
            raise usage.UsageError(f"--turn-url must start with turn: or turns:, not {url!r}")
        self["turn-url"].append(url)

    def opt_allowed_origin(self, origin: str) -> None:
        """Also accept signaling sockets from pages of this origin (repeatable), e.g.
        https://portal.example.com. Pages of this site itself are always allowed."""
        try:
            OriginPolicy([origin])
        except ValueError as e:
            raise usage.UsageError(f"--allowed-origin: {e}") from None
        self["allowed-origin"].append(origin)

    def opt_metrics_allow(self, address: str) -> None:
        """Let this address or network read /metrics and the counts in /healthz (repeatable),
        e.g. 192.0.2.5 for a Prometheus on another host. Default: this host only (127.0.0.0/8
        and ::1). Others get 403 from /metrics and only the status from /healthz."""
        self["metrics-allow"].append(_network("metrics-allow", address))

    def opt_trusted_proxy(self, address: str) -> None:
        """Believe X-Forwarded-For/-Proto/-Host from this proxy address or network
        (repeatable), e.g. 127.0.0.1 behind a local Apache."""
        self["trusted-proxy"].append(_network("trusted-proxy", address))

    def getUsage(self, width: int | None = None) -> str:
        # usage.Options re-wraps longdesc into one paragraph; keep our line breaks instead.
        longdesc, self.longdesc = self.longdesc, ""
        try:
            return str(super().getUsage(width)) + "\n" + longdesc
        finally:
            self.longdesc = longdesc

    def parseOptions(self, options: list[str] | None = None) -> None:
        try:
            super().parseOptions(options)  # type: ignore[no-untyped-call]
        except usage.UsageError as e:
            # A coercer's ValueError arrives wrapped; its message already names the option.
            message = str(e).removeprefix("Parameter type enforcement failed: ")
            if self.parent is not None:
                # On twistd's command line, which would print its sixty lines of help above
                # the one that matters: that one line alone, and status 1.
                raise StartupError(message) from None
            raise usage.UsageError(message) from None

    def postOptions(self) -> None:
        redis = None
        if self["redis"] is not None:
            try:
                redis = RedisUrl.parse(self["redis"])
            except ValueError as e:
                raise usage.UsageError(f"--redis {e}") from None
        try:
            self.config = ServiceConfig(
                listen=tuple(self["listen"]),
                state_dir=Path(self["state-dir"]),
                static=_path(self["static"]),
                ice_servers=tuple(self["ice-server"]),
                turn_urls=tuple(self["turn-url"]),
                turn_secret_file=_path(self["turn-secret-file"]),
                turn_backend=self["turn-backend"],
                turn_ttl=self["turn-ttl"],
                turn_mint_rate=self["turn-mint-rate"],
                turn_check_interval=self["turn-check-interval"],
                max_peers=self["max-peers"],
                max_message_size=self["max-message-size"],
                resume_grace=self["resume-grace"],
                rate_limit=self["rate-limit"],
                rate_burst=self["rate-burst"],
                max_connections=self["max-connections"],
                max_connections_per_client=self["max-connections-per-client"],
                handshake_rate=self["handshake-rate"],
                max_send_buffer=self["max-send-buffer"],
                ping_interval=self["ping-interval"],
                ping_timeout=self["ping-timeout"],
                handshake_timeout=self["handshake-timeout"],
                idle_timeout=self["idle-timeout"],
                room_secret_file=_path(self["room-secret-file"]),
                redis=redis,
                allowed_origins=tuple(self["allowed-origin"]),
                trusted_proxies=tuple(self["trusted-proxy"]),
                metrics_allow=tuple(self["metrics-allow"]),
                session_log=not self["no-session-log"],
            )
        except ValueError as e:  # a rule between options
            raise usage.UsageError(str(e)) from None


def _path(value: str | None) -> Path | None:
    return None if value is None else Path(value)


def _network(option: str, address: str) -> Network:
    try:
        return TrustedProxies.parse(address)
    except ValueError:
        raise usage.UsageError(
            f"--{option} must be an IP address or network, not {address!r}") from None


def makeService(config: Options | ServiceConfig, reactor: Any = None) -> service.MultiService:
    """The service tree for ``config``: parsed options (from twistd) or a ServiceConfig.

    Reads the files the config names first; one that cannot be used stops start-up with one
    line (:class:`StartupError`), as a port that cannot be bound does.
    """
    if reactor is None:
        from twisted.internet import reactor
    settings = config.config if isinstance(config, Options) else config
    try:
        files = read_files(settings, default_static_dir())
    except ConfigError as e:
        raise StartupError(str(e)) from None
    if files.redis is not None:
        hub: Hub | RedisHub = RedisHub(reactor, files.redis, max_peers=settings.max_peers,
                                       resume_grace=settings.resume_grace)
    else:
        hub = Hub(reactor, max_peers=settings.max_peers, resume_grace=settings.resume_grace)
    metrics = Metrics()
    proxies = TrustedProxies(settings.trusted_proxies)
    factory = SignalingFactory(
        hub,
        clock=reactor,
        ice=IceConfig(settings.ice_servers, settings.turn_urls, files.turn_secret,
                      settings.turn_ttl),
        origins=OriginPolicy(settings.allowed_origins),
        proxies=proxies,
        metrics=metrics,
        log_sessions=settings.session_log,
        turn_minter=TurnMinter(settings.turn_mint_rate),
        limits=Limits(
            max_message_size=settings.max_message_size,
            rate=settings.rate_limit,
            burst=settings.rate_burst,
            max_connections=settings.max_connections,
            max_per_client=settings.max_connections_per_client,
            max_send_buffer=settings.max_send_buffer,
            handshake_rate=settings.handshake_rate,
            ping_interval=settings.ping_interval,
            ping_timeout=settings.ping_timeout,
            room_secret=files.room_secret,
        ),
    )
    metrics.watch(hub, lambda: len(factory.connections))
    watchdog = None
    if files.turn_secret is not None and settings.turn_check_interval > 0:
        watchdog = TurnWatchdog(reactor, list(settings.turn_urls), files.turn_secret,
                                settings.turn_check_interval)
        metrics.registry.register(watchdog)
    idle, request = settings.idle_timeout, settings.handshake_timeout
    site = make_site(factory, metrics, files.static, idle=idle, request=request,
                     max_per_client=settings.max_connections_per_client, proxies=proxies,
                     metrics_allow=settings.metrics_allow or LOOPBACK,
                     turn_status=watchdog.status if watchdog is not None else lambda: None,
                     clock=reactor)
    shared = SharedPortFactory(site, factory, reactor, timeout=settings.handshake_timeout,
                               turn_tunnel=_turn_tunnel(reactor, settings.turn_backend,
                                                        settings.max_connections_per_client))

    services: list[service.Service] = []
    listeners = list(settings.listen)
    if not listeners:
        listeners = [f"ssl:{DEFAULT_HTTPS_PORT}:interface=127.0.0.1"]
        redirect = make_redirect_site(DEFAULT_HTTPS_PORT, idle=idle, request=request,
                                      clock=reactor)
        services.append(_listener(reactor, f"tcp:{DEFAULT_HTTP_PORT}:interface=127.0.0.1",
                                  redirect, "the redirect to HTTPS"))
    services += [_listener(reactor, description, shared, "the app", settings.state_dir)
                 for description in listeners]
    services.append(_SignalingShutdown(factory, hub))
    if watchdog is not None:
        services.append(watchdog)
    services.append(_CollectorTuning())
    if isinstance(hub, RedisHub):
        services.append(RedisHubService(hub))
    top = service.MultiService()
    for child in services:
        child.setServiceParent(top)
    return top


def _turn_tunnel(reactor: Any, description: str | None,
                 max_per_client: int) -> TurnTunnels | None:
    """What makes a TurnTunnel to ``--turn-backend description``, or None without one."""
    if description is None:
        return None
    try:
        endpoint = clientFromString(reactor, description)
    except Exception as e:  # a malformed endpoint string
        raise StartupError(f"--turn-backend {description}: {e}") from None
    return TurnTunnels(endpoint.connect, description, max_per_client, reactor)


def _listener(reactor: Any, description: str, factory: IProtocolFactory, role: str,
              state_dir: Path | None = None) -> ListenerService:
    """A port for ``--listen description``; a mistake in it stops start-up with one line."""
    option = f"--listen {description}"
    if description.startswith("ssl:") and "privateKey=" not in description:
        try:
            assert state_dir is not None, "an ssl: listener of the app"
            key, cert = ensure_certificate(state_dir)
        except CertificateError as e:
            raise StartupError(f"--state-dir {state_dir}: {e}") from None
        description += f":privateKey={_escape(key)}:certKey={_escape(cert)}"
    try:
        endpoint = serverFromString(reactor, description)
    except OSError as e:  # a key or certificate file that cannot be read
        raise StartupError(f"{option}: cannot read {e.filename}: {e.strerror}") from None
    except Exception as e:  # a malformed string, or a key file OpenSSL rejects
        raise StartupError(f"{option}: {_endpoint_error(e)}") from None
    scheme = "https" if description.startswith("ssl:") else "http"
    return ListenerService(endpoint, factory, option, scheme, role)


def _endpoint_error(error: Exception) -> str:
    text = str(error) or type(error).__name__
    if type(error).__module__.startswith("OpenSSL"):
        return f"the key or certificate is not valid PEM or they do not match ({text})"
    return text


def _escape(path: Path) -> str:
    # Endpoint strings use ':' and '=' as separators.
    return str(path).replace("\\", "\\\\").replace(":", "\\:").replace("=", "\\=")


#: The cyclic collector's generation-0 threshold in a running server (CPython's default: 700).
GC_THRESHOLD = (7000, 20, 20)


class _CollectorTuning(service.Service):
    """
    Fewer cyclic-garbage collections once the server runs.

    Joins and leaves leave reference cycles behind (protocol <-> transport <-> Deferreds,
    Autobahn's handshake state), about 30 container objects per join+leave net of what is freed,
    so with CPython's default gen-0 threshold of 700 the collector ran 128 times per 3,000
    join+leave cycles, including the older-generation passes that re-scan everything alive
    (every open socket): ~31 us of every cycle (bench/hotpath.py). At 7,000 (and 20 young
    collections per older one) it runs 13 times for the same work, ~10 us per cycle. Relayed
    messages leave no cycles, so the relay path does not change. Cyclic garbage is still
    collected, only in batches ten times larger (a few hundred KiB at most).
    """

    _previous: tuple[int, int, int] | None = None

    def startService(self) -> None:
        super().startService()  # type: ignore[no-untyped-call]
        self._previous = gc.get_threshold()
        gc.set_threshold(*GC_THRESHOLD)

    def stopService(self) -> None:
        # Put back what we found: the service may run inside a larger program (or a test run).
        super().stopService()  # type: ignore[no-untyped-call]
        if self._previous is not None:
            gc.set_threshold(*self._previous)


class _SignalingShutdown(service.Service):
    """On stop (SIGTERM), close every socket with 1001 before the reactor goes away."""

    def __init__(self, factory: SignalingFactory, hub: IHub):
        self._factory = factory
        self._hub = hub

    def stopService(self) -> Deferred[None]:
        super().stopService()  # type: ignore[no-untyped-call]
        d: Deferred[None] = self._factory.shut_down()
        d.addBoth(lambda _: self._hub.close())
        return d
