"""The shared port (``rtcsvc.listener``) in memory: which protocol gets a connection, and the
handshake deadline, on StringTransports and a fake clock.

The real signaling factory (``tests/support/memws.py``) and the real site (``make_site``) sit
behind one :class:`~rtcsvc.listener.SharedPortFactory`; time moves only when a test advances
the clock. ``tests/test_listener.py`` proves the same routes against a real ``twistd``.
"""

from __future__ import annotations

import orjson
import pytest
from OpenSSL import SSL
from twisted.internet.address import IPv4Address
from twisted.internet.testing import StringTransport
from twisted.logger import capturedLogs, formatEvent
from twisted.python.failure import Failure

from rtcsvc.listener import SharedPortFactory
from rtcsvc.log_budget import DEFAULT_LINES, DEFAULT_PERIOD
from rtcsvc.protocol import SignalingProtocol
from rtcsvc.web import GuardedHTTPChannel, make_site
from tests.support.memws import MemoryServer

HANDSHAKE_TIMEOUT = 10.0
IDLE_TIMEOUT = 60.0
UPGRADE = (b"GET /ws/room HTTP/1.1\r\nHost: 127.0.0.1:8080\r\nUpgrade: websocket\r\n"
           b"Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
           b"Sec-WebSocket-Version: 13\r\nOrigin: http://127.0.0.1:8080\r\n\r\n")
HEALTH = b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1:8080\r\n\r\n"


class SharedPort:
    """One listening port's factory, with the real signaling factory and site on one clock."""

    def __init__(self, static_dir):
        (static_dir / "index.html").write_text("<!doctype html><title>rtcsvc</title>")
        self.server = MemoryServer()
        self.clock = self.server.clock
        # The site's channels time out on the fake clock too.
        self.site = make_site(self.server.factory, self.server.metrics, static_dir,
                              idle=IDLE_TIMEOUT, request=HANDSHAKE_TIMEOUT, clock=self.clock)
        self.factory = SharedPortFactory(self.site, self.server.factory, self.clock,
                                         timeout=HANDSHAKE_TIMEOUT)

    def connect(self):
        """A new connection, nothing sent yet: (the port's protocol, its transport)."""
        address = IPv4Address("TCP", "198.51.100.7", 40000)
        protocol = self.factory.buildProtocol(address)
        transport = StringTransport(peerAddress=address,
                                    hostAddress=IPv4Address("TCP", "127.0.0.1", 8080))
        transport.protocol = protocol  # as on a TCP transport: what Autobahn takes over
        protocol.makeConnection(transport)
        return protocol, transport


@pytest.fixture
def port(tmp_path):
    return SharedPort(tmp_path)


def test_a_connection_opening_with_get_ws_goes_straight_to_autobahn_and_opens(port):
    protocol, transport = port.connect()
    protocol.dataReceived(UPGRADE)
    assert isinstance(protocol._inner, SignalingProtocol)  # no HTTP channel in between
    assert transport.value().startswith(b"HTTP/1.1 101 ")
    assert port.server.factory.connections == {protocol._inner}


def test_any_other_first_bytes_go_to_the_site(port):
    protocol, transport = port.connect()
    protocol.dataReceived(HEALTH)
    assert isinstance(protocol._inner, GuardedHTTPChannel)
    head, _, body = transport.value().partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 ") and orjson.loads(body)["status"] == "ok"
    assert not port.server.factory.connections


def test_a_first_read_shorter_than_the_prefix_goes_to_the_site_which_still_upgrades_it(port):
    """Only the fast path is missed: the site's /ws/ resource hands the socket to Autobahn."""
    protocol, transport = port.connect()
    protocol.dataReceived(UPGRADE[:1])
    assert isinstance(protocol._inner, GuardedHTTPChannel)
    protocol.dataReceived(UPGRADE[1:])
    assert transport.value().startswith(b"HTTP/1.1 101 ")
    assert isinstance(transport.protocol, SignalingProtocol)
    assert port.server.factory.connections == {transport.protocol}


def test_a_connection_that_sends_nothing_is_aborted_at_the_handshake_timeout(port):
    _, transport = port.connect()
    port.clock.advance(HANDSHAKE_TIMEOUT - 0.01)
    assert not transport.disconnecting
    port.clock.advance(0.01)
    assert transport.disconnected  # aborted, not closed politely


def test_a_signaling_request_dripped_in_parts_is_cut_at_the_deadline_from_its_start(port):
    """The deadline is absolute: a part arriving every second does not push it back."""
    step = 1.0
    protocol, transport = port.connect()
    sent = 0
    start = port.clock.seconds()
    while port.clock.seconds() - start < HANDSHAKE_TIMEOUT - step:
        protocol.dataReceived(UPGRADE[sent:sent + 9])  # never the whole request in time
        sent += 9
        port.clock.advance(step)
        assert not transport.disconnecting
    port.clock.advance(step)
    assert transport.disconnected  # aborted, not closed politely
    assert isinstance(protocol._inner, SignalingProtocol) and sent < len(UPGRADE)


def test_a_signaling_socket_opened_in_time_outlives_the_handshake_timeout(port):
    protocol, transport = port.connect()
    port.clock.advance(HANDSHAKE_TIMEOUT - 1)
    protocol.dataReceived(UPGRADE)
    assert transport.value().startswith(b"HTTP/1.1 101 ")
    port.clock.advance(HANDSHAKE_TIMEOUT * 3)
    assert not transport.disconnecting
    assert port.server.factory.connections == {protocol._inner}


def test_a_page_connection_is_left_to_the_sites_own_timers_not_the_handshake_deadline(port):
    """A kept-alive page connection idles up to --idle-timeout, past --handshake-timeout."""
    protocol, transport = port.connect()
    protocol.dataReceived(HEALTH)
    port.clock.advance(IDLE_TIMEOUT - 1)
    assert not transport.disconnecting
    port.clock.advance(1)
    assert transport.disconnecting  # the site's idle timer, not an abort by the port


# -- what strangers can make it log

FLOOD = 500


def lines_about(events, words):
    return [text for text in map(formatEvent, events) if words in text]


def test_a_flood_of_failed_tls_handshakes_logs_a_few_lines_then_how_many_more(port):
    with capturedLogs() as events:
        for _ in range(FLOOD):
            protocol, _ = port.connect()
            protocol.connectionLost(Failure(SSL.Error([("SSL routines", "", "unknown ca")])))
        assert len(lines_about(events, "TLS handshake with 198.51.100.7 failed")) == DEFAULT_LINES
        port.clock.advance(DEFAULT_PERIOD)
    [summary] = lines_about(events, "more failed TLS handshakes")
    assert summary == (f"{FLOOD - DEFAULT_LINES} more failed TLS handshakes were not logged "
                       f"in the last {DEFAULT_PERIOD:g}s")


def test_a_flood_of_connections_stalled_before_their_request_logs_a_bounded_number_of_lines(port):
    with capturedLogs() as events:
        for _ in range(FLOOD):
            port.connect()
        port.clock.advance(HANDSHAKE_TIMEOUT)
        assert len(lines_about(events, "was not complete after")) == DEFAULT_LINES
        port.clock.advance(DEFAULT_PERIOD)
    [summary] = lines_about(events, "more connections cut at the handshake deadline")
    assert summary.startswith(f"{FLOOD - DEFAULT_LINES} more")
