"""The Redis hub's local parts without Redis: the channel codec, the seat table and the joins in
flight, driven by a Clock and a fake script runner (what a script would publish is fed to them
as the channel would)."""

import re

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st
from twisted.internet import defer
from twisted.internet.task import Clock

from rtcsvc import redis_channel
from rtcsvc.hub import NotResumable, RoomFull, Unavailable, UnknownPeer
from rtcsvc.redis_joins import Joins
from rtcsvc.redis_lua import SCRIPTS
from rtcsvc.redis_seats import SeatTable
from tests.support.peers import RecordingConnection as Connection


class Scripts:
    """A fake script runner: records each call; the test answers it (or never does)."""

    def __init__(self):
        self.calls = []

    def __call__(self, script, *args):
        d = defer.Deferred()
        self.calls.append((script, args, d))
        return d

    def named(self, script):
        return [args for name, args, _ in self.calls if name == script]

    def answer(self, index, value):
        self.calls[index][2].callback(value)


def make(grace=30.0, backlog_limit=1024, timeout=5.0):
    clock, scripts = Clock(), Scripts()
    seats = SeatTable(clock, scripts, grace, backlog_limit)
    joins = Joins(clock, scripts, seats, max_peers=6, timeout=timeout)
    return clock, scripts, seats, joins


def welcome(req, peer, members, resumed=False):
    snapshot = ",".join(f"{p}:{seq}" for p, seq in members.items()).encode()
    return redis_channel.decode(redis_channel.encode(
        b"W", req, peer.encode(), b"1" if resumed else b"0", snapshot))


def seated(joins, seats, scripts, peer, members, conn=None):
    """Run one join to the end: reply 'joined', then its welcome marker."""
    conn = conn or Connection()
    joins.begin("room", conn, "", False)
    index = len(scripts.calls) - 1
    req = scripts.calls[index][1][5]
    scripts.answer(index, [b"joined", peer.encode()])
    joins.welcome(welcome(req, peer, members))
    return conn, seats.seats[peer]


# -- the channel codec


@given(st.lists(st.text("abcXYZ019_-", min_size=1), min_size=1), st.binary())
def test_a_signal_message_decodes_to_its_recipients_and_payload_whatever_the_payload(ids, body):
    message = redis_channel.encode(b"S", ",".join(ids).encode(), body)
    assert redis_channel.decode(message) == redis_channel.Signal(ids, body)


def test_every_kind_round_trips_and_the_lua_encoders_are_made_from_the_same_definition():
    assert redis_channel.decode(redis_channel.encode(b"J", b"r", b"p", b"7", b"a,b")) == \
        redis_channel.Joined("r", "p", 7, ["a", "b"])
    assert redis_channel.decode(redis_channel.encode(b"L", b"r", b"p", b"")) == \
        redis_channel.Left("r", "p", [])
    assert redis_channel.decode(redis_channel.encode(b"W", b"3", b"p", b"1", b"a:1,p:2.0")) == \
        redis_channel.Welcome(b"3", "p", True, {"a": 1, "p": 2})
    assert redis_channel.decode(b"D\np\n4") == redis_channel.Dropped("p", "4")
    assert redis_channel.decode(b"M\np") == redis_channel.Moved("p")
    lua = redis_channel.lua_encoders()
    for kind in redis_channel.KINDS:
        assert f"local function msg_{kind.tag.decode()}({', '.join(kind.fields)})" in lua


def test_the_scripts_publish_only_through_the_generated_encoders():
    for name, text in SCRIPTS.items():
        publishes = re.findall(r"'PUBLISH', chan\([^)]*\), (\w+)\(", text)
        assert all(p.startswith("msg_") for p in publishes), name
        assert not re.search(r"'[SJLWDM]\\n'", text.replace(redis_channel.lua_encoders(), "")), name


def test_an_unknown_kind_is_refused_not_guessed():
    with pytest.raises(redis_channel.UnknownMessage):
        redis_channel.decode(b"Z\nwhatever")
    with pytest.raises(redis_channel.UnknownMessage):
        redis_channel.decode(b"J\nonly-a-room")


# -- joins in flight


def test_a_join_completes_when_both_the_reply_and_the_welcome_are_in_whatever_their_order():
    for reply_first in (True, False):
        _, scripts, seats, joins = make()
        conn = Connection()
        joins.begin("room", conn, "", False)
        req = scripts.calls[0][1][5]
        marker = welcome(req, "p1", {"p0": 1, "p1": 2})
        if reply_first:
            scripts.answer(0, [b"joined", b"p1"])
            assert not conn.answer.called
            joins.welcome(marker)
        else:
            joins.welcome(marker)
            assert not conn.answer.called
            scripts.answer(0, [b"joined", b"p1"])
        result = conn.answer.result
        assert result.member.id == "p1" and result.peers == ["p0"] and not result.resumed


