"""Dead, slow and silent clients are dropped at the configured times, by a real ``twistd rtcsvc``.

Slowloris (a request dripped byte by byte), a TCP connection that never says anything, an idle
HTTP keep-alive, a WebSocket client that stops answering pings, and a client process killed
with SIGKILL: each is cut off within its bound, and the room hears ``peer-left`` only after the
resume grace. The bounds are shortened with the options; the defaults are in docs/reliability.md.
"""

from __future__ import annotations

import os
import select
import signal
import socket
import subprocess
import sys
import threading
import time

import pytest

from tests.support import rawws
from tests.support.rawws import Closed

pytestmark = pytest.mark.slow

# The shortest reliable values: Autobahn rounds its timers down to whole seconds.
FAST_PINGS = ["--ping-interval", "1", "--ping-timeout", "2", "--resume-grace", "1"]


def closed_by_server(sock: socket.socket, timeout: float) -> bool:
    """Wait until the server closes ``sock`` (EOF or reset); False if it is still open."""
    ready, _, _ = select.select([sock], [], [], timeout)
    if not ready:
        return False
    try:
        return sock.recv(4096) == b""
    except ConnectionResetError:
        return True


@pytest.mark.parametrize("opening", [
    [b"GET /ws/room HTTP/1.1\r\nHost: 127.0.0.1\r\n"],  # straight to Autobahn (rtcsvc.listener)
    [b"G", b"ET /ws/room HTTP/1.1\r\nHost: 127.0.0.1\r\n"],  # too short to choose: the site
    [b"GET /index.html HTTP/1.1\r\nHost: 127.0.0.1\r\n"],  # a page request
], ids=["signaling", "first-byte-alone", "page"])
def test_a_request_dripped_slowly_is_cut_off_at_the_handshake_timeout(rtcsvc, opening):
    """Slowloris: every byte is on time for an idle timer, the whole request is not."""
    svc = rtcsvc(["--handshake-timeout", "1", "--idle-timeout", "30"])
    sock = socket.create_connection(("127.0.0.1", svc.port))
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    started = time.monotonic()
    for chunk in opening:
        sock.sendall(chunk)
        time.sleep(0.1)
    closed_at = None
    for i in range(40):  # 8 s of dripping at most
        try:
            sock.sendall(b"X-Drip-%d: x\r\n" % i)
        except OSError:
            closed_at = time.monotonic()
            break
        if closed_by_server(sock, 0.2):
            closed_at = time.monotonic()
            break
    sock.close()
    assert closed_at is not None, "the dripping client was never cut off"
    assert 0.8 <= closed_at - started <= 2.5


def test_a_connection_that_never_sends_a_byte_is_closed_at_the_handshake_timeout(rtcsvc):
    svc = rtcsvc(["--handshake-timeout", "1", "--idle-timeout", "30"])
    sock = socket.create_connection(("127.0.0.1", svc.port))
    started = time.monotonic()
    assert closed_by_server(sock, 5)
    assert 0.8 <= time.monotonic() - started <= 2.5
    sock.close()


def test_an_idle_keep_alive_connection_is_closed_after_the_idle_timeout(rtcsvc):
    svc = rtcsvc(["--idle-timeout", "1", "--handshake-timeout", "30"])
    sock = socket.create_connection(("127.0.0.1", svc.port))
    sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
    response = b""
    while b'"connections"' not in response:
        response += sock.recv(4096)
    assert response.startswith(b"HTTP/1.1 200")
    answered = time.monotonic()
    assert closed_by_server(sock, 5)
    assert 0.7 <= time.monotonic() - answered <= 3
    sock.close()


def test_an_open_signaling_socket_outlives_the_http_idle_and_handshake_timeouts(rtcsvc):
    """The timeouts guard HTTP requests; a quiet WebSocket between pings is not one."""
    svc = rtcsvc(["--idle-timeout", "1", "--handshake-timeout", "1"])
    a, wa = rawws.join(svc.port, "quiet")
    b, wb = rawws.join(svc.port, "quiet")
    a.recv_type("peer-joined")
    time.sleep(3)
    a.signal("still here", to=wb["id"])
    assert b.recv()["data"] == "still here"
    a.close(), b.close()


def test_a_peer_that_stops_answering_pings_is_dropped_and_the_room_told_after_the_grace(rtcsvc):
    """ping interval + ping timeout to notice, then the resume grace, then peer-left."""
    svc = rtcsvc(FAST_PINGS)
    watcher, _ = rawws.join(svc.port, "room")
    silent, ws = rawws.join(svc.port, "room")  # from now on: never reads, never pongs
    started = time.monotonic()
    dropped = []  # (when, seats held then): the moment the server let go of the socket

    def watch_health():
        while not dropped and time.monotonic() - started < 8:
            health = rawws.get_json(svc.port)
            if health["connections"] == 1:
                dropped.append((time.monotonic(), health["peers"]))
            time.sleep(0.05)

    poller = threading.Thread(target=watch_health, daemon=True)
    poller.start()
    assert watcher.recv_type("peer-joined")["id"] == ws["id"]
    left = watcher.recv_type("peer-left", timeout=8)  # watcher answers pings meanwhile
    left_at = time.monotonic()
    poller.join()
    assert left["id"] == ws["id"]
    assert dropped, "the silent socket was never dropped"
    dropped_at, seats = dropped[0]
    # Noticed within interval + timeout (1 + 2 s; Autobahn rounds timers down to whole
    # seconds), its seat held meanwhile, then peer-left once the 1 s grace has passed.
    assert dropped_at - started <= 1 + 2 + 0.5
    assert seats == 2
    assert 0.8 <= left_at - dropped_at <= 1.5
    with pytest.raises(Closed) as closed:  # its socket was aborted, without a close frame
        while True:
            silent.recv_frame(2)
    assert closed.value.code is None
    watcher.signal(0, to="nobody")
    assert watcher.recv()["code"] == "unknown-peer"  # the live peer was never disturbed
    assert rawws.get_json(svc.port)["peers"] == 1
    watcher.close()


PEER_PROCESS = """
import json, sys, time
from websockets.sync.client import connect
with connect(sys.argv[1]) as ws:
    print(json.loads(ws.recv())["id"], flush=True)
    time.sleep(60)
"""


def test_a_peer_process_killed_with_sigkill_is_announced_as_left_within_the_bound(rtcsvc):
    svc = rtcsvc(FAST_PINGS)
    # The peer first: starting a Python process can take seconds on a loaded machine, and a
    # watcher already joined would read nothing meanwhile, miss its pings and be dropped.
    peer = subprocess.Popen([sys.executable, "-c", PEER_PROCESS, f"{svc.ws_url}/ws/room"],
                            stdout=subprocess.PIPE, text=True)
    try:
        peer_id = peer.stdout.readline().strip()
        watcher, welcome = rawws.join(svc.port, "room")
        assert welcome["peers"] == [peer_id]
        os.kill(peer.pid, signal.SIGKILL)
        started = time.monotonic()
        left = watcher.recv_type("peer-left", timeout=8)
        elapsed = time.monotonic() - started
    finally:
        if peer.poll() is None:
            os.kill(peer.pid, signal.SIGKILL)
        peer.wait(5)
        peer.stdout.close()
    assert left["id"] == peer_id
    # The kernel resets the dead process's TCP at once, so only the grace remains; a host that
    # vanishes without a reset is noticed by the pings (the test above): 1 + 2 + 1 s.
    assert 0.9 <= elapsed <= 1 + 2 + 1 + 0.5
    watcher.close()
