"""Real browser calls through the shipped deployment: Apache in front, coturn as the relay.

Two headless Chromium participants (``tests/support/browser.py``) use the real web app. Through
Apache they load ``https://chat.test:<port>/`` (a resolver rule maps the name to 127.0.0.1; the
throwaway certificate is accepted with ``--ignore-certificate-errors``). For the relay call the
test forces ``iceTransportPolicy: "relay"`` from outside the app, by wrapping
``RTCPeerConnection`` in an init script, so media can only flow through coturn.
"""

from __future__ import annotations

import secrets

import pytest

from tests.support.apache import SERVER_NAME, ProxyFront
from tests.support.browser import (  # noqa: F401  (pytest fixtures)
    SELECTED_PAIRS,
    launch,
    people,
    playwright_driver,
    room,
    start_relay_only_call,
)
from tests.support.coturn import CoturnProcess
from tests.support.service import wait_for

pytestmark = [
    pytest.mark.slow,
]


@pytest.fixture(scope="module")
def chromium(playwright_driver):  # noqa: F811
    """Chromium that resolves chat.test to 127.0.0.1 and accepts the throwaway certificate."""
    browser = launch(playwright_driver, extra_args=[
        f"--host-resolver-rules=MAP {SERVER_NAME} 127.0.0.1",
        "--ignore-certificate-errors",
    ])
    yield browser
    browser.close()


@pytest.mark.parametrize("upgrade", [False, True], ids=["wstunnel", "upgrade"])
def test_two_browsers_call_each_other_through_apache(tmp_path, rtcsvc, people, room, chromium,  # noqa: F811
                                                     upgrade):
    service = rtcsvc(args=["--trusted-proxy", "127.0.0.1"])
    front = ProxyFront.start(tmp_path / "apache", service.port, tls=True, upgrade=upgrade)
    try:
        alice = people(chromium, front.origin, name="Alice")
        bob = people(chromium, front.origin, name="Bob")
        alice.join(room)
        bob.join(room)
        assert alice.wait_connected_to(1) == [bob.id]
        assert bob.wait_connected_to(1) == [alice.id]
        assert alice.wait_media_flowing(bob.id)["w"] > 0
        assert bob.wait_media_flowing(alice.id)["w"] > 0
        # Both signaling sockets really went through Apache, over TLS: Apache logs each
        # upgraded request once it ends, so end the call first.
        alice.close()
        bob.close()
        access_log = front.apache.server_root / "logs" / "access.log"

        def upgrades():
            return [line for line in access_log.read_text().splitlines()
                    if f"GET /ws/{room}" in line and '" 101 ' in line]

        # Each lobby's network check opens a probe socket on the same path (its query is not
        # logged), so there are the two calls' upgrades and up to two probes.
        wait_for(lambda: len(upgrades()) >= 2, 10, "both WebSocket requests in Apache's log")
        assert len(upgrades()) <= 4, upgrades()
        assert all(front.origin in line for line in upgrades())
    finally:
        front.stop()


def test_relay_only_call_flows_through_coturn_with_minted_credentials(tmp_path, rtcsvc, people,  # noqa: F811
                                                                      room, chromium):
    secret = secrets.token_hex(32)
    secret_file = tmp_path / "turn-secret"
    secret_file.write_text(secret)
    coturn = CoturnProcess.start(tmp_path / "coturn", secret)
    try:
        service = rtcsvc(args=["--turn-url", coturn.turn_url("udp"),
                               "--turn-secret-file", str(secret_file)], tls=True)
        alice, bob = start_relay_only_call(people, chromium, service.http_url, room)

        low, high = coturn.relay_ports
        for person in (alice, bob):
            pairs = person.page.evaluate(SELECTED_PAIRS)
            assert len(pairs) == 1, pairs
            pair = pairs[0]
            assert pair["policy"] == "relay"
            assert pair["local"] == "relay" and pair["remote"] == "relay", pair
            assert low <= pair["localPort"] <= high and low <= pair["remotePort"] <= high, pair
            assert pair["bytesReceived"] > 0
    finally:
        coturn.stop()
