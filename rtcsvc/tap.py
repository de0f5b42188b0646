"""``twistd rtcsvc``: the command-line options and the service tree they build.

Wiring only. Options are checked here, at start-up, so that a bad value stops twistd with one
line naming the option instead of a traceback later; ``makeService`` assembles the hub, the
signaling factory and the web site into a MultiService of endpoint services, so twistd's own
flags (--pidfile, --logfile, --uid/--gid after binding 443, ...) work unchanged.
"""

from __future__ import annotations

import gc
import os
from pathlib import Path

from twisted.application import service
from twisted.internet.endpoints import clientFromString, serverFromString
from twisted.python import usage

from rtcsvc import __version__
from rtcsvc.hub import Hub
from rtcsvc.listener import SharedPortFactory
from rtcsvc.metrics import Metrics
from rtcsvc.origin import OriginPolicy, TrustedProxies
from rtcsvc.protocol import Limits, SignalingFactory
from rtcsvc.redis_hub import RedisHub, RedisHubService, parse_redis_url
from rtcsvc.startup import ListenerService, StartupError
from rtcsvc.tls import CertificateError, ensure_certificate
from rtcsvc.turn import DEFAULT_MINTS_PER_HOUR, DEFAULT_TTL, IceConfig, TurnMinter
from rtcsvc.turn_tunnel import TurnTunnels
from rtcsvc.turn_watchdog import DEFAULT_INTERVAL as DEFAULT_TURN_CHECK_INTERVAL
from rtcsvc.turn_watchdog import TurnWatchdog
from rtcsvc.web import LOOPBACK, default_static_dir, make_redirect_site, make_site

DEFAULT_HTTPS_PORT = 8443
DEFAULT_HTTP_PORT = 8080


def _default_state_dir() -> str:
    base = os.environ.get("XDG_STATE_HOME") or os.path.join(os.path.expanduser("~"),
                                                            ".local", "state")
    return os.path.join(base, "rtcsvc")


