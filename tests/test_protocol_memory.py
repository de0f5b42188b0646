"""Protocol v1 in memory: frame-level abuse, the handshake's guards, resume and per-client caps.

The in-memory rung (``tests/support/memws``): the real factory, protocol and hub on a fake
clock, fed hand-built frames. Each test here is one defence of docs/reliability.md and fails
without it; what needs a real socket (TCP back-pressure, a real process's memory) stays in
``tests/test_hardening_*.py``.
"""

from __future__ import annotations

import pytest
from twisted.logger import globalLogPublisher

from rtcsvc.invite import mint_room_token
from rtcsvc.admission import HANDSHAKE_BURST_SECONDS
from rtcsvc.protocol import ABUSER_FLUSH_TIMEOUT
from tests.support.memws import (
    CLOSE, CONTINUATION, PING, PONG, TEXT, HandshakeRefused, MemoryServer, client_frame, text,
)

SECRET = b"an invite secret of at least sixteen bytes"


@pytest.fixture
def log_lines():
    """Every event logged while the test runs, formatted, with whether it carried a failure."""
    from twisted.logger import formatEvent

    events = []

    def observe(event):
        events.append((formatEvent(event), "log_failure" in event))

    globalLogPublisher.addObserver(observe)
    yield events
    globalLogPublisher.removeObserver(observe)


def pair(server, room="room"):
    a, wa = server.join(room)
    b, wb = server.join(room)
    a.new_frames()
    return a, wa, b, wb


# -- item 2: every frame is metered


@pytest.mark.parametrize("flood", ["ping", "pong", "empty-continuation"])
def test_a_flood_of_control_frames_or_empty_fragments_is_metered_then_closed_with_1008(flood):
    """Defaults (50/s, burst 300): 20,000 frames at once; at most the burst is answered, then
    1008 and nothing more of the flood is read. Without metering, 20,000 pongs and no close."""
    server = MemoryServer()
    client, _ = server.join()
    if flood == "ping":
        wire = client_frame(PING) * 20_000
    elif flood == "pong":
        wire = client_frame(PONG) * 20_000
    else:
        wire = client_frame(TEXT, b"", fin=False) + client_frame(CONTINUATION, b"", fin=False) \
            * 20_000
    client.send(wire)
    frames = client.new_frames()
    pongs = [f for f in frames if f.opcode == PONG]
    errors = [f.message["code"] for f in frames if f.opcode == TEXT]
    assert len(pongs) <= 300
    assert errors == ["rate-limited"]  # one per run of refusals
    assert frames[-1].opcode == CLOSE and frames[-1].close_code == 1008
    assert client.closed and client.protocol.state == client.protocol.STATE_CLOSED
    assert server.errors("rate-limit-close") == 1
    client.finish()
    assert server.hub.peer_count == 0 and not server.factory.connections


def test_after_a_ping_flood_is_closed_the_room_next_door_still_relays_in_order():
    server = MemoryServer()
    flooder, _ = server.join("flood")
    a, wa, b, wb = pair(server, "calm")
    flooder.send(client_frame(PING) * 5000)
    for n in range(50):
        a.send_json({"type": "signal", "to": wb["id"], "data": n})
    assert [m["data"] for m in b.new_messages()] == list(range(50))


def test_frames_within_the_burst_pass_fragments_and_pings_included():
    """A fragmented message with pings between its fragments is relayed whole and every
    ping answered, as long as the frames fit the bucket."""
    server = MemoryServer()
    a, wa, b, wb = pair(server)
    payload = b'{"type":"signal","to":"%s","data":"abcdef"}' % wb["id"].encode()
    pieces = [payload[i:i + 7] for i in range(0, len(payload), 7)]
    wire = b""
    for i, piece in enumerate(pieces):
        wire += client_frame(TEXT if i == 0 else CONTINUATION, piece, fin=i == len(pieces) - 1)
        wire += client_frame(PING, b"%d" % i)
    a.send(wire)
    assert [m["data"] for m in b.new_messages()] == ["abcdef"]
    assert [f.payload for f in a.new_frames() if f.opcode == PONG] == \
        [b"%d" % i for i in range(len(pieces))]


def test_a_message_with_a_refused_fragment_is_dropped_and_said_once():
    server = MemoryServer(rate=1.0, burst=5)  # 7 frames: the last 2 refused
    a, wa, b, wb = pair(server)
    payload = b'{"type":"signal","to":"%s","data":"abcdef"}' % wb["id"].encode()
    a.send(client_frame(TEXT, payload[:10], fin=False)
           + b"".join(client_frame(CONTINUATION, payload[i:i + 10], fin=False)
                      for i in range(10, len(payload) - 10, 10))
           + client_frame(CONTINUATION, payload[len(payload) - 10:]))
    assert b.new_messages() == []
    assert [m["code"] for m in a.new_messages()] == ["rate-limited"]
    server.clock.advance(5)
    a.send_json({"type": "signal", "to": wb["id"], "data": "later"})
    assert [m["data"] for m in b.new_messages()] == ["later"]


