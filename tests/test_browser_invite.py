"""Closed rooms in the browser: an invite link gets in, a bad or missing one is told why."""

import time

import pytest

from rtcsvc.invite import mint_room_token
from tests.support.browser import browser, people, playwright_driver  # noqa: F401

pytestmark = pytest.mark.slow

SECRET = b"an invite secret for the browser test"


def test_an_invite_link_joins_a_closed_room_and_a_missing_or_expired_one_is_told(
        rtcsvc, browser, people, tmp_path):  # noqa: F811
    secret = tmp_path / "room-secret"
    secret.write_bytes(SECRET)
    svc = rtcsvc(args=["--room-secret-file", str(secret)], tls=True)
    good = mint_room_token(SECRET, "team", int(time.time()) + 600)
    expired = mint_room_token(SECRET, "team", int(time.time()) - 5)
    a, b, c = (people(browser, svc.http_url, name=n) for n in ("Ada", "Grace", "Linus"))

    a.join(f"team?token={good}")
    b.join(f"team?token={good}")
    a.wait_connected_to(1)

    for outsider, link in ((c, "team"), (c, f"team?token={expired}")):
        outsider.join(link, expect_joined=False)
        outsider.wait("() => window.rtcsvc.state.notices.includes('not-invited')",
                      what="the not-invited notice")
        banner = outsider.page.locator("#banner")
        assert "invite link" in banner.text_content()
        assert outsider.state["joined"] is False
    assert len(a.state["peers"]) == 1  # the two invited ones never saw the outsider
