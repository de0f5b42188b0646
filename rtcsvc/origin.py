"""Who is really on the other end of an HTTP request, and may their page open our socket?

Behind Apache every request comes from 127.0.0.1 over plain HTTP, so the client's address and the
scheme and host the browser used are only known from ``X-Forwarded-*`` headers. Those headers are
believed only when the request comes from a proxy the operator listed (``--trusted-proxy``);
anyone else could forge them. The WebSocket origin check (against cross-site WebSocket hijacking)
compares the page's ``Origin`` with the scheme and host the browser itself addressed.
:func:`client_key` says which addresses count as one client for the per-client limits.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from functools import lru_cache
from urllib.parse import urlsplit

_DEFAULT_PORTS = {"http": 80, "https": 443, "ws": 80, "wss": 443}
#: A ``--trusted-proxy`` value once parsed.
Network = ipaddress.IPv4Network | ipaddress.IPv6Network


@dataclass(frozen=True)
class RequestView:
    """The client as the browser sees the site: its address, the scheme and the host it used."""

    client: str
    scheme: str
    host: str | None


class TrustedProxies:
    """The ``--trusted-proxy`` networks, and the rules for believing forwarded headers."""

    def __init__(self, networks: Iterable[Network] = ()):
        self._networks = tuple(networks)

    @staticmethod
    def parse(text: str) -> Network:
        """One ``--trusted-proxy`` value (an address or CIDR network), or raise ValueError."""
        return ipaddress.ip_network(text.strip(), strict=False)

    def __bool__(self) -> bool:
        return bool(self._networks)

    def trusts(self, address: str) -> bool:
        if not self._networks:
            return False  # the usual case without a proxy: no address to parse
        try:
            ip = ipaddress.ip_address(address)
        except ValueError:
            return False
        if ip.version == 6 and ip.ipv4_mapped is not None:
            ip = ip.ipv4_mapped
        return any(ip in network for network in self._networks)

    def view(self, peer: str, secure: bool, header: Callable[[str], str | None]) -> RequestView:
        """
        Work out the client's view from the transport peer ``peer``, whether our own listener is
        TLS, and ``header(name) -> str | None`` giving request headers (lower-case names).
        """
        scheme = "https" if secure else "http"
        host = header("host")
        client = peer
        if self.trusts(peer):
            forwarded_for = header("x-forwarded-for")
            if forwarded_for:
                # Walk from the right: the nearest hop a trusted proxy appended is the first we
                # cannot vouch for; anything left of it is what the client claimed.
                for hop in reversed([h.strip() for h in forwarded_for.split(",")]):
                    client = hop
                    if not self.trusts(hop):
                        break
            # Proxies append to these lists: the last entry is the one our trusted proxy
            # wrote; earlier ones are whatever the client sent.
            proto = (header("x-forwarded-proto") or "").split(",")[-1].strip().lower()
            if proto in ("http", "https"):
                scheme = proto
            forwarded_host = (header("x-forwarded-host") or "").split(",")[-1].strip()
            if forwarded_host:
                host = forwarded_host
        return RequestView(client, scheme, host)


def client_key(address: str) -> str:
    """The unit the per-client limits count: an IPv4 address, or an IPv6 address's /64.

    An IPv6 subscriber is routed a whole /64 (often more) and may use any address in it, so
    counting exact IPv6 addresses would give one host 2**64 budgets. An IPv4-mapped IPv6
    address counts as its IPv4 address. Anything that is not an address (a forwarded
    "unknown") is its own key.
    """
    if ":" not in address:
        return address  # IPv4 (the common case): nothing to parse
    try:
        ip = ipaddress.IPv6Address(address.partition("%")[0])
    except ValueError:
        return address
    if ip.ipv4_mapped is not None:
        return str(ip.ipv4_mapped)
    return f"{ipaddress.IPv6Address(int(ip) >> 64 << 64)}/64"


@lru_cache(maxsize=1024)
def normalise_origin(origin: str) -> tuple[str, str, int] | None:
    """``scheme://host[:port]`` as a comparable triple, or None if it is not such a URL.

    Cached: every handshake parses its page's origin and the site's own, and a site sees few
    distinct ones (a client sending endless new ones only cycles this bounded cache)."""
    try:
        parts = urlsplit(origin.strip())
        port = parts.port
    except ValueError:
        return None
    scheme = parts.scheme.lower()
    if scheme not in _DEFAULT_PORTS or not parts.hostname:
        return None
    return scheme, parts.hostname.lower(), port or _DEFAULT_PORTS[scheme]


def same_site_origin(view: RequestView) -> tuple[str, str, int] | None:
    """The origin of a page this site served to the client of ``view``."""
    if not view.host:
        return None
    return normalise_origin(f"{view.scheme}://{view.host}")


class OriginPolicy:
    """Same-site pages, plus the operator's ``--allowed-origin`` list."""

    def __init__(self, allowed: Iterable[str] = ()):
        self._allowed: set[tuple[str, str, int]] = set()
        for origin in allowed:
            parsed = normalise_origin(origin)
            if parsed is None:
                raise ValueError(f"not an origin (scheme://host[:port]): {origin!r}")
            self._allowed.add(parsed)

    def allows(self, origin: str | None, view: RequestView) -> bool:
        if origin is None:
            # Browsers always send Origin on a WebSocket handshake; only non-browser clients
            # (which cannot be hijacked from a web page) omit it.
            return True
        parsed = normalise_origin(origin)
        if parsed is None:
            return False  # includes "null": sandboxed frames and file:// pages
        return parsed == same_site_origin(view) or parsed in self._allowed
