"""What one socket's frames may cost: a token each, one word when refused, a close for a flood.

Every frame a client sends costs the server a parse, and an answered ping a write, so each one
takes a token from the socket's bucket (``--rate-limit``, ``--rate-burst``) whatever its kind:
a frame that costs nothing is a frame a client can send without end. The first refusal of a
run is told to the client once (answering every refused frame would let a flood make us write
as much as it sends); a run of refusals longer than the burst is a flood, closed with 1008, and
a flooder that does not take its close frame is cut :data:`ABUSER_FLUSH_TIMEOUT` later. Kept
apart from the Autobahn adapter so the policy is plain Python on an injected clock, tested with
a fake socket (tests/test_frame_meter.py); the adapter supplies the few acts it needs
(:class:`MeteredSocket`) and reads :attr:`FrameMeter.frame_refused` / ``drop_message``.
"""

from __future__ import annotations

from typing import Protocol

from twisted.internet.interfaces import IDelayedCall, IReactorTime

from rtcsvc.ratelimit import TokenBucket

#: Seconds a socket closed for abuse has to take its close frame before it is cut.
ABUSER_FLUSH_TIMEOUT = 5.0


class MeteredSocket(Protocol):
    """What the meter asks of the socket it meters."""

    def frame_is_data(self) -> bool:
        """Whether the frame whose header was just read carries a message (not a control
        frame): refusing it drops the whole message."""

    def tell(self, code: str, text: str) -> None:
        """Send the client an ``error`` message, if it can still be sent."""

    def close_for_abuse(self) -> bool:
        """Close with 1008 and read nothing more; whether the close frame may still reach the
        client (False: the socket was already closed, or is cut at once)."""

    def abort(self) -> None:
        """Cut the connection without waiting for anything."""


class FrameMeter:
    """The frame budget of one socket: refusals in a row, and what the refusals dropped."""

    __slots__ = ("_socket", "_clock", "_bucket", "_burst", "_limited", "frame_refused",
                 "drop_message", "_abort_call")

    def __init__(self, socket: MeteredSocket, clock: IReactorTime, rate: float, burst: int):
        self._socket = socket
        self._clock = clock
        self._bucket = TokenBucket(rate, burst, clock.seconds())
        self._burst = burst
        self._limited = 0  # frames refused in a row
        #: The frame being read was refused: a refused ping goes unanswered.
        self.frame_refused = False
        #: A frame of the message being read was refused: the adapter drops that message when
        #: it ends, and clears this.
        self.drop_message = False
        self._abort_call: IDelayedCall | None = None

    def frame_begins(self) -> None:
        """A frame's header was read (nothing of its payload yet): take its token."""
        if self._bucket.take(self._clock.seconds()):
            self._limited = 0
            self.frame_refused = False
            return
        self.frame_refused = True
        socket = self._socket
        if socket.frame_is_data():
            self.drop_message = True
        self._limited += 1
        if self._limited == 1:
            socket.tell("rate-limited", "Too many messages; slow down.")
        elif self._limited > self._burst:
            # The rest of the flood is not worth parsing; a client that is not reading cannot
            # take the close frame either, so it gets the time a closing handshake gets.
            if socket.close_for_abuse():
                self._abort_call = self._clock.callLater(ABUSER_FLUSH_TIMEOUT, socket.abort)

    def stop(self) -> None:
        """The socket closed: nothing is left to cut."""
        if self._abort_call is not None and self._abort_call.active():
            self._abort_call.cancel()