def test_an_abuser_that_does_not_take_its_close_frame_is_cut_after_the_flush_timeout():
    server = MemoryServer()
    client, _ = server.join()
    client.send(client_frame(PING) * 1000)
    assert client.closed and not client.transport.aborted  # close frame first, then FIN
    server.clock.advance(ABUSER_FLUSH_TIMEOUT)
    assert client.transport.aborted


def test_an_abuser_that_comes_back_has_lost_its_handshake_burst():
    server = MemoryServer()
    client, _ = server.join()
    client.send(client_frame(PING) * 1000)
    client.finish()
    with pytest.raises(HandshakeRefused) as refused:
        server.connect()
    assert refused.value.status == 429 and server.refused("handshake-rate") == 1
    server.clock.advance(1.5 / server.factory.limits.handshake_rate)
    server.join()  # the rate itself still applies: it may come back, slowly
    other, _ = server.join(address="198.51.100.7")  # and nobody else paid for it


def test_with_the_rate_limit_off_frames_are_not_metered():
    """--rate-limit 0 turns metering off entirely (bench/run and the load tests use it)."""
    server = MemoryServer(rate=0)
    client, _ = server.join()
    client.send(client_frame(PING) * 2000)
    assert len([f for f in client.new_frames() if f.opcode == PONG]) == 2000
    assert not client.closed


# -- item 2: every byte queued for a client counts


def test_pongs_for_a_client_that_stopped_reading_count_against_the_send_buffer():
    """Pings within the rate, a client that never reads: its pongs fill --max-send-buffer
    (4 KiB here) and it is dropped as a slow reader. Without the count, pongs pile up."""
    server = MemoryServer(max_send_buffer=4096)
    client, _ = server.join()
    client.protocol.pauseProducing()  # what the transport says once its buffer is full
    for _ in range(40):
        client.send(client_frame(PING, b"p" * 125))
    assert client.transport.aborted
    assert server.errors("slow-reader") == 1
    assert client.written() < 4096 + 2 * 127  # what was written before it counted as full


def test_error_answers_for_a_client_that_stopped_reading_count_against_the_send_buffer():
    server = MemoryServer(max_send_buffer=4096)
    client, _ = server.join()
    client.protocol.pauseProducing()
    for _ in range(200):
        client.send(text({"type": "nonsense"}))
    assert client.transport.aborted and server.errors("slow-reader") == 1


# -- item 3: the handshake never fails with a traceback


@pytest.mark.parametrize("token", ["\u00b2.x", "1.\u00e9", "\uff11\uff12.abc", "2000.a\nb",
                                   "\u0663\u0663.x", "9999999999.\u00e9"])
def test_a_non_ascii_invite_token_is_not_invited_not_a_500(token, log_lines):
    server = MemoryServer(room_secret=SECRET)
    client = server.connect("team", query={"token": token})
    assert [m["code"] for m in client.new_messages()] == ["not-invited"]
    assert client.close_code() == 4003
    assert not any(failure for _, failure in log_lines)


def test_an_unexpected_error_in_the_handshake_is_one_line_and_a_bare_500(log_lines):
    server = MemoryServer()
    secret_text = "token=4000000000.c2VjcmV0"

    def broken(origin, view):
        raise ValueError(f"bug quoting {secret_text}")

    server.factory.origins.allows = broken
    with pytest.raises(HandshakeRefused) as refused:
        server.connect()
    assert refused.value.status == 500
    assert secret_text.encode() not in refused.value.head
    lines = [line for line, _ in log_lines if "unexpected" in line]
    assert len(lines) == 1 and "ValueError" in lines[0] and "test_protocol_memory.py" in lines[0]
    assert not any(failure for _, failure in log_lines)
    assert all(secret_text not in line for line, _ in log_lines)
    assert server.refused("error") == 1
    assert server.factory.admission.admitted == 0 and not server.factory.admission.per_client


def test_an_unexpected_error_while_joining_is_one_line_and_close_1011(log_lines):
    server = MemoryServer()

    def broken(room, connection, token=None):
        raise KeyError("a resume token, say")

    server.hub.join = broken
    client = server.connect()
    assert client.close_code() == 1011
    lines = [line for line, _ in log_lines if "unexpected" in line]
    assert len(lines) == 1 and "KeyError" in lines[0]
    assert not any(failure for _, failure in log_lines)
    assert all("a resume token" not in line for line, _ in log_lines)


