"""rtcsvc.ice_handout: which ICE servers a socket is handed, within the TURN budget, and when.

Pure: a Clock, a list for what is sent. The same through the real adapter is in
tests/test_client_budgets.py and tests/test_netcheck_probe.py.
"""

from __future__ import annotations

import json

from twisted.internet.task import Clock

from rtcsvc.ice_handout import PROBE_SECONDS, IceHandout
from rtcsvc.metrics import Metrics
from rtcsvc.turn import IceConfig, TurnMinter

STUN = ("stun:stun.example.org:3478",)
TURN = ("turn:turn.example.org:3478",)
TTL = 1000  # refreshed at 800 s


class Handout:
    """An IceHandout with what it sends and counts in reach."""

    def __init__(self, ice: IceConfig, minter: TurnMinter | None = None):
        self.clock = Clock()
        self.clock.advance(1_000_000)
        self.metrics = Metrics()
        self.sent: list[dict] = []
        self.expired = 0
        self.handout = IceHandout(ice, minter or TurnMinter(0), self.clock,
                                  self.metrics.turn_mints_refused, self)

    def send(self, payload: bytes) -> None:
        self.sent.append(json.loads(payload))

    def refused(self) -> float:
        return self.metrics.registry.get_sample_value("rtcsvc_turn_mints_refused_total") or 0

    def expire(self) -> None:
        self.expired += 1


def with_turn(ttl: int = TTL) -> IceConfig:
    return IceConfig(STUN, TURN, b"a shared TURN secret", ttl)


def expiry(server: dict) -> int:
    return int(server["username"].split(":")[0])


def test_without_turn_a_seat_gets_the_plain_servers_and_nothing_follows():
    h = Handout(IceConfig(STUN))
    assert h.handout.for_seat("peer", "client") == [{"urls": list(STUN)}]
    assert not h.clock.getDelayedCalls() and h.refused() == 0
    assert not h.handout.pending  # nothing for the seat to keep


def test_a_handout_with_credentials_to_refresh_is_pending_until_stopped():
    h = Handout(with_turn())
    h.handout.for_seat("peer", "client")
    assert h.handout.pending
    h.handout.stop()
    assert not h.handout.pending


def test_a_seat_gets_turn_credentials_for_its_own_id():
    h = Handout(with_turn())
    servers = h.handout.for_seat("peer", "client")
    assert servers[0] == {"urls": list(STUN)}
    assert servers[1]["urls"] == list(TURN)
    assert servers[1]["username"] == f"{int(h.clock.seconds()) + TTL}:peer"


def test_fresh_credentials_follow_at_80_percent_of_their_lifetime_again_and_again():
    h = Handout(with_turn())
    h.handout.for_seat("peer", "client")
    h.clock.advance(0.8 * TTL - 1)
    assert h.sent == []
    for _ in range(3):
        h.clock.advance(1)
        message = h.sent.pop()
        assert message["type"] == "ice-servers"
        assert expiry(message["iceServers"][1]) == int(h.clock.seconds()) + TTL
        h.clock.advance(0.8 * TTL - 1)


def test_a_refresh_is_not_charged_to_the_mint_budget():
    h = Handout(with_turn(), TurnMinter(per_hour=1))
    h.handout.for_seat("peer", "client")
    h.clock.pump([0.8 * TTL] * 3)
    assert len(h.sent) == 3 and all(len(m["iceServers"]) == 2 for m in h.sent)
    assert h.refused() == 0


def test_stop_ends_the_refreshes():
    h = Handout(with_turn())
    h.handout.for_seat("peer", "client")
    h.handout.stop()
    h.clock.advance(10 * TTL)
    assert h.sent == [] and not h.clock.getDelayedCalls()


def test_a_client_over_its_mint_budget_gets_the_plain_servers_is_counted_and_is_not_refreshed():
    h = Handout(with_turn(), TurnMinter(per_hour=1))
    h.handout.for_seat("one", "client")
    h.handout.stop()
    assert h.handout.for_seat("two", "client") == [{"urls": list(STUN)}]
    assert h.refused() == 1 and not h.clock.getDelayedCalls()
    assert len(h.handout.for_seat("three", "another client")) == 2  # the budget is per client


def test_a_probe_gets_credentials_no_longer_lived_than_the_probe_then_expires():
    h = Handout(with_turn(ttl=86400))
    h.handout.for_probe("client", h.expire)
    [message] = h.sent
    assert message["type"] == "probe"
    turn = message["iceServers"][1]
    assert expiry(turn) == int(h.clock.seconds()) + PROBE_SECONDS
    assert turn["username"].split(":")[1].startswith("probe-")
    h.clock.advance(PROBE_SECONDS - 1)
    assert h.expired == 0
    h.clock.advance(1)
    assert h.expired == 1 and len(h.sent) == 1  # no refresh for a probe


def test_a_probe_draws_on_the_same_mint_budget_as_a_seat():
    minter = TurnMinter(per_hour=1)
    h = Handout(with_turn(), minter)
    h.handout.for_seat("peer", "client")
    h.handout.stop()
    h.handout.for_probe("client", h.expire)
    assert h.sent[-1]["iceServers"] == [{"urls": list(STUN)}] and h.refused() == 1


def test_stop_before_a_probe_expires_cancels_the_expiry():
    h = Handout(with_turn())
    h.handout.for_probe("client", h.expire)
    h.handout.stop()
    h.clock.advance(PROBE_SECONDS)
    assert h.expired == 0
