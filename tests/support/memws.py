"""Protocol v1 in memory: the real signaling factory and protocol, a fake clock, no sockets.

The in-memory rung of the test ladder. A :class:`MemoryServer` builds the real
:class:`~rtcsvc.protocol.SignalingFactory` around a real :class:`~rtcsvc.hub.Hub`, both on a
``twisted.internet.task.Clock``; each :class:`MemoryClient` is one protocol instance on a
``StringTransport`` fed whole handshakes and client frames built byte by byte (masked, as RFC
6455 asks), so frame-level abuse (ping floods, empty continuations, a client that stops reading)
runs in milliseconds and the same way every time. What the server writes is parsed back into
frames. Nothing here reaches the network; time moves only when a test advances the clock.
"""

from __future__ import annotations

import json
import os
import struct
from dataclasses import dataclass
from urllib.parse import urlencode

from twisted.internet.address import IPv4Address, IPv6Address
from twisted.internet.error import ConnectionAborted, ConnectionDone, ConnectionLost
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport
from twisted.python.failure import Failure

from rtcsvc.hub import Hub
from rtcsvc.metrics import Metrics
from rtcsvc.origin import OriginPolicy, TrustedProxies
from rtcsvc.protocol import Limits, SignalingFactory
from rtcsvc.turn import IceConfig

CONTINUATION, TEXT, BINARY, CLOSE, PING, PONG = 0x0, 0x1, 0x2, 0x8, 0x9, 0xA


def client_frame(opcode: int, payload: bytes = b"", fin: bool = True) -> bytes:
    """One masked client-to-server frame (RFC 6455 section 5.2)."""
    mask = os.urandom(4)
    n = len(payload)
    first = (0x80 if fin else 0) | opcode
    if n < 126:
        header = struct.pack("!BB", first, 0x80 | n)
    elif n < 65536:
        header = struct.pack("!BBH", first, 0x80 | 126, n)
    else:
        header = struct.pack("!BBQ", first, 0x80 | 127, n)
    return header + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload))


def text(message) -> bytes:
    return client_frame(TEXT, json.dumps(message).encode())


class MemoryTransport(StringTransport):
    """A StringTransport that lets producers come and go, and records how it was closed."""

    aborted = False
    reading_paused = False

    def registerProducer(self, producer, streaming):
        self.producer, self.streaming = producer, streaming

    def unregisterProducer(self):
        self.producer = None

    def write(self, data):
        # As Twisted's TCP transport: once aborted, nothing more reaches the client.
        if not self.aborted:
            super().write(data)

    def abortConnection(self):
        self.aborted = True
        self.disconnecting = True

    def pauseProducing(self):
        self.reading_paused = True

    def resumeProducing(self):
        self.reading_paused = False


class HandshakeRefused(Exception):
    def __init__(self, status: int, head: bytes):
        super().__init__(f"handshake refused with HTTP {status}")
        self.status = status
        self.head = head


@dataclass
class Frame:
    fin: bool
    opcode: int
    payload: bytes

    @property
    def message(self):
        return json.loads(self.payload) if self.opcode == TEXT else None

    @property
    def close_code(self):
        if self.opcode != CLOSE:
            return None
        return struct.unpack("!H", self.payload[:2])[0] if len(self.payload) >= 2 else None


class MemoryClient:
    """One signaling socket: send frames in, read the server's frames out."""

    def __init__(self, server: MemoryServer, protocol, transport: MemoryTransport, rest: bytes):
        self.server = server
        self.protocol = protocol
        self.transport = transport
        self._unparsed = rest
        self.frames: list[Frame] = []  # every frame the server wrote, in order
        self._read = 0

    def send(self, data: bytes) -> None:
        self.protocol.dataReceived(data)

    def send_json(self, message) -> None:
        self.send(text(message))

    def new_frames(self) -> list[Frame]:
        """The server's frames written since the last call."""
        self._parse()
        fresh, self._read = self.frames[self._read:], len(self.frames)
        return fresh

    def new_messages(self) -> list:
        return [f.message for f in self.new_frames() if f.opcode == TEXT]

    def close_code(self):
        """The code of the close frame the server wrote, if any."""
        self._parse()
        return next((f.close_code for f in self.frames if f.opcode == CLOSE), None)

    @property
    def closed(self) -> bool:
        """The server closed (or aborted) the transport."""
        return self.transport.disconnecting

    def written(self) -> int:
        return len(self.transport.value())

    def lose(self, reason=ConnectionLost) -> None:
        """The network connection ends (as the reactor would report it)."""
        if self.transport.aborted:
            reason = ConnectionAborted
        self.protocol.connectionLost(Failure(reason()))

    def finish(self) -> None:
        """Deliver connectionLost for a transport the server closed."""
        assert self.closed
        self.lose(ConnectionDone)

    def _parse(self) -> None:
        data = self.transport.value()
        self.transport.clear()
        buf = self._unparsed + data
        while len(buf) >= 2:
            b0, b1 = buf[0], buf[1]
            n, i = b1 & 0x7F, 2
            if n == 126:
                if len(buf) < 4:
                    break
                n, i = struct.unpack("!H", buf[2:4])[0], 4
            elif n == 127:
                if len(buf) < 10:
                    break
                n, i = struct.unpack("!Q", buf[2:10])[0], 10
            if len(buf) < i + n:
                break
            self.frames.append(Frame(bool(b0 & 0x80), b0 & 0x0F, buf[i:i + n]))
            buf = buf[i + n:]
        self._unparsed = buf


