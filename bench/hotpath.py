"""CPU per relayed message and per join/leave, in process and without sockets.

The shared machine is too noisy to see a 5 % change in a closed-loop run; this drives the real
``SignalingFactory`` / ``SignalingProtocol`` / ``Hub`` through Autobahn with in-memory
transports (so: WebSocket framing, masking, UTF-8 validation, parsing, the hub and frame
writing, but no syscalls) and reports process CPU time per operation, best of several rounds.

    .venv/bin/python bench/hotpath.py                 # both measurements
    .venv/bin/python bench/hotpath.py --profile relay # cProfile of the relay path, top 30

Relative numbers (before/after a change) are what it is for; bench/run gives the real ones.
"""

from __future__ import annotations

import argparse
import cProfile
import os
import pstats
import struct
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from twisted.internet.address import IPv4Address  # noqa: E402
from twisted.internet.error import ConnectionDone  # noqa: E402
from twisted.internet.task import Clock  # noqa: E402
from twisted.internet.testing import StringTransport  # noqa: E402
from twisted.python.failure import Failure  # noqa: E402

from rtcsvc.hub import Hub  # noqa: E402
from rtcsvc.metrics import Metrics  # noqa: E402
from rtcsvc.origin import OriginPolicy, TrustedProxies  # noqa: E402
from rtcsvc.protocol import Limits, SignalingFactory  # noqa: E402
from rtcsvc.turn import IceConfig  # noqa: E402

MASK = b"\x11\x22\x33\x44"


class Transport(StringTransport):
    """Counts what is written instead of keeping it; producers may come and go."""

    written = 0

    def write(self, data):
        self.written += len(data)

    def writeSequence(self, seq):
        for data in seq:
            self.write(data)

    def unregisterProducer(self):
        self.producer = None

    def loseConnection(self):
        self.disconnecting = True

    def clear_written(self):
        self.written = 0


def client_frame(payload: bytes, opcode: int = 1) -> bytes:
    """One masked client frame (RFC 6455 5.2)."""
    n = len(payload)
    if n < 126:
        header = struct.pack("!BB", 0x80 | opcode, 0x80 | n)
    elif n < 65536:
        header = struct.pack("!BBH", 0x80 | opcode, 0x80 | 126, n)
    else:
        header = struct.pack("!BBQ", 0x80 | opcode, 0x80 | 127, n)
    masked = bytes(b ^ MASK[i % 4] for i, b in enumerate(payload))
    return header + MASK + masked


#: Rate limiting off, as in bench/run (the churn loop is thousands of handshakes from one
#: address on a clock that does not move); --rate-limited turns on buckets that never refuse,
#: to price the limiters themselves.
LIMITS = Limits(rate=0, handshake_rate=0)


def make_factory() -> SignalingFactory:
    clock = Clock()
    return SignalingFactory(
        Hub(clock, max_peers=8, resume_grace=30.0), clock=clock,
        ice=IceConfig((), (), None, 86400), origins=OriginPolicy([]),
        proxies=TrustedProxies([]), metrics=Metrics(), limits=LIMITS)


def open_socket(factory, room: str):
    protocol = factory.buildProtocol(IPv4Address("TCP", "127.0.0.1", 40000))
    transport = Transport(peerAddress=IPv4Address("TCP", "127.0.0.1", 40000))
    protocol.makeConnection(transport)
    protocol.dataReceived(
        f"GET /ws/{room} HTTP/1.1\r\nHost: 127.0.0.1:8080\r\nUpgrade: websocket\r\n"
        "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
        "Sec-WebSocket-Version: 13\r\nOrigin: http://127.0.0.1:8080\r\n\r\n".encode())
    assert protocol._member is not None, "handshake or join failed"
    return protocol, transport


def relay(n: int, size: int, batch: int):
    """``n`` addressed signals of ``size`` bytes of data, ``batch`` frames per read."""
    factory = make_factory()
    a, ta = open_socket(factory, "r")
    b, tb = open_socket(factory, "r")
    pad = "x" * max(0, size - 30)
    chunk = b"".join(
        client_frame(b'{"type":"signal","to":"%s","data":{"seq":%d,"pad":"%s"}}'
                     % (b._member.id.encode(), i, pad.encode())) for i in range(batch))
    tb.clear_written()

    def run():
        for _ in range(n // batch):
            a.dataReceived(chunk)
    return run, (lambda: tb.written)


def churn(n: int):
    """``n`` join + leave cycles next to an observer (no HTTP layer: Autobahn's own parser)."""
    factory = make_factory()
    open_socket(factory, "c")
    close = client_frame(struct.pack("!H", 1000), opcode=8)

    def run():
        for _ in range(n):
            p, t = open_socket(factory, "c")
            p.dataReceived(close)
            p.connectionLost(Failure(ConnectionDone()))
    return run, (lambda: len(factory.connections))


def measure(name, build, rounds, count, profile):
    best = None
    for _ in range(rounds):
        run, check = build()
        if profile:
            profiler = cProfile.Profile()
            profiler.runcall(run)
            pstats.Stats(profiler).sort_stats("tottime").print_stats(30)
            return
        t0 = time.process_time()
        run()
        per = (time.process_time() - t0) / count * 1e6
        best = per if best is None else min(best, per)
        check()
    print(f"{name:<28} {best:7.2f} us")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--profile", choices=["relay", "relay4000", "churn"])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--rate-limited", action="store_true",
                        help="with a per-socket token bucket (that never runs dry)")
    args = parser.parse_args()
    if args.rate_limited:
        global LIMITS
        LIMITS = Limits(rate=1e9, burst=10**9, handshake_rate=1e9)
    os.environ.setdefault("PYTHONHASHSEED", "0")
    cases = {
        "relay": ("relay S=200, 8/read", lambda: relay(40000, 200, 8), 40000),
        "relay4000": ("relay S=4000, 8/read", lambda: relay(20000, 4000, 8), 20000),
        "churn": ("join+leave cycle", lambda: churn(3000), 3000),
    }
    for key, (name, build, count) in cases.items():
        if args.profile and key != args.profile:
            continue
        measure(name, build, 1 if args.profile else args.rounds, count, args.profile)


if __name__ == "__main__":
    main()
