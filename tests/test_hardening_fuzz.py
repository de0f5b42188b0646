"""Fuzzing: whatever a client sends, rtcsvc answers as docs/protocol.md says and stays up.

Two levels. In memory, hypothesis throws arbitrary bytes and JSON at ``messages.parse`` and a
real :class:`Hub` (nothing but ``BadMessage`` may escape, and what is relayed is the sender's
data under the sender's own id). Over real sockets, a raw frame writer (``tests/support/rawws``)
sends a real ``twistd rtcsvc`` process what browsers never would: arbitrary JSON, invalid UTF-8,
binary and fragmented frames, a header claiming a gigabyte, abused control frames. After every
example a bystander pair in another room exchanges one more signal, and each test ends by
checking that the pair got every signal, once, in order.
"""

from __future__ import annotations

import itertools
import json
import struct
import time

import orjson
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from twisted.internet.task import Clock

from rtcsvc import messages
from rtcsvc.hub import Hub, UnknownPeer
from tests.support import rawws
from tests.support.rawws import BINARY, CLOSE, CONTINUATION, PING, PONG, TEXT, frame
from tests.support.peers import RecordingConnection, join
from tests.support.service import RtcsvcProcess, wait_for

# -- strategies

json_scalars = (st.none() | st.booleans() | st.floats(allow_nan=False, allow_infinity=False)
                | st.integers(min_value=-(1 << 80), max_value=1 << 80) | st.text(max_size=20))
json_values = st.recursive(
    json_scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner,
                                                                 max_size=4),
    max_leaves=12,
)
#: Objects shaped like protocol messages, so the fuzz reaches past the first checks.
field_values = st.one_of(json_values, st.sampled_from(["signal", "report", "connected",
                                                       "failed", "direct", "relay", "timeout"]))
report_data = st.fixed_dictionaries(
    {},
    optional={"outcome": st.sampled_from(["connected", "failed", "lost"]) | json_scalars,
              "setupMs": st.integers(-5, 700_000) | st.floats(-1, 700_000) | json_scalars,
              "path": st.sampled_from(["direct", "relay", "tcp"]) | json_scalars,
              "reason": st.sampled_from(sorted(messages.REPORT_REASONS)) | json_scalars,
              "ip": st.text(max_size=8)},
)
message_like = st.fixed_dictionaries(
    {"type": st.sampled_from(["signal", "report", "hello", "SIGNAL"]) | json_scalars},
    optional={"to": st.none() | st.text(max_size=24) | json_values,
              "data": report_data | json_values,
              # Fields a client might hope the server believes: it must not.
              "from": st.text(max_size=24), "room": st.text(max_size=24),
              "id": st.text(max_size=24)},
)
any_json = st.one_of(json_values, message_like,
                     st.builds(lambda d: {"type": "report", "data": d}, report_data))


def lone_surrogate(text: str) -> bool:
    try:
        text.encode("utf-8")
        return False
    except UnicodeEncodeError:
        return True


def has_lone_surrogate(value) -> bool:
    if isinstance(value, str):
        return lone_surrogate(value)
    if isinstance(value, list):
        return any(map(has_lone_surrogate, value))
    if isinstance(value, dict):
        return any(has_lone_surrogate(k) or has_lone_surrogate(v) for k, v in value.items())
    return False


def number(value) -> bool:
    return type(value) in (int, float)


def report_ok(data) -> bool:
    """docs/protocol.md's ``report`` rules, read independently of rtcsvc.messages."""
    if type(data) is not dict:
        return False
    setup = data.get("setupMs")
    if not number(setup) or not 0 <= setup <= 600_000:
        return False
    if data.get("outcome") == "connected":
        return data.get("path") in ("direct", "relay") and set(data) <= {"outcome", "setupMs",
                                                                          "path"}
    if data.get("outcome") == "failed":
        return (data.get("reason") in ("ice-failed", "dtls-failed", "timeout",
                                       "negotiation-failed", "media-denied", "other")
                and set(data) <= {"outcome", "setupMs", "reason"})
    return False


