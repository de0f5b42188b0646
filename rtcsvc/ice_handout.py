"""The ICE servers one socket is handed, and when: its welcome's, fresh ones before they
expire, or a probe's short-lived ones.

TURN credentials are minted per client and cost the relay's operator real bandwidth if they
leak, so every hand-out goes through the per-client budget (``--turn-mint-rate``; a client
over it still gets the plain ICE servers, and the refusal is counted), a seated peer is sent
fresh credentials at 80 % of their lifetime for as long as its socket lives, and a probe
socket's credentials live no longer than the probe itself (:data:`PROBE_SECONDS`). Kept apart
from the socket and its seat so the budget and the timers are plain Python on an injected
clock (tests/test_ice_handout.py); :mod:`rtcsvc.session` builds the ``welcome`` around
:meth:`IceHandout.for_seat`.
"""

from __future__ import annotations

import os
from dataclasses import replace
from typing import TYPE_CHECKING, Callable, Protocol

from twisted.internet.interfaces import IDelayedCall, IReactorTime

from rtcsvc import messages

if TYPE_CHECKING:
    from prometheus_client import Counter

    from rtcsvc.turn import IceConfig, IceServer, TurnMinter

#: A probe socket (the lobby's network check, docs/protocol.md "Probe sockets") lives this
#: long at most, and so do the TURN credentials it is handed.
PROBE_SECONDS = 120


class Recipient(Protocol):
    """Where the servers handed out later go: the socket."""

    def send(self, payload: bytes) -> None: ...


class IceHandout:
    """The ICE servers of one socket and the one timer that follows them up."""

    # The socket itself, not its bound send(): one object fewer per seat (docs/performance.md).
    __slots__ = ("_ice", "_minter", "_clock", "_mints_refused", "_recipient", "_timer")

    def __init__(self, ice: IceConfig, minter: TurnMinter, clock: IReactorTime,
                 mints_refused: Counter, recipient: Recipient):
        self._ice = ice
        self._minter = minter
        self._clock = clock
        self._mints_refused = mints_refused
        self._recipient = recipient
        self._timer: IDelayedCall | None = None

    @property
    def pending(self) -> bool:
        """Whether something is still to come: whoever keeps this must :meth:`stop` it at the
        socket's close; otherwise it may be let go (no memory held per idle seat)."""
        return self._timer is not None and self._timer.active()

    def for_seat(self, peer_id: str, client_key: str) -> list[IceServer]:
        """The servers for a seated peer's ``welcome``; when they include TURN credentials,
        fresh ones are sent (``ice-servers``) before these expire, until :meth:`stop`."""
        now = self._clock.seconds()
        with_turn = self._may_mint(client_key, now)
        servers = self._ice.ice_servers(peer_id, now, with_turn)
        if with_turn:
            self._timer = self._clock.callLater(self._ice.refresh_interval, self._refresh,
                                                peer_id)
        return servers

    def for_probe(self, client_key: str, expire: Callable[[], object]) -> None:
        """Send a probe socket its only message; ``expire`` it after :data:`PROBE_SECONDS`.
        The same budget as a seat's, but an anonymous name and credentials no longer-lived
        than the probe."""
        ice = self._ice
        now = self._clock.seconds()
        with_turn = self._may_mint(client_key, now)
        ice = replace(ice, turn_ttl=min(ice.turn_ttl, PROBE_SECONDS))
        servers = ice.ice_servers("probe-" + os.urandom(9).hex(), now, with_turn)
        self._recipient.send(messages.probe(servers))
        self._timer = self._clock.callLater(PROBE_SECONDS, expire)

    def stop(self) -> None:
        """The socket closed: nothing more is sent."""
        if self._timer is not None and self._timer.active():
            self._timer.cancel()

    def _may_mint(self, client_key: str, now: float) -> bool:
        if not self._ice.has_turn:
            return False
        if self._minter.may_mint(client_key, now):
            return True
        self._mints_refused.inc()
        return False

    def _refresh(self, peer_id: str) -> None:
        servers = self._ice.ice_servers(peer_id, self._clock.seconds())
        self._recipient.send(messages.ice_servers(servers))
        self._timer = self._clock.callLater(self._ice.refresh_interval, self._refresh, peer_id)
