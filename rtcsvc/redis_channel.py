"""The messages the Redis scripts publish to a process's channel, defined once for both sides.

Each kind is a one-letter tag and named fields, joined by newlines; the last field may hold
newlines itself (a signal's payload, a room's snapshot). :data:`KINDS` is the definition: the
Lua encoders every script uses (:func:`lua_encoders`, spliced into the scripts' prelude by
:mod:`rtcsvc.redis_lua`) and the Python decoder (:func:`decode`) are both made from it, so the
format cannot drift between the two. Lists of peers are comma-separated; a room snapshot is
``peer:seq`` entries, comma-separated, in join order. Pure: no I/O, no Twisted.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Union

SEPARATOR = b"\n"
LIST_SEPARATOR = ","
PAIR_SEPARATOR = ":"


@dataclass(frozen=True)
class Kind:
    tag: bytes
    fields: tuple[str, ...]
    meaning: str


#: Every message a script publishes, in the order of its fields.
KINDS = (
    Kind(b"S", ("ids", "payload"),
         "a signal (an encoded server message) for these live peers of the process"),
    Kind(b"J", ("room", "peer", "seq", "live"),
         "peer joined room with join number seq; live: the process's live seats there"),
    Kind(b"L", ("room", "peer", "live"),
         "peer left room (or was removed); live: the process's live seats there"),
    Kind(b"W", ("req", "peer", "resumed", "snapshot"),
         "the welcome marker of join request req: peer's seat exists ('1': resumed)"),
    Kind(b"D", ("peer", "epoch"),
         "Redis marked peer dropped (its epoch-th change): earlier deliveries were routed live"),
    Kind(b"M", ("peer",), "peer resumed on another process: let its seat go"),
)
BY_TAG = {kind.tag: kind for kind in KINDS}


@dataclass(frozen=True, slots=True)
class Signal:
    ids: list[str]
    payload: bytes


@dataclass(frozen=True, slots=True)
class Joined:
    room: str
    peer: str
    seq: int
    live: list[str]


@dataclass(frozen=True, slots=True)
class Left:
    room: str
    peer: str
    live: list[str]


@dataclass(frozen=True, slots=True)
class Welcome:
    req: bytes
    peer: str
    resumed: bool
    members: dict[str, int]  # peer -> join seq, in join order


@dataclass(frozen=True, slots=True)
class Dropped:
    peer: str
    epoch: str


@dataclass(frozen=True, slots=True)
class Moved:
    peer: str


Message = Union[Signal, Joined, Left, Welcome, Dropped, Moved]


class UnknownMessage(ValueError):
    """Not a message of :data:`KINDS` (another version of rtcsvc sharing the channel?)."""


def _list(text: str) -> list[str]:
    return text.split(LIST_SEPARATOR) if text else []


def decode_snapshot(text: str) -> dict[str, int]:
    members = {}
    for entry in text.split(LIST_SEPARATOR):
        member, _, seq = entry.rpartition(PAIR_SEPARATOR)
        members[member] = int(float(seq))  # Redis writes scores as floats
    return members


def decode(message: bytes) -> Message:
    """One channel message as a typed record; raises :class:`UnknownMessage`."""
    kind = BY_TAG.get(message[:1])
    if kind is None:
        raise UnknownMessage(message[:1])
    parts = message.split(SEPARATOR, len(kind.fields))
    if len(parts) != len(kind.fields) + 1:
        raise UnknownMessage(message[:1])
    tag = kind.tag
    if tag == b"S":
        return Signal(parts[1].decode().split(LIST_SEPARATOR), parts[2])
    if tag == b"W":
        return Welcome(parts[1], parts[2].decode(), parts[3] == b"1",
                       decode_snapshot(parts[4].decode()))
    fields = [part.decode() for part in parts[1:]]
    if tag == b"J":
        return Joined(fields[0], fields[1], int(fields[2]), _list(fields[3]))
    if tag == b"L":
        return Left(fields[0], fields[1], _list(fields[2]))
    if tag == b"D":
        return Dropped(fields[0], fields[1])
    return Moved(fields[0])


def encode(tag: bytes, *fields: bytes) -> bytes:
    """What the Lua encoder of ``tag`` publishes (for tests and fakes of the scripts)."""
    kind = BY_TAG[tag]
    if len(fields) != len(kind.fields):
        raise TypeError(f"{tag!r} takes {', '.join(kind.fields)}")
    return SEPARATOR.join((tag, *fields))


def lua_encoders() -> str:
    """Lua functions ``msg_<tag>(fields...)`` returning the message, and the separators."""
    assert SEPARATOR == b"\n"  # written as Lua's '\n' below
    lines = [f"local LIST_SEP, PAIR_SEP = '{LIST_SEPARATOR}', '{PAIR_SEPARATOR}'"]
    for kind in KINDS:
        tag = kind.tag.decode()
        parts = " .. '\\n' .. ".join((f"'{tag}'", *kind.fields))
        lines.append(f"local function msg_{tag}({', '.join(kind.fields)}) return {parts} end")
    return "\n".join(lines) + "\n"
