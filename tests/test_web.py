"""rtcsvc.web's resources, rendered with twisted.web's DummyRequest (no sockets, no process)."""

from __future__ import annotations

import pytest
from twisted.web.test.requesthelper import DummyRequest

from rtcsvc.web import make_redirect_site


def redirect(host: bytes | None, uri: bytes = b"/r/room?x=1", https_port: int = 8443):
    """What the default plain-HTTP listener answers to ``GET uri`` with this Host header."""
    site = make_redirect_site(https_port)
    request = DummyRequest([])
    request.uri = uri
    if host is not None:
        request.requestHeaders.setRawHeaders(b"host", [host])
    body = site.resource.render(request)
    assert body == b""
    (location,) = request.responseHeaders.getRawHeaders(b"location")
    return request.responseCode, location.decode()


@pytest.mark.parametrize(
    "host, expected",
    [
        (b"localhost:8080", "https://localhost:8443/r/room?x=1"),
        (b"127.0.0.1:8080", "https://127.0.0.1:8443/r/room?x=1"),
        (b"LocalHost", "https://localhost:8443/r/room?x=1"),
    ],
)
def test_redirect_keeps_a_host_that_names_this_loopback_listener(host, expected):
    assert redirect(host) == (308, expected)


@pytest.mark.parametrize(
    "host",
    [b"evil.example", b"evil.example:8080", b"localhost.evil.example", b"127.0.0.1.nip.io",
     b"[::1]:8080", b"", None],
)
def test_redirect_never_sends_a_browser_to_a_host_the_client_named(host):
    """A made-up Host (or none) gets the listener's own name, not an open redirect."""
    assert redirect(host) == (308, "https://localhost:8443/r/room?x=1")


def test_redirect_goes_to_the_configured_port_not_the_one_in_host():
    assert redirect(b"localhost:9999", https_port=8443)[1] == "https://localhost:8443/r/room?x=1"
    assert redirect(b"localhost", https_port=443)[1] == "https://localhost/r/room?x=1"


def test_redirect_of_an_absolute_form_target_keeps_the_host_its_own():
    assert redirect(b"localhost", uri=b"http://evil.example/x") == (308, "https://localhost:8443/")


def test_redirect_carries_the_security_headers_but_no_hsts():
    site = make_redirect_site(8443)
    request = DummyRequest([])
    request.requestHeaders.setRawHeaders(b"host", [b"localhost:8080"])
    site.resource.render(request)
    assert request.responseHeaders.getRawHeaders(b"x-content-type-options") == [b"nosniff"]
    assert not request.responseHeaders.hasHeader(b"strict-transport-security")


# ---- Range: one plain range is served, anything else gets the whole file ----

from twisted.web.static import NoRangeStaticProducer, SingleRangeStaticProducer  # noqa: E402

from rtcsvc.web import StaticFiles  # noqa: E402


def producer_for(tmp_path, range_header: bytes):
    page = tmp_path / "main.js"
    page.write_bytes(b"x" * 5000)
    request = DummyRequest([])
    request.requestHeaders.setRawHeaders(b"range", [range_header])
    files = StaticFiles(str(page))
    files.type, files.encoding = "text/javascript", None  # what render_GET sets first
    with open(page, "rb") as f:
        producer = files.makeProducer(request, f)
    return request, producer


@pytest.mark.parametrize("header", [
    b"bytes=0-,0-,0-,0-1960",  # stalled twisted.web's multi-range producer for ever
    b"bytes=0-1,2-3",
    b"bytes=\xff\xfe",         # not even text
    b"items=0-10",
    b"bytes=0-" + b"9" * 40,
])
def test_anything_but_one_plain_byte_range_gets_the_whole_file(tmp_path, header):
    request, producer = producer_for(tmp_path, header)
    assert isinstance(producer, NoRangeStaticProducer)
    assert request.responseCode == 200
    assert request.responseHeaders.getRawHeaders(b"content-length") == [b"5000"]


def test_one_plain_byte_range_is_served_as_a_part(tmp_path):
    request, producer = producer_for(tmp_path, b"bytes=100-199")
    assert isinstance(producer, SingleRangeStaticProducer)
    assert request.responseCode == 206
    assert request.responseHeaders.getRawHeaders(b"content-range") == [b"bytes 100-199/5000"]


# ---- page connections: a lifetime, and a cap per client ----

from twisted.internet.address import IPv4Address, IPv6Address  # noqa: E402
from twisted.internet.testing import MemoryReactorClock, StringTransport  # noqa: E402
from twisted.web import pages  # noqa: E402

from rtcsvc.origin import TrustedProxies  # noqa: E402
from rtcsvc.web import GuardedSite  # noqa: E402


def guarded_site(max_per_client=2, proxies=None, lifetime=300.0):
    return GuardedSite(pages.notFound(), idle=60, request=10, lifetime=lifetime,
                       max_per_client=max_per_client, proxies=proxies)


