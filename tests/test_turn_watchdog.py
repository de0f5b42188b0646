"""The TURN watchdog without processes: what it runs, what it makes of the report, when it
runs again, and that an overrunning check is killed. The child is a stand-in recorded by a
MemoryReactorClock; test_turn_watchdog_process.py runs the real one against a real coturn.
"""

from __future__ import annotations

import json

from prometheus_client import CollectorRegistry, generate_latest
from twisted.internet.error import ProcessDone, ProcessTerminated
from twisted.internet.testing import MemoryReactorClock
from twisted.logger import globalLogPublisher
from twisted.python.failure import Failure
from twisted.web.test.requesthelper import DummyRequest

from rtcsvc.tap import Options, makeService
from rtcsvc.turn_watchdog import TurnWatchdog
from rtcsvc.web import Health

SECRET = b"watchdog-secret-0123456789"
UDP = "turn:turn.example.com:3478?transport=udp"
TLS = "turns:turn.example.com:5349?transport=tcp"


class FakeChild:
    """The transport spawnProcess would hand the protocol."""

    def __init__(self):
        self.stdin = b""
        self.stdin_closed = False
        self.signals = []

    def write(self, data):
        self.stdin += data

    def closeStdin(self):
        self.stdin_closed = True

    def signalProcess(self, signal):
        self.signals.append(signal)


class ProcessReactor(MemoryReactorClock):
    def __init__(self):
        super().__init__()
        self.spawned = []

    def spawnProcess(self, protocol, executable, args, env=None, **kwargs):
        child = FakeChild()
        protocol.makeConnection(child)
        self.spawned.append((protocol, args, child))
        return child


def report(*checks):
    return json.dumps({"status": "x", "checks": [
        {"check": name, "target": url, "status": status, "message": f"{name} {status}", **extra}
        for name, url, status, extra in checks]}).encode()


def finish(protocol, output: bytes, code: int = 0):
    protocol.outReceived(output)
    reason = ProcessDone(0) if code == 0 else ProcessTerminated(code)
    protocol.processEnded(Failure(reason))


def scrape(watchdog) -> str:
    registry = CollectorRegistry()
    registry.register(watchdog)
    return generate_latest(registry).decode()


def started(urls=(UDP,), interval=300.0):
    reactor = ProcessReactor()
    watchdog = TurnWatchdog(reactor, urls, SECRET, interval)
    watchdog.startService()
    reactor.advance(0)
    return reactor, watchdog


GOOD = [("turn-resolve", UDP, "pass", {}),
        ("turn-allocation", UDP, "pass", {"seconds": 0.042}),
        ("turn-relay", UDP, "pass", {"seconds": 0.007})]


def test_the_check_runs_at_start_and_the_secret_goes_on_stdin_not_the_command_line():
    reactor, watchdog = started([UDP, TLS])
    [(_, argv, child)] = reactor.spawned
    assert argv[1:3] == ["-m", "rtcsvc.check"]
    assert argv[3:] == ["--turn-only", "--json", "--timeout", "5",
                        "--turn-secret-file", "/dev/stdin", "--turn-url", UDP, "--turn-url", TLS]
    assert child.stdin == SECRET and child.stdin_closed
    assert not any(SECRET.decode() in arg for arg in argv)


def test_a_passing_check_exports_ok_and_timings_and_healthz_says_ok():
    reactor, watchdog = started()
    assert watchdog.status() is None and "rtcsvc_turn_check_ok{" not in scrape(watchdog)
    finish(reactor.spawned[0][0], report(*GOOD))
    text = scrape(watchdog)
    assert f'rtcsvc_turn_check_ok{{url="{UDP}"}} 1.0' in text
    assert f'rtcsvc_turn_check_allocation_seconds{{url="{UDP}"}} 0.042' in text
    assert f'rtcsvc_turn_check_relay_seconds{{url="{UDP}"}} 0.007' in text
    assert f'rtcsvc_turn_check_timestamp_seconds{{url="{UDP}"}}' in text
    assert watchdog.status() == "ok"


