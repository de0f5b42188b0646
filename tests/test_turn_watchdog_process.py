"""The TURN watchdog in a real ``twistd -n rtcsvc`` against a real coturn: the metric goes to 0
when coturn stops and back to 1 when it returns, /healthz says so with 200 throughout, and the
log tells why without a credential in it.
"""

from __future__ import annotations

import json
import re
import secrets

import pytest

from tests.support.coturn import CoturnProcess
from tests.support.service import wait_for

pytestmark = pytest.mark.slow


def turn_ok(service, url: str) -> str | None:
    """The value of rtcsvc_turn_check_ok for url, or None before the first check ended."""
    text = service.get("/metrics").decode()
    match = re.search(rf'^rtcsvc_turn_check_ok{{url="{re.escape(url)}"}} (\S+)$', text, re.M)
    return match and match.group(1)


def test_the_turn_metric_follows_coturn_down_and_up_and_healthz_stays_200(rtcsvc, tmp_path):
    secret = secrets.token_hex(32)
    (tmp_path / "turn-secret").write_text(secret)
    coturn = CoturnProcess.start(tmp_path / "coturn", secret)
    try:
        url = coturn.turn_url("udp")
        service = rtcsvc(args=["--turn-url", url, "--turn-secret-file",
                               str(tmp_path / "turn-secret"), "--turn-check-interval", "1"])
        wait_for(lambda: turn_ok(service, url) == "1.0", 30, "the first passing TURN check")
        assert json.loads(service.get("/healthz"))["turn"] == "ok"
        assert re.search(rf'^rtcsvc_turn_check_allocation_seconds{{url="{re.escape(url)}"}} '
                         r'0\.\d+', service.get("/metrics").decode(), re.M)

        coturn.stop()
        wait_for(lambda: turn_ok(service, url) == "0.0", 30, "a failing TURN check")
        health = json.loads(service.get("/healthz"))  # service.get raises on anything but 2xx
        assert health["status"] == "ok" and health["turn"] == "degraded"

        coturn = CoturnProcess.start(tmp_path / "coturn", secret, port=coturn.port)
        wait_for(lambda: turn_ok(service, url) == "1.0", 30, "a passing TURN check again")
        assert json.loads(service.get("/healthz"))["turn"] == "ok"
    finally:
        coturn.stop()
    log = service.log()
    assert f"TURN check failed: url={url}: turn-allocation: no TURN answer" in log
    assert log.count("TURN check passed") == 2
    assert secret not in log and not re.search(r"\d{10}:rtcsvc-check", log)