def open_from(site, address, clock=None):
    channel = site.buildProtocol(address)
    if clock is not None:
        channel.callLater = clock.callLater
    transport = StringTransport(peerAddress=address)
    channel.makeConnection(transport)
    return channel, transport


def test_a_client_over_its_cap_of_page_connections_gets_429_and_a_close():
    site = guarded_site(max_per_client=2)
    client = IPv4Address("TCP", "198.51.100.7", 1000)
    first, _ = open_from(site, client)
    open_from(site, client)
    _, refused = open_from(site, client)
    assert refused.value().startswith(b"HTTP/1.1 429 ")
    assert refused.disconnecting
    _, other = open_from(site, IPv4Address("TCP", "198.51.100.8", 1000))
    assert other.value() == b"" and not other.disconnecting  # others are unaffected
    first.connectionLost(None)
    _, again = open_from(site, client)
    assert again.value() == b"" and not again.disconnecting  # a freed slot is reusable


def test_ipv6_addresses_of_one_64_share_one_budget():
    site = guarded_site(max_per_client=1)
    open_from(site, IPv6Address("TCP", "2001:db8:1:2::1", 1000))
    _, refused = open_from(site, IPv6Address("TCP", "2001:db8:1:2::ffff", 1000))
    assert refused.value().startswith(b"HTTP/1.1 429 ")


def test_a_trusted_proxy_is_not_capped_it_carries_many_clients():
    site = guarded_site(max_per_client=1, proxies=TrustedProxies([TrustedProxies.parse("127.0.0.1")]))
    for _ in range(5):
        _, transport = open_from(site, IPv4Address("TCP", "127.0.0.1", 1000))
        assert not transport.disconnecting