def expected_answer(value, partner_id: str):
    """What protocol v1 says happens: ``(errors to the sender, data relayed to the partner)``."""
    if has_lone_surrogate(value):
        return ["bad-message"], []  # not Unicode, so not a JSON text we accept
    if type(value) is not dict:
        return ["bad-message"], []
    kind = value.get("type")
    if kind == "signal":
        if "data" not in value:
            return ["bad-message"], []
        to = value.get("to")
        if to is None:
            return [], [value["data"]]
        if type(to) is not str:
            return ["bad-message"], []
        return ([], [value["data"]]) if to == partner_id else (["unknown-peer"], [])
    if kind == "report":
        return ([], []) if report_ok(value.get("data")) else (["bad-message"], [])
    return ["bad-message"], []


def as_relayed(value):
    """``value`` as a JSON parser keeping 64-bit integers reads it: larger ones are floats."""
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, int):
        return value if -(1 << 63) <= value < 1 << 64 else float(value)
    if isinstance(value, list):
        return [as_relayed(v) for v in value]
    if isinstance(value, dict):
        return {k: as_relayed(v) for k, v in value.items()}
    return value


def same_json(sent, got) -> bool:
    return as_relayed(sent) == got


# -- in memory: the message handler


@settings(max_examples=400, deadline=None)
@given(st.binary(max_size=200) | st.text(max_size=60).map(
    lambda t: t.encode("utf-8", "surrogatepass")))
def test_parse_raises_nothing_but_bad_message_for_any_bytes(payload):
    try:
        messages.parse(payload)
    except messages.BadMessage:
        pass


def _deep(depth: int) -> bytes:
    return b'{"type":"signal","data":' + b"[" * depth + b"]" * depth + b"}"


@settings(max_examples=400, deadline=None)
@given(any_json | st.integers(1, 3000).map(lambda d: ("deep", d)))
def test_the_handler_answers_any_json_with_a_relay_from_the_sender_or_bad_message(value):
    """parse + Hub: only BadMessage/UnknownPeer escape; relayed data is the sender's, intact."""
    if isinstance(value, tuple):
        payload = _deep(value[1])
    else:
        payload = json.dumps(value).encode("utf-8", "surrogatepass")
    hub = Hub(Clock())
    a, b, c = RecordingConnection(), RecordingConnection(), RecordingConnection()
    sender = join(hub, "room", a).member
    partner = join(hub, "room", b).member
    join(hub, "elsewhere", c)
    a.payloads.clear()
    b.payloads.clear()
    try:
        message = messages.parse(payload)
    except messages.BadMessage:
        if isinstance(value, tuple):
            assert value[1] > 200
        else:
            assert expected_answer(value, partner.id)[0] == ["bad-message"]
        return
    if isinstance(message, messages.Report):
        assert not isinstance(value, tuple) and report_ok(value["data"])
        return
    try:
        hub.signal(sender, message.to, message.data)
    except UnknownPeer:
        assert message.to != partner.id
        return
    assert c.payloads == [] and a.payloads == []
    if isinstance(value, tuple):
        assert value[1] < 300
        assert len(b.payloads) == 1
        return
    assert len(b.payloads) == 1
    relayed = orjson.loads(b.payloads[0])
    assert relayed["type"] == "signal" and relayed["from"] == sender.id
    assert set(relayed) == {"type", "from", "data"}
    assert same_json(value["data"], relayed["data"])


# -- over real sockets, against a real process


