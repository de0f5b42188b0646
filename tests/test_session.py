"""rtcsvc.session: what a socket's ticket earns from the hub, what it may send once seated, and
whether its peer leaves or drops at the close.

A fake socket (no Autobahn, no frames) records what the session asks of it; the hub, the
factory's shared budgets and the metrics are the real ones on a Clock. The same through the
real adapter is tests/test_protocol_memory.py and tests/test_protocol.py.
"""

from __future__ import annotations

import json

import pytest
from twisted.internet.task import Clock
from twisted.logger import formatEvent, globalLogPublisher
from zope.interface import implementer

from rtcsvc.admission import Ticket
from rtcsvc.hub import Hub, JoinResult, NotResumable, Refusal
from rtcsvc.metrics import Metrics
from rtcsvc.origin import OriginPolicy, TrustedProxies
from rtcsvc.protocol import SignalingFactory
from rtcsvc.session import MAX_REPORTS, ISignalingSocket, Session
from rtcsvc.turn import IceConfig

STUN = ("stun:stun.example.org:3478",)


@implementer(ISignalingSocket)
class FakeSocket:
    """Does what the adapter does with the hub's answers; records the rest."""

    def __init__(self) -> None:
        self.session: Session
        self.sent: list[dict] = []
        self.told: list[str] = []
        self.refusals: list[Refusal] = []
        self.finished = False

    def send(self, payload: bytes) -> None:
        self.sent.append(json.loads(payload))

    def seated(self, result: JoinResult) -> None:
        self.session.welcome(result)

    def refused(self, reason: Refusal) -> None:
        self.refusals.append(reason)

    def supersede(self) -> None:
        self.session.superseded()

    def tell(self, code: str, text: str, **details: object) -> None:
        self.told.append(code)

    def finish(self) -> None:
        self.finished = True

    def types(self) -> list[str]:
        return [m["type"] for m in self.sent]


class Service:
    def __init__(self) -> None:
        self.clock = Clock()
        self.clock.advance(1_000_000)
        self.hub = Hub(self.clock, max_peers=6, resume_grace=30.0)
        self.metrics = Metrics()
        self.factory = SignalingFactory(
            self.hub, clock=self.clock, ice=IceConfig(STUN), origins=OriginPolicy(),
            proxies=TrustedProxies(), metrics=self.metrics)

    def open(self, room: str = "room", *, invited: bool = True, resume: str | None = None,
             probe: bool = False, client: str = "198.51.100.1") -> tuple[Session, FakeSocket]:
        socket = FakeSocket()
        socket.session = session = Session(self.factory, socket,
                                           Ticket(client, client, room, invited, resume), probe)
        session.open()
        return session, socket

    def sample(self, name: str, labels: dict[str, str] | None = None) -> float:
        return self.metrics.registry.get_sample_value(name, labels or {}) or 0


def signal(to: str, data: object) -> bytes:
    return json.dumps({"type": "signal", "to": to, "data": data}).encode()


def report() -> bytes:
    return json.dumps({"type": "report",
                       "data": {"outcome": "connected", "setupMs": 900, "path": "direct"}}).encode()


def netcheck(verdict: str = "direct") -> bytes:
    return json.dumps({"type": "netcheck",
                       "data": {"verdict": verdict, "transport": "udp"}}).encode()


@pytest.fixture
def log_lines():
    lines: list[str] = []

    def observer(event: dict) -> None:
        lines.append(formatEvent(event))

    globalLogPublisher.addObserver(observer)
    yield lines
    globalLogPublisher.removeObserver(observer)


# -- what a ticket earns


def test_an_invited_ticket_is_seated_and_welcomed_with_the_peers_before_it():
    service = Service()
    first, a = service.open()
    second, b = service.open()
    [welcome] = b.sent
    assert welcome["type"] == "welcome" and welcome["peers"] == [a.sent[0]["id"]]
    assert welcome["iceServers"] == [{"urls": list(STUN)}] and welcome["maxPeers"] == 6
    assert first.member is not None and second.member is not None


def test_a_ticket_without_an_invite_is_refused_and_seats_nobody():
    service = Service()
    session, socket = service.open("team", invited=False)
    assert [type(r) for r in socket.refusals] == [NotResumable]
    assert session.member is None and service.hub.members_of("team") == []


def test_a_live_resume_token_alone_gets_the_seat_back_once_the_invite_expired():
    service = Service()
    first, a = service.open("team")
    welcome = a.sent[0]
    first.end(leaving=False, code=1006)  # the network blips: the seat is held
    back, b = service.open("team", invited=False, resume=welcome["resume"])
    assert b.sent[0]["resumed"] is True and b.sent[0]["id"] == welcome["id"]
    assert back.member is not None and b.refusals == []


def test_a_stale_resume_token_without_an_invite_is_refused():
    service = Service()
    session, socket = service.open("team", invited=False, resume="not-a-live-token")
    assert [type(r) for r in socket.refusals] == [NotResumable]
    assert service.hub.members_of("team") == []


