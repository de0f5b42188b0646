"""Group calls (a full mesh) and the landing page's start/join flow, in real headless Chromium,
asserted on screen."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from tests.support.browser import browser, people, playwright_driver, room  # noqa: F401

pytestmark = pytest.mark.slow


def test_start_a_call_makes_an_unguessable_room_and_a_pasted_link_joins_it(rtcsvc, browser, people):  # noqa: F811
    svc = rtcsvc(tls=True)
    a = people(browser, svc.http_url, name="Ada")
    b = people(browser, svc.http_url, name="Grace")

    a.page.goto(svc.http_url + "/")
    a.button("Start a call").click()
    expect(a.page.get_by_role("heading", name="Ready to join?")).to_be_visible()
    match = re.fullmatch(re.escape(svc.http_url) + r"/r/([A-Za-z0-9_-]{22})", a.page.url)
    assert match, a.page.url  # 16 random bytes, base64url: 128 bits
    # The lobby shows the link to share before anyone joins.
    expect(a.page.get_by_role("textbox", name="Invite link")).to_have_value(a.page.url)
    a.page.get_by_role("textbox", name="Your name").fill("Ada")
    a.button("Join call").click()
    a.expect_connected()

    b.page.goto(svc.http_url + "/")
    join = b.page.get_by_role("textbox", name="Join with a link or room name")
    join.fill("not a room!")
    b.button("Join").click()
    expect(b.page.get_by_text("That is not a room link or name")).to_be_visible()
    expect(join).to_have_attribute("aria-invalid", "true")
    join.fill(a.page.url)
    b.button("Join").click()
    expect(b.page.get_by_role("heading", name="Ready to join?")).to_be_visible()
    expect(b.page.get_by_role("textbox", name="Invite link")).to_have_value(a.page.url)
    b.page.get_by_role("textbox", name="Your name").fill("Grace")
    b.button("Join call").click()
    a.wait_connected_to(1)
    b.wait_connected_to(1)
    expect(a.tile("Grace")).to_be_visible()
    expect(b.tile("Ada")).to_be_visible()


def test_third_participant_joins_the_mesh_and_its_tile_is_removed_everywhere_when_it_leaves(
        rtcsvc, browser, people, room):  # noqa: F811
    svc = rtcsvc(tls=True)
    everyone = [people(browser, svc.http_url, name=n) for n in ("Ada", "Grace", "Linus")]
    a, b, c = everyone
    a.join(room)
    b.join(room)
    a.wait_connected_to(1)
    c.join(room)

    ids = {p.name: p.id for p in everyone}
    for p in everyone:
        others = set(p.wait_connected_to(2, timeout=45_000))
        assert others == {i for n, i in ids.items() if n != p.name}
        for other in others:
            sample = p.wait_media_flowing(other)
            assert sample["audio"] == ["live"] and sample["w"] > 0
        # Two named tiles, and the self-view as a third cell of the grid.
        expect(p.page.get_by_role("article")).to_have_count(2)
        for name in {"Ada", "Grace", "Linus"} - {p.name}:
            expect(p.tile(name)).to_be_visible()
        expect(p.page.get_by_role("figure", name="Your video")).to_be_visible()
        expect(p.page.get_by_text("3 people")).to_be_visible()

    # A chat message reaches both others over their own data channels.
    a.button("Chat").click()
    a.page.get_by_role("textbox", name="Message").fill("three of us now")
    a.page.get_by_role("textbox", name="Message").press("Enter")
    for p in (b, c):
        expect(p.toast("Ada: three of us now")).to_be_visible()
    b.button("Chat 1 unread").click()
    b.page.get_by_role("textbox", name="Message").fill("Hi both! Can you hear me?")
    b.page.get_by_role("button", name="Send", exact=True).click()
    expect(a.page.get_by_role("complementary", name="Chat & files").get_by_text("Hi both! Can you hear me?")).to_be_visible()
    expect(c.toast("Grace: Hi both! Can you hear me?")).to_be_visible()

    c.button("Leave call").click()
    expect(c.page.get_by_role("heading", name="You left the call")).to_be_visible()
    for p in (a, b):
        expect(p.tile("Linus")).to_have_count(0)
        expect(p.page.get_by_role("article")).to_have_count(1)
        expect(p.toast("Linus left the call.")).to_be_visible()
        expect(p.page.get_by_text("2 people")).to_be_visible()
        assert p.peer_ids() == [ids["Ada"] if p is b else ids["Grace"]]
    # The two who stayed still see each other.
    a.wait_media_flowing(ids["Grace"])
    b.wait_media_flowing(ids["Ada"])
