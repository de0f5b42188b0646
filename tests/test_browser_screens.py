"""Every screen of the app as a person sees it, on a laptop and on a phone.

One person starts a call and waits alone with the link, a second joins (one-to-one), one
presents, they chat and send a file, a third joins (a group), people leave, the one left is
alone again; separately, a full room refuses a fourth person on a screen of its own. Each state
is asserted by what is visible (roles, labels, text, ``to_be_visible``), audited with axe-core
(no serious or critical violation), and photographed: with ``RTCSVC_SCREENSHOTS=1`` the pictures
go to docs/screenshots/ (``<screen>-desktop.png``, ``<screen>-phone.png``), else to the test's
temporary directory.
"""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from tests.support.browser import (  # noqa: F401  (pytest fixtures)
    DESKTOP, PHONE, WAIT_MS, assert_touch_sized, audit, box, browser, inside, overlap, people,
    playwright_driver, screenshot_dir,
)

pytestmark = pytest.mark.slow

DEVICES = {"desktop": DESKTOP, "phone": PHONE}
# Room names as "Start a call" makes them (22 characters of base64url), so pictures look real.
ROOM_LINK = re.compile(r"^https://[^/]+/r/[A-Za-z0-9_-]{22}$")


@pytest.mark.parametrize("device", DEVICES)
def test_every_screen_of_a_call_is_shown_and_legible(rtcsvc, browser, people, tmp_path, device):  # noqa: F811
    shots = screenshot_dir(tmp_path)
    viewport = DEVICES[device]
    svc = rtcsvc(tls=True)
    ada = people(browser, svc.http_url, name="Ada", viewport=viewport)
    page = ada.page

    # ---- landing ----
    page.goto(svc.http_url + "/")
    expect(page.get_by_role("heading", name="rtcsvc")).to_be_visible()
    expect(ada.button("Start a call")).to_be_visible()
    expect(page.get_by_role("textbox", name="Join with a link or room name")).to_be_visible()
    audit(page, f"landing ({device})")
    ada.shot(shots, f"landing-{device}.png", full_page=True)

    # ---- lobby: the link to share, the toggles, the level meter ----
    ada.button("Start a call").click()
    expect(page.get_by_role("heading", name="Ready to join?")).to_be_visible()
    link_field = page.get_by_role("textbox", name="Invite link")
    expect(link_field).to_be_visible()
    link = link_field.input_value()
    assert ROOM_LINK.match(link) and link == page.url, (link, page.url)
    page.get_by_role("textbox", name="Your name").fill("Ada")
    ada.button("Copy link").click()
    expect(ada.toast("Invite link copied.")).to_be_visible()
    assert page.evaluate("navigator.clipboard.readText()") == link
    meter = page.get_by_role("meter", name="Microphone level")
    expect(meter).to_be_visible()
    # Chromium's fake microphone beeps: the meter moves.
    ada.wait("() => document.querySelector('#mic-level').value > 0.05", what="the level meter to move")
    ada.button("Mute microphone").click()
    expect(ada.button("Unmute microphone")).to_be_visible()
    ada.wait("() => document.querySelector('#mic-level').value === 0", what="the meter to fall silent")
    ada.button("Stop video").click()
    expect(ada.button("Start video")).to_be_visible()
    expect(page.locator("#preview-initials")).to_have_text("A")
    ada.button("Unmute microphone").click()
    ada.button("Start video").click()
    expect(ada.button("Mute microphone")).to_be_visible()
    expect(ada.button("Join call")).to_be_visible()
    if device == "desktop":
        # The whole lobby card fits a 1280x760 window: nothing to scroll to.
        card = box(page.locator(".lobby-card"))
        assert inside(card, {"x": 0, "y": 0, **viewport}), card
    audit(page, f"lobby ({device})")
    # The picture without the "copied" toast over the heading.
    expect(page.get_by_role("status").locator(".toast")).to_have_count(0, timeout=15_000)
    page.evaluate("window.scrollTo(0, 0)")
    ada.shot(shots, f"lobby-{device}.png", full_page=True)

    # ---- waiting alone: the link, a copy button, working controls and the self-view ----
    ada.button("Join call").click()
    ada.expect_connected()
    expect(page.get_by_role("heading", name="Waiting for others to join")).to_be_visible()
    expect(page.locator("#waiting").get_by_role("textbox", name="Invite link")).to_have_value(link)
    expect(page.locator("#waiting").get_by_role("button", name="Copy link")).to_be_visible()
    expect(page.get_by_role("figure", name="Your video")).to_be_visible()
    expect(page.get_by_text("Ada (you)")).to_be_visible()
    expect(page.get_by_text("Just you")).to_be_visible()
    for name in ("Mute microphone", "Stop video", "Chat", "Devices", "Leave call"):
        expect(ada.button(name)).to_be_visible()
    assert_touch_sized(page)
    # The controls work while alone.
    ada.button("Mute microphone").click()
    expect(ada.button("Unmute microphone")).to_be_visible()
    expect(page.get_by_role("figure", name="Your video").get_by_role("img", name="muted")).to_be_visible()
    ada.button("Unmute microphone").click()
    assert not overlap(box(page.locator("#waiting")), box(page.get_by_role("figure", name="Your video")))
    audit(page, f"waiting alone ({device})")
    ada.shot(shots, f"waiting-{device}.png")

    # ---- one-to-one ----
    grace = people(browser, svc.http_url, name="Grace", viewport=viewport)
    grace.page.goto(svc.http_url + "/")
    grace.page.get_by_role("textbox", name="Join with a link or room name").fill(link)
    grace.button("Join").click()
    grace.page.get_by_role("textbox", name="Your name").fill("Grace")
    grace.button("Join call").click()
    grace.expect_connected()
    (grace_id,) = ada.wait_connected_to(1)
    (ada_id,) = grace.wait_connected_to(1)
    for me, other, other_id in ((ada, "Grace", grace_id), (grace, "Ada", ada_id)):
        expect(me.tile(other)).to_be_visible()
        expect(me.tile(other).get_by_text(other, exact=True)).to_be_visible()
        expect(me.page.get_by_role("heading", name="Waiting for others to join")).to_be_hidden()
        expect(me.page.get_by_text("2 people")).to_be_visible()
        me.wait_media_flowing(other_id)
    if device == "phone":
        # The other person fills the stage, edge to edge.
        stage, tile = box(page.locator("#stage")), box(ada.tile("Grace"))
        assert tile["width"] * tile["height"] >= 0.95 * stage["width"] * stage["height"], (tile, stage)
    assert_touch_sized(page)
    expect(page.get_by_role("figure", name="Your video")).to_be_visible()
    audit(page, f"one-to-one ({device})")
    page.wait_for_timeout(2000)  # let the video settle before the picture
    ada.shot(shots, f"call-2-{device}.png")

    # ---- security codes: the same words on both sides, explained ----
    codes = {}
    for me, other in ((ada, "Grace"), (grace, "Ada")):
        me.button("Security codes").click()
        panel = me.page.get_by_role("complementary", name="Security codes")
        expect(panel).to_be_visible()
        expect(panel.get_by_text("read the code aloud", exact=False)).to_be_visible()
        item = panel.get_by_role("listitem").filter(has=me.page.get_by_role("heading", name=other))
        expect(item.locator(".sas")).to_have_text(re.compile(r"^\S+( \S+){4} · [a-z]+( [a-z]+){4}$"))
        codes[me.name] = item.locator(".sas").inner_text()
    assert codes["Ada"] == codes["Grace"]
    audit(page, f"security codes ({device})")
    ada.shot(shots, f"security-{device}.png")
    for me in (ada, grace):
        me.button("Close security codes").click()

    # ---- presenting: the viewer sees who presents; the presenter sees it and a stop button ----
    ada.button("Share screen").click()
    expect(page.get_by_text("You are presenting your screen to everyone")).to_be_visible()
    expect(ada.button("Stop presenting")).to_be_visible()
    expect(grace.page.get_by_text("Ada is presenting their screen")).to_be_visible()
    expect(grace.tile("Ada").get_by_text("Presenting", exact=True)).to_be_visible()
    expect(grace.page.get_by_role("article", name="Ada, presenting")).to_be_visible()
    audit(page, f"presenting, the presenter ({device})")
    audit(grace.page, f"presenting, a viewer ({device})")
    grace.page.wait_for_timeout(1500)
    grace.shot(shots, f"presenting-viewer-{device}.png")
    ada.shot(shots, f"presenting-{device}.png")
    ada.button("Stop presenting").click()
    expect(page.get_by_text("You are presenting your screen to everyone")).to_be_hidden()
    expect(grace.page.get_by_text("Ada is presenting their screen")).to_be_hidden()
    expect(ada.button("Share screen")).to_be_visible()

    # ---- chat and files: the unread count is in the Chat button's name ----
    grace.button("Chat").click()
    grace.page.get_by_role("textbox", name="Message").fill("Hello Ada!")
    grace.page.get_by_role("textbox", name="Message").press("Enter")
    expect(ada.button("Chat 1 unread")).to_be_visible()
    expect(ada.toast("Grace: Hello Ada!")).to_be_visible()
    ada.button("Chat 1 unread").click()
    chat = page.get_by_role("complementary", name="Chat & files")
    expect(chat.get_by_text("Hello Ada!")).to_be_visible()
    expect(ada.button("Chat", exact=True)).to_be_visible()
    page.get_by_role("textbox", name="Message").fill("Hi Grace, sending the notes.")
    page.get_by_role("button", name="Send", exact=True).click()
    expect(grace.page.get_by_text("Hi Grace, sending the notes.")).to_be_visible()
    page.locator("#file-input").set_input_files(
        files=[{"name": "notes.txt", "mimeType": "text/plain", "buffer": b"agenda\n" * 2000}])
    # Grace is asked first; Ada waits for her answer.
    expect(chat.get_by_text("Waiting for Grace to accept", exact=True)).to_be_visible()
    offer = grace.page.get_by_role("listitem").filter(has_text="notes.txt")
    expect(offer.get_by_text("Ada wants to send you notes.txt (14 KB, text/plain)")).to_be_visible()
    expect(offer.get_by_role("button", name="Accept")).to_be_visible()
    expect(offer.get_by_role("button", name="Decline")).to_be_visible()
    audit(grace.page, f"a file offered ({device})")
    grace.shot(shots, f"file-offer-{device}.png")
    offer.get_by_role("button", name="Accept").click()
    expect(chat.get_by_text("You sent notes.txt (14 KB, text/plain)")).to_be_visible()
    expect(chat.get_by_text("Delivered", exact=True)).to_be_visible()
    expect(chat.get_by_text("You are sending")).to_have_count(0)
    expect(grace.page.get_by_role("link", name="Download notes.txt")).to_be_visible()
    expect(offer.get_by_role("button", name="Dismiss")).to_be_visible()
    audit(grace.page, f"a file received ({device})")
    grace.shot(shots, f"file-received-{device}.png")
    audit(page, f"chat and files ({device})")
    ada.shot(shots, f"chat-{device}.png")
    ada.button("Close chat").click()
    grace.button("Close chat").click()

    # ---- a group of three: nobody covers anybody ----
    linus = people(browser, svc.http_url, name="Linus", viewport=viewport)
    linus.join(link.rsplit("/", 1)[1])
    for me in (ada, grace, linus):
        me.wait_connected_to(2, timeout=45_000)
        expect(me.page.get_by_text("3 people")).to_be_visible()
    for other in ("Grace", "Linus"):
        expect(ada.tile(other)).to_be_visible()
    page.wait_for_timeout(1500)
    regions = [box(ada.tile("Grace")), box(ada.tile("Linus")), box(page.get_by_role("figure", name="Your video"))]
    for i, a in enumerate(regions):
        for b in regions[i + 1:]:
            assert not overlap(a, b), (a, b)
    stage = box(page.locator("#stage"))
    assert all(inside(r, stage) for r in regions), (regions, stage)
    assert_touch_sized(page)
    audit(page, f"group of three ({device})")
    ada.shot(shots, f"call-3-{device}.png")

    # ---- leaving: the one who left, and the ones who stay ----
    linus.button("Leave call").click()
    expect(linus.page.get_by_role("heading", name="You left the call")).to_be_visible()
    expect(linus.button("Rejoin")).to_be_visible()
    expect(linus.page.get_by_role("link", name="Home")).to_be_visible()
    for me in (ada, grace):
        expect(me.toast("Linus left the call.")).to_be_visible()
        expect(me.tile("Linus")).to_have_count(0)
        expect(me.page.get_by_text("2 people")).to_be_visible()
    audit(linus.page, f"left ({device})")
    linus.shot(shots, f"left-{device}.png")

    # ---- the one left alone ----
    grace.button("Leave call").click()
    expect(ada.toast("Grace left the call.")).to_be_visible()
    expect(page.get_by_role("heading", name="Waiting for others to join")).to_be_visible()
    expect(page.get_by_text("Just you")).to_be_visible()
    expect(page.get_by_role("figure", name="Your video")).to_be_visible()
    expect(ada.button("Leave call")).to_be_visible()
    audit(page, f"alone again ({device})")
    ada.shot(shots, f"alone-again-{device}.png")

    # ---- rejoin ----
    grace.button("Rejoin").click()
    grace.expect_connected()
    expect(grace.tile("Ada")).to_be_visible()
    expect(ada.tile("Grace")).to_be_visible()
    for p in (ada, grace, linus):
        bad = [m for m in p.console if "Content Security Policy" in m or "pageerror" in m]
        assert not bad, f"{p.name}: {bad}"
