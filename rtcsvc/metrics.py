"""The Prometheus metrics served at ``/metrics``.

Each service gets its own registry (tests run several in one process). Values that change on
every relayed message (signals relayed, peers, rooms) are read from the hub at scrape time by a
collector, so the relay path never touches a metrics lock; only rare events (errors, refusals,
call-setup reports) use prometheus_client's counters directly.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

if TYPE_CHECKING:
    from rtcsvc.hub import IHubStatistics
    from rtcsvc.messages import Report

#: Call setup takes from well under a second (direct, on a LAN) to tens of seconds (TURN/TCP).
SETUP_BUCKETS = (0.25, 0.5, 1, 1.5, 2, 3, 5, 8, 13, 20, 30, 60)


class _LiveCollector:
    """Reads the hub's and the connections' counts at scrape time."""

    def __init__(self, hub: IHubStatistics, connections_open: Callable[[], int]):
        self._hub = hub
        self._connections_open = connections_open

    def collect(self) -> Iterator[Metric]:
        yield GaugeMetricFamily(
            "rtcsvc_connections_open", "WebSocket connections open now.",
            value=self._connections_open(),
        )
        yield GaugeMetricFamily("rtcsvc_hub_available",
                                "1 when joins can be served (always, without --redis).",
                                value=int(self._hub.available))
        yield GaugeMetricFamily("rtcsvc_rooms", "Rooms with at least one member.",
                                value=self._hub.room_count)
        yield GaugeMetricFamily("rtcsvc_peers", "Seats taken in all rooms (held ones included).",
                                value=self._hub.peer_count)
        yield CounterMetricFamily("rtcsvc_signals_relayed", "Signals delivered to recipients.",
                                  value=self._hub.signals_relayed)


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.connections = Counter(
            "rtcsvc_connections", "WebSocket connections opened.", registry=self.registry
        )
        self.errors = Counter(
            "rtcsvc_errors", "Error messages sent to clients, by code.", ["code"],
            registry=self.registry,
        )
        self.refused = Counter(
            "rtcsvc_handshakes_refused", "WebSocket handshakes refused, by reason.", ["reason"],
            registry=self.registry,
        )
        self.turn_mints_refused = Counter(
            "rtcsvc_turn_mints_refused",
            "Joins welcomed without TURN credentials: the client was over --turn-mint-rate.",
            registry=self.registry,
        )
        self.setup_seconds = Histogram(
            "rtcsvc_call_setup_seconds",
            "Time from join to a connected peer connection, as reported by clients.",
            ["path"], buckets=SETUP_BUCKETS, registry=self.registry,
        )
        self.setups = Counter(
            "rtcsvc_call_setups", "Peer connections that connected, by path (direct or relay).",
            ["path"], registry=self.registry,
        )
        self.failures = Counter(
            "rtcsvc_call_failures", "Peer connections that failed, by reason.", ["reason"],
            registry=self.registry,
        )
        self.setup_rungs = Counter(
            "rtcsvc_call_setup_rungs",
            "Peer connections that connected, by the escalation rung that got them through.",
            ["rung"], registry=self.registry,
        )
        self.netchecks = Counter(
            "rtcsvc_netchecks",
            "Lobby network checks, by verdict and the transport that passed data.",
            ["verdict", "transport"], registry=self.registry,
        )

    def watch(self, hub: IHubStatistics, connections_open: Callable[[], int]) -> None:
        """Expose the live counts of ``hub`` and ``connections_open()``."""
        self.registry.register(_LiveCollector(hub, connections_open))

    def record_report(self, report: Report) -> None:
        if report.outcome == "connected":
            self.setups.labels(report.path).inc()
            self.setup_seconds.labels(report.path).observe(report.setup_seconds)
            if report.rung is not None:
                self.setup_rungs.labels(report.rung).inc()
        else:
            self.failures.labels(report.reason).inc()
