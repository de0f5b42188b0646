"""TURN over TLS on rtcsvc's own port, end to end: aioice -> rtcsvc (TLS) -> coturn.

A real coturn takes PROXY-protocol connections on loopback (``tcp-proxy-port``); a real
``twistd rtcsvc`` serves its site over TLS with ``--turn-backend`` pointing there and hands
browsers ``turns:localhost:<its port>``. aioice, a TURN client independent of both, allocates
over TLS to rtcsvc's port with the credentials rtcsvc minted, and coturn reports the client's
own address and port: the PROXY header carried them through.
"""

from __future__ import annotations

import asyncio
import json
import secrets

import pytest
from websockets.asyncio.client import connect

from tests.support.coturn import CoturnProcess, free_udp_and_tcp_port
from tests.support.service import free_port
from tests.support.turnclient import allocate, closing, exchange

pytestmark = pytest.mark.slow


@pytest.fixture
def one_port(tmp_path, rtcsvc):
    """coturn behind rtcsvc's TLS port; yields (service, coturn)."""
    secret = secrets.token_hex(32)
    (tmp_path / "turn-secret").write_text(secret)
    proxy_port = free_udp_and_tcp_port()
    coturn = CoturnProcess.start(tmp_path / "coturn", secret,
                                 extra_config=f"tcp-proxy-port={proxy_port}\n")
    try:
        port = free_port()
        service = rtcsvc(args=["--turn-url", f"turns:localhost:{port}?transport=tcp",
                               "--turn-secret-file", str(tmp_path / "turn-secret"),
                               "--turn-backend", f"tcp:127.0.0.1:{proxy_port}"],
                         port=port, tls=True)
        yield service, coturn
    finally:
        coturn.stop()


async def minted(service, room="tunnel"):
    async with connect(f"{service.ws_url}/ws/{room}", origin=service.http_url,
                       ssl=service.client_context(), open_timeout=10) as ws:
        welcome = json.loads(await asyncio.wait_for(ws.recv(), 10))
    [entry] = [e for e in welcome["iceServers"] if any(u.startswith("turns:") for u in e["urls"])]
    return entry


def caller_address(relay) -> tuple[str, int]:
    """The caller's own end of its TCP connection to rtcsvc (aioice keeps it inside)."""
    inner = relay._TurnTransport__inner_protocol  # test-only peek at aioice's TCP transport
    return inner.transport.get_extra_info("sockname")[:2]


def test_turn_over_tls_on_the_sites_port_allocates_and_coturn_sees_the_callers_address(one_port):
    service, coturn = one_port

    async def scenario():
        entry = await minted(service)
        assert entry["urls"] == [f"turns:localhost:{service.port}?transport=tcp"]
        relay, _ = await allocate(service.port, entry["username"], entry["credential"],
                                  transport="tcp", ssl=service.client_context())
        async with closing(relay):
            return (relay.get_extra_info("sockname"), relay.get_extra_info("related_address"),
                    caller_address(relay))

    relayed, mapped, caller = asyncio.run(scenario())
    low, high = coturn.relay_ports
    assert low <= relayed[1] <= high
    assert tuple(mapped) == tuple(caller)  # not rtcsvc's own outgoing port


def test_datagrams_cross_between_two_callers_relayed_through_the_sites_port(one_port):
    service, _ = one_port

    async def scenario():
        relays = []
        for _ in range(2):
            entry = await minted(service)
            relays.append(await allocate(service.port, entry["username"], entry["credential"],
                                         transport="tcp", ssl=service.client_context()))
        (a, a_in), (b, b_in) = relays
        async with closing(a, b):
            got_b, got_a = await exchange(a, a_in, b, b_in, b"from a", b"from b")
            a_address, b_address = a.get_extra_info("sockname"), b.get_extra_info("sockname")
            assert got_b == (b"from a", a_address) and got_a == (b"from b", b_address)

    asyncio.run(scenario())


def test_pages_and_signaling_still_work_on_a_port_that_carries_turn(one_port):
    service, _ = one_port
    assert json.loads(service.get("/healthz"))["status"] == "ok"