class MemoryServer:
    """The real signaling factory and hub on a fake clock; ``connect`` opens a socket."""

    def __init__(self, *, hub=None, proxies=(), origins=(), limits: Limits | None = None,
                 ice: IceConfig | None = None, turn_minter=None, **limit_fields):
        self.clock = Clock()
        self.clock.advance(1_000_000)  # a plausible "now" for invite expiries
        self.hub = hub if hub is not None else Hub(self.clock, max_peers=6, resume_grace=30.0)
        self.metrics = Metrics()
        self.factory = SignalingFactory(
            self.hub, clock=self.clock, ice=ice or IceConfig((), (), None, 86400),
            origins=OriginPolicy(origins), proxies=TrustedProxies(proxies),
            metrics=self.metrics, limits=limits or Limits(**limit_fields),
            turn_minter=turn_minter)

    def raw_connection(self, address: str = "127.0.0.1"):
        """A signaling protocol on its transport, nothing sent yet: (protocol, transport)."""
        kind = IPv6Address if ":" in address else IPv4Address
        peer = kind("TCP", address, 40000)
        protocol = self.factory.buildProtocol(peer)
        transport = MemoryTransport(peerAddress=peer)
        protocol.makeConnection(transport)
        return protocol, transport

    def connect(self, room: str = "room", *, address: str = "127.0.0.1",
                query: dict | str | None = None, headers: dict | None = None,
                path: str | None = None) -> MemoryClient:
        """Open a socket (handshake included); raise :class:`HandshakeRefused` on an HTTP
        refusal."""
        protocol, transport = self.raw_connection(address)
        if isinstance(query, dict):
            query = "?" + urlencode(query)
        target = path if path is not None else f"/ws/{room}{query or ''}"
        all_headers = {"Host": "127.0.0.1:8080", "Upgrade": "websocket",
                       "Connection": "Upgrade", "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==",
                       "Sec-WebSocket-Version": "13", "Origin": "http://127.0.0.1:8080",
                       **(headers or {})}
        request = f"GET {target} HTTP/1.1\r\n" + "".join(
            f"{name}: {value}\r\n" for name, value in all_headers.items()) + "\r\n"
        protocol.dataReceived(request.encode("utf-8"))
        written = transport.value()
        head, _, rest = written.partition(b"\r\n\r\n")
        status = int(head.split(b" ", 2)[1]) if head.startswith(b"HTTP/1.1 ") else 0
        if status != 101:
            if transport.disconnecting:
                protocol.connectionLost(Failure(ConnectionDone()))
            raise HandshakeRefused(status, written)
        transport.clear()
        return MemoryClient(self, protocol, transport, rest)

    def join(self, room: str = "room", **kwargs) -> tuple[MemoryClient, dict]:
        """Connect and read the ``welcome``."""
        client = self.connect(room, **kwargs)
        client._parse()
        first = client.frames[0].message if client.frames else None
        assert first and first["type"] == "welcome", client.frames
        client._read = 1  # what follows the welcome is left for the test to read
        return client, first

    def refused(self, reason: str) -> float:
        return self.metrics.registry.get_sample_value(
            "rtcsvc_handshakes_refused_total", {"reason": reason}) or 0

    def errors(self, code: str) -> float:
        return self.metrics.registry.get_sample_value("rtcsvc_errors_total", {"code": code}) or 0
