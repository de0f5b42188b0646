"""RedisHub against a real redis-server, in this test's reactor: several hubs play processes.

The cases that whole-process tests cannot provoke on demand live here: a queue overflowing for a
dropped peer, the grace period running out, a resume on the same process while the old socket
is still half-open, a resume-only call given stale or foreign tokens, a process that stops
heartbeating, and Redis refusing connections.
"""

from __future__ import annotations

from dataclasses import dataclass

import orjson
import pytest
import pytest_twisted
from twisted.internet import defer, reactor, task
from zope.interface.verify import verifyObject

from rtcsvc.hub import (IHub, IResumingHub, JoinResult, NotResumable, RoomFull, Unavailable,
                        UnknownPeer)
from rtcsvc.redis_hub import RedisHub, parse_redis_url
from tests.support.peers import RecordingConnection as Connection
from tests.support.peers import joining
from tests.support.service import free_port

pytestmark = [
    pytest.mark.slow,
]


def refusal(hub, room, connection, token):
    """A Deferred with the type of the refusal of a resume alone (None if it seated)."""
    d = joining(hub, room, connection, token, resume_only=True)
    return d.addCallbacks(lambda _: None, lambda failure: type(failure.value))


def sleep(seconds):
    return task.deferLater(reactor, seconds, lambda: None)


@pytest_twisted.inlineCallbacks
def until(predicate, timeout=5.0, what="condition"):
    deadline = reactor.seconds() + timeout
    while not predicate():
        assert reactor.seconds() < deadline, f"timed out waiting for {what}"
        yield sleep(0.02)


@pytest.fixture
def hubs(redis):
    """``hubs(n, **options)``: n started RedisHubs (each one "process"), all ready."""
    made = []

    @pytest_twisted.inlineCallbacks
    def make(n=2, **options):
        new = [RedisHub(reactor, parse_redis_url(redis.url), **options) for _ in range(n)]
        for hub in new:
            hub.start()
            made.append(hub)
        yield until(lambda: all(hub.available for hub in new), what="hubs ready")
        return new

    yield make
    for hub in made:
        hub.close()
        pytest_twisted.blockon(hub.stop())


@dataclass
class AwayWithAQueuedSignal:
    """Two processes: ``other`` seated on b, ``first`` seated on a and dropped there (its seat
    kept for a resume), with one signal from ``other`` (``"queued"``) waiting for it."""

    a: RedisHub
    b: RedisHub
    other: Connection
    other_seat: JoinResult
    first: JoinResult


@pytest_twisted.async_fixture
async def away(hubs):
    """A seat away from its socket with a signal queued for it: AwayWithAQueuedSignal."""
    a, b = await hubs(2)
    other = Connection()
    ro = await joining(b, "room", other)
    first = await joining(a, "room", Connection())
    a.drop(first.member)
    await sleep(0.1)
    b.signal(ro.member, first.member.id, b'"queued"')
    await sleep(0.1)
    return AwayWithAQueuedSignal(a, b, other, ro, first)


@pytest_twisted.inlineCallbacks
def test_redis_hub_provides_the_hub_interface(hubs):
    hub, = yield hubs(1)
    assert verifyObject(IHub, hub)


@pytest_twisted.inlineCallbacks
def test_concurrent_joins_from_two_processes_never_exceed_capacity(hubs):
    a, b = yield hubs(2, max_peers=3)
    attempts = [joining(hub, "race", Connection()) for _ in range(5) for hub in (a, b)]
    results = yield defer.DeferredList(attempts, consumeErrors=True)
    welcomed = [r for ok, r in results if ok]
    full = [r for ok, r in results if not ok]
    assert len(welcomed) == 3
    assert len(full) == 7 and all(f.check(RoomFull) for f in full)


@pytest_twisted.inlineCallbacks
def test_unknown_peer_is_answered_from_the_local_view_of_the_room(hubs):
    a, b = yield hubs(2)
    ra = yield joining(a, "room", Connection())
    rb = yield joining(b, "room", Connection())
    yield until(lambda: rb.member.id in a.members_of("room"), what="peer-joined on a")
    a.signal(ra.member, rb.member.id, b'"ok"')  # the peer on the other process is known
    with pytest.raises(UnknownPeer):
        a.signal(ra.member, "nobody", b"1")
    with pytest.raises(UnknownPeer):
        a.signal(ra.member, ra.member.id, b"1")


@pytest_twisted.inlineCallbacks
def test_a_queue_over_its_bound_frees_the_dropped_seat(hubs):
    a, b = yield hubs(2, backlog_limit=5)
    sender = Connection()
    rs = yield joining(a, "room", sender)
    rd = yield joining(b, "room", Connection())
    b.drop(rd.member)
    yield sleep(0.2)
    for i in range(6):
        a.signal(rs.member, rd.member.id, str(i).encode())
    yield until(lambda: sender.of_type("peer-left"), what="peer-left")
    assert sender.of_type("peer-left") == [{"type": "peer-left", "id": rd.member.id}]
    assert rd.member.id not in a.members_of("room")
    assert b.peer_count == 0


@pytest_twisted.inlineCallbacks
def test_a_queue_over_its_byte_bound_frees_the_dropped_seat(hubs):
    a, b = yield hubs(2, backlog_bytes=50_000)
    sender = Connection()
    rs = yield joining(a, "room", sender)
    rd = yield joining(b, "room", Connection())
    b.drop(rd.member)
    yield sleep(0.2)
    data = b'"' + b"x" * 10_000 + b'"'
    for _ in range(4):  # ~40 kB: under the bound, the seat is kept
        a.signal(rs.member, rd.member.id, data)
    yield sleep(0.3)
    assert sender.of_type("peer-left") == [] and rd.member.id in a.members_of("room")
    for _ in range(2):  # past 50 kB
        a.signal(rs.member, rd.member.id, data)
    yield until(lambda: sender.of_type("peer-left"), what="peer-left")
    assert sender.of_type("peer-left") == [{"type": "peer-left", "id": rd.member.id}]
    assert b.peer_count == 0


