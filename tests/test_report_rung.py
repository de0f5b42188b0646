"""Call-setup reports say which escalation rung connected (static/js/escalation.js), and
/metrics counts them by rung: docs/protocol.md, "report"."""

from __future__ import annotations

import json

import pytest

from rtcsvc.messages import REPORT_RUNGS, BadMessage, parse
from rtcsvc.metrics import Metrics


def report(**data) -> bytes:
    return json.dumps({"type": "report", "data": data}).encode()


@pytest.mark.parametrize("rung", sorted(REPORT_RUNGS))
def test_a_connected_report_may_name_its_rung(rung):
    parsed = parse(report(outcome="connected", setupMs=21000, path="relay", rung=rung))
    assert parsed.rung == rung and parsed.path == "relay"


def test_the_rung_is_optional():
    assert parse(report(outcome="connected", setupMs=900, path="direct")).rung is None


@pytest.mark.parametrize("data", [
    {"outcome": "connected", "setupMs": 5, "path": "relay", "rung": "turn:1.2.3.4"},
    {"outcome": "connected", "setupMs": 5, "path": "relay", "rung": 2},
    {"outcome": "failed", "setupMs": 5, "reason": "timeout", "rung": "relay-only"},
])
def test_an_unknown_rung_or_a_rung_on_a_failure_is_refused(data):
    with pytest.raises(BadMessage):
        parse(json.dumps({"type": "report", "data": data}).encode())


def test_metrics_count_connected_calls_by_rung():
    metrics = Metrics()
    for rung in ("initial", "relay-only", "relay-only"):
        metrics.record_report(parse(report(outcome="connected", setupMs=5, path="relay", rung=rung)))
    metrics.record_report(parse(report(outcome="connected", setupMs=5, path="direct")))
    from prometheus_client import generate_latest

    text = generate_latest(metrics.registry).decode()
    assert 'rtcsvc_call_setup_rungs_total{rung="relay-only"} 2.0' in text
    assert 'rtcsvc_call_setup_rungs_total{rung="initial"} 1.0' in text
    assert 'rtcsvc_call_setups_total{path="relay"} 3.0' in text
