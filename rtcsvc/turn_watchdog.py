"""The service's own TURN watchdog: every ``--turn-check-interval`` seconds, allocate on each
``--turn-url`` with fresh credentials and say how it went, in ``/metrics`` and ``/healthz``.

The check itself is ``rtcsvc-check --turn-only --json`` (``rtcsvc.check``), run as a child
process: its TURN client (aioice) is asyncio, the service is Twisted's reactor, and a child
keeps the two event loops apart, bounds the check's memory and time (killed by its PID past
``run_timeout``), and checks with exactly the code an operator runs by hand. The secret goes to
the child on its standard input (``--turn-secret-file /dev/stdin``), never on its command line,
so the check uses the very secret this process mints with, even after the file changed. Checks
never overlap: the next one is scheduled when the last one ended.

Exported per URL: ``rtcsvc_turn_check_ok`` (1 or 0), the allocation and relay times of the
last passing check, the days left on a ``turns:`` certificate, and when the last check ended.
``/healthz`` says ``"turn": "degraded"`` while any URL fails, and still answers 200: the site
works without TURN for most callers. A URL's turn from passing to failing (and back) is logged
once, with the check's reason; credentials never are.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from prometheus_client.core import GaugeMetricFamily
from twisted.application import service
from twisted.internet import defer, error, protocol
from twisted.internet.interfaces import IDelayedCall
from twisted.logger import Logger
from twisted.python.failure import Failure

_log = Logger()

DEFAULT_INTERVAL = 300.0
#: Bound on each step of the check (a TLS handshake, an allocation, the relayed round trip).
STEP_TIMEOUT = 5.0
#: Bound on the whole child: a URL's steps run one after another (resolve, two TLS
#: handshakes, two allocations, the round trip), the URLs side by side; plus Python's start-up.
RUN_TIMEOUT = 8 * STEP_TIMEOUT
#: More output than a report of a few URLs can be is not read.
_OUTPUT_LIMIT = 1 << 20


@dataclass(frozen=True)
class TurnState:
    """The last check of one TURN URL."""

    ok: bool
    checked_at: float
    problem: str | None = None
    allocation_seconds: float | None = None
    relay_seconds: float | None = None
    certificate_days_left: float | None = None


class _CheckProcess(protocol.ProcessProtocol):
    """One run of rtcsvc-check: hands it the secret, collects its report."""

    def __init__(self, secret: bytes):
        self._secret = secret
        self.ended: defer.Deferred[tuple[BaseException | None, bytes, bytes]] = defer.Deferred()
        self._out = bytearray()
        self._err = bytearray()

    def connectionMade(self) -> None:
        assert self.transport is not None
        self.transport.write(self._secret)
        self.transport.closeStdin()

    def outReceived(self, data: bytes) -> None:
        if len(self._out) < _OUTPUT_LIMIT:
            self._out += data

    def errReceived(self, data: bytes) -> None:
        if len(self._err) < _OUTPUT_LIMIT:
            self._err += data

    def processEnded(self, reason: Failure) -> None:
        self.ended.callback((reason.value, bytes(self._out), bytes(self._err)))

    def kill(self) -> None:
        assert self.transport is not None
        try:
            self.transport.signalProcess("KILL")
        except error.ProcessExitedAlready:
            pass


class TurnWatchdog(service.Service):
    """Checks the TURN URLs every ``interval`` seconds while the service runs."""

    def __init__(self, reactor: Any, turn_urls: Iterable[str], secret: bytes,
                 interval: float = DEFAULT_INTERVAL, step_timeout: float = STEP_TIMEOUT,
                 run_timeout: float = RUN_TIMEOUT, command: Sequence[str] | None = None):
        self._reactor = reactor
        self._urls = tuple(turn_urls)
        self._secret = secret
        self._interval = interval
        self._step_timeout = step_timeout
        self._run_timeout = run_timeout
        self._command = list(command or [sys.executable, "-m", "rtcsvc.check"])
        self._next: IDelayedCall | None = None
        self._child: _CheckProcess | None = None
        #: URL -> the last check's outcome; empty until the first check ended.
        self.state: dict[str, TurnState] = {}

    def argv(self) -> list[str]:
        argv = [*self._command, "--turn-only", "--json", "--timeout", f"{self._step_timeout:g}",
                "--turn-secret-file", "/dev/stdin"]
        for url in self._urls:
            argv += ["--turn-url", url]
        return argv

    def status(self) -> str | None:
        """For /healthz: ``ok``, ``degraded`` (a URL failed its last check), or None before the
        first check ended."""
        if not self.state:
            return None
        return "ok" if all(state.ok for state in self.state.values()) else "degraded"

    def startService(self) -> None:
        super().startService()  # type: ignore[no-untyped-call]
        self._next = self._reactor.callLater(0, self._run)

    def stopService(self) -> defer.Deferred[None] | None:
        super().stopService()  # type: ignore[no-untyped-call]
        if self._next is not None and self._next.active():
            self._next.cancel()
        self._next = None
        child, self._child = self._child, None
        if child is None:
            return None
        child.kill()
        ended = child.ended.addTimeout(5, self._reactor)
        return ended.addBoth(lambda _: None)

    def _run(self) -> None:
        self._next = None
        argv = self.argv()
        child = _CheckProcess(self._secret)
        try:
            self._reactor.spawnProcess(child, argv[0], argv, env=dict(os.environ))
        except Exception as e:
            self._record(None, f"cannot start rtcsvc-check: {e}")
            self._schedule()
            return
        self._child = child
        overrun = self._reactor.callLater(self._run_timeout, child.kill)
        child.ended.addCallback(self._ended, child, overrun)
        child.ended.addErrback(lambda f: _log.failure("TURN check", f))

    def _ended(self, result: tuple[BaseException | None, bytes, bytes], child: _CheckProcess,
               overrun: IDelayedCall) -> None:
        if child is not self._child:  # stopped meanwhile
            return
        self._child = None
        overran = not overrun.active()
        if not overran:
            overrun.cancel()
        reason, out, err = result
        problem = None
        try:
            report = json.loads(out)
        except ValueError:
            report = None
            if overran:
                problem = f"rtcsvc-check took over {self._run_timeout:g} s and was killed"
            else:
                lines = err.decode("utf-8", "replace").strip().splitlines() or ["no output"]
                problem = f"rtcsvc-check gave no report ({reason}): {lines[-1][:300]}"
        self._record(report, problem)
        self._schedule()

    def _schedule(self) -> None:
        if self.running:
            self._next = self._reactor.callLater(self._interval, self._run)

    def _record(self, report: dict[str, Any] | None, problem: str | None) -> None:
        now = self._reactor.seconds()
        for url in self._urls:
            checks = [c for c in (report or {}).get("checks", []) if c.get("target") == url]
            state = _state(checks, now, problem or "rtcsvc-check did not report on it")
            previous = self.state.get(url)
            self.state[url] = state
            if previous is not None and previous.ok == state.ok:
                continue
            if state.ok:
                _log.info("TURN check passed: url={url} allocation={ms:.0f} ms", url=url,
                          ms=(state.allocation_seconds or 0) * 1000)
            else:
                _log.warn("TURN check failed: url={url}: {problem}", url=url,
                          problem=state.problem)

    def collect(self) -> list[GaugeMetricFamily]:
        """The prometheus_client collector: one sample per URL and gauge."""
        families = {
            "ok": GaugeMetricFamily(
                "rtcsvc_turn_check_ok", "1 if the last TURN check of this URL (fresh "
                "credentials, an allocation, a relayed round trip) passed, else 0.",
                labels=["url"]),
            "allocation_seconds": GaugeMetricFamily(
                "rtcsvc_turn_check_allocation_seconds",
                "Time the last passing TURN check took to allocate.", labels=["url"]),
            "relay_seconds": GaugeMetricFamily(
                "rtcsvc_turn_check_relay_seconds", "Time the last passing TURN check took "
                "to get a datagram across between two allocations.", labels=["url"]),
            "certificate_days_left": GaugeMetricFamily(
                "rtcsvc_turn_check_certificate_days_left",
                "Days until a turns: URL's certificate expires (negative: expired).",
                labels=["url"]),
            "checked_at": GaugeMetricFamily(
                "rtcsvc_turn_check_timestamp_seconds",
                "Unix time the last TURN check of this URL ended.", labels=["url"]),
        }
        for url, state in sorted(self.state.items()):
            families["ok"].add_metric([url], int(state.ok))
            for name in ("allocation_seconds", "relay_seconds", "certificate_days_left",
                         "checked_at"):
                value = getattr(state, name)
                if value is not None:
                    families[name].add_metric([url], value)
        return list(families.values())


def _state(checks: list[dict[str, Any]], now: float, missing: str) -> TurnState:
    """One URL's outcome from its lines of the report."""
    if not checks:
        return TurnState(False, now, missing)
    by_name = {c.get("check"): c for c in checks}
    failed = [c for c in checks if c.get("status") == "fail"]

    def number(check: str, key: str) -> float | None:
        # Times of a failed step mean nothing; an expired certificate's days left still do.
        entry = by_name.get(check)
        if entry is None or entry.get("status") == "fail" and key != "days_left":
            return None
        return entry.get(key)

    return TurnState(
        ok=not failed,
        checked_at=now,
        problem=f"{failed[0].get('check')}: {failed[0].get('message')}" if failed else None,
        allocation_seconds=number("turn-allocation", "seconds"),
        relay_seconds=number("turn-relay", "seconds"),
        certificate_days_left=number("turn-certificate-expiry", "days_left"),
    )