class Bystanders:
    """Two peers in their own room who keep exchanging numbered signals."""

    def __init__(self, port: int):
        self.a, wa = rawws.join(port, "bystanders")
        self.b, wb = rawws.join(port, "bystanders")
        self.a.recv_type("peer-joined")
        self.ids = wa["id"], wb["id"]
        self.sent = 0
        self.got_a, self.got_b = [], []

    def exchange(self):
        n, self.sent = self.sent, self.sent + 1
        self.a.signal({"n": n}, to=self.ids[1])
        self.b.signal({"n": n}, to=self.ids[0])
        got = self.b.recv_type("signal")
        assert got["from"] == self.ids[0]
        self.got_b.append(got["data"]["n"])
        got = self.a.recv_type("signal")
        assert got["from"] == self.ids[1]
        self.got_a.append(got["data"]["n"])

    def check(self):
        self.exchange()
        assert self.got_a == self.got_b == list(range(self.sent))


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    service = RtcsvcProcess.start(
        tmp_path_factory.mktemp("fuzz"),
        # A deep bucket: the fuzzer sends faster than a browser, and opens hundreds of
        # sockets from one address (the limits have their own tests).
        ["--rate-burst", "100000", "--resume-grace", "1", "--handshake-rate", "0"],
    )
    yield service
    service.stop()
    log = service.log()
    assert "Traceback" not in log and "Unhandled" not in log, log[-3000:]


@pytest.fixture(scope="module")
def bystanders(server):
    pair = Bystanders(server.port)
    yield pair
    pair.a.close()
    pair.b.close()


class Pair:
    """The fuzzer and its partner in one room; ``sync`` returns what each got since last time."""

    def __init__(self, port: int, room: str):
        self.port = port
        self.fuzzer, wf = rawws.join(port, room)
        self.partner, wp = rawws.join(port, room)
        self.fuzzer.recv_type("peer-joined")
        self.fuzzer_id, self.partner_id = wf["id"], wp["id"]
        self.n = 0


@pytest.fixture(scope="module")
def pair(server):
    return Pair(server.port, "fuzz")


@pytest.mark.slow
@settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
@given(any_json)
def test_any_json_text_frame_is_answered_as_the_protocol_says(server, bystanders, pair, value):
    """Arbitrary JSON, wrong types, huge ints, lone surrogates, forged "from"/"room"/"id"."""
    pair.fuzzer.send_raw(frame(TEXT, json.dumps(value).encode("utf-8", "surrogatepass")))
    errors, relayed = _sync_expecting(pair, expected_answer(value, pair.partner_id)[0])
    want_errors, want_relayed = expected_answer(value, pair.partner_id)
    assert errors == want_errors
    assert len(relayed) == len(want_relayed)
    for sent, got in zip(want_relayed, relayed):
        assert same_json(sent, got)
    bystanders.exchange()


def _sync_expecting(pair, expected_errors):
    """Collect the answers to one fuzzed message: ``len(expected_errors)`` errors, then the
    sentinel's unknown-peer, and what the partner got before the broadcast sentinel."""
    pair.n += 1
    marker = f"sentinel-{pair.n}"
    pair.fuzzer.signal(marker)
    pair.fuzzer.signal(0, to=marker)
    errors = []
    for _ in range(len(expected_errors) + 1):
        got = pair.fuzzer.recv()
        assert got["type"] == "error", got
        errors.append(got["code"])
    assert errors[-1] == "unknown-peer"
    relayed = []
    while True:
        got = pair.partner.recv()
        assert got["type"] == "signal" and got["from"] == pair.fuzzer_id, got
        if got["data"] == marker:
            break
        relayed.append(got["data"])
    return errors[:-1], relayed


@pytest.mark.slow
@settings(max_examples=30, deadline=None, suppress_health_check=list(HealthCheck))
@given(st.integers(1, 3000))
def test_deeply_nested_json_is_relayed_or_refused_never_crashing(server, bystanders, pair, depth):
    assume(not 200 < depth < 300)  # orjson writes 255 levels at most: the limit lies between
    pair.fuzzer.send_raw(frame(TEXT, _deep(depth)))
    errors, relayed = _sync_expecting(pair, [] if depth <= 200 else ["bad-message"])
    if depth <= 200:
        assert errors == [] and len(relayed) == 1
    else:
        assert errors == ["bad-message"] and relayed == []
    bystanders.exchange()


