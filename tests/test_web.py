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
