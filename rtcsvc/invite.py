"""Invite tokens: optional access control for deployments that want closed rooms.

By default a room is open to whoever knows its name, and names made by the app carry 128
random bits. A deployment that must decide who may join (an intranet portal, say) shares a
secret with rtcsvc (``--room-secret-file``) and mints links whose ``token`` is an HMAC over the
room and an expiry time; rtcsvc then refuses any join without a valid, unexpired token for that
very room. ``rtcsvc-invite`` (``main`` below) mints such links from the command line.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import hmac
import re
import secrets
import sys
import time
from collections.abc import Sequence
from pathlib import Path

ROOM = re.compile(r"[A-Za-z0-9_-]{1,64}\Z")


def _signature(secret: bytes, room: str, expiry: int) -> str:
    mac = hmac.new(secret, f"rtcsvc-room-v1:{room}:{expiry}".encode(), hashlib.sha256)
    return base64.urlsafe_b64encode(mac.digest()).rstrip(b"=").decode("ascii")


def mint_room_token(secret: bytes, room: str, expiry: int) -> str:
    """A token admitting its bearer to ``room`` until the unix time ``expiry``."""
    return f"{expiry}.{_signature(secret, room, expiry)}"


#: What a token minted here looks like: up to 12 ASCII digits, a dot, unpadded base64url.
#: Checked before anything else, so that no other code sees a token of any other shape
#: (``str.isdigit()`` accepts "²", which ``int()`` does not; ``hmac.compare_digest`` raises on
#: non-ASCII text).
TOKEN = re.compile(r"([0-9]{1,12})\.([A-Za-z0-9_-]{1,128})\Z", re.ASCII)


def room_token_valid(secret: bytes, room: str, token: str | None, now: float) -> bool:
    """Whether ``token`` admits to ``room`` at unix time ``now``; never raises for any text."""
    match = TOKEN.match(token) if token else None
    if match is None:
        return False
    expiry = int(match.group(1))
    if expiry < now:
        return False
    return hmac.compare_digest(match.group(2), _signature(secret, room, expiry))


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="rtcsvc-invite",
        description="Print an invite link for a room of an rtcsvc started with "
                    "--room-secret-file.",
    )
    parser.add_argument("base_url", help="the site's public URL, e.g. https://chat.example.com")
    parser.add_argument("room", nargs="?", help="room name (default: a new random one)")
    parser.add_argument("--room-secret-file", required=True, type=Path,
                        help="the same file rtcsvc was given")
    parser.add_argument("--ttl", type=int, default=86400,
                        help="seconds the link stays valid (default: 86400)")
    args = parser.parse_args(argv)
    room = args.room or secrets.token_urlsafe(16)
    if not ROOM.match(room):
        parser.error("the room name must match [A-Za-z0-9_-]{1,64}")
    try:
        secret = args.room_secret_file.read_bytes().strip()
    except OSError as e:
        parser.error(f"cannot read {args.room_secret_file}: {e.strerror}")
    token = mint_room_token(secret, room, int(time.time()) + args.ttl)
    print(f"{args.base_url.rstrip('/')}/r/{room}?token={token}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
