"""A raw RFC 6455 client written with ``socket`` and ``struct``, for sending what no library will.

The hardening tests need frames a well-behaved client library refuses to produce: invalid UTF-8
in text frames, control frames that are too long or fragmented, close frames with reserved codes,
headers claiming a gigabyte, a client that completes the handshake and then never reads. This
module builds every frame byte by byte (client frames masked, as the RFC requires, unless a test
asks otherwise) and reads the server's frames back, answering pings only when told to.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import socket
import struct
import time
import urllib.request

GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

CONTINUATION, TEXT, BINARY, CLOSE, PING, PONG = 0x0, 0x1, 0x2, 0x8, 0x9, 0xA


class HandshakeRefused(Exception):
    def __init__(self, status: int, head: bytes):
        super().__init__(f"handshake refused with HTTP {status}")
        self.status = status
        self.head = head


class Closed(Exception):
    """The server sent a close frame (``code`` set) or dropped TCP (``code`` is None)."""

    def __init__(self, code: int | None, reason: bytes = b""):
        super().__init__(f"closed with {code}")
        self.code = code
        self.reason = reason


def mask(payload: bytes, key: bytes) -> bytes:
    """XOR ``payload`` with the 4-byte ``key`` repeated (one big-int XOR: fast in CPython)."""
    n = len(payload)
    if n == 0 or key == b"\0\0\0\0":
        return payload
    stream = (key * (n // 4 + 1))[:n]
    return (int.from_bytes(payload, "big") ^ int.from_bytes(stream, "big")).to_bytes(n, "big")


def frame(opcode: int, payload: bytes = b"", *, fin: bool = True, rsv: int = 0,
          masked: bool = True, key: bytes | None = None, length: int | None = None) -> bytes:
    """One frame. ``length`` overrides the header's payload length (to lie about it)."""
    size = len(payload) if length is None else length
    head = bytes([(0x80 if fin else 0) | (rsv & 0x7) << 4 | opcode & 0xF])
    bit = 0x80 if masked else 0
    if size < 126:
        head += bytes([bit | size])
    elif size < 1 << 16:
        head += bytes([bit | 126]) + struct.pack("!H", size)
    else:
        head += bytes([bit | 127]) + struct.pack("!Q", size)
    if not masked:
        return head + payload
    key = os.urandom(4) if key is None else key
    return head + key + mask(payload, key)


def text_frame(message, **kwargs) -> bytes:
    """A text frame of a JSON-able value, or of ``str``/``bytes`` as they are."""
    if isinstance(message, bytes):
        payload = message
    elif isinstance(message, str):
        payload = message.encode()
    else:
        payload = json.dumps(message).encode()
    return frame(TEXT, payload, **kwargs)


def close_frame(code: int | None = 1000, reason: bytes = b"", **kwargs) -> bytes:
    payload = b"" if code is None else struct.pack("!H", code) + reason
    return frame(CLOSE, payload, **kwargs)


