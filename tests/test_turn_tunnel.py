"""TURN over the site's own port (``rtcsvc.turn_tunnel``), without sockets.

The pure rung: telling STUN from HTTP by the first bytes, and the PROXY v2 header coturn reads.
The in-memory rung: the shared port hands a STUN connection to a tunnel that holds the caller
until coturn's side is up, then copies both ways; pages and signaling are unaffected.
"""

import ipaddress
import struct

import pytest
from twisted.internet import defer
from twisted.internet.error import ConnectionDone
from twisted.python.failure import Failure
from twisted.internet.address import IPv4Address, IPv6Address
from twisted.internet.protocol import Factory, Protocol
from twisted.internet.testing import MemoryReactorClock, StringTransport

from rtcsvc.listener import SharedPortFactory
from rtcsvc.turn_tunnel import (
    MAX_EARLY_BYTES,
    PROXY_V2_SIGNATURE,
    TurnTunnels,
    looks_like_stun,
    proxy_v2_header,
)

# A STUN Binding request: type 0x0001, length 0, the magic cookie, a transaction id.
STUN = struct.pack("!HHI12s", 0x0001, 0, 0x2112A442, b"t" * 12)


@pytest.mark.parametrize("data, verdict", [
    (STUN, True),
    (STUN[:7], None),
    (b"", None),
    (b"GET / HTTP/1.1\r\n", False),
    (b"G", False),
    (struct.pack("!HHI12s", 0x0001, 0, 0xDEADBEEF, b"t" * 12), False),  # no magic cookie
])
def test_stun_is_told_from_http_by_its_first_bytes(data, verdict):
    assert looks_like_stun(data) is verdict


def test_the_proxy_header_carries_the_callers_ipv4_address_and_port():
    header = proxy_v2_header(IPv4Address("TCP", "198.51.100.7", 50123),
                             IPv4Address("TCP", "203.0.113.1", 443))
    assert header[:12] == PROXY_V2_SIGNATURE
    assert header[12] == 0x21 and header[13] == 0x11  # v2 PROXY, TCP over IPv4
    (length,) = struct.unpack("!H", header[14:16])
    body = header[16:]
    assert length == len(body) == 12
    assert ipaddress.ip_address(body[:4]) == ipaddress.ip_address("198.51.100.7")
    assert ipaddress.ip_address(body[4:8]) == ipaddress.ip_address("203.0.113.1")
    assert struct.unpack("!HH", body[8:]) == (50123, 443)


def test_the_proxy_header_carries_ipv6_addresses():
    header = proxy_v2_header(IPv6Address("TCP", "2001:db8::7", 50123),
                             IPv6Address("TCP", "2001:db8::1", 443))
    assert header[13] == 0x21 and struct.unpack("!H", header[14:16]) == (36,)


def test_mixed_families_send_a_local_header_without_addresses():
    header = proxy_v2_header(IPv4Address("TCP", "198.51.100.7", 1),
                             IPv6Address("TCP", "2001:db8::1", 443))
    assert header == PROXY_V2_SIGNATURE + b"\x20\x00\x00\x00"


class Recorder(Protocol):
    """Whatever the shared port handed the connection to (the site, in these tests)."""

    def __init__(self):
        self.received = b""

    def dataReceived(self, data):
        self.received += data


class Backend:
    """``connect_backend``: each call gives a Deferred the test fires to bring coturn up."""

    def __init__(self):
        self.pending: list[tuple[Factory, defer.Deferred]] = []

    def connect(self, factory):
        d = defer.Deferred()
        self.pending.append((factory, d))
        return d

    def come_up(self, index=0):
        factory, d = self.pending[index]
        coturn = factory.buildProtocol(None)
        transport = StringTransport()
        coturn.makeConnection(transport)
        d.callback(coturn)
        return coturn, transport


class Site(Factory):
    protocol = Recorder


def shared_port(backend, max_per_client=10):
    signaling = Site()
    site = Site()
    clock = MemoryReactorClock()
    factory = SharedPortFactory(site, signaling, clock, timeout=10,
                                turn_tunnel=TurnTunnels(backend.connect, "coturn", max_per_client,
                                                        clock))
    return factory


def connect_caller(factory):
    caller = factory.buildProtocol(IPv4Address("TCP", "198.51.100.7", 50123))
    transport = StringTransport(peerAddress=IPv4Address("TCP", "198.51.100.7", 50123),
                                hostAddress=IPv4Address("TCP", "203.0.113.1", 443))
    caller.makeConnection(transport)
    return caller, transport