def test_what_arrives_between_the_welcome_and_the_answer_is_held_and_comes_after_the_backlog():
    _, scripts, seats, joins = make()
    conn = Connection()
    joins.begin("room", conn, "old-token", False)
    req = scripts.calls[0][1][5]
    joins.welcome(welcome(req, "p1", {"p0": 1, "p1": 2}, resumed=True))
    seats.receive(redis_channel.Signal(["p1"], b'{"n":2}'))
    assert conn.payloads == []
    scripts.answer(0, [b"resumed", b"p1", [b'{"n":1}']])
    result = conn.answer.result
    assert result.resumed and result.backlog == [b'{"n":1}', b'{"n":2}']


def test_full_and_stale_replies_are_refusals_and_seat_nobody():
    _, scripts, seats, joins = make()
    full, stale = Connection(), Connection()
    joins.begin("room", full, "", False)
    joins.begin("room", stale, "t", True)
    scripts.answer(0, [b"full"])
    scripts.answer(1, [b"stale"])
    assert full.answer.result.check(RoomFull)
    assert stale.answer.result.check(NotResumable)
    full.answer.addErrback(lambda _: None)
    stale.answer.addErrback(lambda _: None)
    assert seats.seats == {} and seats.joining_ids == set()


def test_a_join_redis_does_not_answer_in_time_is_unavailable_and_its_late_seat_given_back():
    clock, scripts, seats, joins = make(timeout=5)
    conn = Connection()
    joins.begin("room", conn, "", False)
    clock.advance(5)
    assert conn.answer.result.check(Unavailable)
    conn.answer.addErrback(lambda _: None)
    scripts.answer(0, [b"joined", b"late"])
    assert scripts.named("leave") == [("late",)]


# -- the seat table


def test_local_live_peers_get_signals_directly_and_the_others_go_through_redis():
    _, scripts, seats, joins = make()
    a_conn, a = seated(joins, seats, scripts, "a", {"a": 1})
    b_conn, b = seated(joins, seats, scripts, "b", {"a": 1, "b": 2})
    seats.receive(redis_channel.Joined("room", "remote", 3, []))
    payload, remote = seats.route(a, None, b'"hi"')
    assert remote == ["remote"]
    assert orjson.loads(b_conn.payloads[-1]) == {"type": "signal", "from": "a", "data": "hi"}
    assert seats.signals_relayed == 1
    with pytest.raises(UnknownPeer):
        seats.route(a, "nobody", b"1")


def test_a_dropped_seat_keeps_what_was_routed_before_redis_confirmed_the_drop_in_order():
    _, scripts, seats, joins = make()
    _, a = seated(joins, seats, scripts, "a", {"a": 1})
    seats.drop(a)
    assert scripts.named("drop") == [("a",)]
    seats.receive(redis_channel.Signal(["a"], b"1"))
    seats.receive(redis_channel.Signal(["a"], b"2"))
    seats.receive(redis_channel.Dropped("a", "1"))
    seats.receive(redis_channel.Signal(["a"], b"3"))  # queued by Redis itself from now on
    assert scripts.named("stragglers") == [("a", "1", b"1", b"2")]


def test_a_dropped_seat_expires_after_the_grace_period_on_the_clock():
    clock, scripts, seats, joins = make(grace=30)
    _, a = seated(joins, seats, scripts, "a", {"a": 1})
    seats.drop(a)
    clock.advance(29)
    assert scripts.named("expire") == [] and "a" in seats.seats
    clock.advance(1)
    assert scripts.named("expire") == [("a",)] and seats.seats == {} and seats.rooms == {}


def test_a_seat_removed_by_redis_or_taken_over_elsewhere_closes_its_socket():
    _, scripts, seats, joins = make()
    a_conn, _ = seated(joins, seats, scripts, "a", {"a": 1})
    b_conn, _ = seated(joins, seats, scripts, "b", {"a": 1, "b": 2})
    seats.receive(redis_channel.Left("room", "a", ["b"]))
    assert a_conn.superseded and "a" not in seats.seats
    assert b_conn.of_type("peer-left") == [{"type": "peer-left", "id": "a"}]
    seats.receive(redis_channel.Moved("b"))
    assert b_conn.superseded and seats.seats == {}


def test_register_records_are_our_seats_with_their_join_order_and_state():
    _, scripts, seats, joins = make()
    _, a = seated(joins, seats, scripts, "a", {"a": 4})
    token = a.token
    seats.drop(a)
    assert seats.records() == ["a", "room", "4", token, "dropped"]