class RawWebSocket:
    """One client socket; ``connect`` does the HTTP upgrade and leaves the socket open."""

    def __init__(self, sock: socket.socket, rest: bytes = b""):
        self.sock = sock
        self._buf = bytearray(rest)
        self.pongs = 0  # pongs received (answers to our pings)

    @classmethod
    def connect(cls, port: int, room: str = "room1", *, query: str = "", headers=(),
                timeout: float = 5.0, rcvbuf: int | None = None,
                host: str = "127.0.0.1") -> "RawWebSocket":
        sock = socket.socket()
        if rcvbuf is not None:
            # Before connect, so the TCP window is small from the start.
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # no Nagle/delayed-ACK stalls
        sock.settimeout(timeout)
        try:
            sock.connect((host, port))
            status, head, rest = upgrade(sock, port, f"/ws/{room}{query}", headers)
        except BaseException:
            sock.close()
            raise
        if status != 101:
            sock.close()
            raise HandshakeRefused(status, head)
        return cls(sock, rest)

    # -- writing

    def send_raw(self, data: bytes) -> None:
        self.sock.sendall(data)

    def send_json(self, message) -> None:
        self.sock.sendall(text_frame(message))

    def signal(self, data, to: str | None = None, **extra) -> None:
        message = {"type": "signal", "data": data, **extra}
        if to is not None:
            message["to"] = to
        self.send_json(message)

    def close(self, code: int = 1000, timeout: float = 5.0) -> int | None:
        """Clean close: send ours, wait for the server's, return its code."""
        try:
            self.sock.sendall(close_frame(code))
            return self.wait_closed(timeout)
        except OSError:
            return None
        finally:
            self.sock.close()

    def abort(self) -> None:
        """Tear TCP down with a RST and no close frame: a lost network, as the server sees it."""
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.sock.close()

    # -- reading

    def _read(self, n: int, deadline: float) -> bytes:
        while len(self._buf) < n:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"no complete frame within the timeout ({len(self._buf)} bytes)")
            self.sock.settimeout(remaining)
            try:
                chunk = self.sock.recv(1 << 16)
            except ConnectionResetError:
                chunk = b""
            if not chunk:
                raise Closed(None)
            self._buf += chunk
        data = bytes(self._buf[:n])
        del self._buf[:n]
        return data

    def recv_frame(self, timeout: float = 5.0):
        """``(fin, opcode, payload)`` of the server's next frame (server frames are unmasked)."""
        deadline = time.monotonic() + timeout
        b0, b1 = self._read(2, deadline)
        size = b1 & 0x7F
        if size == 126:
            (size,) = struct.unpack("!H", self._read(2, deadline))
        elif size == 127:
            (size,) = struct.unpack("!Q", self._read(8, deadline))
        key = self._read(4, deadline) if b1 & 0x80 else None
        payload = self._read(size, deadline)
        if key is not None:
            payload = mask(payload, key)
        return bool(b0 & 0x80), b0 & 0xF, payload

    def recv(self, timeout: float = 5.0, answer_pings: bool = True):
        """The next message as parsed JSON (binary messages as bytes); raises :class:`Closed`."""
        deadline = time.monotonic() + timeout
        parts, kind = [], None
        while True:
            fin, opcode, payload = self.recv_frame(max(deadline - time.monotonic(), 0.001))
            if opcode == PING:
                if answer_pings:
                    self.sock.sendall(frame(PONG, payload))
                continue
            if opcode == PONG:
                self.pongs += 1
                continue
            if opcode == CLOSE:
                code = struct.unpack("!H", payload[:2])[0] if len(payload) >= 2 else None
                try:
                    self.sock.sendall(close_frame(code if code in (1000, 1001) else 1000))
                except OSError:
                    pass
                raise Closed(code, payload[2:])
            if opcode != CONTINUATION:
                kind = opcode
            parts.append(payload)
            if fin:
                data = b"".join(parts)
                return json.loads(data) if kind == TEXT else data

    def recv_type(self, kind: str, timeout: float = 5.0):
        """The next message of type ``kind``, skipping others (peer-joined and the like)."""
        deadline = time.monotonic() + timeout
        while True:
            message = self.recv(max(deadline - time.monotonic(), 0.001))
            if isinstance(message, dict) and message.get("type") == kind:
                return message

    def wait_closed(self, timeout: float = 5.0) -> int | None:
        """Read until the server closes; its close code, or None if it just dropped TCP."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                self.recv(max(deadline - time.monotonic(), 0.001))
            except Closed as e:
                return e.code

    def fileno(self) -> int:
        return self.sock.fileno()


def upgrade(sock: socket.socket, port: int, path: str, headers=()):
    """Send the HTTP upgrade; ``(status, response head, bytes read past the head)``."""
    key, request = upgrade_request(port, path, headers)
    sock.sendall(request)
    return read_upgrade(sock, key)


def upgrade_request(port: int, path: str, headers=()) -> tuple[str, bytes]:
    """A browser-like upgrade request: ``(its Sec-WebSocket-Key, its bytes)``."""
    key = base64.b64encode(os.urandom(16)).decode()
    lines = [f"GET {path} HTTP/1.1", f"Host: 127.0.0.1:{port}", "Upgrade: websocket",
             "Connection: Upgrade", f"Sec-WebSocket-Key: {key}", "Sec-WebSocket-Version: 13",
             *(f"{name}: {value}" for name, value in headers)]
    return key, ("\r\n".join(lines) + "\r\n\r\n").encode()


def read_upgrade(sock: socket.socket, key: str):
    """Read the answer to an upgrade: ``(status, response head, bytes read past the head)``."""
    head = b""
    while b"\r\n\r\n" not in head:
        chunk = sock.recv(4096)
        if not chunk:
            break
        head += chunk
    head, _, rest = head.partition(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1]) if head.startswith(b"HTTP/") else 0
    if status == 101:
        accept = base64.b64encode(hashlib.sha1(key.encode() + GUID).digest())
        assert accept in head, head
    return status, head, rest


def join(port: int, room: str, **kwargs):
    """Connect and read the ``welcome``: ``(socket, welcome)``."""
    ws = RawWebSocket.connect(port, room, **kwargs)
    welcome = ws.recv()
    assert welcome["type"] == "welcome", welcome
    return ws, welcome


# -- the process from outside


def get_json(port: int, path: str = "/healthz"):
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as r:
        return json.loads(r.read())


def metric(port: int, name: str, **labels) -> float:
    """One sample of ``/metrics`` (0 if absent), e.g. ``metric(p, "rtcsvc_errors_total", code="x")``."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
        text = r.read().decode()
    wanted = name + ("{" + ",".join(f'{k}="{v}"' for k, v in sorted(labels.items())) + "}"
                     if labels else "")
    for line in text.splitlines():
        if line.startswith(wanted + " "):
            return float(line.split()[-1])
    return 0.0


def rss_bytes(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("no VmRSS")


def open_fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))
