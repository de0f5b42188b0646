"""The two connections a process keeps to Redis: one for commands, one subscribed to its channel.

txredisapi is Twisted-native, maintained, and reconnects by itself (its factories are built on
``ClientService``). Before txredisapi sees a connection, :class:`_Handshaking` logs in
(:func:`rtcsvc.redis_connection.handshake`), so a refusal is reported by us in one line and the
connection retried with back-off rather than given up. On each new command connection the
scripts are loaded and Redis's ``run_id`` read: a changed one means Redis restarted and lost
our seats. :class:`RedisLink` tells its owner when it is usable (``on_up(restarted)``), when it
is not (``on_down()``), and what arrives on the channel (``on_message(bytes)``); script calls
fail with :class:`rtcsvc.hub.Unavailable` whenever Redis cannot be reached.
"""

from __future__ import annotations

import hashlib
from typing import Any, Callable

import txredisapi
from twisted.internet import defer
from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.logger import Logger
from twisted.python.failure import Failure

from rtcsvc.hub import Unavailable
from rtcsvc.redis_connection import HandshakeRefused, RedisAddress, explain, handshake
from rtcsvc.redis_lua import SCRIPTS

_log = Logger(namespace="rtcsvc.redis_hub")

#: Reconnection back-off cap: after a Redis restart, seats are re-registered within about this.
RECONNECT_MAX_DELAY = 2.0
#: Seconds for TLS, the login and a PING on a new connection before it is abandoned.
HANDSHAKE_TIMEOUT = 5.0
SHA = {name: hashlib.sha1(text.encode()).hexdigest() for name, text in SCRIPTS.items()}


def _unavailable(failure: Failure) -> Failure:
    if failure.check(txredisapi.ConnectionError):
        return Failure(Unavailable("the connection to Redis was lost"))
    return failure


class RedisLink:
    """Connects, reconnects, loads the scripts, notices restarts, and runs scripts."""

    def __init__(self, clock: IReactorTime, reactor: Any, address: RedisAddress, channel: str,
                 common: tuple[Any, ...], on_up: Callable[[bool], None],
                 on_down: Callable[[], None], on_message: Callable[[bytes], None]):
        self._clock = clock
        self._reactor = reactor
        self.address = address
        self.channel = channel
        self._common = common
        self.on_up = on_up
        self.on_down = on_down
        self.on_message = on_message
        self.commands: Any = None
        self._subscriber: Any = None
        self.subscribed = False
        self.stopping = False
        self._run_id: bytes | None = None
        self._factories: list[Any] = []
        self._trouble_reported: str | None = None

    @property
    def up(self) -> bool:
        return self.commands is not None and self.subscribed

    def start(self) -> None:
        for protocol in (_CommandProtocol, _SubscriberProtocol):
            factory = _factory(self, protocol)
            factory.startConnecting(self.address.endpoint(self._reactor))
            self._factories.append(factory)

    def stop(self) -> defer.Deferred[Any]:
        """Let Redis see our last commands, then hang up."""
        self.stopping = True
        d: defer.Deferred[Any] = defer.succeed(None)
        if self.commands is not None:
            # Commands are answered in order: once PING is, every earlier one has been applied.
            d = self.commands.execute_command("PING").addErrback(lambda f: None)
        return d.addCallback(lambda _: defer.DeferredList(
            [f.disconnect() for f in self._factories], consumeErrors=True))

    def call(self, script: str, *args: Any) -> defer.Deferred[Any]:
        """Run one of rtcsvc.redis_lua's scripts (the common arguments go first)."""
        commands = self.commands
        if commands is None:
            return defer.fail(Unavailable("not connected to Redis"))
        d: defer.Deferred[Any] = commands.execute_command("EVALSHA", SHA[script], 0,
                                                          *self._common, *args)
        return d.addErrback(_unavailable)

    def abort_after(self, seconds: float) -> IDelayedCall:
        """Cut the command connection in ``seconds`` unless cancelled (a Redis that stopped
        answering, not a closed socket, is noticed this way)."""
        return self._clock.callLater(seconds, self.commands.transport.abortConnection)

    def trouble(self, why: str) -> None:
        """Redis cannot be used, for a reason retrying alone may not fix: one line per reason
        (both connections, and every retry, report the same one), none once it is solved."""
        if why != self._trouble_reported and not self.stopping:
            self._trouble_reported = why
            _log.error("Redis {address}: {why}; joins are refused, retrying",
                       address=self.address, why=why)

    # -- the connections' callbacks

    @defer.inlineCallbacks
    def commands_up(self, protocol: Any) -> Any:
        try:
            for text in SCRIPTS.values():
                yield protocol.execute_command("SCRIPT", "LOAD", text)
            info = yield protocol.execute_command("INFO", "server")
        except txredisapi.ResponseError as e:
            # NOPERM: an ACL without these commands (docs/scaling.md has the one we need).
            self.trouble(f"refused a command ({e})")
            protocol.transport.loseConnection()
            return
        except Exception:
            _log.failure("preparing the Redis connection")
            protocol.transport.loseConnection()
            return
        self._trouble_reported = None
        run_id = None
        for line in info.splitlines():
            if line.startswith(b"run_id:"):
                run_id = line[7:].strip()
        restarted = self._run_id is not None and run_id != self._run_id
        self._run_id = run_id
        self.commands = protocol
        _log.info("Redis {address} connected{restarted}", address=self.address,
                  restarted=" (it restarted: re-registering our seats)" if restarted else "")
        self.on_up(restarted)

    def commands_down(self, protocol: Any) -> None:
        if self.commands is protocol:
            self.commands = None
            self.on_down()
            if not self.stopping:
                _log.warn("Redis {address}: command connection lost; joins are refused until "
                          "it is back", address=self.address)

    def subscriber_up(self, protocol: Any) -> None:
        self._subscriber = protocol

        def subscribed(_: object) -> None:
            if self._subscriber is protocol:
                self.subscribed = True
                self.on_up(False)

        def refused(failure: Failure) -> None:
            self.trouble(f"refused SUBSCRIBE ({failure.getErrorMessage()})")
            protocol.transport.loseConnection()

        protocol.subscribe(self.channel).addCallbacks(subscribed, refused)

    def subscriber_down(self, protocol: Any) -> None:
        if self._subscriber is protocol:
            self._subscriber = None
            self.subscribed = False
            self.on_down()