@pytest.mark.slow
@settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck))
@given(st.binary(max_size=300), st.booleans())
def test_binary_frames_get_bad_message_and_the_connection_stays(server, bystanders, pair,
                                                                 payload, fragmented):
    if fragmented and len(payload) > 1:
        cut = len(payload) // 2
        pair.fuzzer.send_raw(frame(BINARY, payload[:cut], fin=False)
                             + frame(CONTINUATION, payload[cut:]))
    else:
        pair.fuzzer.send_raw(frame(BINARY, payload))
    errors, relayed = _sync_expecting(pair, ["bad-message"])
    assert errors == ["bad-message"] and relayed == []
    bystanders.exchange()


@pytest.mark.slow
@settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
@given(json_values, st.lists(st.integers(0, 10_000), max_size=6), st.sampled_from(
    ["none", "ping", "pong"]), st.binary(max_size=125))
def test_fragmented_frames_are_reassembled_and_relayed_intact(server, bystanders, pair, data,
                                                              cuts, control, control_payload):
    """Continuations (with control frames between them, as RFC 6455 allows) make one message."""
    assume(not has_lone_surrogate(data))
    payload = json.dumps({"type": "signal", "data": data}).encode()
    points = sorted({min(c, len(payload)) for c in cuts} | {0, len(payload)})
    pieces = [payload[i:j] for i, j in zip(points, points[1:])] or [b""]
    wire = b""
    for index, piece in enumerate(pieces):
        last = index == len(pieces) - 1
        wire += frame(TEXT if index == 0 else CONTINUATION, piece, fin=last)
        if not last and control != "none":
            wire += frame(PING if control == "ping" else PONG, control_payload)
    pongs_before = pair.fuzzer.pongs
    pair.fuzzer.send_raw(wire)
    errors, relayed = _sync_expecting(pair, [])
    assert errors == [] and len(relayed) == 1 and same_json(data, relayed[0])
    if control == "ping" and len(pieces) > 1:
        assert pair.fuzzer.pongs - pongs_before == len(pieces) - 1
    bystanders.exchange()


_rooms = itertools.count()


def _fresh(server, kind):
    # A room of its own: a connection the server fails keeps its seat for the resume grace.
    ws, _ = rawws.join(server.port, f"{kind}-{next(_rooms)}")
    return ws


@pytest.mark.slow
@settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck))
@given(st.binary(min_size=1, max_size=64), st.integers(0, 3), st.binary(max_size=8))
def test_invalid_utf8_in_a_text_message_closes_it_with_1007(server, bystanders, garbage, cut,
                                                            prefix):
    try:
        (prefix + garbage).decode("utf-8")
        assume(False)
    except UnicodeDecodeError:
        pass
    ws = _fresh(server, "utf8")
    payload = prefix + garbage
    if cut and len(payload) > cut:  # invalid UTF-8 split across fragments
        ws.send_raw(frame(TEXT, payload[:cut], fin=False) + frame(CONTINUATION, payload[cut:]))
    else:
        ws.send_raw(frame(TEXT, payload))
    assert ws.wait_closed(3) == 1007
    ws.sock.close()
    bystanders.exchange()


VALID_CLOSE = {1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013}
abuse = st.one_of(
    st.tuples(st.just("long-ping"), st.integers(126, 4000)),
    st.tuples(st.just("fragmented-ping"), st.integers(0, 125)),
    st.tuples(st.just("invalid-close-code"),
              st.integers(0, 65535).filter(lambda c: c not in VALID_CLOSE
                                           and not 3000 <= c <= 4999)),
    st.tuples(st.just("one-byte-close"), st.integers(0, 255)),
    st.tuples(st.just("close-reason-not-utf8"), st.just(0)),
    st.tuples(st.just("unsolicited-pong"), st.integers(0, 125)),
    st.tuples(st.just("ping"), st.integers(0, 125)),
    st.tuples(st.just("valid-close"), st.sampled_from(sorted(VALID_CLOSE - {1002}) + [3000, 4999])),
)


