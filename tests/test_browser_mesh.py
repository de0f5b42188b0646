"""Group calls (a full mesh) and the landing page's start/join flow, in real headless Chromium."""

from __future__ import annotations

import re
import secrets
import time

import pytest

from tests.support.browser import browser, people, playwright_driver, room, screenshot_dir  # noqa: F401

pytestmark = pytest.mark.slow



def test_start_a_call_makes_an_unguessable_room_and_a_pasted_link_joins_it(rtcsvc, browser, people):
    svc = rtcsvc(tls=True)
    a = people(browser, svc.http_url, name="Ada")
    b = people(browser, svc.http_url, name="Grace")

    a.page.goto(svc.http_url + "/")
    a.page.click("text=Start a call")
    a.page.locator("body.media-ready").wait_for(state="attached", timeout=20_000)
    match = re.fullmatch(re.escape(svc.http_url) + r"/r/([A-Za-z0-9_-]{22})", a.page.url)
    assert match, a.page.url  # 16 random bytes, base64url: 128 bits
    room = match.group(1)
    a.page.fill("#name-input", "Ada")
    a.page.click("#join-now")
    a.wait("() => window.rtcsvc.state.joined")

    b.page.goto(svc.http_url + "/")
    b.page.fill("#join-input", "not a room!")
    b.page.click("#join-form button[type=submit]")
    assert "not a room" in b.page.locator("#join-error").text_content()
    b.page.fill("#join-input", a.page.url)
    b.page.click("#join-form button[type=submit]")
    b.page.locator("body.media-ready").wait_for(state="attached", timeout=20_000)
    assert b.state["room"] == room
    b.page.fill("#name-input", "Grace")
    b.page.click("#join-now")
    a.wait_connected_to(1)
    b.wait_connected_to(1)
    # Room names made by different clicks differ.
    names = {a.page.evaluate("window.rtcsvc.newRoomName()") for _ in range(20)}
    assert len(names) == 20


def test_third_participant_joins_the_mesh_and_its_tile_is_removed_everywhere_when_it_leaves(
        rtcsvc, browser, people, tmp_path):
    room = secrets.token_urlsafe(16)  # what "Start a call" makes, so the screenshot looks real
    svc = rtcsvc(tls=True)
    everyone = [people(browser, svc.http_url, name=n) for n in ("Ada", "Grace", "Linus")]
    a, b, c = everyone
    a.join(room)
    b.join(room)
    a.wait_connected_to(1)
    c.join(room)

    ids = {p.name: p.id for p in everyone}
    for p in everyone:
        others = set(p.wait_connected_to(2, timeout=30_000))
        assert others == {i for n, i in ids.items() if n != p.name}
        for other in others:
            sample = p.wait_media_flowing(other)
            assert sample["audio"] == ["live"] and sample["w"] > 0
        assert p.page.locator(".tile").count() == 2
        assert p.page.get_attribute("#grid", "data-count") == "2"

    # A chat message reaches both others over their own data channels.
    a.page.click("#btn-chat")
    a.page.fill("#chat-input", "three of us now")
    a.page.press("#chat-input", "Enter")
    for p in (b, c):
        p.wait("() => window.rtcsvc.chat.some(m => m.text === 'three of us now')")
    b.page.evaluate("window.rtcsvc.sendChat('Hi both! Can you hear me?')")
    a.wait("() => window.rtcsvc.chat.some(m => m.text.startsWith('Hi both'))")
    for p in everyone:
        p.wait("() => window.rtcsvc.state.peers.every(x => x.name && !x.name.startsWith('Guest'))")
    time.sleep(2.5)
    a.screenshot(screenshot_dir(tmp_path) / "call-3.png")

    c.page.click("#btn-leave")
    c.wait("() => window.rtcsvc.state.view === 'left'")
    for p in (a, b):
        p.wait(f"() => !document.querySelector('.tile[data-peer=\"{ids['Linus']}\"]')",
               what="Linus's tile to go")
        assert p.page.locator(".tile").count() == 1
        assert [x["id"] for x in p.state["peers"]] == [ids["Ada"] if p is b else ids["Grace"]]
        assert "peer-left" in p.state["notices"]
        assert "Linus left the call" in p.page.locator("#toasts").text_content()
    # The two who stayed still see each other.
    a.wait_media_flowing(ids["Grace"])
    b.wait_media_flowing(ids["Ada"])
