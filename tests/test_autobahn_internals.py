"""What rtcsvc.autobahn_internals assumes about the installed Autobahn, pinned.

Each test names one internal the adapter relies on and checks it against a real Autobahn
protocol, so an Autobahn upgrade that renames or changes it fails here, saying which, instead of
silently turning off a defence (the 16 KiB handshake bound, per-frame metering, the whole-message
UTF-8 check, the too-large error) or a saving (options as class attributes)."""

import inspect

import autobahn
from autobahn.twisted.websocket import WebSocketServerFactory, WebSocketServerProtocol

from rtcsvc import autobahn_internals
from tests.support.memws import BINARY, PING, TEXT, MemoryServer, client_frame


def test_the_installed_autobahn_is_one_these_assumptions_were_checked_against():
    major = int(autobahn.__version__.split(".")[0])
    assert major >= 24, autobahn.__version__


def test_the_handshake_is_buffered_in_data_until_its_blank_line():
    server = MemoryServer()
    protocol, transport = server.raw_connection()
    protocol.dataReceived(b"GET /ws/room HTTP/1.1\r\nHost: x\r\n")
    assert protocol.data.startswith(b"GET /ws/room")
    assert not autobahn_internals.handshake_too_large(protocol)
    protocol.data += b"X-Pad: " + b"a" * autobahn_internals.MAX_REQUEST_HEADER
    assert autobahn_internals.handshake_too_large(protocol)


def test_process_handshake_is_the_step_that_reads_the_buffer_so_the_bound_applies():
    assert callable(WebSocketServerProtocol.processHandshake)
    server = MemoryServer()
    protocol, transport = server.raw_connection()
    protocol.dataReceived(b"GET /ws/room HTTP/1.1\r\nX-Pad: "
                          + b"a" * autobahn_internals.MAX_REQUEST_HEADER)
    assert transport.value().startswith(b"HTTP/1.1 431")
    assert server.refused("header-too-large") == 1


def test_a_message_is_buffered_frame_by_frame_in_message_data_with_its_binary_flag():
    server = MemoryServer()
    seen = []
    client, _ = server.join()
    protocol = client.protocol
    original = type(protocol).onMessageEnd

    def spy(self):
        seen.append(autobahn_internals.take_message(self))
        original(self)

    type(protocol).onMessageEnd = spy
    try:
        client.send(client_frame(TEXT, b'{"a":', fin=False) + client_frame(0, b"1}"))
        client.send(client_frame(BINARY, b"\x00\x01"))
    finally:
        type(protocol).onMessageEnd = original
    assert seen == [(b'{"a":1}', False), (b"\x00\x01", True)]


def test_failed_by_me_and_the_current_frame_opcode_are_where_the_adapter_reads_them():
    server = MemoryServer()
    client, _ = server.join()
    protocol = client.protocol
    assert autobahn_internals.failed_by_me(protocol) is False
    opcodes = []
    original = type(protocol).onFrameBegin

    def spy(self):
        opcodes.append(autobahn_internals.frame_is_data(self))
        original(self)

    type(protocol).onFrameBegin = spy
    try:
        client.send(client_frame(PING, b"x") + client_frame(TEXT, b"{}"))
    finally:
        type(protocol).onFrameBegin = original
    assert opcodes == [False, True]
    assert hasattr(protocol, "wasNotCleanReason")


def test_the_too_large_hook_has_the_signature_the_adapter_overrides():
    hook = WebSocketServerProtocol._max_message_size_exceeded
    assert list(inspect.signature(hook).parameters) == ["self", "msg_size", "max_msg_size",
                                                        "reason"]
    server = MemoryServer()
    client, _ = server.join()
    client.send(client_frame(TEXT, b"x" * (server.factory.limits.max_message_size + 1)))
    assert client.close_code() == 1009
    assert server.errors("too-large") == 1


def test_every_option_autobahn_copies_per_socket_lives_on_the_protocol_class():
    factory = WebSocketServerFactory()
    names = WebSocketServerProtocol.CONFIG_ATTRS
    assert names and all(hasattr(factory, name) for name in names)
    cls = autobahn_internals.protocol_with_options(WebSocketServerProtocol, factory)
    assert cls.CONFIG_ATTRS == ()
    assert all(name in vars(cls) for name in names)
    protocol = MemoryServer().join()[0].protocol
    assert not set(names) & set(vars(protocol)), "options copied onto a socket after all"
