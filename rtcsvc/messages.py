"""Protocol v1 on the wire: parsing client frames and encoding server messages.

Pure functions over bytes, shared by every transport and hub. The relay path is hot, so a
signal's ``data`` is re-serialised once per message (not once per recipient) and spliced into a
pre-built envelope instead of building a dict per delivery. The contract is docs/protocol.md.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import orjson

if TYPE_CHECKING:
    from rtcsvc.turn import IceServer

#: Outcomes, paths and failure reasons a ``report`` may carry (docs/protocol.md).
REPORT_PATHS = frozenset({"direct", "relay"})
#: The escalation rung that connected (static/js/escalation.js); optional.
REPORT_RUNGS = frozenset({"initial", "ice-restart", "relay-only"})
REPORT_REASONS = frozenset(
    {"ice-failed", "dtls-failed", "timeout", "negotiation-failed", "media-denied", "other"}
)
MAX_SETUP_MS = 600_000
#: The lobby's network check (static/js/verdict.js): its verdict and the relay transport that
#: passed data ("udp" for a direct verdict, "none" when nothing did).
NETCHECK_VERDICTS = frozenset({"direct", "relay", "none"})
NETCHECK_TRANSPORTS = frozenset({"udp", "tcp", "tls", "none"})


class BadMessage(ValueError):
    """A client frame that protocol v1 does not allow; the text is shown to the client."""


@dataclass(frozen=True, slots=True)
class Signal:
    to: str | None
    data: bytes  # the JSON text of the sender's ``data``, ready to splice


@dataclass(frozen=True, slots=True)
class Report:
    outcome: str
    setup_seconds: float
    path: str | None
    reason: str | None
    rung: str | None = None


@dataclass(frozen=True, slots=True)
class NetCheck:
    verdict: str
    transport: str


def parse(payload: bytes) -> Signal | Report | NetCheck:
    """Turn one text frame into a :class:`Signal`, :class:`Report` or :class:`NetCheck`, or
    raise BadMessage."""
    try:
        message = orjson.loads(payload)
    except orjson.JSONDecodeError:
        raise BadMessage("not a JSON text") from None
    if type(message) is not dict:
        raise BadMessage("a message must be a JSON object")
    kind = message.get("type")
    if kind == "signal":
        if "data" not in message:
            raise BadMessage("a signal needs a 'data' field")
        to = message.get("to")
        if to is not None and type(to) is not str:
            raise BadMessage("'to' must be a peer id (a string)")
        try:
            return Signal(to, orjson.dumps(message["data"]))
        except orjson.JSONEncodeError:
            # orjson reads 1024 levels of nesting but writes only 255: refuse, don't crash.
            raise BadMessage("'data' is nested too deeply") from None
    if kind == "report":
        return _parse_report(message.get("data"))
    if kind == "netcheck":
        return _parse_netcheck(message.get("data"))
    if type(kind) is not str:
        raise BadMessage("a message needs a string 'type'")
    raise BadMessage(f"unknown message type {kind[:40]!r}")


def _parse_report(data: object) -> Report:
    # Reports are strict: an unknown key is refused so that no client build can smuggle
    # addresses or SDP into the server's telemetry.
    if type(data) is not dict:
        raise BadMessage("a report's 'data' must be an object")
    outcome = data.get("outcome")
    setup_ms: Any = data.get("setupMs")  # a JSON value: its type() is checked next
    if type(setup_ms) not in (int, float) or not 0 <= setup_ms <= MAX_SETUP_MS:
        raise BadMessage(f"'setupMs' must be a number from 0 to {MAX_SETUP_MS}")
    if outcome == "connected":
        allowed, path, reason = {"outcome", "setupMs", "path", "rung"}, data.get("path"), None
        if path not in REPORT_PATHS:
            raise BadMessage("'path' must be 'direct' or 'relay'")
        if "rung" in data and data["rung"] not in REPORT_RUNGS:
            raise BadMessage("'rung' must be one of " + ", ".join(sorted(REPORT_RUNGS)))
    elif outcome == "failed":
        allowed, path, reason = {"outcome", "setupMs", "reason"}, None, data.get("reason")
        if reason not in REPORT_REASONS:
            raise BadMessage("'reason' must be one of " + ", ".join(sorted(REPORT_REASONS)))
    else:
        raise BadMessage("'outcome' must be 'connected' or 'failed'")
    extra = set(data) - allowed
    if extra:
        raise BadMessage("a report may not carry " + ", ".join(sorted(map(str, extra)))[:200])
    return Report(outcome, setup_ms / 1000.0, path, reason, data.get("rung"))


def _parse_netcheck(data: object) -> NetCheck:
    # As strict as a report: exactly these two fields, each from its set.
    if type(data) is not dict or set(data) != {"verdict", "transport"}:
        raise BadMessage("a netcheck's 'data' must be an object with 'verdict' and 'transport'")
    if data["verdict"] not in NETCHECK_VERDICTS:
        raise BadMessage("'verdict' must be one of " + ", ".join(sorted(NETCHECK_VERDICTS)))
    if data["transport"] not in NETCHECK_TRANSPORTS:
        raise BadMessage("'transport' must be one of " + ", ".join(sorted(NETCHECK_TRANSPORTS)))
    return NetCheck(data["verdict"], data["transport"])


# -- server -> client


def encode_id(peer_id: str) -> bytes:
    """A peer id as a JSON string, pre-encoded once per peer for the signal envelope."""
    # Not orjson: its output keeps a 4 KiB buffer however short it is, and this one lives as
    # long as the peer (a third of an idle connection's memory, docs/performance.md).
    return json.dumps(peer_id).encode()


def signal(encoded_from: bytes, data: bytes) -> bytes:
    return b'{"type":"signal","from":' + encoded_from + b',"data":' + data + b"}"


def welcome(peer_id: str, room: str, peers: list[str], ice_servers: list[IceServer], token: str,
            max_peers: int, resumed: bool = False) -> bytes:
    message = {
        "type": "welcome",
        "id": peer_id,
        "room": room,
        "peers": peers,
        "iceServers": ice_servers,
        "resume": token,
        "maxPeers": max_peers,
    }
    if resumed:
        message["resumed"] = True
    return orjson.dumps(message)


def peer_joined(peer_id: str) -> bytes:
    return orjson.dumps({"type": "peer-joined", "id": peer_id})


def peer_left(peer_id: str) -> bytes:
    return orjson.dumps({"type": "peer-left", "id": peer_id})


def ice_servers(servers: list[IceServer]) -> bytes:
    return orjson.dumps({"type": "ice-servers", "iceServers": servers})


def probe(servers: list[IceServer]) -> bytes:
    """The only message a probe socket gets (docs/protocol.md, "Probe sockets")."""
    return orjson.dumps({"type": "probe", "iceServers": servers})


def error(code: str, message: str, **details: object) -> bytes:
    """An ``error``; ``details`` are extra fields for the app (e.g. room-full's ``maxPeers``)."""
    return orjson.dumps({"type": "error", "code": code, "message": message, **details})
