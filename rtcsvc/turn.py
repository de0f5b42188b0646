"""The ``iceServers`` handed to browsers, with TURN credentials minted per peer.

coturn's ``use-auth-secret`` mode (the "TURN REST API") shares one secret with us and accepts
any username of the form ``<unix expiry>:<anything>`` whose password is
base64(HMAC-SHA1(secret, username)). Minting them here means no user database to keep in sync,
and a leaked credential dies on its own at the expiry time.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from dataclasses import dataclass


def mint_turn_credentials(secret: bytes, peer_id: str, now: float, ttl: int) -> tuple[str, str]:
    """Return ``(username, credential)`` valid until ``now + ttl``."""
    username = f"{int(now) + ttl}:{peer_id}"
    digest = hmac.new(secret, username.encode("utf-8"), hashlib.sha1).digest()
    return username, base64.b64encode(digest).decode("ascii")


@dataclass(frozen=True)
class IceConfig:
    """What the operator configured: plain ICE URLs and, optionally, TURN with a shared secret."""

    ice_urls: tuple[str, ...] = ()
    turn_urls: tuple[str, ...] = ()
    turn_secret: bytes | None = None
    turn_ttl: int = 86400

    @property
    def has_turn(self) -> bool:
        return bool(self.turn_urls) and self.turn_secret is not None

    def ice_servers(self, peer_id: str, now: float) -> list[dict]:
        """The RTCIceServer dictionaries for one peer, TURN entries with fresh credentials."""
        servers = [{"urls": list(self.ice_urls)}] if self.ice_urls else []
        if self.has_turn:
            username, credential = mint_turn_credentials(
                self.turn_secret, peer_id, now, self.turn_ttl
            )
            servers.append(
                {"urls": list(self.turn_urls), "username": username, "credential": credential}
            )
        return servers

    @property
    def refresh_interval(self) -> float:
        """Resend credentials at 80 % of their lifetime so a client never holds expired ones."""
        return self.turn_ttl * 0.8
