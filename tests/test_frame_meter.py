"""rtcsvc.frame_meter: a token per frame, one word per run of refusals, a close for a flood.

Pure: a fake socket records what the meter asks of it, a Clock stands for time. The same
defences through the real adapter and Autobahn are in tests/test_protocol_memory.py.
"""

from __future__ import annotations

from twisted.internet.task import Clock

from rtcsvc.frame_meter import ABUSER_FLUSH_TIMEOUT, FrameMeter


class FakeSocket:
    def __init__(self, *, data: bool = True, flushable: bool = True):
        self.data = data  # whether the frames it reads are data frames
        self.flushable = flushable  # what close_for_abuse answers
        self.told: list[str] = []
        self.closes = 0
        self.aborted = False

    def frame_is_data(self) -> bool:
        return self.data

    def tell(self, code: str, text: str) -> None:
        self.told.append(code)

    def close_for_abuse(self) -> bool:
        self.closes += 1
        return self.flushable

    def abort(self) -> None:
        self.aborted = True


def meter(socket: FakeSocket, rate: float = 1.0, burst: int = 3) -> tuple[FrameMeter, Clock]:
    clock = Clock()
    return FrameMeter(socket, clock, rate, burst), clock


def frames(m: FrameMeter, n: int) -> None:
    for _ in range(n):
        m.frame_begins()


def test_frames_within_the_burst_pass_untouched():
    socket = FakeSocket()
    m, _ = meter(socket, burst=3)
    frames(m, 3)
    assert not m.frame_refused and not m.drop_message
    assert socket.told == [] and socket.closes == 0


def test_a_run_of_refusals_is_told_once():
    socket = FakeSocket()
    m, _ = meter(socket, burst=3)
    frames(m, 3 + 3)  # three refused in a row: within the burst of refusals
    assert m.frame_refused
    assert socket.told == ["rate-limited"] and socket.closes == 0


def test_a_frame_that_passes_ends_the_run_so_the_next_run_is_told_again():
    socket = FakeSocket()
    m, clock = meter(socket, rate=1.0, burst=3)
    frames(m, 4)
    clock.advance(1)  # one token back
    m.frame_begins()
    assert not m.frame_refused
    m.frame_begins()
    assert socket.told == ["rate-limited", "rate-limited"]


def test_a_refused_data_frame_drops_its_message():
    socket = FakeSocket(data=True)
    m, _ = meter(socket, burst=1)
    frames(m, 2)
    assert m.drop_message


def test_a_refused_control_frame_drops_no_message():
    """A refused ping between the fragments of a message leaves the message alone."""
    socket = FakeSocket(data=False)
    m, _ = meter(socket, burst=1)
    frames(m, 2)
    assert m.frame_refused and not m.drop_message


def test_more_refusals_in_a_row_than_the_burst_close_the_socket_for_abuse():
    socket = FakeSocket()
    m, _ = meter(socket, burst=3)
    frames(m, 3 + 3)
    assert socket.closes == 0
    m.frame_begins()  # the fourth refusal in a row
    assert socket.closes == 1


def test_an_abuser_that_does_not_take_its_close_frame_is_cut_after_the_flush_timeout():
    socket = FakeSocket(flushable=True)
    m, clock = meter(socket, burst=1)
    frames(m, 1 + 2)
    clock.advance(ABUSER_FLUSH_TIMEOUT - 0.1)
    assert not socket.aborted
    clock.advance(0.1)
    assert socket.aborted


def test_an_abuser_that_closes_in_time_is_not_cut():
    socket = FakeSocket(flushable=True)
    m, clock = meter(socket, burst=1)
    frames(m, 1 + 2)
    m.stop()  # the socket closed
    clock.advance(ABUSER_FLUSH_TIMEOUT)
    assert not socket.aborted and not clock.getDelayedCalls()


def test_an_abuser_cut_at_once_gets_no_flush_timer():
    socket = FakeSocket(flushable=False)  # not reading, or already closed
    m, clock = meter(socket, burst=1)
    frames(m, 1 + 2)
    assert socket.closes == 1 and not clock.getDelayedCalls()