def test_a_failing_url_exports_0_and_healthz_says_degraded_with_200():
    reactor, watchdog = started([UDP, TLS])
    finish(reactor.spawned[0][0], report(
        *GOOD, ("turn-certificate-expiry", TLS, "fail", {"days_left": -3.5}),
        ("turn-allocation", TLS, "fail", {"seconds": 0.1})), code=2)
    text = scrape(watchdog)
    assert f'rtcsvc_turn_check_ok{{url="{UDP}"}} 1.0' in text
    assert f'rtcsvc_turn_check_ok{{url="{TLS}"}} 0.0' in text
    assert f'rtcsvc_turn_check_certificate_days_left{{url="{TLS}"}} -3.5' in text
    assert f'rtcsvc_turn_check_allocation_seconds{{url="{TLS}"}}' not in text
    assert watchdog.status() == "degraded"

    class Hub:
        available, room_count, peer_count = True, 0, 0

    request = DummyRequest([b""])
    body = Health(Hub(), lambda: 0, lambda request: False, watchdog.status).render_GET(request)
    assert json.loads(body) == {"status": "ok", "turn": "degraded"}
    assert request.responseCode in (None, 200)


def test_the_next_check_comes_an_interval_after_the_last_one_ended():
    reactor, watchdog = started(interval=60)
    reactor.advance(120)
    assert len(reactor.spawned) == 1  # the first one has not ended: no overlap
    finish(reactor.spawned[0][0], report(*GOOD))
    reactor.advance(59)
    assert len(reactor.spawned) == 1
    reactor.advance(1)
    assert len(reactor.spawned) == 2


def test_an_overrunning_check_is_killed_and_counts_as_a_failure():
    reactor, watchdog = started()
    protocol, _, child = reactor.spawned[0]
    reactor.advance(39)
    assert child.signals == []
    reactor.advance(1)
    assert child.signals == ["KILL"]
    finish(protocol, b"", code=9)
    assert f'rtcsvc_turn_check_ok{{url="{UDP}"}} 0.0' in scrape(watchdog)
    assert "killed" in watchdog.state[UDP].problem


def test_a_check_that_cannot_report_fails_every_url_with_its_last_error_line():
    reactor, watchdog = started([UDP, TLS])
    protocol = reactor.spawned[0][0]
    protocol.errReceived(b"Traceback...\nModuleNotFoundError: No module named 'aioice'\n")
    finish(protocol, b"", code=1)
    assert watchdog.status() == "degraded"
    assert watchdog.state[TLS].problem.endswith("No module named 'aioice'")


def test_changes_are_logged_once_with_the_reason_and_never_the_secret():
    events = []
    globalLogPublisher.addObserver(events.append)
    try:
        reactor, watchdog = started(interval=1)
        failing = report(("turn-allocation", UDP, "fail", {}))
        for output in (failing, failing, report(*GOOD), report(*GOOD)):
            finish(reactor.spawned[-1][0], output)
            reactor.advance(1)
    finally:
        globalLogPublisher.removeObserver(events.append)
    from twisted.logger import formatEvent

    lines = [formatEvent(e) for e in events if "TURN check" in str(e.get("log_format"))]
    assert lines == [f"TURN check failed: url={UDP}: turn-allocation: turn-allocation fail",
                     f"TURN check passed: url={UDP} allocation=42 ms"]
    assert not any(SECRET.decode() in formatEvent(e) for e in events)


def test_stopping_the_service_kills_a_running_check():
    reactor, watchdog = started()
    child = reactor.spawned[0][2]
    watchdog.stopService()
    assert child.signals == ["KILL"]
    reactor.advance(1000)
    assert len(reactor.spawned) == 1


def test_the_option_turns_it_on_by_default_and_0_turns_it_off(tmp_path):
    secret = tmp_path / "secret"
    secret.write_bytes(SECRET)

    def watchdogs(*argv):
        options = Options()
        options.parseOptions(["--turn-url", UDP, "--turn-secret-file", str(secret),
                              "--state-dir", str(tmp_path), "--listen", "tcp:0", *argv])
        return [s for s in makeService(options, MemoryReactorClock()) if
                isinstance(s, TurnWatchdog)]

    assert Options()["turn-check-interval"] == 300
    assert len(watchdogs()) == 1
    assert watchdogs("--turn-check-interval", "0") == []