class _Handshaking:
    """Logs in (AUTH, SELECT, PING) before txredisapi sees the connection, so that a refusal is
    reported by us in one line and the connection is retried with back-off, not given up."""

    factory: Any
    transport: Any

    def connectionMade(self) -> None:
        self._usable = False
        self._reported = False
        link = self.factory.link
        # A server that takes TCP but never answers (a TLS port spoken to in clear may wait for
        # a ClientHello, a black hole) must not leave us waiting: hang up and retry.
        self._deadline = link._clock.callLater(HANDSHAKE_TIMEOUT, self._too_slow)
        d = handshake(self, link.address)
        d.addCallbacks(self._logged_in, self._refused)

    def _too_slow(self) -> None:
        self._reported = True
        self.factory.link.trouble(f"did not answer within {HANDSHAKE_TIMEOUT:g} s "
                                  "(a TLS port reached with redis://? then use rediss://)")
        self.transport.abortConnection()

    def _logged_in(self, _: object) -> Any:
        self._usable = True
        if self._deadline.active():
            self._deadline.cancel()
        self.whenConnected().addCallback(self._up)  # type: ignore[attr-defined]
        # No password and no dbid: txredisapi only marks the connection ready.
        return txredisapi.RedisProtocol.connectionMade(self)

    def _refused(self, failure: Failure) -> None:
        if failure.check(HandshakeRefused):
            self._reported = True
            self.factory.link.trouble(str(failure.value))
            self.transport.loseConnection()
        elif not failure.check(txredisapi.ConnectionError):
            self._reported = True
            self.factory.link.trouble(f"failed to log in ({failure.getErrorMessage()})")
            self.transport.loseConnection()
        # A lost connection: connectionLost says why.

    def connectionLost(self, why: Failure) -> None:
        if self._deadline.active():
            self._deadline.cancel()
        if not self._usable and not self._reported:
            self._reported = True
            self.factory.link.trouble(explain(why))
        self._down()
        super().connectionLost(why)  # type: ignore[misc]

    def _up(self, _: object) -> None:
        raise NotImplementedError

    def _down(self) -> None:
        raise NotImplementedError


class _CommandProtocol(_Handshaking, txredisapi.RedisProtocol):  # type: ignore[misc]
    def _up(self, _: object) -> None:
        self.factory.link.commands_up(self)

    def _down(self) -> None:
        self.factory.link.commands_down(self)


class _SubscriberProtocol(_Handshaking, txredisapi.SubscriberProtocol):  # type: ignore[misc]
    def _up(self, _: object) -> None:
        self.factory.link.subscriber_up(self)

    def _down(self) -> None:
        self.factory.link.subscriber_down(self)

    def messageReceived(self, pattern: Any, channel: Any, message: bytes) -> None:
        self.factory.link.on_message(message)


def _factory(link: RedisLink, protocol: type) -> Any:
    # charset=None, convertNumbers=False: payloads stay bytes end to end, no decoding per message.
    # No password or dbid here: _Handshaking logs in (txredisapi would stop retrying for good
    # after one refused AUTH, e.g. while Redis restarts without its ACL loaded yet).
    factory = txredisapi.RedisFactory(
        None, None, 1, isLazy=True, charset=None, convertNumbers=False,
    )
    factory.protocol = protocol
    factory.link = link
    factory.initialDelay = 0.25
    factory.maxDelay = RECONNECT_MAX_DELAY
    return factory
