"""This process's lease in Redis, and the registration of its seats under it.

Each process renews a lease (``lease:<process>``) every third of its lifetime; the heartbeat
script that renews it also sweeps the seats of processes whose lease ran out, so a dead
process's peers leave their rooms within about one lease. Once both connections are up (again),
the register script writes our seats back (after a Redis restart, with their join order) and
tells us which of them Redis no longer has as ours. Joins are served only while registered.
"""

from __future__ import annotations

from typing import Any

from twisted.internet import task
from twisted.internet.interfaces import IReactorTime
from twisted.python.failure import Failure

from rtcsvc.redis_link import RedisLink
from rtcsvc.redis_seats import SeatTable, quietly


class LeaseRegistrar:
    """Registers this process and its seats, and keeps the lease alive."""

    def __init__(self, clock: IReactorTime, link: RedisLink, seats: SeatTable, ttl: float):
        self._clock = clock
        self._link = link
        self._seats = seats
        self.ttl = ttl
        self.registered = False
        self._registering = False
        self._restarted = False
        self._heartbeat: task.LoopingCall | None = None

    def start(self) -> None:
        self._heartbeat = task.LoopingCall(self._beat)
        self._heartbeat.clock = self._clock
        self._heartbeat.start(self.ttl / 3, now=False)

    def stop(self) -> None:
        if self._heartbeat is not None and self._heartbeat.running:
            self._heartbeat.stop()

    def lost(self) -> None:
        """A connection went down: joins wait for the next registration."""
        self.registered = False

    def register(self, restarted: bool) -> None:
        """Once both connections are up, (re-)register our lease and our seats."""
        if restarted:
            self._restarted = True
        if self._registering or not self._link.up:
            return
        self._registering = True
        restarted, self._restarted = self._restarted, False
        d = self._link.call("register", int(self.ttl * 1000), "1" if restarted else "0",
                            *self._seats.records())

        def registered(lost: list[bytes]) -> None:
            self._registering = False
            self._seats.lost(lost)
            self.registered = self._link.up

        def failed(failure: Failure) -> None:
            self._registering = False
            self._restarted = self._restarted or restarted
            quietly(failure, "register")

        d.addCallbacks(registered, failed)

    def _beat(self) -> None:
        if not self._link.up or not self.registered:
            return
        d = self._link.call("heartbeat", int(self.ttl * 1000))
        timer = self._link.abort_after(self.ttl / 3)

        def answered(had_lease: Any) -> None:
            if timer.active():
                timer.cancel()
            if not had_lease:
                self.registered = False
                self.register(True)

        def failed(failure: Failure) -> None:
            if timer.active():
                timer.cancel()
            quietly(failure, "heartbeat")

        d.addCallbacks(answered, failed)
