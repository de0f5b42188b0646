"""Probe sockets and ``netcheck`` messages: the lobby's network check gets the ICE servers
without a seat, within the per-client TURN budget, and its verdict is counted by verdict and
transport (docs/protocol.md, "Probe sockets"). In memory (``tests/support/memws``)."""

from __future__ import annotations

import json

import pytest

from rtcsvc.invite import mint_room_token
from rtcsvc.messages import BadMessage, NetCheck, parse
from rtcsvc.protocol import PROBE_SECONDS
from rtcsvc.turn import IceConfig, TurnMinter
from tests.support.memws import MemoryServer, text

ICE = IceConfig(("stun:turn.example:3478",), ("turns:turn.example:443?transport=tcp",),
                b"secret", 7200)
SECRET = b"an invite secret of at least sixteen bytes"


def netcheck(**data) -> bytes:
    return json.dumps({"type": "netcheck", "data": data}).encode()


def counted(server, verdict, transport) -> float:
    return server.metrics.registry.get_sample_value(
        "rtcsvc_netchecks_total", {"verdict": verdict, "transport": transport}) or 0


def probe(server, **kwargs):
    client = server.connect(query={"probe": "1", **kwargs.pop("query", {})}, **kwargs)
    first = client.new_messages()[0]
    return client, first


@pytest.mark.parametrize("verdict, transport", [("direct", "udp"), ("relay", "tls"),
                                                ("relay", "tcp"), ("none", "none")])
def test_a_netcheck_parses_to_its_verdict_and_transport(verdict, transport):
    assert parse(netcheck(verdict=verdict, transport=transport)) == NetCheck(verdict, transport)


@pytest.mark.parametrize("data", [
    {"verdict": "great", "transport": "udp"}, {"verdict": "relay", "transport": "quic"},
    {"verdict": "relay"}, {"verdict": "relay", "transport": "tls", "address": "192.0.2.1"}, [],
])
def test_a_netcheck_carries_exactly_a_known_verdict_and_transport(data):
    with pytest.raises(BadMessage):
        parse(json.dumps({"type": "netcheck", "data": data}).encode())


def test_a_probe_gets_ice_servers_with_short_lived_turn_credentials_and_no_seat():
    server = MemoryServer(ice=ICE)
    watcher, _ = server.join()
    client, first = probe(server)
    assert first["type"] == "probe"
    stun, turn = first["iceServers"]
    assert stun == {"urls": ["stun:turn.example:3478"]}
    expiry = int(turn["username"].split(":")[0])
    assert expiry == int(server.clock.seconds()) + PROBE_SECONDS
    assert server.hub.peer_count == 1  # the watcher only
    assert watcher.new_messages() == []  # nobody was told of a peer
    # A signal from a probe goes nowhere; its verdict is counted once.
    client.send(text({"type": "signal", "data": {"x": 1}}))
    assert [m["code"] for m in client.new_messages()] == ["bad-message"]
    assert watcher.new_messages() == []
    client.send(text({"type": "netcheck", "data": {"verdict": "relay", "transport": "tls"}}))
    client.send(text({"type": "netcheck", "data": {"verdict": "relay", "transport": "tls"}}))
    assert counted(server, "relay", "tls") == 1


def test_a_probe_closes_itself_after_its_bound():
    server = MemoryServer(ice=ICE)
    client, _ = probe(server)
    server.clock.advance(PROBE_SECONDS - 1)
    assert client.close_code() is None
    server.clock.advance(2)
    assert client.close_code() == 1000


def test_probes_take_from_the_same_turn_budget_as_joins():
    """Two credentials an hour per client: a join and a probe use them up; the next probe
    gets STUN only and is counted as refused, like a join would be."""
    server = MemoryServer(ice=ICE, turn_minter=TurnMinter(2))
    _, welcome = server.join()
    assert len(welcome["iceServers"]) == 2
    _, first = probe(server)
    assert len(first["iceServers"]) == 2
    _, third = probe(server)
    assert third["iceServers"] == [{"urls": ["stun:turn.example:3478"]}]
    assert server.metrics.registry.get_sample_value("rtcsvc_turn_mints_refused_total") == 1


def test_a_probe_of_a_closed_room_needs_the_invite():
    server = MemoryServer(ice=ICE, room_secret=SECRET)
    client, first = probe(server)
    assert first["code"] == "not-invited"
    token = mint_room_token(SECRET, "room", int(server.clock.seconds()) + 3600)
    _, ok = probe(server, query={"token": token})
    assert ok["type"] == "probe"


def test_a_member_may_report_a_netcheck_too():
    server = MemoryServer(ice=ICE)
    client, _ = server.join()
    client.send(text({"type": "netcheck", "data": {"verdict": "direct", "transport": "udp"}}))
    assert counted(server, "direct", "udp") == 1
