"""ICE restart: a call whose media path dies reconnects on a new one, without a reload.

The call is forced through a real coturn (relay only). Restarting coturn on the same port kills
every relay allocation, so the old candidate pair stops answering: Chromium's connection goes
"disconnected", the app restarts ICE (new credentials, new allocations on the new coturn, the
same TURN URL and still-valid credentials from the welcome) and media flows again.
"""

from __future__ import annotations

import secrets

import pytest

from tests.support.browser import (  # noqa: F401  (pytest fixtures)
    SELECTED_PAIRS,
    browser,
    people,
    playwright_driver,
    room,
    start_relay_only_call,
)
from tests.support.coturn import CoturnProcess

pytestmark = pytest.mark.slow


def test_a_call_whose_relay_dies_restarts_ice_and_flows_again(tmp_path, rtcsvc, browser,  # noqa: F811
                                                              people, room):  # noqa: F811
    secret = secrets.token_hex(32)
    secret_file = tmp_path / "turn-secret"
    secret_file.write_text(secret)
    coturn = CoturnProcess.start(tmp_path / "coturn1", secret)
    try:
        service = rtcsvc(args=["--turn-url", coturn.turn_url("udp"),
                               "--turn-secret-file", str(secret_file)], tls=True)
        alice, bob = start_relay_only_call(people, browser, service.http_url, room)

        coturn.stop()  # every allocation is gone with it
        coturn = CoturnProcess.start(tmp_path / "coturn2", secret, port=coturn.port)

        for me, other in ((alice, bob), (bob, alice)):
            me.wait(
                """(id) => window.rtcsvc.state.peers.some(
                     (p) => p.id === id && p.restarts >= 1 && p.connectionState === "connected")""",
                other.id, timeout=60_000, what="an ICE restart that connects again",
            )
        alice.wait_media_flowing(bob.id, timeout=30_000)
        bob.wait_media_flowing(alice.id, timeout=30_000)
        pairs = alice.page.evaluate(SELECTED_PAIRS)
        assert len(pairs) == 1 and pairs[0]["local"] == "relay", pairs
        low, high = coturn.relay_ports
        assert low <= pairs[0]["localPort"] <= high  # an allocation on the new coturn
        assert alice.state["joined"] and bob.state["joined"]  # no reload, same session
    finally:
        coturn.stop()
