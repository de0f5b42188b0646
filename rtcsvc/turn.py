"""The ``iceServers`` handed to browsers, with TURN credentials minted per peer.

coturn's ``use-auth-secret`` mode (the "TURN REST API") shares one secret with us and accepts
any username of the form ``<unix expiry>:<anything>`` whose password is
base64(HMAC-SHA1(secret, username)). Minting them here means no user database to keep in sync,
and a leaked credential dies on its own at the expiry time.

Anyone who can open a signaling socket gets a credential, and each one lets its holder make
coturn allocations up to coturn's per-user quota, so both the lifetime (two hours by default;
live sockets get fresh ones before that) and how many a client may be handed are bounded:
:class:`TurnMinter` meters new credentials per client address. A client over its budget still
joins, with the STUN servers only; a live socket's refreshes are never refused.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from dataclasses import dataclass
from typing import NotRequired, TypedDict

from rtcsvc.ratelimit import ClientBuckets

#: Default lifetime of a minted credential: short enough that a leaked one soon dies.
DEFAULT_TTL = 7200
#: Default credentials a client address may be handed per hour (burst of the same size).
DEFAULT_MINTS_PER_HOUR = 60


def mint_turn_credentials(secret: bytes, peer_id: str, now: float, ttl: int) -> tuple[str, str]:
    """Return ``(username, credential)`` valid until ``now + ttl``."""
    username = f"{int(now) + ttl}:{peer_id}"
    digest = hmac.new(secret, username.encode("utf-8"), hashlib.sha1).digest()
    return username, base64.b64encode(digest).decode("ascii")


class IceServer(TypedDict):
    """One RTCIceServer dictionary as the browser takes it; TURN entries carry credentials."""

    urls: list[str]
    username: NotRequired[str]
    credential: NotRequired[str]


@dataclass(frozen=True)
class IceConfig:
    """What the operator configured: plain ICE URLs and, optionally, TURN with a shared secret."""

    ice_urls: tuple[str, ...] = ()
    turn_urls: tuple[str, ...] = ()
    turn_secret: bytes | None = None
    turn_ttl: int = DEFAULT_TTL

    @property
    def has_turn(self) -> bool:
        return bool(self.turn_urls) and self.turn_secret is not None

    def ice_servers(self, peer_id: str, now: float, with_turn: bool = True) -> list[IceServer]:
        """The RTCIceServer dictionaries for one peer, TURN entries with fresh credentials
        (unless ``with_turn`` is false: the client is over its minting budget)."""
        servers: list[IceServer] = [{"urls": list(self.ice_urls)}] if self.ice_urls else []
        secret = self.turn_secret
        # has_turn, spelled out so that the type checker sees the secret is there.
        if self.turn_urls and secret is not None and with_turn:
            username, credential = mint_turn_credentials(secret, peer_id, now, self.turn_ttl)
            servers.append(
                {"urls": list(self.turn_urls), "username": username, "credential": credential}
            )
        return servers

    @property
    def refresh_interval(self) -> float:
        """Resend credentials at 80 % of their lifetime so a client never holds expired ones."""
        return self.turn_ttl * 0.8


class TurnMinter:
    """How many new TURN credentials each client address may be handed: ``per_hour`` on
    average, as many at once. ``per_hour`` 0 means no limit."""

    def __init__(self, per_hour: float = DEFAULT_MINTS_PER_HOUR):
        self._buckets = ClientBuckets(per_hour / 3600, per_hour) if per_hour > 0 else None

    def may_mint(self, client: str, now: float) -> bool:
        return self._buckets is None or self._buckets.take(client, now)
