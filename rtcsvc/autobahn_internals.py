"""Every use rtcsvc makes of Autobahn's undocumented internals, in one place.

Autobahn's public API does not let a server bound the handshake request it buffers, meter each
frame, validate a whole text message at once, explain an over-long frame before the close, or
skip copying 29 options onto every socket. rtcsvc needs all of that (docs/reliability.md,
docs/performance.md), so it reaches into the protocol's state here and nowhere else.
tests/test_autobahn_internals.py pins each assumption against the installed Autobahn: an
upgrade that changes one of them fails there, loudly, instead of weakening a defence quietly.
"""

from __future__ import annotations

from types import FunctionType
from typing import Any

from autobahn.twisted.websocket import WebSocketServerFactory, WebSocketServerProtocol

#: The largest handshake request header, as twisted.web's ``HTTPChannel.totalHeadersSize``.
MAX_REQUEST_HEADER = 16384

#: Autobahn's own frame-header handling, called by the metering override without a ``super()``
#: lookup on every frame.
frame_begin = WebSocketServerProtocol.onFrameBegin


def handshake_too_large(protocol: WebSocketServerProtocol) -> bool:
    """Whether the request Autobahn is buffering (``data``, until its blank line) is over
    :data:`MAX_REQUEST_HEADER` without having ended; only meaningful during the handshake."""
    data: bytes = protocol.data
    return len(data) > MAX_REQUEST_HEADER and \
        data.find(b"\r\n\r\n", 0, MAX_REQUEST_HEADER + 4) < 0


def discard_handshake(protocol: WebSocketServerProtocol) -> None:
    protocol.data = b""


def frame_is_data(protocol: WebSocketServerProtocol) -> bool:
    """Whether the frame whose header was just read is a data frame (not ping/pong/close)."""
    return bool(protocol.current_frame.opcode < 8)


def failed_by_me(protocol: WebSocketServerProtocol) -> bool:
    return bool(protocol.failedByMe)


def mark_failed_by_me(protocol: WebSocketServerProtocol) -> None:
    """We are failing the connection (a close frame we send): read nothing more of it."""
    protocol.failedByMe = True


def take_message(protocol: WebSocketServerProtocol) -> tuple[bytes, bool]:
    """The message whose last frame was just read (payload, is binary); Autobahn's buffer of
    its frames is emptied."""
    payload = b"".join(protocol.message_data)
    return payload, bool(protocol.message_is_binary)


def drop_message(protocol: WebSocketServerProtocol) -> None:
    setattr(protocol, "message_data", None)  # Autobahn's own reset between messages


def set_unclean_reason(protocol: WebSocketServerProtocol, reason: str) -> None:
    protocol.wasNotCleanReason = reason


class OversizeHook:
    """Mixed into the protocol: Autobahn's private hook for an over-long frame, called from the
    frame *header* (nothing of the payload buffered yet), forwarded to ``message_too_large``
    before Autobahn's own 1009 close."""

    def message_too_large(self, max_size: int) -> None:
        raise NotImplementedError

    def _max_message_size_exceeded(self, msg_size: int, max_msg_size: int, reason: str) -> None:
        self.message_too_large(max_msg_size)
        protocol: Any = self  # mixed into a WebSocketServerProtocol
        WebSocketServerProtocol._max_message_size_exceeded(protocol, msg_size, max_msg_size,
                                                           reason)


def protocol_with_options(base: type[WebSocketServerProtocol],
                          factory: WebSocketServerFactory) -> type[WebSocketServerProtocol]:
    """A subclass of ``base`` carrying ``factory``'s protocol options as class attributes.

    Autobahn copies every option (``CONFIG_ATTRS``) onto each protocol instance unless the
    protocol already has it. As class attributes they cost nothing per connection: 29 fewer
    attributes in every socket's ``__dict__`` (idle memory, docs/performance.md). Functions
    become staticmethods so they stay plain callables. With nothing left to copy, CONFIG_ATTRS is
    emptied: Autobahn also pretty-prints the list of copied options for a debug line on every
    connection, whatever the log level (~120 us per handshake, the largest single cost of a join).
    """
    options: dict[str, Any] = {"CONFIG_ATTRS": (), "__module__": base.__module__}
    for name in base.CONFIG_ATTRS:
        value = getattr(factory, name)
        options[name] = staticmethod(value) if isinstance(value, FunctionType) else value
    return type(base.__name__, (base,), options)
