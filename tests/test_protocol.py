"""Protocol v1 over real loopback sockets, once with each independent client library.

The server is the real service tree from ``makeService`` running in the test's reactor; every
behaviour in docs/protocol.md has a test here named after it.
"""

import json
import urllib.request

import pytest
import pytest_twisted
from twisted.internet import reactor, task, threads

from rtcsvc.tap import Options, makeService
from tests.support.clients import CLIENTS, AutobahnClient, HandshakeRefused
from tests.support.service import free_port

SECRET = b"0123456789abcdef0123456789abcdef"


@pytest.fixture(params=sorted(CLIENTS))
def client(request):
    return CLIENTS[request.param]


@pytest.fixture
def server(make_server):
    return make_server("--resume-grace", "1")


def ws(server, room="room1", query=""):
    return f"ws://{server}/ws/{room}{query}"


def get(server, path):
    """GET over HTTP from a thread: the server runs in this reactor, so never block it."""

    def fetch():
        with urllib.request.urlopen(f"http://{server}{path}", timeout=5) as r:
            return r.read().decode()

    return threads.deferToThread(fetch)


def metrics(server):
    return get(server, "/metrics")


def sleep(seconds):
    return task.deferLater(reactor, seconds, lambda: None)


@pytest_twisted.inlineCallbacks
def join(client, server, room="room1", **kwargs):
    c = yield client.connect(ws(server, room), **kwargs)
    welcome = yield c.recv()
    assert welcome["type"] == "welcome"
    return c, welcome


@pytest_twisted.inlineCallbacks
def test_welcome_names_me_the_room_the_earlier_peers_and_a_resume_token(client, server):
    a, wa = yield join(client, server)
    b, wb = yield join(client, server)
    assert wa["room"] == "room1" and wa["peers"] == [] and wa["iceServers"] == []
    assert wb["peers"] == [wa["id"]]
    assert wa["id"] != wb["id"] and len(wa["resume"]) >= 22 and wa["maxPeers"] == 6
    assert "resumed" not in wa
    joined = yield a.recv()
    assert joined == {"type": "peer-joined", "id": wb["id"]}
    yield a.close()
    yield b.close()


@pytest_twisted.inlineCallbacks
def test_addressed_signal_reaches_its_recipient_only_and_from_cannot_be_forged(client, server):
    a, wa = yield join(client, server)
    b, wb = yield join(client, server)
    c, wc = yield join(client, server)
    yield a.recv(); yield a.recv(); yield b.recv()  # peer-joined notices
    yield b.send_text(json.dumps({"type": "signal", "to": wa["id"], "from": wc["id"],
                                  "data": {"sdp": "v=0\r\n", "n": [1, 2.5, None, True]}}))
    got = yield a.recv()
    assert got == {"type": "signal", "from": wb["id"],
                   "data": {"sdp": "v=0\r\n", "n": [1, 2.5, None, True]}}
    # c got nothing: the next thing it sees is a signal sent to it afterwards.
    yield b.send_text(json.dumps({"type": "signal", "to": wc["id"], "data": "second"}))
    got = yield c.recv()
    assert got == {"type": "signal", "from": wb["id"], "data": "second"}
    for x in (a, b, c):
        yield x.close()


@pytest_twisted.inlineCallbacks
def test_signal_without_to_reaches_every_other_member_of_the_room_and_no_one_else(client, server):
    a, wa = yield join(client, server)
    b, _ = yield join(client, server)
    outsider, _ = yield join(client, server, room="room2")
    yield a.recv()
    yield a.send_text(json.dumps({"type": "signal", "data": 7}))
    got = yield b.recv()
    assert got == {"type": "signal", "from": wa["id"], "data": 7}
    yield outsider.send_text(json.dumps({"type": "signal", "data": "mine"}))
    with pytest.raises(Exception):
        yield a.recv(timeout=0.5)  # neither its own broadcast nor room2's reached it
    for x in (a, b, outsider):
        yield x.close()