def test_a_connection_older_than_its_lifetime_is_closed_however_busy():
    clock = MemoryReactorClock()
    site = guarded_site(lifetime=300.0)
    channel, transport = open_from(site, IPv4Address("TCP", "198.51.100.7", 1000), clock)
    for _ in range(29):  # a request every 10 s keeps the idle timer away, not the lifetime
        channel.dataReceived(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        clock.advance(10)
    assert not transport.disconnected and transport.value().count(b"HTTP/1.1 404") == 29
    clock.advance(11)
    assert transport.disconnected


def test_a_connection_handed_to_the_websocket_protocol_leaves_the_cap_and_the_lifetime():
    clock = MemoryReactorClock()
    site = guarded_site(max_per_client=1, lifetime=300.0)
    client = IPv4Address("TCP", "198.51.100.7", 1000)
    channel, transport = open_from(site, client, clock)
    channel.handed_over()
    channel.transport = None  # what Autobahn's WebSocketResource does
    clock.advance(301)
    assert not transport.disconnected
    _, second = open_from(site, client)
    assert not second.disconnecting


# ---- page requests: a deadline per request, an idle timeout between them, bounded headers ----

PAGE_REQUEST = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"


def guarded_connection(request=10.0, idle=60.0):
    """A page connection on a fake clock: (clock, channel, transport)."""
    clock = MemoryReactorClock()
    # Twisted's idle timer runs on the site's reactor.
    site = GuardedSite(pages.notFound(), idle=idle, request=request, clock=clock)
    channel, transport = open_from(site, IPv4Address("TCP", "198.51.100.7", 1000), clock)
    return clock, channel, transport


def drip(clock, channel, data: bytes, every: float = 1.0) -> None:
    """Send ``data`` a byte per ``every`` seconds (slowloris), until it or the connection ends."""
    for i in range(len(data)):
        if channel.transport is None or channel.transport.disconnected:
            return
        channel.dataReceived(data[i:i + 1])
        clock.advance(every)


def test_a_request_dripped_a_byte_a_second_is_cut_at_the_request_deadline():
    """Every byte is on time for an idle timer; the whole request is not on time."""
    clock, channel, transport = guarded_connection(request=10.0, idle=60.0)
    drip(clock, channel, PAGE_REQUEST[:9])  # 9 s: not yet
    assert not transport.disconnecting
    drip(clock, channel, PAGE_REQUEST[9:])
    assert transport.disconnected and clock.seconds() == 10.0
    assert b"HTTP/1.1" not in transport.value()  # cut, not answered


def test_a_connection_that_sends_nothing_is_cut_at_the_request_deadline_not_the_idle_timeout():
    """What the redirect port (a site listening on its own) does with a silent client."""
    clock, _, transport = guarded_connection(request=10.0, idle=60.0)
    clock.advance(9.9)
    assert not transport.disconnecting
    clock.advance(0.1)
    assert transport.disconnected


def test_a_kept_alive_connection_waits_for_its_next_request_until_the_idle_timeout():
    """The request deadline ends with the request; between requests the idle timeout rules."""
    clock, channel, transport = guarded_connection(request=10.0, idle=60.0)
    channel.dataReceived(PAGE_REQUEST)
    assert transport.value().startswith(b"HTTP/1.1 404 ")
    clock.advance(59)
    assert not transport.disconnecting
    clock.advance(1)
    assert transport.disconnecting


def test_the_next_request_on_a_kept_alive_connection_gets_its_own_deadline():
    clock, channel, transport = guarded_connection(request=10.0, idle=60.0)
    channel.dataReceived(PAGE_REQUEST)
    clock.advance(50)  # idle, within the idle timeout
    started = clock.seconds()
    drip(clock, channel, PAGE_REQUEST)
    assert transport.disconnected and clock.seconds() - started == 10.0
    assert transport.value().count(b"HTTP/1.1 ") == 1  # the dripped one was never answered


def test_request_headers_over_16_kib_in_all_are_refused_with_400_and_the_connection_closed():
    """Lines of a plausible size, but too many of them: nothing is buffered past 16 KiB."""
    _, channel, transport = guarded_connection()
    channel.dataReceived(b"GET / HTTP/1.1\r\nHost: x\r\n")
    for i in range(17):
        channel.dataReceived(b"X-Filler-%d: %s\r\n" % (i, b"a" * 1000))
    assert transport.value().startswith(b"HTTP/1.1 400 ")
    assert transport.disconnecting


def test_a_single_request_line_over_16_kib_closes_the_connection():
    _, channel, transport = guarded_connection()
    channel.dataReceived(b"GET /" + b"a" * 16384)  # no end of line yet
    assert transport.disconnecting


# ---- /metrics and /healthz: counts for the --metrics-allow networks only ----

import orjson  # noqa: E402
from twisted.web import resource  # noqa: E402

from rtcsvc.web import LOOPBACK, Health, MetricsReaders, Restricted  # noqa: E402


class FakeHub:
    available, room_count, peer_count = True, 3, 7


def request_from(host: str, forwarded_for: str | None = None):
    request = DummyRequest([])
    request.client = IPv4Address("TCP", host, 40000)
    if forwarded_for:
        request.requestHeaders.setRawHeaders(b"x-forwarded-for", [forwarded_for.encode()])
    return request


class Secret(resource.Resource):
    isLeaf = True

    def render(self, request):
        return b"rtcsvc_rooms 3"


def test_metrics_are_served_to_loopback_by_default_and_refused_to_anyone_else():
    metrics = Restricted(Secret(), MetricsReaders(LOOPBACK, TrustedProxies()))
    assert metrics.render(request_from("127.0.0.1")) == b"rtcsvc_rooms 3"
    outsider = request_from("198.51.100.7")
    assert b"--metrics-allow" in metrics.render(outsider) and outsider.responseCode == 403


def test_behind_a_trusted_proxy_the_forwarded_client_is_judged_not_the_proxy():
    readers = MetricsReaders(LOOPBACK, TrustedProxies([TrustedProxies.parse("127.0.0.1")]))
    metrics = Restricted(Secret(), readers)
    through_proxy = request_from("127.0.0.1", forwarded_for="198.51.100.7")
    metrics.render(through_proxy)
    assert through_proxy.responseCode == 403


def test_an_allowed_network_reads_the_metrics():
    readers = MetricsReaders((TrustedProxies.parse("192.0.2.0/24"),), TrustedProxies())
    assert Restricted(Secret(), readers).render(request_from("192.0.2.5")) == b"rtcsvc_rooms 3"


def test_healthz_tells_everyone_the_status_and_only_metrics_readers_the_counts():
    health = Health(FakeHub(), lambda: 11, MetricsReaders(LOOPBACK, TrustedProxies()))
    assert orjson.loads(health.render_GET(request_from("198.51.100.7"))) == {"status": "ok"}
    assert orjson.loads(health.render_GET(request_from("127.0.0.1"))) == {
        "status": "ok", "rooms": 3, "peers": 7, "connections": 11}


def test_a_flood_of_slow_requests_logs_a_bounded_number_of_lines_then_how_many_more():
    from twisted.logger import capturedLogs, formatEvent

    from rtcsvc.log_budget import DEFAULT_LINES, DEFAULT_PERIOD

    clock = MemoryReactorClock()
    site = GuardedSite(pages.notFound(), idle=60, request=10, clock=clock)
    with capturedLogs() as events:
        for n in range(300):
            open_from(site, IPv4Address("TCP", "198.51.100.7", 1000 + n), clock)
        clock.advance(10)
        cut = [e for e in events if "closing a request not finished" in formatEvent(e)]
        assert len(cut) == DEFAULT_LINES
        clock.advance(DEFAULT_PERIOD)
    assert formatEvent(events[-1]) == (f"{300 - DEFAULT_LINES} more requests cut for being slow "
                                       f"were not logged in the last {DEFAULT_PERIOD:g}s")
