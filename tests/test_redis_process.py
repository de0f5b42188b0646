"""Rooms spanning real ``twistd -n rtcsvc --redis`` processes, against a real redis-server.

Every test starts its own private Redis and two or three rtcsvc processes, and talks protocol v1
to them with the ``websockets`` package's sync client, as a browser behind a load balancer would
(each socket may land on any process). docs/scaling.md states the guarantees proved here.
"""

from __future__ import annotations

import json
import socket
import threading
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor

import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from rtcsvc.invite import mint_room_token

pytestmark = [
    pytest.mark.slow,
    pytest.mark.filterwarnings("ignore:connect\\(\\) must be used as a context manager"),
]

#: docs/scaling.md: lease TTL (10 s) + heartbeat interval (10/3 s), and some slack for CI.
DEAD_PROCESS_BOUND = 16.0


class Peer:
    """One protocol-v1 client: a websockets sync connection and its welcome."""

    def __init__(self, service, room, resume=None, token=None):
        params = [f"resume={resume}"] if resume else []
        params += [f"token={token}"] if token else []
        query = "?" + "&".join(params) if params else ""
        self.ws = connect(f"{service.ws_url}/ws/{room}{query}", origin=service.http_url,
                          open_timeout=5, close_timeout=2)
        self.welcome = self.recv()

    @property
    def id(self):
        return self.welcome["id"]

    def recv(self, timeout=5.0):
        return json.loads(self.ws.recv(timeout=timeout))

    def expect(self, kind, timeout=5.0):
        message = self.recv(timeout)
        assert message["type"] == kind, message
        return message

    def nothing(self, within=0.3):
        """No message arrives within ``within`` seconds."""
        try:
            message = self.ws.recv(timeout=within)
        except TimeoutError:
            return
        raise AssertionError(f"unexpected message {message}")

    def signal(self, data, to=None):
        message = {"type": "signal", "data": data}
        if to is not None:
            message["to"] = to
        self.ws.send(json.dumps(message))

    def close(self):
        self.ws.close()

    def refused(self, code="not-invited", close=4003):
        """Refused instead of welcomed: the error, then the close."""
        assert self.welcome["type"] == "error" and self.welcome["code"] == code, self.welcome
        with pytest.raises(ConnectionClosed):
            self.ws.recv(timeout=5)
        assert self.ws.close_code == close

    def cut(self):
        """The network breaks: TCP goes away without a close frame (a drop, not a leave)."""
        self.ws.socket.shutdown(socket.SHUT_RDWR)
        self.ws.socket.close()


@pytest.fixture
def cluster(redis, rtcsvc):  # redis first: it outlives the processes at teardown
    """``cluster(n, *args)``: n rtcsvc processes sharing ``redis`` (no rate limit: the tests
    send bursts)."""

    def start(n=2, *args):
        return [rtcsvc(args=["--redis", redis.url, "--rate-limit", "0", *args])
                for _ in range(n)]

    return start


def test_a_room_spans_two_processes(cluster):
    """welcome.peers, peer-joined and peer-left cross processes, in join order."""
    a, b = cluster(2)
    first = Peer(a, "span")
    assert first.welcome["peers"] == []
    second = Peer(b, "span")
    assert second.welcome["peers"] == [first.id]
    assert first.expect("peer-joined")["id"] == second.id
    third = Peer(a, "span")
    assert third.welcome["peers"] == [first.id, second.id]
    assert first.expect("peer-joined")["id"] == third.id
    assert second.expect("peer-joined")["id"] == third.id
    second.close()
    assert first.expect("peer-left")["id"] == second.id
    assert third.expect("peer-left")["id"] == second.id
    fourth = Peer(b, "span")
    assert fourth.welcome["peers"] == [first.id, third.id]


def test_addressed_and_broadcast_signals_cross_processes_in_order_exactly_once(cluster):
    a, b = cluster(2)
    alice, bob, carol = Peer(a, "order"), Peer(b, "order"), Peer(b, "order")
    alice.expect("peer-joined"), alice.expect("peer-joined"), bob.expect("peer-joined")
    n = 300
    for i in range(n):
        alice.signal({"seq": i}, to=bob.id)  # addressed, a -> b
        alice.signal({"bseq": i})  # broadcast, a -> b (both)
        carol.signal({"cseq": i}, to=bob.id)  # b -> b, same process
    got = {"seq": [], "bseq": [], "cseq": []}
    for _ in range(3 * n):
        message = bob.expect("signal")
        (key, value), = message["data"].items()
        assert message["from"] == (carol.id if key == "cseq" else alice.id)
        got[key].append(value)
    assert got == {"seq": list(range(n)), "bseq": list(range(n)), "cseq": list(range(n))}
    assert [carol.expect("signal")["data"]["bseq"] for _ in range(n)] == list(range(n))
    bob.nothing()
    carol.nothing()
    alice.nothing()
    # A peer of the room on the other process is known: no unknown-peer; a stranger is.
    alice.signal("x", to="nobody")
    assert alice.expect("error")["code"] == "unknown-peer"