@pytest_twisted.inlineCallbacks
def test_signals_arrive_in_order_exactly_once(client, server):
    a, wa = yield join(client, server)
    b, wb = yield join(client, server)
    yield a.recv()
    for n in range(200):
        yield a.send_text(json.dumps({"type": "signal", "to": wb["id"], "data": n}))
    got = []
    for _ in range(200):
        got.append((yield b.recv())["data"])
    assert got == list(range(200))
    yield a.close()
    yield b.close()


BAD_MESSAGES = [
    ("not json", "not a JSON text"),
    ("[1, 2]", "object"),
    ('"signal"', "object"),
    ('{"type": "hello"}', "unknown message type"),
    ('{"data": 1}', "type"),
    ('{"type": "signal"}', "'data'"),
    ('{"type": "signal", "to": 5, "data": 1}', "'to'"),
    ('{"type": "report", "data": {"outcome": "connected", "setupMs": 5, "path": "direct",'
     ' "candidate": "1.2.3.4"}}', "may not carry"),
]


@pytest_twisted.inlineCallbacks
def test_bad_messages_get_bad_message_and_the_connection_stays(client, server):
    a, wa = yield join(client, server)
    b, wb = yield join(client, server)
    yield a.recv()
    for text, why in BAD_MESSAGES:
        yield b.send_text(text)
        error = yield b.recv()
        assert error["type"] == "error" and error["code"] == "bad-message", text
        assert why in error["message"], (text, error)
    yield b.send_bytes(b'{"type":"signal","data":1}')
    error = yield b.recv()
    assert error["code"] == "bad-message" and "Binary" in error["message"]
    yield b.send_text(json.dumps({"type": "signal", "to": wa["id"], "data": "still here"}))
    got = yield a.recv()
    assert got["data"] == "still here"
    assert 'rtcsvc_errors_total{code="bad-message"} 9.0' in (yield metrics(server))
    yield a.close()
    yield b.close()


@pytest_twisted.inlineCallbacks
def test_signal_to_someone_not_in_the_room_is_unknown_peer(client, server):
    a, wa = yield join(client, server)
    other, wo = yield join(client, server, room="room2")
    yield a.send_text(json.dumps({"type": "signal", "to": wo["id"], "data": 1}))
    error = yield a.recv()
    assert error["code"] == "unknown-peer"
    yield a.send_text(json.dumps({"type": "signal", "to": wa["id"], "data": 1}))
    assert (yield a.recv())["code"] == "unknown-peer"
    yield a.close()
    yield other.close()


@pytest_twisted.inlineCallbacks
def test_a_full_room_answers_room_full_and_closes_with_4001(client, make_server):
    server = make_server("--max-peers", "2")
    a, _ = yield join(client, server)
    b, _ = yield join(client, server)
    c = yield client.connect(ws(server))
    error = yield c.recv()
    assert error["type"] == "error" and error["code"] == "room-full"
    assert error["maxPeers"] == 2  # so the app can say how many fit
    code = yield c.wait_closed()
    assert code == 4001
    yield a.close()
    yield b.close()


@pytest_twisted.inlineCallbacks
def test_an_oversized_message_gets_too_large_and_close_1009(client, make_server):
    server = make_server("--max-message-size", "2048")
    a, wa = yield join(client, server)
    b, _ = yield join(client, server)
    yield a.recv()
    yield b.send_text(json.dumps({"type": "signal", "data": "x" * 3000}))
    error = yield b.recv()
    assert error["code"] == "too-large"
    code = yield b.wait_closed()
    assert code == 1009
    left = yield a.recv()
    assert left == {"type": "peer-left", "id": _["id"]}
    yield a.close()


@pytest.mark.parametrize("room", ["bad.room", "a" * 65, "sp%20ace", ""])
@pytest_twisted.inlineCallbacks
def test_an_invalid_room_name_is_refused_with_400(client, server, room):
    with pytest.raises(HandshakeRefused) as refused:
        yield client.connect(ws(server, room))
    assert refused.value.status in (400, 404)


