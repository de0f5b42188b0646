"""Page requests that once pinned sockets, against the real ``twistd rtcsvc``."""

import socket
import time

import pytest

pytestmark = pytest.mark.slow


def exchange(port: int, request: bytes, timeout: float = 5.0) -> bytes:
    """Send ``request``; everything the server sends until it closes (bounded)."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(request)
        response = b""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            chunk = sock.recv(65536)
            if not chunk:
                return response
            response += chunk
    raise AssertionError(f"the server kept the connection open: {response[:200]!r}")


def test_a_multi_range_request_gets_the_whole_file_and_the_connection_ends(rtcsvc):
    svc = rtcsvc()
    response = exchange(svc.port, b"GET /js/main.js HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                                  b"Range: bytes=0-,0-,0-,0-1960\r\nConnection: close\r\n\r\n")
    head, _, body = response.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 ")
    length = int(next(line.split(b":")[1] for line in head.split(b"\r\n")
                      if line.lower().startswith(b"content-length")))
    assert len(body) == length > 0
    assert "Traceback" not in svc.log()


def test_page_connections_beyond_the_per_client_cap_get_429_and_others_still_load(rtcsvc):
    svc = rtcsvc(args=["--max-connections-per-client", "4"])
    held = [socket.create_connection(("127.0.0.1", svc.port), timeout=5) for _ in range(4)]
    try:
        for sock in held:
            sock.sendall(b"G")  # an HTTP connection (not yet a request)
        time.sleep(0.3)
        refused = exchange(svc.port, b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        assert refused.startswith(b"HTTP/1.1 429 ")
    finally:
        for sock in held:
            sock.close()
    time.sleep(0.3)
    page = exchange(svc.port, b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
    assert page.startswith(b"HTTP/1.1 200 ")