def test_capacity_holds_under_concurrent_joins_on_both_processes(cluster):
    """20 sockets race for a 6-seat room across two processes: exactly 6 are welcomed."""
    a, b = cluster(2)
    start = threading.Barrier(20)

    def attempt(i):
        service = (a, b)[i % 2]
        ws = connect(f"{service.ws_url}/ws/race", origin=service.http_url, open_timeout=10)
        start.wait()
        try:
            first = json.loads(ws.recv(timeout=10))
            return ws, first
        except ConnectionClosed:
            return ws, None

    with ThreadPoolExecutor(20) as pool:
        results = list(pool.map(attempt, range(20)))
    try:
        kinds = [first["type"] if first["type"] != "error" else first["code"]
                 for _, first in results]
        assert kinds.count("welcome") == 6, kinds
        assert kinds.count("room-full") == 14, kinds
        ids = {first["id"] for _, first in results if first["type"] == "welcome"}
        assert len(ids) == 6
    finally:
        for ws, _ in results:
            ws.close()


def test_peers_of_a_killed_process_leave_within_the_lease_bound(cluster):
    a, b = cluster(2)
    survivor = Peer(a, "crash")
    doomed = [Peer(b, "crash"), Peer(b, "crash")]
    for peer in doomed:
        assert survivor.expect("peer-joined")["id"] == peer.id
    b.kill()
    started = time.monotonic()
    left = {survivor.expect("peer-left", timeout=DEAD_PROCESS_BOUND)["id"] for _ in doomed}
    assert left == {peer.id for peer in doomed}
    assert time.monotonic() - started < DEAD_PROCESS_BOUND
    # Their seats are free again: the room admits new members on the survivor.
    newcomer = Peer(a, "crash")
    assert newcomer.welcome["peers"] == [survivor.id]


def test_signaling_continues_after_a_redis_restart(cluster, redis):
    a, b = cluster(2)
    alice, bob = Peer(a, "restart"), Peer(b, "restart")
    alice.expect("peer-joined")
    alice.signal("before", to=bob.id)
    assert bob.expect("signal")["data"] == "before"
    redis.restart(down_for=0.5)

    # The sockets stay open; once both processes have reconnected and re-registered, signals
    # cross again (the ones sent meanwhile may be lost: docs/scaling.md).
    def crosses():
        alice.signal("ping", to=bob.id)
        try:
            while True:
                message = bob.recv(timeout=0.5)
                if message["type"] == "signal" and message["data"] == "ping":
                    return True
        except TimeoutError:
            return False

    deadline = time.monotonic() + 15
    while not crosses():
        assert time.monotonic() < deadline, "signals never crossed again after the restart"
    n = 100
    for i in range(n):
        bob.signal(i, to=alice.id)
    assert [alice.expect("signal")["data"] for _ in range(n)] == list(range(n))
    # The room survived with its members and capacity bookkeeping: a newcomer sees both.
    carol = Peer(a, "restart")
    assert carol.welcome["peers"] == [alice.id, bob.id]
    assert bob.expect("peer-joined")["id"] == carol.id


def test_a_dropped_peer_resumes_on_the_other_process_with_its_queued_signals(cluster):
    a, b = cluster(2, "--resume-grace", "20")
    alice, bob = Peer(a, "resume"), Peer(b, "resume")
    alice.expect("peer-joined")
    alice.signal("live", to=bob.id)
    assert bob.expect("signal")["data"] == "live"
    token = bob.welcome["resume"]
    bob.cut()
    time.sleep(0.5)  # the drop reaches process b
    for i in range(50):
        alice.signal({"n": i}, to=bob.id)
        alice.signal({"all": i})
    back = Peer(a, "resume", resume=token)  # through the balancer, onto the other process
    assert back.welcome["resumed"] is True
    assert back.id == bob.id
    assert back.welcome["peers"] == [alice.id]
    got = [back.expect("signal")["data"] for _ in range(100)]
    assert [d["n"] for d in got if "n" in d] == list(range(50))
    assert [d["all"] for d in got if "all" in d] == list(range(50))
    alice.nothing(within=0.5)  # neither peer-left nor peer-joined
    alice.signal("after", to=bob.id)
    assert back.expect("signal")["data"] == "after"
    back.signal("hello")
    assert alice.expect("signal") == {"type": "signal", "from": bob.id, "data": "hello"}
    # The token was used: it does not give the seat to anyone else.
    stranger = Peer(b, "resume", resume=token)
    assert stranger.id != bob.id and "resumed" not in stranger.welcome