@pytest_twisted.inlineCallbacks
def test_a_foreign_origin_is_refused_with_403_and_counted(client, server):
    with pytest.raises(HandshakeRefused) as refused:
        yield client.connect(ws(server), origin="https://evil.example")
    assert refused.value.status == 403
    with pytest.raises(HandshakeRefused) as refused:
        yield client.connect(ws(server), origin="null")
    assert refused.value.status == 403
    assert 'rtcsvc_handshakes_refused_total{reason="origin"} 2.0' in (yield metrics(server))


@pytest_twisted.inlineCallbacks
def test_the_sites_own_origin_and_allowed_origins_may_connect(client, make_server):
    server = make_server("--allowed-origin", "https://portal.example:8443")
    a, _ = yield join(client, server, origin=f"http://{server}")
    b, _ = yield join(client, server, origin="https://portal.example:8443")
    with pytest.raises(HandshakeRefused):
        yield client.connect(ws(server), origin="https://portal.example")  # wrong port
    yield a.close()
    yield b.close()


@pytest_twisted.inlineCallbacks
def test_a_clean_close_is_a_leave_announced_at_once(client, server):
    a, wa = yield join(client, server)
    b, wb = yield join(client, server)
    yield a.recv()
    yield b.close(1001)
    left = yield a.recv(timeout=0.8)  # well inside the 1 s grace period
    assert left == {"type": "peer-left", "id": wb["id"]}
    yield a.close()


@pytest_twisted.inlineCallbacks
def test_a_close_frame_without_a_code_is_a_leave_too(server):
    """What a browser's ws.close() sends: a deliberate close, so no grace period."""
    a, wa = yield join(AutobahnClient, server)
    b, wb = yield join(AutobahnClient, server)
    yield a.recv()
    b.protocol.sendClose()  # no code, no reason
    left = yield a.recv(timeout=0.8)  # well inside the 1 s grace period
    assert left == {"type": "peer-left", "id": wb["id"]}
    yield a.close()


@pytest_twisted.inlineCallbacks
def test_a_dropped_peer_resumes_with_its_id_and_gets_what_was_sent_meanwhile(client, make_server):
    server = make_server("--resume-grace", "5")
    a, wa = yield join(client, server)
    b, wb = yield join(client, server)
    yield a.recv()
    yield b.abort()
    yield sleep(0.3)  # let the server notice the drop
    for n in range(5):
        yield a.send_text(json.dumps({"type": "signal", "to": wb["id"], "data": n}))
    yield sleep(0.2)
    b2 = yield client.connect(ws(server, query=f"?resume={wb['resume']}"))
    welcome = yield b2.recv()
    assert welcome["id"] == wb["id"] and welcome["resumed"] is True
    assert welcome["peers"] == [wa["id"]] and welcome["resume"] != wb["resume"]
    got = []
    for _ in range(5):
        got.append((yield b2.recv())["data"])
    assert got == [0, 1, 2, 3, 4]
    # The others saw neither peer-left nor peer-joined.
    yield b2.send_text(json.dumps({"type": "signal", "to": wa["id"], "data": "back"}))
    assert (yield a.recv()) == {"type": "signal", "from": wb["id"], "data": "back"}
    yield a.close()
    yield b2.close()


@pytest_twisted.inlineCallbacks
def test_a_dropped_peer_that_does_not_return_leaves_after_the_grace_period(client, server):
    a, wa = yield join(client, server)
    b, wb = yield join(client, server)
    yield a.recv()
    yield b.abort()
    with pytest.raises(Exception):
        yield a.recv(timeout=0.5)  # still inside the 1 s grace period
    left = yield a.recv(timeout=3)
    assert left == {"type": "peer-left", "id": wb["id"]}
    stale = yield client.connect(ws(server, query=f"?resume={wb['resume']}"))
    welcome = yield stale.recv()
    assert "resumed" not in welcome and welcome["id"] != wb["id"]
    yield a.close()
    yield stale.close()


@pytest_twisted.inlineCallbacks
def test_an_unknown_resume_token_gets_a_normal_fresh_join(client, server):
    a, wa = yield join(client, server)
    b = yield client.connect(ws(server, query="?resume=" + "A" * 32))
    wb = yield b.recv()
    assert wb["type"] == "welcome" and "resumed" not in wb and wb["peers"] == [wa["id"]]
    yield a.close()
    yield b.close()


