"""Limits against a real ``twistd rtcsvc``: the rate limit, the connection caps, invite tokens.

Each test runs the real process and abuses it from raw sockets (``tests/support/rawws``): a
flooder is limited and closed while a bystander pair's signals all arrive in order; handshakes
past ``--max-connections`` get 503 and past ``--max-connections-per-client`` get 429 (counting
the real client behind a trusted proxy, and only there); slots come back when sockets close.
"""

from __future__ import annotations

import os
import threading
import time

import pytest

from rtcsvc.invite import mint_room_token
from tests.support import rawws
from tests.support.rawws import (
    CONTINUATION, PING, TEXT, HandshakeRefused, RawWebSocket, frame, text_frame,
)
from tests.support.service import wait_for

pytestmark = pytest.mark.slow


def test_a_flood_is_rate_limited_then_closed_with_1008_while_other_rooms_flow(rtcsvc):
    """Defaults (50/s, burst 300): 5000 messages at once get one rate-limited, then 1008."""
    svc = rtcsvc()
    flooder, _ = rawws.join(svc.port, "flood")
    a, wa = rawws.join(svc.port, "calm")
    b, wb = rawws.join(svc.port, "calm")
    a.recv_type("peer-joined")
    flood = b"".join(text_frame({"type": "signal", "data": {"n": i}}) for i in range(5000))
    sender = threading.Thread(target=lambda: _send_ignoring_reset(flooder, flood))
    sender.start()
    got, worst = [], 0.0
    for n in range(200):
        started = time.monotonic()
        a.signal({"n": n}, to=wb["id"])
        message = b.recv_type("signal")
        worst = max(worst, time.monotonic() - started)
        assert message["from"] == wa["id"]
        got.append(message["data"]["n"])
    sender.join(10)
    assert got == list(range(200))
    assert worst < 0.5  # the flood in another room does not hold up this one
    answers = []
    with pytest.raises(rawws.Closed) as closed:
        while True:
            answers.append(flooder.recv(5)["code"])
    assert closed.value.code == 1008
    assert answers and set(answers) == {"rate-limited"}
    assert len(answers) <= 3  # one per run of refusals, not one per flooded message
    assert rawws.metric(svc.port, "rtcsvc_errors_total", code="rate-limit-close") == 1
    assert rawws.metric(svc.port, "rtcsvc_errors_total", code="rate-limited") == len(answers)
    a.close(), b.close()


def _cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (/proc/PID/stat, fields 14 and 15)."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@pytest.mark.parametrize("kind", ["ping", "empty-continuation"])
def test_a_control_frame_flood_is_closed_with_1008_cheaply_while_other_rooms_flow(rtcsvc, kind):
    """Eight sockets each sending 100,000 empty pings (or empty continuation fragments): each
    gets at most the burst in pongs and a 1008; the server spends well under a second on all
    of it; a bystander pair's signals keep flowing. Unmetered, this took seconds of CPU per
    socket and held the bystanders up for seconds (issue 13)."""
    svc = rtcsvc()
    a, wa = rawws.join(svc.port, "calm")
    b, wb = rawws.join(svc.port, "calm")
    a.recv_type("peer-joined")
    flooders = [rawws.join(svc.port, f"flood{i}")[0] for i in range(8)]
    if kind == "ping":
        flood = frame(PING) * 100_000
    else:
        flood = frame(TEXT, b"", fin=False) + frame(CONTINUATION, b"", fin=False) * 100_000
    cpu = _cpu_seconds(svc.pid)
    senders = [threading.Thread(target=_send_ignoring_reset, args=(f, flood)) for f in flooders]
    for sender in senders:
        sender.start()
    worst = 0.0
    for n in range(100):
        started = time.monotonic()
        a.signal({"n": n}, to=wb["id"])
        assert b.recv_type("signal")["data"] == {"n": n}
        worst = max(worst, time.monotonic() - started)
    for sender in senders:
        sender.join(30)
    for flooder in flooders:
        pongs = []
        with pytest.raises(rawws.Closed) as closed:
            while True:
                pongs.append(flooder.recv(5, answer_pings=False))
        assert closed.value.code == 1008
        assert flooder.pongs <= 400  # the burst, and the rate while the flood is read
    spent = _cpu_seconds(svc.pid) - cpu
    assert spent < 1.0, f"the server spent {spent:.2f} s of CPU on the flood"
    assert worst < 0.5, f"a bystander signal took {worst:.3f} s"
    assert rawws.metric(svc.port, "rtcsvc_errors_total", code="rate-limit-close") == 8
    a.close(), b.close()


def _send_ignoring_reset(ws, data):
    try:
        ws.send_raw(data)
    except OSError:
        pass  # the server closed on us mid-flood: that is the point