def _bounded(option, kind, low, high=None):
    """A coercer for optParameters: parse as ``kind`` and check ``low <= value <= high``."""

    def coerce(text):
        try:
            value = kind(text)
        except ValueError:
            raise ValueError(f"--{option} must be a number, not {text!r}") from None
        if value < low or (high is not None and value > high):
            limit = f"from {low} to {high}" if high is not None else f"at least {low}"
            raise ValueError(f"--{option} must be {limit}, not {text}")
        return value

    coerce.coerceDoc = ""
    return coerce


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
        ["state-dir", None, _default_state_dir(),
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
        ["turn-ttl", None, DEFAULT_TTL,
         "Lifetime of minted TURN credentials, in seconds. Live sockets are sent fresh ones "
         "before they expire, so calls outlast it; a leaked one dies with it.",
         _bounded("turn-ttl", int, 60, 7 * 86400)],
        ["turn-mint-rate", None, DEFAULT_MINTS_PER_HOUR,
         "New TURN credentials a client address (its /64 for IPv6) may be handed per hour, "
         "as many at once; past it a join is welcomed with STUN only. Each credential opens "
         "coturn allocations up to its user-quota. 0: no limit.",
         _bounded("turn-mint-rate", float, 0)],
        ["turn-check-interval", None, DEFAULT_TURN_CHECK_INTERVAL,
         "Seconds between the service's own checks of each --turn-url (an allocation and a "
         "relayed round trip with fresh credentials, by rtcsvc-check in a child process), "
         "exported as rtcsvc_turn_check_ok{url} in /metrics and as \"turn\": \"degraded\" "
         "in /healthz. 0: no checks.",
         _bounded("turn-check-interval", float, 0)],
        ["max-peers", None, 6, "Room capacity: members per room (mesh calls).",
         _bounded("max-peers", int, 2, 64)],
        ["max-message-size", None, 65536,
         "Largest signaling message accepted, in bytes; larger ones close the socket with 1009.",
         _bounded("max-message-size", int, 1024, 16 * 1024 * 1024)],
        ["resume-grace", None, 30.0,
         "Seconds a dropped peer keeps its seat and queued signals, so it can resume.",
         _bounded("resume-grace", float, 0, 3600)],
        ["rate-limit", None, 50.0,
         "Messages per second each connection may send on average (0: no limit). Excess "
         "gets a rate-limited error; a flood of more than --rate-burst refused messages in a "
         "row closes the socket with 1008.",
         _bounded("rate-limit", float, 0)],
        ["rate-burst", None, 300,
         "Messages a connection may send at once (a mesh call's ICE burst) before "
         "--rate-limit applies.",
         _bounded("rate-burst", int, 1)],
        ["max-connections", None, 10000,
         "Signaling sockets the process holds at most; more are refused with HTTP 503. "
         "Keep it under the file-descriptor limit (ulimit -n).",
         _bounded("max-connections", int, 1)],
        ["max-connections-per-client", None, 200,
         "Signaling sockets per client address (the real one behind a --trusted-proxy; "
         "an IPv6 address counts by its /64); more are refused with HTTP 429. Page (HTTP) "
         "connections have the same cap, counted apart, except from a --trusted-proxy. "
         "Offices behind one NAT share an address.",
         _bounded("max-connections-per-client", int, 1)],
        ["handshake-rate", None, 10.0,
         "New signaling sockets per second each client address (an IPv6 address counts "
         "by its /64) may open on average, after a burst of ten seconds' worth; more are "
         "refused with HTTP 429. A client closed for flooding loses its burst. 0: no limit.",
         _bounded("handshake-rate", float, 0)],
        ["max-send-buffer", None, 1 << 20,
         "Bytes queued for a client that stopped reading before it is dropped (it may "
         "resume).",
         _bounded("max-send-buffer", int, 4096)],
        ["ping-interval", None, 20.0,
         "Seconds between WebSocket pings; a peer that misses one for --ping-timeout is "
         "dropped, then held --resume-grace before peer-left.",
         _bounded("ping-interval", float, 0.1, 3600)],
        ["ping-timeout", None, 10.0,
         "Seconds to wait for a ping's pong. At least 2: Autobahn rounds its timers down "
         "to whole seconds, so a shorter wait could drop a healthy peer.",
         _bounded("ping-timeout", float, 2, 3600)],
        ["handshake-timeout", None, 10.0,
         "Seconds a client has to send a complete HTTP request (and finish the WebSocket "
         "handshake); slower ones are disconnected.",
         _bounded("handshake-timeout", float, 0.1, 600)],
        ["idle-timeout", None, 60.0,
         "Seconds an idle HTTP keep-alive connection is kept.",
         _bounded("idle-timeout", float, 1, 3600)],
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

    def __init__(self):
        super().__init__()
        self["listen"] = []
        self["ice-server"] = []
        self["turn-url"] = []
        self["allowed-origin"] = []
        self["trusted-proxy"] = []
        self["metrics-allow"] = []

    def opt_version(self):
        """Print rtcsvc's version and exit."""
        print(f"rtcsvc {__version__}")
        raise SystemExit(0)

    def opt_listen(self, description):
        """Add a listener, as a Twisted endpoint string (repeatable), e.g.
        tcp:8080:interface=127.0.0.1 or ssl:443:privateKey=key.pem:certKey=cert.pem."""
        self["listen"].append(description)

    def opt_ice_server(self, url):
        """Add a STUN/TURN URL handed to browsers as is (repeatable), e.g.
        stun:stun.example.com:3478."""
        self["ice-server"].append(_ice_url("ice-server", url))

    def opt_turn_url(self, url):
        """Add a TURN URL whose credentials rtcsvc mints (repeatable), e.g.
        turn:turn.example.com:3478?transport=udp. Needs --turn-secret-file."""
        if not url.startswith(("turn:", "turns:")):
            raise usage.UsageError(f"--turn-url must start with turn: or turns:, not {url!r}")
        self["turn-url"].append(url)

    def opt_allowed_origin(self, origin):
        """Also accept signaling sockets from pages of this origin (repeatable), e.g.
        https://portal.example.com. Pages of this site itself are always allowed."""
        try:
            OriginPolicy([origin])
        except ValueError as e:
            raise usage.UsageError(f"--allowed-origin: {e}") from None
        self["allowed-origin"].append(origin)

    def opt_metrics_allow(self, address):
        """Let this address or network read /metrics and the counts in /healthz (repeatable),
        e.g. 192.0.2.5 for a Prometheus on another host. Default: this host only (127.0.0.0/8
        and ::1). Others get 403 from /metrics and only the status from /healthz."""
        try:
            self["metrics-allow"].append(TrustedProxies.parse(address))
        except ValueError:
            raise usage.UsageError(
                f"--metrics-allow must be an IP address or network, not {address!r}"
            ) from None

    def opt_trusted_proxy(self, address):
        """Believe X-Forwarded-For/-Proto/-Host from this proxy address or network
        (repeatable), e.g. 127.0.0.1 behind a local Apache."""
        try:
            self["trusted-proxy"].append(TrustedProxies.parse(address))
        except ValueError:
            raise usage.UsageError(
                f"--trusted-proxy must be an IP address or network, not {address!r}"
            ) from None

    def getUsage(self, width=None):
        # usage.Options re-wraps longdesc into one paragraph; keep our line breaks instead.
        longdesc, self.longdesc = self.longdesc, ""
        try:
            return super().getUsage(width) + "\n" + longdesc
        finally:
            self.longdesc = longdesc

    def parseOptions(self, options=None):
        try:
            super().parseOptions(options)
        except usage.UsageError as e:
            # twistd would print its whole help text above the error; one line is kinder.
            message = str(e).removeprefix("Parameter type enforcement failed: ")
            raise SystemExit(f"twistd rtcsvc: error: {message}") from None

    def postOptions(self):
        for description in self["listen"]:
            if not description or ":" not in description and not description.isdigit():
                raise usage.UsageError(f"--listen must be an endpoint string, not {description!r}")
        if self["static"] is not None:
            static = Path(self["static"])
            if not (static / "index.html").is_file():
                raise usage.UsageError(f"--static {static} has no index.html")
            self["static"] = static
        else:
            self["static"] = default_static_dir()
        if bool(self["turn-url"]) != bool(self["turn-secret-file"]):
            raise usage.UsageError("--turn-url and --turn-secret-file go together")
        if self["turn-secret-file"]:
            self["turn-secret"] = _read_secret("turn-secret-file", self["turn-secret-file"])
        else:
            self["turn-secret"] = None
        if self["room-secret-file"]:
            self["room-secret"] = _read_secret("room-secret-file", self["room-secret-file"])
        else:
            self["room-secret"] = None
        if self["redis"] is not None:
            try:
                self["redis"] = parse_redis_url(self["redis"])
            except ValueError as e:
                raise usage.UsageError(f"--redis {e}") from None


for _name in dir(Options):
    if _name.startswith("opt_"):
        # One-line help: usage.Options keeps a docstring's indentation as runs of spaces.
        _method = getattr(Options, _name)
        _method.__doc__ = " ".join((_method.__doc__ or "").split())
del _name, _method


def _ice_url(option, url):
    if not url.startswith(("stun:", "stuns:", "turn:", "turns:")):
        raise usage.UsageError(f"--{option} must be a stun:, stuns:, turn: or turns: URL, "
                               f"not {url!r}")
    return url


def _read_secret(option, path):
    try:
        secret = Path(path).read_bytes().strip()
    except OSError as e:
        raise usage.UsageError(f"--{option}: cannot read {path}: {e.strerror}") from None
    if len(secret) < 16:
        raise usage.UsageError(f"--{option}: the secret in {path} is shorter than 16 bytes")
    return secret


def makeService(config, reactor=None):
    if reactor is None:
        from twisted.internet import reactor
    if config["redis"] is not None:
        hub = RedisHub(reactor, config["redis"], max_peers=config["max-peers"],
                       resume_grace=config["resume-grace"])
    else:
        hub = Hub(reactor, max_peers=config["max-peers"], resume_grace=config["resume-grace"])
    metrics = Metrics()
    proxies = TrustedProxies(config["trusted-proxy"])
    factory = SignalingFactory(
        hub,
        clock=reactor,
        ice=IceConfig(tuple(config["ice-server"]), tuple(config["turn-url"]),
                      config["turn-secret"], config["turn-ttl"]),
        origins=OriginPolicy(config["allowed-origin"]),
        proxies=proxies,
        metrics=metrics,
        log_sessions=not config["no-session-log"],
        turn_minter=TurnMinter(config["turn-mint-rate"]),
        limits=Limits(
            max_message_size=config["max-message-size"],
            rate=config["rate-limit"],
            burst=config["rate-burst"],
            max_connections=config["max-connections"],
            max_per_client=config["max-connections-per-client"],
            max_send_buffer=config["max-send-buffer"],
            handshake_rate=config["handshake-rate"],
            ping_interval=config["ping-interval"],
            ping_timeout=config["ping-timeout"],
            room_secret=config["room-secret"],
        ),
    )
    metrics.watch(hub, lambda: len(factory.connections))
    watchdog = None
    if config["turn-url"] and config["turn-check-interval"] > 0:
        watchdog = TurnWatchdog(reactor, config["turn-url"], config["turn-secret"],
                                config["turn-check-interval"])
        metrics.registry.register(watchdog)
    timeouts = dict(idle=config["idle-timeout"], request=config["handshake-timeout"])
    site = make_site(factory, metrics, Path(config["static"]), **timeouts,
                     max_per_client=config["max-connections-per-client"], proxies=proxies,
                     metrics_allow=tuple(config["metrics-allow"]) or LOOPBACK,
                     turn_status=watchdog.status if watchdog is not None else lambda: None)
    shared = SharedPortFactory(site, factory, reactor, timeout=config["handshake-timeout"],
                               turn_tunnel=_turn_tunnel(reactor, config["turn-backend"],
                                                        config["max-connections-per-client"]))

    top = service.MultiService()
    state_dir = Path(config["state-dir"])
    listeners = list(config["listen"])
    if not listeners:
        listeners = [f"ssl:{DEFAULT_HTTPS_PORT}:interface=127.0.0.1"]
        redirect = make_redirect_site(DEFAULT_HTTPS_PORT, **timeouts)
        _listener(reactor, f"tcp:{DEFAULT_HTTP_PORT}:interface=127.0.0.1", redirect,
                  "the redirect to HTTPS").setServiceParent(top)
    for description in listeners:
        _listener(reactor, description, shared, "the app", state_dir).setServiceParent(top)
    _SignalingShutdown(factory, hub).setServiceParent(top)
    if watchdog is not None:
        watchdog.setServiceParent(top)
    _CollectorTuning().setServiceParent(top)
    if config["redis"] is not None:
        RedisHubService(hub).setServiceParent(top)
    return top


def _turn_tunnel(reactor, description, max_per_client):
    """What makes a TurnTunnel to ``--turn-backend description``, or None without one."""
    if description is None:
        return None
    try:
        endpoint = clientFromString(reactor, description)
    except Exception as e:  # a malformed endpoint string
        raise StartupError(f"--turn-backend {description}: {e}") from None
    return TurnTunnels(endpoint.connect, description, max_per_client)


def _listener(reactor, description, factory, role, state_dir=None):
    """A port for ``--listen description``; a mistake in it stops start-up with one line."""
    option = f"--listen {description}"
    if description.startswith("ssl:") and "privateKey=" not in description:
        try:
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

    _previous = None

    def startService(self):
        super().startService()
        self._previous = gc.get_threshold()
        gc.set_threshold(*GC_THRESHOLD)

    def stopService(self):
        # Put back what we found: the service may run inside a larger program (or a test run).
        super().stopService()
        if self._previous is not None:
            gc.set_threshold(*self._previous)


class _SignalingShutdown(service.Service):
    """On stop (SIGTERM), close every socket with 1001 before the reactor goes away."""

    def __init__(self, factory, hub):
        self._factory = factory
        self._hub = hub

    def stopService(self):
        super().stopService()
        d = self._factory.shut_down()
        d.addBoth(lambda _: self._hub.close())
        return d