@pytest_twisted.inlineCallbacks
def test_turn_credentials_are_minted_per_peer_and_refreshed_before_expiry(client, make_server,
                                                                           tmp_path):
    secret = tmp_path / "turn-secret"
    secret.write_bytes(SECRET)
    server = make_server("--turn-url", "turn:127.0.0.1:3478?transport=udp",
                         "--ice-server", "stun:127.0.0.1:3478",
                         "--turn-secret-file", str(secret), turn_ttl=2)
    import base64, hashlib, hmac, time

    before = time.time()
    a, wa = yield join(client, server)
    after = time.time()
    stun, turn = wa["iceServers"]
    assert stun == {"urls": ["stun:127.0.0.1:3478"]}
    assert turn["urls"] == ["turn:127.0.0.1:3478?transport=udp"]
    expiry, peer = turn["username"].split(":")
    assert peer == wa["id"] and int(before) + 2 <= int(expiry) <= int(after) + 2
    expected = base64.b64encode(hmac.new(SECRET, turn["username"].encode(), hashlib.sha1)
                                .digest()).decode()
    assert turn["credential"] == expected
    refresh = yield a.recv(timeout=4)  # at 80 % of the 2 s lifetime
    assert refresh["type"] == "ice-servers"
    assert int(refresh["iceServers"][1]["username"].split(":")[0]) >= int(expiry)
    yield a.close()


@pytest_twisted.inlineCallbacks
def test_reports_are_counted_in_metrics_and_never_relayed(client, server):
    a, wa = yield join(client, server)
    b, _ = yield join(client, server)
    yield a.recv()
    for data in ({"outcome": "connected", "setupMs": 850, "path": "direct"},
                 {"outcome": "connected", "setupMs": 2400, "path": "relay"},
                 {"outcome": "failed", "setupMs": 30000, "reason": "ice-failed"}):
        yield b.send_text(json.dumps({"type": "report", "data": data}))
    yield b.send_text(json.dumps({"type": "signal", "to": wa["id"], "data": "after"}))
    assert (yield a.recv())["data"] == "after"  # the reports did not reach a
    text = yield metrics(server)
    assert 'rtcsvc_call_setups_total{path="direct"} 1.0' in text
    assert 'rtcsvc_call_setups_total{path="relay"} 1.0' in text
    assert 'rtcsvc_call_failures_total{reason="ice-failed"} 1.0' in text
    assert 'rtcsvc_call_setup_seconds_bucket{le="1.0",path="direct"} 1.0' in text
    yield a.close()
    yield b.close()


@pytest_twisted.inlineCallbacks
def test_metrics_and_health_count_connections_rooms_peers_and_relayed_signals(client, server):
    a, wa = yield join(client, server)
    b, wb = yield join(client, server)
    yield a.recv()
    yield a.send_text(json.dumps({"type": "signal", "data": 1}))
    yield b.recv()
    text = yield metrics(server)
    assert "rtcsvc_connections_open 2.0" in text
    assert "rtcsvc_rooms 1.0" in text and "rtcsvc_peers 2.0" in text
    assert "rtcsvc_signals_relayed_total 1.0" in text
    health = yield get(server, "/healthz")
    assert json.loads(health) == {"status": "ok", "rooms": 1, "peers": 2,
                                  "connections": 2}
    yield a.close()
    yield b.close()


@pytest_twisted.inlineCallbacks
def test_stopping_the_service_closes_every_socket_with_1001(client, tmp_path):
    port = free_port()
    options = Options()
    options.parseOptions(["--listen", f"tcp:{port}:interface=127.0.0.1",
                          "--state-dir", str(tmp_path)])
    service = makeService(options, reactor)
    service.startService()
    server = f"127.0.0.1:{port}"
    a, _ = yield join(client, server)
    b, _ = yield join(client, server)
    stopping = service.stopService()
    codes = [(yield a.wait_closed()), (yield b.wait_closed())]
    yield stopping
    assert codes == [1001, 1001]
