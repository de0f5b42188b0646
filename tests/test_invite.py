"""Closed rooms: invite tokens minted with --room-secret-file's secret."""

import pytest
import pytest_twisted
from hypothesis import given
from hypothesis import strategies as st

from rtcsvc.invite import main, mint_room_token, room_token_valid
from tests.support.clients import AutobahnClient

SECRET = b"a-room-secret-of-enough-length"


def test_a_token_admits_to_its_room_until_it_expires():
    token = mint_room_token(SECRET, "room", 2000)
    assert room_token_valid(SECRET, "room", token, now=1999)
    assert not room_token_valid(SECRET, "room", token, now=2001)
    assert not room_token_valid(SECRET, "other", token, now=1999)
    assert not room_token_valid(b"another-secret-of-enough-length", "room", token, now=1999)


@pytest.mark.parametrize("forged", [None, "", "2000", "2000.", "x.y", "9999999999999.abc",
                                    "2000.AAAA", "-1.abc"])
def test_malformed_or_forged_tokens_are_refused(forged):
    assert not room_token_valid(SECRET, "room", forged, now=1000)


@pytest.mark.parametrize("token", ["\u00b2.x", "\u00b2000.abc", "1.\u00e9", "\uff12\uff10.abc",
                                   "\u0663.x", "9999999999.\u00e9", "2000.a\nb", "2000.abc\n",
                                   " 2000.abc"])
def test_non_ascii_or_odd_tokens_are_refused_without_raising(token):
    """str.isdigit() accepts "\u00b2", which int() refuses: such a token gave HTTP 500."""
    assert room_token_valid(SECRET, "room", token, now=1000) is False


@given(st.text(max_size=40))
def test_no_text_makes_the_check_raise(token):
    assert room_token_valid(SECRET, "room", token, now=1000) in (True, False)


def test_rtcsvc_invite_prints_a_working_link(tmp_path, capsys):
    secret = tmp_path / "secret"
    secret.write_bytes(SECRET + b"\n")
    main(["https://chat.example.com/", "team-room", "--room-secret-file", str(secret),
          "--ttl", "600"])
    link = capsys.readouterr().out.strip()
    prefix = "https://chat.example.com/r/team-room?token="
    assert link.startswith(prefix)
    import time
    assert room_token_valid(SECRET, "team-room", link[len(prefix):], time.time())


@pytest_twisted.inlineCallbacks
def test_with_a_room_secret_only_invited_joins_are_admitted(make_server, tmp_path):
    import time

    secret = tmp_path / "room-secret"
    secret.write_bytes(SECRET)
    server = make_server("--room-secret-file", str(secret))
    token = mint_room_token(SECRET, "closed", int(time.time()) + 60)
    for query in ("", "?token=" + mint_room_token(SECRET, "other", int(time.time()) + 60),
                  "?token=" + mint_room_token(SECRET, "closed", int(time.time()) - 1)):
        # Upgraded, then told why (a browser cannot read an HTTP status), then closed.
        uninvited = yield AutobahnClient.connect(f"ws://{server}/ws/closed{query}")
        error = yield uninvited.recv()
        assert error["type"] == "error" and error["code"] == "not-invited"
        assert (yield uninvited.wait_closed()) == 4003
    client = yield AutobahnClient.connect(f"ws://{server}/ws/closed?token={token}")
    welcome = yield client.recv()
    assert welcome["type"] == "welcome" and welcome["room"] == "closed"
    yield client.close()
