"""rtcsvc.send_budget: bytes written for a client that stopped reading, up to the limit.

The budget itself is pure; when a socket holds one (from the transport's pause to its resume)
is the adapter's, shown here in memory (tests/support/memws). A slow reader being dropped, with
pongs and errors counted, is in tests/test_protocol_memory.py.
"""

from __future__ import annotations

from rtcsvc.send_budget import SendBudget
from tests.support.memws import PING, MemoryServer, client_frame


def test_bytes_up_to_the_limit_are_within_the_budget():
    budget = SendBudget(100)
    assert not budget.over(60)
    assert not budget.over(40)
    assert budget.backlog == 100


def test_the_byte_past_the_limit_is_over():
    budget = SendBudget(100)
    budget.over(100)
    assert budget.over(1)


def pings(client, n: int) -> None:
    """``n`` pings of 125 bytes: ``n`` pongs of 127 bytes queued for the client."""
    for _ in range(n):
        client.send(client_frame(PING, b"p" * 125))


def test_a_client_that_reads_again_starts_from_an_empty_budget():
    server = MemoryServer(max_send_buffer=4096)
    client, _ = server.join()
    client.protocol.pauseProducing()
    pings(client, 20)  # 2540 bytes queued
    client.protocol.resumeProducing()  # ...and read
    client.protocol.pauseProducing()
    pings(client, 20)
    assert not client.transport.aborted and server.errors("slow-reader") == 0


def test_a_second_pause_without_a_resume_keeps_counting():
    server = MemoryServer(max_send_buffer=4096)
    client, _ = server.join()
    client.protocol.pauseProducing()
    pings(client, 20)
    client.protocol.pauseProducing()
    pings(client, 20)
    assert client.transport.aborted and server.errors("slow-reader") == 1


def test_nothing_is_counted_while_the_client_reads():
    server = MemoryServer(max_send_buffer=4096)
    client, _ = server.join()
    pings(client, 100)  # 12,700 bytes, read as they come
    assert not client.transport.aborted


def test_a_crowd_of_slow_readers_is_dropped_with_a_bounded_number_of_log_lines():
    from twisted.logger import capturedLogs, formatEvent

    from rtcsvc.log_budget import DEFAULT_LINES, DEFAULT_PERIOD

    server = MemoryServer(max_send_buffer=4096, handshake_rate=0, max_per_client=1000)
    crowd = 60
    with capturedLogs() as events:
        for n in range(crowd):
            client, _ = server.join(f"room{n}")
            client.protocol.pauseProducing()
            pings(client, 40)
        assert server.errors("slow-reader") == crowd  # every one is dropped all the same
        assert len([e for e in events if "dropping slow reader" in formatEvent(e)]) == DEFAULT_LINES
        server.clock.advance(DEFAULT_PERIOD)
    assert formatEvent(events[-1]).startswith(
        f"{crowd - DEFAULT_LINES} more slow readers dropped were not logged")
