"""The bound on log lines strangers can cause (rtcsvc.log_budget), on a fake clock."""

from twisted.internet.task import Clock
from twisted.logger import Logger, formatEvent


def budget(lines=3, period=60.0):
    from rtcsvc.log_budget import LogBudget

    events = []
    clock = Clock()
    log = Logger(observer=events.append)
    return LogBudget(log, clock, "failed TLS handshakes", lines, period), clock, events


def text(events):
    return [formatEvent(event) for event in events]


def test_a_few_lines_per_period_are_written_as_they_come():
    logs, clock, events = budget(lines=3)
    for n in range(3):
        logs.info("handshake {n} failed", n=n)
    assert text(events) == ["handshake 0 failed", "handshake 1 failed", "handshake 2 failed"]


def test_a_flood_writes_its_budget_then_one_line_counting_the_rest():
    logs, clock, events = budget(lines=3)
    for n in range(10_000):
        logs.info("handshake {n} failed", n=n)
    assert len(events) == 3
    clock.advance(60)
    assert len(events) == 4
    assert text(events)[-1] == "9997 more failed TLS handshakes were not logged in the last 60s"


def test_the_budget_is_whole_again_in_the_next_period():
    logs, clock, events = budget(lines=2)
    for n in range(5):
        logs.info("line {n}", n=n)
    clock.advance(60)
    events.clear()
    logs.info("after {n}", n=1)
    logs.info("after {n}", n=2)
    assert text(events) == ["after 1", "after 2"]


def test_a_quiet_period_writes_no_summary_and_leaves_no_timer():
    logs, clock, events = budget(lines=3)
    logs.info("one line")
    clock.advance(60)
    assert text(events) == ["one line"]
    assert clock.getDelayedCalls() == []


def test_stopping_says_what_was_left_out_and_cancels_the_timer():
    logs, clock, events = budget(lines=1)
    logs.info("first")
    logs.info("second")
    logs.stop()
    assert text(events)[-1] == "1 more failed TLS handshakes were not logged in the last 60s"
    assert clock.getDelayedCalls() == []
