"""Closed rooms in the browser: an invite link gets in, a bad or missing one is told why."""

import time

import pytest
from playwright.sync_api import expect

from rtcsvc.invite import mint_room_token
from tests.support.browser import audit, browser, people, playwright_driver  # noqa: F401

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
    # The link Ada shares carries the invite.
    expect(a.page.locator("#waiting").get_by_role("textbox", name="Invite link")).to_have_value(
        f"{svc.http_url}/r/team?token={good}")
    b.join(f"team?token={good}")
    a.wait_connected_to(1)

    for outsider, link in ((c, "team"), (c, f"team?token={expired}")):
        outsider.join(link, expect_joined=False)
        expect(outsider.page.get_by_role("heading", name="This invite link does not work")).to_be_visible()
        expect(outsider.page.get_by_text("not valid or has expired")).to_be_visible()
        expect(outsider.button("Start a new call")).to_be_visible()
        expect(outsider.button("Try again")).to_be_hidden()
        expect(outsider.button("Leave call")).to_be_hidden()
        audit(outsider.page, "refused: not invited")
    expect(a.page.get_by_role("article")).to_have_count(1)  # the two invited ones never saw the outsider
    assert len(a.state["peers"]) == 1