def test_a_burst_within_the_rate_burst_passes_untouched(rtcsvc):
    """The limit is not a cap on calls: a mesh's ICE burst (300 at once, the default) passes."""
    svc = rtcsvc()
    a, wa = rawws.join(svc.port, "burst")
    b, wb = rawws.join(svc.port, "burst")
    a.recv_type("peer-joined")
    a.send_raw(b"".join(text_frame({"type": "signal", "to": wb["id"], "data": i})
                        for i in range(299))
               + text_frame({"type": "signal", "to": "nobody", "data": "300th"}))
    assert [b.recv()["data"] for _ in range(299)] == list(range(299))
    assert a.recv()["code"] == "unknown-peer"  # the 300th passed too: no rate-limited
    a.close(), b.close()


def _refused(port, **kwargs):
    with pytest.raises(HandshakeRefused) as refused:
        RawWebSocket.connect(port, **kwargs)
    return refused.value.status


def _not_invited(port, room, query):
    """Upgraded, told ``not-invited``, then closed: returns the close code."""
    ws = RawWebSocket.connect(port, room, query=query)
    error = ws.recv()
    assert error["type"] == "error" and error["code"] == "not-invited", error
    return ws.wait_closed()


def test_the_handshake_past_max_connections_gets_503_until_a_slot_frees(rtcsvc):
    svc = rtcsvc(["--max-connections", "5"])
    open_ = [rawws.join(svc.port, f"room{i}")[0] for i in range(5)]
    assert _refused(svc.port, room="room5") == 503
    assert rawws.get_json(svc.port)["connections"] == 5  # plain HTTP still answers
    open_.pop().close()
    wait_for(lambda: rawws.get_json(svc.port)["connections"] == 4, 5, "the slot to free")
    open_.append(rawws.join(svc.port, "room5")[0])
    assert rawws.metric(svc.port, "rtcsvc_handshakes_refused_total", reason="server-full") == 1
    for ws in open_:
        ws.close()


def test_the_handshake_past_the_per_client_cap_gets_429_and_forged_forwarding_is_ignored(rtcsvc):
    """Without --trusted-proxy, X-Forwarded-For is the client's claim: it buys no more slots."""
    svc = rtcsvc(["--max-connections-per-client", "3"])
    open_ = [rawws.join(svc.port, "r", headers=[("X-Forwarded-For", f"198.51.100.{i}")])[0]
             for i in range(3)]
    assert _refused(svc.port, room="r", headers=[("X-Forwarded-For", "198.51.100.9")]) == 429
    open_.pop().close()
    wait_for(lambda: rawws.get_json(svc.port)["connections"] == 2, 5, "the slot to free")
    open_.append(rawws.join(svc.port, "r")[0])
    assert rawws.metric(svc.port, "rtcsvc_handshakes_refused_total", reason="client-limit") == 1
    for ws in open_:
        ws.close()


def test_behind_a_trusted_proxy_each_forwarded_client_address_has_its_own_cap(rtcsvc):
    svc = rtcsvc(["--max-connections-per-client", "3", "--trusted-proxy", "127.0.0.1"])

    def via(address):
        return {"headers": [("X-Forwarded-For", address)]}

    first = [rawws.join(svc.port, "r1", **via("198.51.100.1"))[0] for _ in range(3)]
    assert _refused(svc.port, room="r1", **via("198.51.100.1")) == 429
    second = [rawws.join(svc.port, "r2", **via("198.51.100.2"))[0] for _ in range(3)]
    assert _refused(svc.port, room="r2", **via("198.51.100.2")) == 429
    first.pop().close()
    wait_for(lambda: rawws.get_json(svc.port)["connections"] == 5, 5, "the slot to free")
    first.append(rawws.join(svc.port, "r1", **via("198.51.100.1"))[0])
    assert rawws.metric(svc.port, "rtcsvc_handshakes_refused_total", reason="client-limit") == 2
    for ws in first + second:
        ws.close()


def test_with_a_room_secret_only_a_valid_unexpired_invite_for_that_room_gets_in(rtcsvc, tmp_path):
    secret = b"an invite secret of at least sixteen bytes"
    secret_file = tmp_path / "room-secret"
    secret_file.write_bytes(secret)
    svc = rtcsvc(["--room-secret-file", str(secret_file)])
    later = int(time.time()) + 600
    good = mint_room_token(secret, "team", later)
    for query in ("", "?token=" + mint_room_token(secret, "other", later),
                  "?token=" + mint_room_token(secret, "team", int(time.time()) - 1),
                  "?token=" + mint_room_token(b"not the secret, but as long", "team", later)):
        assert _not_invited(svc.port, "team", query) == 4003
    assert rawws.get_json(svc.port) == {"status": "ok", "rooms": 0, "peers": 0,
                                        "connections": 0}
    ws, welcome = rawws.join(svc.port, "team", query="?token=" + good)
    assert welcome["room"] == "team"
    assert rawws.metric(svc.port, "rtcsvc_handshakes_refused_total", reason="invite") == 4
    ws.close()