@pytest_twisted.inlineCallbacks
def test_the_grace_period_running_out_sends_peer_left(hubs):
    a, b = yield hubs(2, resume_grace=0.5)
    other = Connection()
    yield joining(a, "room", other)
    rd = yield joining(b, "room", Connection())
    b.drop(rd.member)
    yield sleep(0.3)
    assert other.of_type("peer-left") == []
    yield until(lambda: other.of_type("peer-left"), timeout=2, what="peer-left")


@pytest_twisted.inlineCallbacks
def test_resume_on_the_same_process_supersedes_a_half_open_socket(hubs):
    a, b = yield hubs(2)
    other = Connection()
    ro = yield joining(b, "room", other)
    old = Connection()
    first = yield joining(a, "room", old)
    new = Connection()
    again = yield joining(a, "room", new, first.token)
    assert again.resumed and again.member.id == first.member.id
    assert old.superseded
    b.signal(ro.member, first.member.id, b'"to the new socket"')
    yield until(lambda: new.of_type("signal"), what="signal")
    assert old.of_type("signal") == []
    assert other.of_type("peer-left") == [] and len(other.of_type("peer-joined")) == 1


@pytest_twisted.inlineCallbacks
def test_a_resume_moves_the_seat_and_the_old_process_lets_go(away):
    a, b, ro, first = away.a, away.b, away.other_seat, away.first
    moved = yield joining(b, "room", Connection(), first.token)
    assert moved.resumed and [orjson.loads(p) for p in moved.backlog] == [
        {"type": "signal", "from": ro.member.id, "data": "queued"}]
    yield until(lambda: a.peer_count == 0, what="process a forgetting the seat")
    assert a.room_count == 0


@pytest_twisted.inlineCallbacks
def test_redis_hub_resumes_without_a_join(hubs):
    """Declared, so the adapter lets a live resume token past an expired invite."""
    hub, = yield hubs(1)
    assert verifyObject(IResumingHub, hub)


@pytest_twisted.inlineCallbacks
def test_resume_alone_moves_a_live_seat_with_its_queue_and_the_room_sees_nothing(away):
    a, b, other, ro, first = away.a, away.b, away.other, away.other_seat, away.first
    moved = yield joining(b, "room", Connection(), first.token, resume_only=True)
    assert moved.resumed and moved.member.id == first.member.id
    assert moved.peers == [ro.member.id]
    assert [orjson.loads(p) for p in moved.backlog] == [
        {"type": "signal", "from": ro.member.id, "data": "queued"}]
    yield until(lambda: a.peer_count == 0, what="process a forgetting the seat")
    assert other.of_type("peer-left") == [] and len(other.of_type("peer-joined")) == 1


@pytest_twisted.inlineCallbacks
def test_resume_alone_with_a_stale_token_is_none_and_seats_nobody(hubs, redis):
    a, b = yield hubs(2)
    other = Connection()
    ro = yield joining(b, "room", other)
    first = yield joining(a, "room", Connection())
    again = yield joining(a, "room", Connection(), first.token)  # first.token is now used up
    keys = redis.command("DBSIZE")
    for stale in (first.token, "never-a-token", ""):
        for hub in (a, b):
            newcomer = Connection()
            assert (yield refusal(hub, "room", newcomer, stale)) is NotResumable
            assert newcomer.received == [] and not newcomer.superseded
    yield sleep(0.2)
    assert redis.command("ZCARD", "rtcsvc:room:room") == b":2"
    assert redis.command("DBSIZE") == keys
    assert len(other.of_type("peer-joined")) == 1 and other.of_type("peer-left") == []
    assert a.members_of("room") == b.members_of("room") == [ro.member.id, again.member.id]
    assert a.peer_count == 1 and b.peer_count == 1


@pytest_twisted.inlineCallbacks
def test_resume_alone_with_a_token_of_another_room_is_none_and_changes_nothing(hubs, redis):
    a, b = yield hubs(2)
    elsewhere = Connection()
    first = yield joining(a, "open-one", elsewhere)
    a.drop(first.member)
    yield sleep(0.1)
    assert (yield refusal(b, "team", Connection(), first.token)) is NotResumable
    assert b.room_count == 0 and redis.command("EXISTS", "rtcsvc:room:team") == b":0"
    # The token was not spent: it still resumes its own room.
    back = yield joining(b, "open-one", Connection(), first.token, resume_only=True)
    assert back.resumed and back.member.id == first.member.id


@pytest_twisted.inlineCallbacks
def test_the_peers_of_a_process_that_stops_heartbeating_leave(hubs):
    a, b = yield hubs(2, lease_ttl=0.9)
    watcher = Connection()
    yield joining(a, "room", watcher)
    rb = yield joining(b, "room", Connection())
    # Process b "dies": no more heartbeats, connections cut, nothing cleaned up.
    b._lease.stop()
    for factory in b._link._factories:
        factory.disconnect()
    yield until(lambda: watcher.of_type("peer-left"), timeout=3, what="peer-left")
    assert watcher.of_type("peer-left") == [{"type": "peer-left", "id": rb.member.id}]


@pytest_twisted.inlineCallbacks
def test_joins_fail_with_unavailable_when_redis_is_unreachable():
    hub = RedisHub(reactor, parse_redis_url(f"redis://127.0.0.1:{free_port()}/0"))
    hub.start()
    try:
        with pytest.raises(Unavailable):
            yield joining(hub, "room", Connection())
    finally:
        hub.close()
        yield hub.stop()
