"""One port for pages and signaling, against a real ``twistd rtcsvc`` (``rtcsvc.listener``).

A connection whose first read starts with ``GET /ws/`` goes straight to Autobahn; anything else
goes to the web site, which can still upgrade ``/ws/``. Clients must not be able to tell which
way they went: every route ends in the same signaling socket, with the same limits.
"""

from __future__ import annotations

import socket
import time

import pytest

from tests.support import rawws
from tests.support.rawws import RawWebSocket

pytestmark = pytest.mark.slow


def _open(port: int, room: str, send) -> RawWebSocket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=5)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    key, request = rawws.upgrade_request(port, f"/ws/{room}")
    send(sock, request)
    status, head, rest = rawws.read_upgrade(sock, key)
    assert status == 101, head
    return RawWebSocket(sock, rest)


def _at_once(sock, request):
    sock.sendall(request)


def _first_byte_alone(sock, request):
    # The server reads "G" on its own: too short to choose, so the site gets the connection.
    sock.sendall(request[:1])
    time.sleep(0.2)
    sock.sendall(request[1:])


def _after_a_page_on_the_same_connection(sock, request):
    sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
    response = b""
    while b'"connections"' not in response:
        chunk = sock.recv(4096)
        assert chunk, response
        response += chunk
    assert response.startswith(b"HTTP/1.1 200"), response
    sock.sendall(request)


@pytest.mark.parametrize("send", [_at_once, _first_byte_alone, _after_a_page_on_the_same_connection])
def test_a_signaling_socket_works_the_same_whichever_way_its_request_arrives(rtcsvc, send):
    svc = rtcsvc()
    a = _open(svc.port, "room", send)
    welcome_a = a.recv()
    assert welcome_a["type"] == "welcome" and welcome_a["peers"] == []
    b, welcome_b = rawws.join(svc.port, "room")
    assert welcome_b["peers"] == [welcome_a["id"]]
    assert a.recv_type("peer-joined")["id"] == welcome_b["id"]
    a.signal({"sdp": "offer"}, to=welcome_b["id"])
    assert b.recv() == {"type": "signal", "from": welcome_a["id"], "data": {"sdp": "offer"}}
    assert a.close() == 1000
    assert b.recv_type("peer-left")["id"] == welcome_a["id"]
    b.close()


def test_the_site_and_its_pages_share_the_port_with_signaling(rtcsvc):
    svc = rtcsvc()
    ws, _ = rawws.join(svc.port, "room")
    assert rawws.get_json(svc.port)["connections"] == 1
    sock = socket.create_connection(("127.0.0.1", svc.port), timeout=5)
    sock.sendall(b"GET /r/room HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
    page = b""
    while chunk := sock.recv(65536):
        page += chunk
    sock.close()
    assert page.startswith(b"HTTP/1.1 200") and b"content-security-policy" in page.lower()
    ws.close()


def test_a_handshake_header_over_16_kib_gets_431_and_others_are_unaffected(rtcsvc):
    """Autobahn would buffer a request until its blank line; rtcsvc stops at 16 KiB."""
    svc = rtcsvc()
    sock = socket.create_connection(("127.0.0.1", svc.port), timeout=5)
    sock.sendall(b"GET /ws/room HTTP/1.1\r\nHost: 127.0.0.1\r\n")
    response = b""
    try:
        for i in range(64):  # 64 KiB at most
            sock.sendall(b"X-Filler-%04d: %s\r\n" % (i, b"x" * 1000))
    except OSError:
        pass  # refused while still sending
    try:
        while chunk := sock.recv(4096):
            response += chunk
    except ConnectionResetError:
        pass
    sock.close()
    assert response.startswith(b"HTTP/1.1 431"), response
    assert rawws.metric(svc.port, "rtcsvc_handshakes_refused_total",
                        reason="header-too-large") == 1
    ws, welcome = rawws.join(svc.port, "room")
    assert welcome["peers"] == []
    ws.close()