def test_a_probe_is_handed_ice_servers_and_no_seat_then_finished_after_its_lifetime():
    service = Service()
    session, socket = service.open(probe=True)
    assert socket.sent == [{"type": "probe", "iceServers": [{"urls": list(STUN)}]}]
    assert session.member is None and service.hub.members_of("room") == []
    service.clock.advance(120)
    assert socket.finished


def test_a_probe_without_an_invite_is_refused():
    service = Service()
    session, socket = service.open("team", invited=False, probe=True)
    assert [type(r) for r in socket.refusals] == [NotResumable] and socket.sent == []


# -- what a seated socket may send


def test_a_signal_reaches_its_recipient_and_one_to_an_unknown_peer_is_told():
    service = Service()
    alice, a = service.open()
    bob, b = service.open()
    alice.message(signal(b.sent[0]["id"], {"sdp": "x"}), False)
    assert b.sent[-1] == {"type": "signal", "from": a.sent[0]["id"], "data": {"sdp": "x"}}
    alice.message(signal("nobody", 1), False)
    assert a.told == ["unknown-peer"]


def test_binary_and_malformed_messages_are_told_bad_message():
    service = Service()
    session, socket = service.open()
    session.message(b"\x00\x01", True)
    session.message(b"not json", False)
    session.message(b'{"type":"nonsense"}', False)
    assert socket.told == ["bad-message"] * 3


def test_nothing_is_read_from_a_socket_that_is_not_seated():
    service = Service()
    session, socket = service.open("team", invited=False)
    session.message(signal("anyone", 1), False)
    session.message(b"not json", False)
    assert socket.told == [] and socket.sent == []


def test_a_socket_counts_at_most_max_reports():
    service = Service()
    session, _ = service.open()
    for _ in range(MAX_REPORTS + 5):
        session.message(report(), False)
    assert service.sample("rtcsvc_call_setups_total", {"path": "direct"}) == MAX_REPORTS


def test_a_probe_counts_one_netcheck_and_nothing_after_it():
    service = Service()
    session, socket = service.open(probe=True)
    session.message(netcheck("relay"), False)
    session.message(netcheck("direct"), False)
    assert service.sample("rtcsvc_netchecks_total", {"verdict": "relay", "transport": "udp"}) == 1
    assert service.sample("rtcsvc_netchecks_total", {"verdict": "direct", "transport": "udp"}) == 0


def test_a_probe_that_says_anything_but_a_netcheck_is_told_bad_message():
    service = Service()
    session, socket = service.open(probe=True)
    session.message(report(), False)
    session.message(b"{", False)
    assert socket.told == ["bad-message", "bad-message"]


# -- the close


def test_a_leaving_peer_gives_up_its_seat_at_once():
    service = Service()
    alice, a = service.open()
    bob, b = service.open()
    bob.end(leaving=True, code=1000)
    assert a.sent[-1] == {"type": "peer-left", "id": b.sent[0]["id"]}
    assert service.hub.members_of("room") == [a.sent[0]["id"]]


def test_a_dropped_peer_is_held_for_the_resume_grace():
    service = Service()
    alice, a = service.open()
    bob, b = service.open()
    bob.end(leaving=False, code=1006)
    assert a.sent[-1]["type"] == "peer-joined"  # nobody was told it left
    service.clock.advance(30)
    assert a.sent[-1] == {"type": "peer-left", "id": b.sent[0]["id"]}


def test_a_superseded_session_gives_up_nothing_when_its_socket_closes():
    service = Service()
    first, a = service.open()
    second, b = service.open(resume=a.sent[0]["resume"])  # the same seat, on a new socket
    assert first.member is None and b.sent[0]["id"] == a.sent[0]["id"]
    first.end(leaving=True, code=4002)
    assert service.hub.members_of("room") == [a.sent[0]["id"]]


def test_the_end_stops_the_ice_refreshes():
    service = Service()
    service.factory.ice = IceConfig(STUN, ("turn:turn.example.org",), b"a shared secret", 1000)
    session, socket = service.open()
    assert service.clock.getDelayedCalls()
    session.end(leaving=True, code=1000)
    assert not service.clock.getDelayedCalls()


def test_joining_resuming_leaving_and_dropping_are_one_log_line_each(log_lines):
    service = Service()
    session, socket = service.open()
    peer = socket.sent[0]["id"]
    session.end(leaving=False, code=1006)
    back, _ = service.open(resume=socket.sent[0]["resume"])
    back.end(leaving=True, code=1000)
    client = "198.51.100.1"
    assert log_lines == [
        f"joined room=room peer={peer} client={client}",
        f"dropped room=room peer={peer} client={client} code=1006",
        f"resumed room=room peer={peer} client={client}",
        f"left room=room peer={peer} client={client} code=1000",
    ]
