"""deploy/apache/rtcsvc-balancer.conf, unchanged, in front of two rtcsvc processes sharing Redis.

Sockets through the balancer are spread over both processes (no stickiness), and a room made of
them works as one: welcome, peer-joined and signals both ways.
"""

from __future__ import annotations

import json

import pytest
from websockets.sync.client import connect

from tests.support.apache import MODULES, ApacheProcess
from tests.support.service import free_port

pytestmark = [
    pytest.mark.slow,
    pytest.mark.filterwarnings("ignore:connect\\(\\) must be used as a context manager"),
]

MODULES_NEEDED = MODULES + ("slotmem_shm", "proxy_balancer", "lbmethod_bybusyness",
                            "lbmethod_byrequests")


def test_the_balancer_spreads_one_room_over_two_processes(redis, rtcsvc, tmp_path):
    a = rtcsvc(args=["--redis", redis.url, "--trusted-proxy", "127.0.0.1"])
    b = rtcsvc(args=["--redis", redis.url, "--trusted-proxy", "127.0.0.1"])
    port = free_port()
    apache = ApacheProcess.start(
        tmp_path / "apache", ["rtcsvc-balancer.conf"],
        {"RTCSVC_SERVER_NAME": "127.0.0.1", "RTCSVC_HTTP_PORT": str(port),
         "RTCSVC_BACKEND_1": f"127.0.0.1:{a.port}", "RTCSVC_BACKEND_2": f"127.0.0.1:{b.port}",
         "RTCSVC_PUBLIC_SCHEME": "http"},
        {"http": port}, modules=MODULES_NEEDED)
    try:
        sockets = []
        for _ in range(4):
            ws = connect(f"ws://127.0.0.1:{port}/ws/lb", origin=f"http://127.0.0.1:{port}",
                         open_timeout=5)
            sockets.append((ws, json.loads(ws.recv(timeout=5))))
        ids = [welcome["id"] for _, welcome in sockets]
        assert [welcome["peers"] for _, welcome in sockets] == [ids[:i] for i in range(4)]
        # Both processes hold some of the sockets: the room really spans them.
        assert "joined room=lb" in a.log() and "joined room=lb" in b.log()
        first, last = sockets[0][0], sockets[-1][0]
        first.send(json.dumps({"type": "signal", "to": ids[-1], "data": "hi"}))
        last.send(json.dumps({"type": "signal", "to": ids[0], "data": "hello"}))

        def next_signal(ws):
            while True:
                message = json.loads(ws.recv(timeout=5))
                if message["type"] == "signal":
                    return message

        assert next_signal(last) == {"type": "signal", "from": ids[0], "data": "hi"}
        assert next_signal(first) == {"type": "signal", "from": ids[-1], "data": "hello"}
        for ws, _ in sockets:
            ws.close()
    finally:
        apache.stop()