def test_a_stun_connection_reaches_coturn_behind_a_proxy_header_and_answers_come_back():
    backend = Backend()
    caller, caller_transport = connect_caller(shared_port(backend))
    caller.dataReceived(STUN[:5])  # too short to tell: held
    assert backend.pending == []
    caller.dataReceived(STUN[5:])
    assert len(backend.pending) == 1
    assert caller_transport.producerState == "paused"  # until coturn's side is up
    caller.dataReceived(b"more")
    _, coturn_wire = backend.come_up()
    expected_header = proxy_v2_header(caller_transport.getPeer(), caller_transport.getHost())
    assert coturn_wire.value() == expected_header + STUN + b"more"
    assert caller_transport.producerState == "producing"
    caller.dataReceived(b"later")
    assert coturn_wire.value().endswith(b"later")


def test_coturn_answers_are_written_to_the_caller_and_closing_one_side_closes_the_other():
    backend = Backend()
    caller, caller_transport = connect_caller(shared_port(backend))
    caller.dataReceived(STUN)
    coturn, coturn_wire = backend.come_up()
    coturn.dataReceived(b"answer")
    assert caller_transport.value() == b"answer"
    coturn.connectionLost(None)
    assert caller_transport.disconnecting


def test_a_caller_that_floods_before_coturn_answers_is_cut_off():
    backend = Backend()
    caller, caller_transport = connect_caller(shared_port(backend))
    caller.dataReceived(STUN)
    caller.dataReceived(b"x" * MAX_EARLY_BYTES)
    assert caller_transport.disconnected or caller_transport.disconnecting


def test_coturn_unreachable_aborts_the_caller_with_one_log_line():
    from twisted.internet.error import ConnectionRefusedError
    from twisted.logger import capturedLogs

    backend = Backend()
    caller, caller_transport = connect_caller(shared_port(backend))
    caller.dataReceived(STUN)
    with capturedLogs() as events:
        backend.pending[0][1].errback(ConnectionRefusedError())
    assert caller_transport.disconnected or caller_transport.disconnecting
    lines = [e for e in events if e.get("log_namespace") == "rtcsvc.turn_tunnel"]
    assert len(lines) == 1 and lines[0]["backend"] == "coturn"


def test_with_coturn_down_a_flood_of_callers_logs_a_bounded_number_of_lines():
    from twisted.internet.error import ConnectionRefusedError
    from twisted.logger import capturedLogs, formatEvent

    from rtcsvc.log_budget import DEFAULT_LINES, DEFAULT_PERIOD

    backend = Backend()
    factory = shared_port(backend, max_per_client=1000)
    with capturedLogs() as events:
        for _ in range(300):
            caller, _ = connect_caller(factory)
            caller.dataReceived(STUN)
            backend.pending[-1][1].errback(ConnectionRefusedError())
        assert len([e for e in events if e.get("backend") == "coturn"]) == DEFAULT_LINES
        factory.clock.advance(DEFAULT_PERIOD)
    assert formatEvent(events[-1]).startswith(
        f"{300 - DEFAULT_LINES} more TURN connections not passed to coturn were not logged")


def test_http_still_goes_to_the_site_when_a_turn_backend_is_set():
    backend = Backend()
    factory = shared_port(backend)
    caller, _ = connect_caller(factory)
    caller.dataReceived(b"GET / HTTP/1.1\r\n\r\n")
    assert backend.pending == []
    assert caller._inner.received == b"GET / HTTP/1.1\r\n\r\n"


def test_without_a_turn_backend_stun_bytes_go_to_the_site_like_any_other():
    factory = shared_port(Backend())
    factory.turn_tunnel = None
    caller, _ = connect_caller(factory)
    caller.dataReceived(STUN)
    assert caller._inner.received == STUN


def test_tunnels_beyond_a_clients_cap_are_cut_before_coturn_hears_of_them():
    backend = Backend()
    factory = shared_port(backend, max_per_client=2)
    callers = [connect_caller(factory) for _ in range(3)]
    for caller, _ in callers:
        caller.dataReceived(STUN)
    assert len(backend.pending) == 2
    assert callers[2][1].disconnected
    assert factory.turn_tunnel.open_count() == 2
    callers[0][0].connectionLost(Failure(ConnectionDone()))
    assert factory.turn_tunnel.open_count() == 1
    again, _ = connect_caller(factory)
    again.dataReceived(STUN)
    assert len(backend.pending) == 3