# -- item 4: a live resume token resumes, whatever became of the invite


def closed_room_member(server, room="team", ttl=60):
    now = int(server.clock.seconds())
    token = mint_room_token(SECRET, room, now + ttl)
    client, welcome = server.join(room, query={"token": token})
    return client, welcome, token


def test_a_resume_with_an_expired_invite_gets_the_same_seat_and_its_queued_signals():
    server = MemoryServer(room_secret=SECRET)
    a, wa, _ = closed_room_member(server, ttl=60)
    b, wb, invite = closed_room_member(server, ttl=60)
    a.new_frames()
    server.clock.advance(59)
    b.lose()  # the socket blips...
    server.clock.advance(5)  # ...and by the time it is back, the invite has expired
    a.send_json({"type": "signal", "to": wb["id"], "data": "while away"})
    back, welcome = server.join("team", query={"token": invite, "resume": wb["resume"]})
    assert welcome["resumed"] is True and welcome["id"] == wb["id"]
    assert [m["data"] for m in back.new_messages()] == ["while away"]
    assert a.new_messages() == []  # the room saw neither peer-left nor peer-joined
    assert server.refused("invite") == 0


def test_a_stale_resume_token_with_an_expired_invite_is_not_invited_and_seats_nobody():
    server = MemoryServer(room_secret=SECRET)
    a, wa, _ = closed_room_member(server, ttl=60)
    b, wb, invite = closed_room_member(server, ttl=60)
    b.lose()
    server.clock.advance(61)  # past the invite, and past the resume grace (30 s)
    assert [m["type"] for m in a.new_messages()] == ["peer-joined", "peer-left"]
    for resume in (wb["resume"], "not-a-token", None):
        query = {"token": invite, **({"resume": resume} if resume else {})}
        late = server.connect("team", query=query)
        assert [m["code"] for m in late.new_messages()] == ["not-invited"]
        assert late.close_code() == 4003
    assert a.new_messages() == []  # no fresh seat: nobody joined
    assert server.hub.members_of("team") == [wa["id"]]


def test_a_resume_token_from_another_room_does_not_open_a_closed_room():
    server = MemoryServer(room_secret=SECRET)
    a, wa, _ = closed_room_member(server, room="open-one")
    a.lose()
    intruder = server.connect("team", query={"resume": wa["resume"]})
    assert intruder.close_code() == 4003
    assert server.hub.members_of("team") == []


# -- item 6: clients by IPv6 /64, handshakes per client


def test_addresses_in_one_ipv6_64_share_the_per_client_cap():
    server = MemoryServer(max_per_client=2)
    server.join(address="2001:db8:1:2::1")
    server.join(address="2001:db8:1:2:ffff:ffff:ffff:ffff")
    with pytest.raises(HandshakeRefused) as refused:
        server.connect(address="2001:db8:1:2::3")
    assert refused.value.status == 429 and server.refused("client-limit") == 1
    server.join(address="2001:db8:1:3::1")  # the next /64 is someone else


def test_an_ipv4_mapped_address_counts_as_its_ipv4_address():
    server = MemoryServer(max_per_client=1)
    server.join(address="198.51.100.7")
    with pytest.raises(HandshakeRefused):
        server.connect(address="::ffff:198.51.100.7")


def test_a_closed_slot_in_a_64_is_given_back():
    server = MemoryServer(max_per_client=1)
    client, _ = server.join(address="2001:db8::1")
    client.send(client_frame(CLOSE, b"\x03\xe8"))
    client.finish()
    server.join(address="2001:db8::2")
    assert server.factory.admission.per_client == {"2001:db8::/64": 1}


def test_handshakes_past_the_burst_get_429_until_the_rate_refills():
    server = MemoryServer(handshake_rate=2)
    burst = 2 * HANDSHAKE_BURST_SECONDS
    for n in range(burst):
        server.join(f"room{n}")
    with pytest.raises(HandshakeRefused) as refused:
        server.connect()
    assert refused.value.status == 429 and server.refused("handshake-rate") == 1
    server.join(address="2001:db8::1")  # another client has its own budget
    server.clock.advance(0.6)
    server.join("one-more")
    with pytest.raises(HandshakeRefused):
        server.connect("and-another")


def test_refused_handshakes_count_too_so_bad_requests_cannot_be_sent_without_end():
    server = MemoryServer(handshake_rate=1)
    for _ in range(HANDSHAKE_BURST_SECONDS):
        with pytest.raises(HandshakeRefused) as refused:
            server.connect(path="/ws/bad%20room")
        assert refused.value.status == 400
    with pytest.raises(HandshakeRefused) as refused:
        server.connect()
    assert refused.value.status == 429
