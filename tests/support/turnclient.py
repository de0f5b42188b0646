"""An independent TURN client for whole-process tests: aioice allocations and relayed datagrams.

Several tests prove a TURN path with a client that is neither coturn nor rtcsvc: the shipped
coturn files accepting rtcsvc's minted credentials (``tests/test_deploy_coturn.py``) and TURN
over TLS tunnelled through rtcsvc's own port (``tests/test_turn_tunnel_process.py``). Each needs
the same three steps (allocate with a deadline, send both ways until the relay lets datagrams
through, close and let aioice deallocate), and written once here they cannot drift apart: a
bound forgotten in one copy would leave a test hanging for aioice's ~40 s of retransmissions.
The client is aioice's (the ICE/TURN stack of aiortc), asyncio-based: call these inside
``asyncio.run``.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl as _ssl

from aioice.turn import TurnTransport, create_turn_endpoint

#: Bound on each TURN transaction and on the first relayed datagrams, in seconds (aioice
#: retransmits for up to ~40 s otherwise).
STEP = 15.0


class Collector(asyncio.DatagramProtocol):
    """What reaches one allocation: relayed datagrams (``received``, as ``(data, peer)``) and
    the errors coturn answered with (``errors``: a refused permission arrives as one)."""

    def __init__(self) -> None:
        self.received: asyncio.Queue = asyncio.Queue()
        self.errors: list[Exception] = []

    def datagram_received(self, data, addr) -> None:
        self.received.put_nowait((data, addr))

    def error_received(self, exc) -> None:
        self.errors.append(exc)


async def allocate(port: int, username: str, password: str, transport: str = "udp",
                   ssl: _ssl.SSLContext | None = None) -> tuple[TurnTransport, Collector]:
    """A TURN allocation through 127.0.0.1:``port``, within ``STEP`` seconds."""
    return await asyncio.wait_for(
        create_turn_endpoint(Collector, ("127.0.0.1", port), username=username,
                             password=password, transport=transport, ssl=ssl),
        STEP)


@contextlib.asynccontextmanager
async def closing(*relays: TurnTransport):
    """Close the allocations on the way out, pass or fail, and give aioice a moment to
    deallocate (else coturn logs the vanished client and asyncio a pending task)."""
    try:
        yield relays
    finally:
        for relay in relays:
            relay.close()
        await asyncio.sleep(0.1)


async def exchange(a: TurnTransport, a_in: Collector, b: TurnTransport, b_in: Collector,
                   from_a: bytes, from_b: bytes):
    """Send ``from_a`` from a's relayed address to b's and ``from_b`` back, both at once and
    again every half second, as ICE checks do (each side's send installs the permission the
    other side's datagrams need), until one datagram has crossed each way; fails after
    ``STEP`` seconds. Returns (what b received, what a received), each ``(data, peer)``."""
    a_address, b_address = a.get_extra_info("sockname"), b.get_extra_info("sockname")
    loop = asyncio.get_running_loop()
    deadline = loop.time() + STEP
    while True:
        a.sendto(from_a, b_address)
        b.sendto(from_b, a_address)
        try:
            got_b = await asyncio.wait_for(b_in.received.get(), 0.5)
            got_a = await asyncio.wait_for(a_in.received.get(), 0.5)
            return got_b, got_a
        except asyncio.TimeoutError:
            assert loop.time() < deadline, "nothing was relayed"