@pytest.mark.slow
@settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
@given(abuse)
def test_control_frame_abuse_is_answered_as_rfc_6455_says(server, bystanders, case):
    kind, n = case
    ws = _fresh(server, "control")
    if kind == "long-ping":
        ws.send_raw(frame(PING, b"p" * n))
        assert ws.wait_closed(3) == 1002
    elif kind == "fragmented-ping":
        ws.send_raw(frame(PING, b"p" * n, fin=False))
        assert ws.wait_closed(3) == 1002
    elif kind == "invalid-close-code":
        ws.send_raw(frame(CLOSE, struct.pack("!H", n)))
        assert ws.wait_closed(3) in (1002, None)  # failed: a 1002 close, or TCP dropped
    elif kind == "one-byte-close":
        ws.send_raw(frame(CLOSE, bytes([n])))
        assert ws.wait_closed(3) in (1002, None)
    elif kind == "close-reason-not-utf8":
        ws.send_raw(frame(CLOSE, struct.pack("!H", 1000) + b"\xff\xfe"))
        assert ws.wait_closed(3) in (1002, 1007, None)
    elif kind == "valid-close":
        ws.send_raw(frame(CLOSE, struct.pack("!H", n)))
        assert ws.wait_closed(3) in (n, 1000)  # a clean closing handshake (Autobahn says 1000)
    else:
        payload = bytes(range(n))
        ws.send_raw(frame(PING if kind == "ping" else PONG, payload))
        ws.signal(0, to="nobody")
        if kind == "ping":
            fin, opcode, got = ws.recv_frame()
            assert (fin, opcode, got) == (True, PONG, payload)
        assert ws.recv()["code"] == "unknown-peer"  # still open and answering
        assert ws.close() == 1000
    ws.sock.close()
    bystanders.exchange()


@pytest.mark.slow
@pytest.mark.parametrize("claimed", [65537, 1 << 24, 1 << 30, (1 << 63) - 1])
def test_a_frame_header_claiming_a_gigabyte_is_refused_at_once_with_1009(server, bystanders,
                                                                         claimed):
    """The size limit applies to the header: the server never waits for (or buffers) the body."""
    rss = rawws.rss_bytes(server.pid)
    ws = _fresh(server, "huge")
    started = time.monotonic()
    ws.send_raw(frame(TEXT, b"", length=claimed) + b"x" * 4096)
    assert ws.recv(2)["code"] == "too-large"
    assert ws.wait_closed(2) == 1009
    assert time.monotonic() - started < 1
    ws.sock.close()
    assert rawws.rss_bytes(server.pid) - rss < 5 << 20
    bystanders.exchange()


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["unmasked", "reserved-opcode", "rsv-bits",
                                  "continuation-first", "text-inside-fragmented"])
def test_malformed_frames_close_with_1002(server, bystanders, kind):
    ws = _fresh(server, "malformed")
    ws.send_raw({
        "unmasked": frame(TEXT, b"{}", masked=False),
        "reserved-opcode": frame(3, b""),
        "rsv-bits": frame(TEXT, b"{}", rsv=4),
        "continuation-first": frame(CONTINUATION, b"{}"),
        "text-inside-fragmented": frame(TEXT, b"{", fin=False) + frame(TEXT, b"}"),
    }[kind])
    assert ws.wait_closed(3) == 1002
    ws.sock.close()
    bystanders.exchange()


@pytest.mark.slow
def test_after_all_the_fuzzing_the_bystanders_got_everything_in_order_and_the_hub_is_clean(
        server, bystanders, pair):
    bystanders.check()
    for ws in (pair.fuzzer, pair.partner):
        assert ws.close() == 1000

    def only_bystanders():
        health = rawws.get_json(server.port)
        return health if (health["rooms"], health["peers"]) == (1, 2) else None

    health = wait_for(only_bystanders, 5, "the fuzzed rooms to empty")
    assert health["connections"] == 2
    assert server.proc.poll() is None
