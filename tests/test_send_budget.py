"""rtcsvc.send_budget: bytes written for a client that stopped reading, up to the limit.

Pure. The adapter's side (a slow reader dropped, pongs and errors counted) is in
tests/test_protocol_memory.py.
"""

from __future__ import annotations

from rtcsvc.send_budget import SendBudget


def test_a_socket_starts_reading():
    budget = SendBudget(100)
    assert not budget.paused and budget.backlog == 0


def test_bytes_up_to_the_limit_are_within_the_budget():
    budget = SendBudget(100)
    budget.pause()
    assert not budget.over(60)
    assert not budget.over(40)
    assert budget.paused


def test_the_byte_past_the_limit_is_over_and_ends_the_counting():
    budget = SendBudget(100)
    budget.pause()
    budget.over(100)
    assert budget.over(1)
    assert not budget.paused  # the client is being dropped: nothing more to count


def test_resuming_forgets_what_was_queued():
    budget = SendBudget(100)
    budget.pause()
    budget.over(90)
    budget.resume()
    assert not budget.paused and budget.backlog == 0
    budget.pause()
    assert not budget.over(90)


def test_a_pause_that_ends_without_a_resume_keeps_counting_from_where_it_was():
    """Only resumeProducing says the client read its backlog; a pause after a stop (or a
    second pause) adds to what is still queued."""
    budget = SendBudget(100)
    budget.pause()
    budget.over(90)
    budget.stop()
    assert not budget.paused
    budget.pause()
    assert budget.over(20)
