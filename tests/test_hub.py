"""The room core on its own: no sockets, time from a Clock."""

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.internet.task import Clock
from zope.interface.verify import verifyObject

from rtcsvc.hub import Hub, IHub, RoomFull, UnknownPeer
from tests.support.peers import RecordingConnection as Connection
from tests.support.peers import join


def make_hub(**kwargs):
    clock = Clock()
    return Hub(clock, **kwargs), clock


def test_hub_provides_the_hub_interface():
    hub, _ = make_hub()
    assert verifyObject(IHub, hub)


def test_join_lists_earlier_members_in_join_order_and_announces_the_newcomer():
    hub, _ = make_hub()
    a, b, c = Connection(), Connection(), Connection()
    ra = join(hub, "room", a)
    rb = join(hub, "room", b)
    rc = join(hub, "room", c)
    assert ra.peers == []
    assert rb.peers == [ra.member.id]
    assert rc.peers == [ra.member.id, rb.member.id]
    assert a.received == [{"type": "peer-joined", "id": rb.member.id},
                          {"type": "peer-joined", "id": rc.member.id}]
    assert b.received == [{"type": "peer-joined", "id": rc.member.id}]
    assert c.received == []


def test_peer_ids_and_tokens_are_long_random_and_distinct():
    hub, _ = make_hub(max_peers=64)
    results = [join(hub, "room", Connection()) for _ in range(50)]
    ids = {r.member.id for r in results}
    tokens = {r.token for r in results}
    assert len(ids) == 50 and len(tokens) == 50
    # token_urlsafe: 16 bytes -> 22 characters (128 bits), 24 bytes -> 32 (192 bits)
    assert all(len(i) >= 16 for i in ids)
    assert all(len(t) >= 22 for t in tokens)


def test_a_full_room_refuses_the_next_member():
    hub, _ = make_hub(max_peers=2)
    join(hub, "room", Connection())
    join(hub, "room", Connection())
    with pytest.raises(RoomFull):
        join(hub, "room", Connection())
    join(hub, "other", Connection())  # capacity is per room


def test_addressed_signal_reaches_only_its_recipient_with_the_senders_id():
    hub, _ = make_hub()
    a, b, c = Connection(), Connection(), Connection()
    ra, rb, _rc = (join(hub, "room", x) for x in (a, b, c))
    a.received.clear(); b.received.clear(); c.received.clear()
    hub.signal(ra.member, rb.member.id, b'{"sdp":"v=0"}')
    assert b.received == [{"type": "signal", "from": ra.member.id, "data": {"sdp": "v=0"}}]
    assert a.received == [] and c.received == []


def test_signal_without_recipient_reaches_every_other_member_of_the_room_only():
    hub, _ = make_hub()
    a, b, c, outsider = Connection(), Connection(), Connection(), Connection()
    ra = join(hub, "room", a)
    join(hub, "room", b)
    join(hub, "room", c)
    join(hub, "elsewhere", outsider)
    hub.signal(ra.member, None, b"[1,2]")
    for conn in (b, c):
        assert conn.of_type("signal") == [{"type": "signal", "from": ra.member.id, "data": [1, 2]}]
    assert a.of_type("signal") == [] and outsider.received == []
    assert hub.signals_relayed == 2


def test_signal_to_a_stranger_or_to_oneself_is_an_unknown_peer():
    hub, _ = make_hub()
    ra = join(hub, "room", Connection())
    other_room = join(hub, "elsewhere", Connection())
    with pytest.raises(UnknownPeer):
        hub.signal(ra.member, other_room.member.id, b"1")
    with pytest.raises(UnknownPeer):
        hub.signal(ra.member, ra.member.id, b"1")
    with pytest.raises(UnknownPeer):
        hub.signal(ra.member, "nobody", b"1")


def test_leave_tells_the_room_at_once_and_empties_it():
    hub, _ = make_hub()
    a, b = Connection(), Connection()
    ra = join(hub, "room", a)
    rb = join(hub, "room", b)
    hub.leave(rb.member)
    assert a.received[-1] == {"type": "peer-left", "id": rb.member.id}
    hub.leave(ra.member)
    assert hub.room_count == 0 and hub.peer_count == 0
    hub.leave(ra.member)  # twice is harmless


def test_a_dropped_peer_keeps_its_seat_until_the_grace_period_ends():
    hub, clock = make_hub(resume_grace=30)
    a, b = Connection(), Connection()
    join(hub, "room", a)
    rb = join(hub, "room", b)
    hub.drop(rb.member)
    clock.advance(29)
    assert a.of_type("peer-left") == []
    assert hub.peer_count == 2
    clock.advance(1)
    assert a.of_type("peer-left") == [{"type": "peer-left", "id": rb.member.id}]
    assert hub.peer_count == 1


def test_resume_gives_back_the_seat_and_queued_signals_in_order_without_telling_the_room():
    hub, clock = make_hub(resume_grace=30)
    a, b = Connection(), Connection()
    ra = join(hub, "room", a)
    rb = join(hub, "room", b)
    hub.drop(rb.member)
    for n in range(5):
        hub.signal(ra.member, rb.member.id, str(n).encode())
    clock.advance(10)
    b2 = Connection()
    resumed = join(hub, "room", b2, rb.token)
    assert resumed.resumed and resumed.member is rb.member
    assert resumed.peers == [ra.member.id]
    assert [orjson.loads(p)["data"] for p in resumed.backlog] == [0, 1, 2, 3, 4]
    assert resumed.token != rb.token
    hub.signal(ra.member, rb.member.id, b"5")
    assert b2.of_type("signal")[0]["data"] == 5
    clock.advance(60)  # the old expiry was cancelled
    assert a.of_type("peer-left") == [] and a.of_type("peer-joined") == [
        {"type": "peer-joined", "id": rb.member.id}]


