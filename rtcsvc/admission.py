"""Who may open a signaling socket: the handshake's admission policy, without any socket.

A handshake names a room in its path and carries headers (Origin, the ``X-Forwarded-*`` of a
trusted proxy) and query parameters (an invite ``token``, a ``resume`` token). :class:`Admission`
decides, in this order: the client's handshake rate, the room name, the origin, the process's
connection cap, the client's cap; an admitted handshake counts against both caps until
:meth:`Admission.release`. The invite is judged but not refused here: a browser cannot read an
HTTP status, so the adapter refuses a missing invite after the upgrade, with words. Pure: the
adapter (:mod:`rtcsvc.protocol`) turns a :class:`Refused` into Autobahn's ``ConnectionDeny``.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass
from typing import Callable

from rtcsvc.invite import room_token_valid
from rtcsvc.origin import OriginPolicy, TrustedProxies, client_key
from rtcsvc.ratelimit import ClientBuckets

ROOM_PATH = re.compile(r"/ws/([A-Za-z0-9_-]{1,64})\Z")
#: A client's handshake bucket holds this many seconds' worth of ``--handshake-rate``: a
#: whole office behind one NAT reconnecting after a restart gets through in one go.
HANDSHAKE_BURST_SECONDS = 10


class Refused(Exception):
    """A handshake refused with an HTTP ``status``; ``reason`` labels the metric."""

    def __init__(self, status: int, reason: str, text: str):
        super().__init__(text)
        self.status = status
        self.reason = reason
        self.text = text


@dataclass(frozen=True)
class Ticket:
    """An admitted handshake: whose it is, for which room, and what it carried."""

    client: str  # the real client's address (behind a trusted proxy, the forwarded one)
    key: str  # what the per-client limits count (client_key)
    room: str
    invited: bool
    resume_token: str | None


@dataclass(frozen=True)
class Handshake:
    """What admission reads of a handshake request."""

    peer: str  # the transport's peer address
    secure: bool  # our own listener is TLS
    path: str
    header: Callable[[str], str | None]  # lower-case name -> value
    params: dict[str, list[str]]


class Admission:
    """The admission policy and the counts it keeps (admitted, per client)."""

    def __init__(self, origins: OriginPolicy, proxies: TrustedProxies, max_connections: int,
                 max_per_client: int, handshake_rate: float, room_secret: bytes | None):
        self.origins = origins
        self.proxies = proxies
        self.max_connections = max_connections
        self.max_per_client = max_per_client
        self.room_secret = room_secret
        self.admitted = 0  # handshakes accepted and not yet closed
        self.per_client: Counter[str] = Counter()  # by client_key()
        #: Handshakes per client (its key), or None when --handshake-rate is 0.
        self.handshakes = (ClientBuckets(handshake_rate,
                                         max(1.0, handshake_rate * HANDSHAKE_BURST_SECONDS))
                           if handshake_rate > 0 else None)

    def client_of(self, handshake: Handshake) -> str:
        return self.proxies.view(handshake.peer, handshake.secure, handshake.header).client

    def admit(self, handshake: Handshake, now: float) -> Ticket:
        """A :class:`Ticket` that counts until :meth:`release`, or raise :class:`Refused`."""
        view = self.proxies.view(handshake.peer, handshake.secure, handshake.header)
        key = client_key(view.client)
        if self.handshakes is not None and not self.handshakes.take(key, now):
            raise Refused(429, "handshake-rate",
                          "Too many new connections from your address; slow down.")
        match = ROOM_PATH.match(handshake.path)
        if match is None:
            raise Refused(400, "bad-room", "The room name must match [A-Za-z0-9_-]{1,64}.")
        if not self.origins.allows(handshake.header("origin"), view):
            raise Refused(403, "origin", "This origin may not open a signaling socket here.")
        room = match.group(1)
        if self.admitted >= self.max_connections:
            raise Refused(503, "server-full",
                          "The server is at its connection limit; try again later.")
        if self.per_client[key] >= self.max_per_client:
            raise Refused(429, "client-limit", "Too many connections from your address.")
        invited = True
        if self.room_secret is not None:
            invited = room_token_valid(self.room_secret, room, _param(handshake, "token"), now)
        self.admitted += 1
        self.per_client[key] += 1
        return Ticket(view.client, key, room, invited, _param(handshake, "resume"))

    def release(self, key: str) -> None:
        self.admitted -= 1
        self.per_client[key] -= 1
        if self.per_client[key] <= 0:
            del self.per_client[key]

    def penalise(self, key: str, now: float) -> None:
        """``key`` was closed for flooding: coming straight back costs it its burst."""
        if self.handshakes is not None:
            self.handshakes.drain(key, now)


def _param(handshake: Handshake, name: str) -> str | None:
    values = handshake.params.get(name)
    return values[0] if values else None
