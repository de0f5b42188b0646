"""Two independent WebSocket clients behind one small Deferred-returning interface.

Protocol tests run once with Autobahn's Twisted client and once with the ``websockets``
package (its threaded sync client, driven through ``deferToThread``), so a behaviour that only
works because server and client share a library's quirks shows up as a failure.
"""

from __future__ import annotations

import json
import re

from autobahn.twisted.websocket import (
    WebSocketClientFactory,
    WebSocketClientProtocol,
    connectWS,
)
from twisted.internet import defer, reactor, threads


class HandshakeRefused(Exception):
    def __init__(self, status):
        super().__init__(f"handshake refused with HTTP {status}")
        self.status = status


class ClosedError(Exception):
    """The socket closed while a message was awaited."""


# -- Autobahn


class _AutobahnProtocol(WebSocketClientProtocol):
    def onOpen(self):
        self.factory.opened.callback(self)

    def onMessage(self, payload, isBinary):
        self.factory.messages.put(payload)

    def onClose(self, wasClean, code, reason):
        f = self.factory
        if not f.opened.called:
            # Autobahn reports a refused upgrade only in the reason: "... failed [403]: ..."
            status = re.search(r"upgrade failed \[(\d{3})\]", reason or "")
            f.opened.errback(HandshakeRefused(int(status.group(1))) if status
                             else ClosedError(reason))
        f.close_code = self.remoteCloseCode if self.remoteCloseCode is not None else code
        f.messages.put(None)
        if not f.closed.called:
            f.closed.callback(f.close_code)


class AutobahnClient:
    name = "autobahn"

    def __init__(self, factory):
        self._factory = factory
        self.protocol = None

    @classmethod
    @defer.inlineCallbacks
    def connect(cls, url, origin=None, timeout=5):
        factory = WebSocketClientFactory(url, origin=origin)
        factory.protocol = _AutobahnProtocol
        factory.setProtocolOptions(maxMessagePayloadSize=0, maxFramePayloadSize=0)
        factory.opened = defer.Deferred()
        factory.closed = defer.Deferred()
        factory.messages = defer.DeferredQueue()
        factory.close_code = None
        connectWS(factory, timeout=timeout)
        client = cls(factory)
        client.protocol = yield factory.opened.addTimeout(timeout, reactor)
        return client

    def send_text(self, text: str):
        self.protocol.sendMessage(text.encode("utf-8"), isBinary=False)
        return defer.succeed(None)

    def send_bytes(self, data: bytes):
        self.protocol.sendMessage(data, isBinary=True)
        return defer.succeed(None)

    @defer.inlineCallbacks
    def recv(self, timeout=5):
        payload = yield self._factory.messages.get().addTimeout(timeout, reactor)
        if payload is None:
            self._factory.messages.put(None)
            raise ClosedError(self._factory.close_code)
        return json.loads(payload)

    def close(self, code=1000):
        if code == 1000 or code >= 3000:
            self.protocol.sendClose(code)
        else:  # sendClose() refuses protocol-level codes such as 1001 "going away"
            self.protocol.sendCloseFrame(code, isReply=False)
        return self.wait_closed()

    def abort(self):
        self.protocol.transport.abortConnection()
        return self.wait_closed()

    def wait_closed(self, timeout=10):
        d = defer.Deferred()
        self._factory.closed.addBoth(lambda r: (d.callback(r), r)[1])
        return d.addTimeout(timeout, reactor)


# -- websockets (sync client in a thread)


class WebsocketsClient:
    name = "websockets"

    def __init__(self, connection):
        self._ws = connection

    @classmethod
    def connect(cls, url, origin=None, timeout=5):
        from websockets.exceptions import InvalidStatus
        from websockets.sync.client import connect

        def blocking():
            try:
                connection = connect(url, origin=origin, open_timeout=timeout,
                                     max_size=None, compression=None)
                return cls(connection.__enter__())
            except InvalidStatus as e:
                raise HandshakeRefused(e.response.status_code) from None

        return threads.deferToThread(blocking)

    def send_text(self, text):
        return threads.deferToThread(self._ws.send, text)

    def send_bytes(self, data):
        return threads.deferToThread(self._ws.send, data)

    def recv(self, timeout=5):
        from websockets.exceptions import ConnectionClosed

        def blocking():
            try:
                return json.loads(self._ws.recv(timeout=timeout))
            except ConnectionClosed as e:
                raise ClosedError(e.rcvd.code if e.rcvd else 1006) from None

        return threads.deferToThread(blocking)

    def close(self, code=1000):
        return threads.deferToThread(self._ws.close, code).addCallback(
            lambda _: self._close_code())

    def abort(self):
        def blocking():
            # Tear TCP down without a close frame: what a lost network looks like.
            import socket
            sock = self._ws.socket
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
            sock.shutdown(socket.SHUT_RDWR)
            sock.close()
        return threads.deferToThread(blocking)

    def wait_closed(self, timeout=10):
        def blocking():
            from websockets.exceptions import ConnectionClosed
            try:
                while True:
                    self._ws.recv(timeout=timeout)
            except ConnectionClosed:
                pass
            return self._close_code()
        return threads.deferToThread(blocking)

    def _close_code(self):
        rcvd = self._ws.protocol.close_rcvd
        return rcvd.code if rcvd is not None else 1006


CLIENTS = {"autobahn": AutobahnClient, "websockets": WebsocketsClient}