def test_a_resume_token_works_once_and_only_in_its_room():
    hub, _ = make_hub()
    ra = join(hub, "room", Connection())
    hub.drop(ra.member)
    elsewhere = join(hub, "other", Connection(), ra.token)
    assert not elsewhere.resumed and elsewhere.member.id != ra.member.id
    first = join(hub, "room", Connection(), ra.token)
    assert first.resumed
    again = join(hub, "room", Connection(), ra.token)
    assert not again.resumed and again.member.id != ra.member.id


def test_resume_while_the_old_socket_looks_alive_supersedes_it():
    hub, _ = make_hub()
    a, a2 = Connection(), Connection()
    ra = join(hub, "room", a)
    result = join(hub, "room", a2, ra.token)
    assert result.resumed and a.superseded


def test_a_stale_token_after_the_grace_period_gets_a_fresh_seat():
    hub, clock = make_hub(resume_grace=5)
    ra = join(hub, "room", Connection())
    hub.drop(ra.member)
    clock.advance(6)
    fresh = join(hub, "room", Connection(), ra.token)
    assert not fresh.resumed and fresh.member.id != ra.member.id


def test_an_absent_peer_whose_queue_overflows_loses_its_seat():
    hub, _ = make_hub(backlog_limit=3)
    a = Connection()
    ra = join(hub, "room", a)
    rb = join(hub, "room", Connection())
    hub.drop(rb.member)
    for n in range(3):
        hub.signal(ra.member, rb.member.id, b"1")
    assert a.of_type("peer-left") == []
    hub.signal(ra.member, rb.member.id, b"1")
    assert a.of_type("peer-left") == [{"type": "peer-left", "id": rb.member.id}]


def test_close_cancels_grace_timers():
    hub, clock = make_hub()
    ra = join(hub, "room", Connection())
    hub.drop(ra.member)
    hub.close()
    assert clock.getDelayedCalls() == []


# -- properties

ROOMS = ["r1", "r2", "r3"]
actions = st.lists(
    st.one_of(
        st.tuples(st.just("join"), st.sampled_from(ROOMS)),
        st.tuples(st.just("signal"), st.integers(0, 30), st.integers(0, 30) | st.none()),
        st.tuples(st.just("leave"), st.integers(0, 30)),
        st.tuples(st.just("drop"), st.integers(0, 30)),
        st.tuples(st.just("resume"), st.integers(0, 30)),
        st.tuples(st.just("tick"), st.floats(0, 20)),
    ),
    max_size=80,
)


@settings(max_examples=300, deadline=None)
@given(actions)
def test_property_signals_stay_in_their_room_and_arrive_in_order_exactly_once(script):
    """Whatever joins, leaves, drops, resumes and waits happen: nothing crosses rooms, and
    each recipient gets the signals sent to it in send order, each once; a seat still
    connected at the end has received every one of them."""
    hub, clock = make_hub(max_peers=4, resume_grace=10)
    seats = []  # dicts: member, room, token, received (list over all its connections), conn
    sent = {}   # (sender id, recipient id) -> seqs sent while the recipient held its seat
    seq = 0

    def connect(seat_or_none, room, token=None):
        conn = Connection()
        result = join(hub, room, conn, token)
        if result.resumed:
            seat = seat_or_none
            seat["received"].extend(orjson.loads(p) for p in result.backlog)
        else:
            seat = {"member": result.member, "room": room, "received": []}
            seats.append(seat)
        conn.received = seat["received"]  # one log per seat, across its connections
        seat["token"], seat["conn"] = result.token, conn
        return seat

    for action in script:
        kind = action[0]
        if kind == "join":
            try:
                connect(None, action[1])
            except RoomFull:
                assert len(hub.members_of(action[1])) == 4
        elif not seats:
            continue
        elif kind == "signal":
            sender = seats[action[1] % len(seats)]["member"]
            if not hub._is_seated(sender):
                continue
            seq += 1
            members = hub.members_of(sender.room.name)
            if action[2] is None:
                targets = [m for m in members if m != sender.id]
                hub.signal(sender, None, str(seq).encode())
            else:
                target = seats[action[2] % len(seats)]["member"].id
                if target not in members or target == sender.id:
                    with pytest.raises(UnknownPeer):
                        hub.signal(sender, target, str(seq).encode())
                    continue
                targets = [target]
                hub.signal(sender, target, str(seq).encode())
            for target in targets:
                sent.setdefault((sender.id, target), []).append(seq)
        elif kind == "leave":
            hub.leave(seats[action[1] % len(seats)]["member"])
        elif kind == "drop":
            hub.drop(seats[action[1] % len(seats)]["member"])
        elif kind == "resume":
            seat = seats[action[1] % len(seats)]
            try:
                connect(seat, seat["room"], seat["token"])
            except RoomFull:
                pass
        elif kind == "tick":
            clock.advance(action[1])

    room_of = {seat["member"].id: seat["room"] for seat in seats}
    for seat in seats:
        me = seat["member"]
        per_sender = {}
        for message in seat["received"]:
            if message["type"] == "signal":
                assert room_of[message["from"]] == seat["room"], "crossed rooms"
                per_sender.setdefault(message["from"], []).append(message["data"])
        still_connected = hub._is_seated(me) and me.connection is not None
        for sender in set(per_sender) | {s for (s, r) in sent if r == me.id}:
            got = per_sender.get(sender, [])
            expected = sent.get((sender, me.id), [])
            assert got == expected[: len(got)], "lost from the middle, reordered or duplicated"
            if still_connected:
                assert got == expected, "a connected seat missed signals"