def test_a_join_while_redis_is_down_gets_unavailable_quickly(cluster, redis):
    a, = cluster(1)
    redis.kill()
    time.sleep(0.5)  # the process notices the closed connection
    started = time.monotonic()
    ws = connect(f"{a.ws_url}/ws/down", origin=a.http_url, open_timeout=5)
    error = json.loads(ws.recv(timeout=5))
    assert error["type"] == "error" and error["code"] == "unavailable"
    with pytest.raises(ConnectionClosed):
        ws.recv(timeout=5)
    assert ws.close_code == 1013
    assert time.monotonic() - started < 4
    health = urllib.request.Request(f"{a.http_url}/healthz")
    with pytest.raises(urllib.error.HTTPError) as down:
        urllib.request.urlopen(health, timeout=5)
    assert down.value.code == 503 and json.loads(down.value.read())["status"] == "unavailable"
    redis.run()
    deadline = time.monotonic() + 10
    while True:  # back within the reconnection back-off
        peer = Peer(a, "down")
        if peer.welcome["type"] == "welcome":
            break
        assert peer.welcome["code"] == "unavailable"
        assert time.monotonic() < deadline, "joins never worked again after Redis came back"
        time.sleep(0.3)
    with urllib.request.urlopen(health, timeout=5) as up:
        assert json.loads(up.read())["status"] == "ok"


# -- closed rooms (--room-secret-file): a live resume token outlives the invite

SECRET = b"a room secret of at least sixteen bytes"


@pytest.fixture
def closed_cluster(cluster, tmp_path):
    """``closed_cluster(*args)``: two processes sharing Redis whose rooms need an invite."""
    secret = tmp_path / "room-secret"
    secret.write_bytes(SECRET)
    return lambda *args: cluster(2, "--room-secret-file", str(secret), *args)


def short_invite(room, seconds=3):
    """An invite that expires ``seconds`` from now, and the moment after which it is refused."""
    expiry = int(time.time()) + seconds
    return mint_room_token(SECRET, room, expiry), expiry + 1.2


def until_expired(moment):
    time.sleep(max(0.0, moment - time.time()))


def seated(redis, room):
    return int(redis.command("ZCARD", f"rtcsvc:room:{room}")[1:])


def test_a_member_whose_invite_expired_resumes_on_the_other_process_with_its_queue(
        closed_cluster, redis):
    a, b = closed_cluster("--resume-grace", "20")
    invite, expired = short_invite("team")
    alice, bob = Peer(a, "team", token=invite), Peer(b, "team", token=invite)
    assert alice.expect("peer-joined")["id"] == bob.id
    until_expired(expired)
    Peer(a, "team", token=invite).refused()  # the invite really is dead now
    bob.cut()
    time.sleep(0.5)  # the drop reaches process b
    for i in range(20):
        alice.signal({"n": i}, to=bob.id)
        alice.signal({"all": i})
    back = Peer(a, "team", resume=bob.welcome["resume"], token=invite)
    assert back.welcome["type"] == "welcome", back.welcome
    assert back.welcome["resumed"] is True and back.id == bob.id
    assert back.welcome["peers"] == [alice.id]
    got = [back.expect("signal")["data"] for _ in range(40)]
    assert [d["n"] for d in got if "n" in d] == list(range(20))
    assert [d["all"] for d in got if "all" in d] == list(range(20))
    alice.nothing(within=0.5)  # neither peer-left nor peer-joined
    back.signal("hello", to=alice.id)
    assert alice.expect("signal") == {"type": "signal", "from": bob.id, "data": "hello"}
    # Without any invite too: the fresh token alone is enough, on either process.
    back.cut()
    time.sleep(0.5)
    again = Peer(b, "team", resume=back.welcome["resume"])
    assert again.welcome.get("resumed") is True and again.id == bob.id
    assert seated(redis, "team") == 2


def test_a_stale_resume_token_past_the_invite_is_not_invited_and_seats_nobody(
        closed_cluster, redis):
    a, b = closed_cluster("--resume-grace", "1")
    invite, expired = short_invite("team")
    alice, bob = Peer(a, "team", token=invite), Peer(b, "team", token=invite)
    alice.expect("peer-joined")
    used = bob.welcome["resume"]
    bob.cut()
    time.sleep(0.5)
    bob = Peer(a, "team", resume=used, token=invite)  # resumed: ``used`` is spent
    assert bob.welcome["resumed"] is True
    gone = bob.welcome["resume"]
    bob.cut()
    assert alice.expect("peer-left", timeout=5)["id"] == bob.id  # past the resume grace
    until_expired(expired)
    for service in (a, b):
        for stale in (used, gone, "not-a-token"):
            Peer(service, "team", resume=stale, token=invite).refused()
            Peer(service, "team", resume=stale).refused()
    alice.nothing(within=0.5)  # no fresh seat: nobody joined
    assert seated(redis, "team") == 1


def test_a_resume_token_from_another_room_does_not_open_a_closed_room(closed_cluster, redis):
    a, b = closed_cluster("--resume-grace", "20")
    invite, _ = short_invite("open-one", seconds=60)
    member = Peer(a, "open-one", token=invite)
    token = member.welcome["resume"]
    for service in (a, b):
        Peer(service, "team", resume=token).refused()
    assert redis.command("EXISTS", "rtcsvc:room:team") == b":0"
    # Nothing changed for the token's own seat: it still resumes there, without an invite.
    member.cut()
    time.sleep(0.5)
    back = Peer(b, "open-one", resume=token)
    assert back.welcome.get("resumed") is True and back.id == member.id
