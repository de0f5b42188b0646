"""What people see when things go wrong: a full room, no camera, a server restart.

Each state is asserted on screen, audited with axe-core and photographed (desktop and phone;
``RTCSVC_SCREENSHOTS=1`` writes the pictures to docs/screenshots/).
"""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from tests.support.browser import (  # noqa: F401
    PHONE, Participant, audit, browser, launch, people, playwright_driver, room, screenshot_dir,
)

pytestmark = pytest.mark.slow


def test_room_full_is_shown_to_the_participant_who_does_not_fit(rtcsvc, browser, people, room, tmp_path):  # noqa: F811
    svc = rtcsvc(args=["--max-peers", "2"], tls=True)
    a, b, c = (people(browser, svc.http_url, name=n) for n in ("Ada", "Grace", "Linus"))
    d = people(browser, svc.http_url, name="Dee", viewport=PHONE)
    a.join(room)
    b.join(room)
    a.wait_connected_to(1)

    for person, device in ((c, "desktop"), (d, "phone")):
        person.join(room, expect_joined=False)
        page = person.page
        # A screen of its own: what happened, and the two ways on.
        expect(page.get_by_role("heading", name="This call is full")).to_be_visible()
        expect(page.get_by_text("It already has 2 people")).to_be_visible()
        expect(person.button("Try again")).to_be_visible()
        expect(person.button("Start a new call")).to_be_visible()
        # Nothing of the call screen shows behind it.
        for name in ("Leave call", "Copy invite link", "Mute microphone"):
            expect(person.button(name)).to_be_hidden()
        expect(page.get_by_text("Offline")).to_be_hidden()
        audit(page, f"room full ({device})")
        person.shot(screenshot_dir(tmp_path), f"room-full-{device}.png")
    # The two inside are undisturbed and never saw the others.
    for p in (a, b):
        expect(p.page.get_by_role("article")).to_have_count(1)
        expect(p.page.get_by_text("2 people")).to_be_visible()

    # "Start a new call" leads to a lobby of a fresh room.
    d.button("Start a new call").click()
    expect(d.page.get_by_role("heading", name="Ready to join?")).to_be_visible()
    assert room not in d.page.url
    expect(d.page.get_by_role("textbox", name="Invite link")).to_have_value(d.page.url)

    # When someone leaves, "Try again" gets the third one in.
    b.button("Leave call").click()
    expect(a.page.get_by_role("heading", name="Waiting for others to join")).to_be_visible()
    c.button("Try again").click()
    c.expect_connected()
    c.wait_connected_to(1)
    expect(c.tile("Ada")).to_be_visible()
    expect(a.tile("Linus")).to_be_visible()


@pytest.fixture
def browser_without_devices(playwright_driver):  # noqa: F811
    """Chromium with no camera or microphone at all (no fake devices, no auto-accept)."""
    b = launch(playwright_driver, fake_media=False)
    yield b
    b.close()


@pytest.fixture
def browser_with_devices_but_no_fake_ui(playwright_driver):  # noqa: F811
    """Fake devices exist, but permission prompts are not auto-accepted: a context decides."""
    b = launch(playwright_driver, fake_media=False,
               extra_args=["--use-fake-device-for-media-stream"])
    yield b
    b.close()


def test_participant_whose_camera_and_microphone_are_denied_joins_receive_only_and_sees_the_other(
        rtcsvc, browser, browser_with_devices_but_no_fake_ui, people, room, tmp_path):  # noqa: F811
    svc = rtcsvc(tls=True)
    a = people(browser, svc.http_url, name="Ada")
    d = people(browser_with_devices_but_no_fake_ui, svc.http_url, name="Dee", permissions=())
    a.join(room)
    d.open_room(room)
    # The lobby already explains what will happen.
    expect(d.page.get_by_text("Camera and microphone blocked.")).to_be_visible()
    expect(d.button("No mic")).to_be_disabled()
    expect(d.button("No camera")).to_be_disabled()
    audit(d.page, "lobby, devices denied")
    d.page.get_by_role("textbox", name="Your name").fill("Dee")
    d.shot(screenshot_dir(tmp_path), "denied-lobby-desktop.png")
    d.button("Join call").click()
    d.expect_connected()
    expect(d.toast("Camera and microphone blocked.")).to_be_visible()
    expect(d.button("No mic")).to_be_disabled()
    expect(d.button("No camera")).to_be_disabled()

    (a_id,) = d.wait_connected_to(1)
    (d_id,) = a.wait_connected_to(1)
    sample = d.wait_media_flowing(a_id)
    assert sample["audio"] == ["live"] and sample["w"] > 0
    expect(d.tile("Ada")).to_be_visible()
    # Ada sees Dee as present, with no camera and no microphone.
    expect(a.page.get_by_role("article", name="Dee, muted, camera off")).to_be_visible()
    audit(d.page, "call, devices denied")
    d.shot(screenshot_dir(tmp_path), "denied-desktop.png")


def test_participant_with_microphone_but_denied_camera_joins_audio_only(
        rtcsvc, browser, browser_with_devices_but_no_fake_ui, people, room):  # noqa: F811
    svc = rtcsvc(tls=True)
    a = people(browser, svc.http_url, name="Ada")
    d = people(browser_with_devices_but_no_fake_ui, svc.http_url, name="Dee", permissions=("microphone",))
    a.join(room)
    d.join(room)
    expect(d.toast("Camera blocked. You will join with audio only")).to_be_visible()
    expect(d.button("Mute microphone")).to_be_enabled()
    expect(d.button("No camera")).to_be_disabled()
    (a_id,) = d.wait_connected_to(1)
    (d_id,) = a.wait_connected_to(1)
    d.wait_media_flowing(a_id)
    expect(a.page.get_by_role("article", name="Dee, camera off")).to_be_visible()
    # Ada receives Dee's live audio.
    a.wait(f"""() => {{ const v = document.querySelector('.tile[data-peer="{d_id}"] video');
                        return v && v.srcObject && v.srcObject.getAudioTracks().some(t => t.readyState === 'live'); }}""")


def test_participant_without_any_devices_joins_receive_only(
        rtcsvc, browser, browser_without_devices, people, room, tmp_path):  # noqa: F811
    svc = rtcsvc(tls=True)
    a = people(browser, svc.http_url, name="Ada")
    d = people(browser_without_devices, svc.http_url, name="Dee", viewport=PHONE)
    a.join(room)
    d.open_room(room)
    expect(d.page.get_by_text("Camera and microphone not found.")).to_be_visible()
    d.page.evaluate("window.scrollTo(0, 0)")
    d.page.get_by_role("textbox", name="Your name").fill("Dee")
    d.shot(screenshot_dir(tmp_path), "absent-lobby-phone.png", full_page=True)
    d.button("Join call").click()
    d.expect_connected()
    expect(d.toast("Camera and microphone not found. You will join to watch and listen.")).to_be_visible()
    (a_id,) = d.wait_connected_to(1)
    d.wait_media_flowing(a_id)
    expect(d.tile("Ada")).to_be_visible()
    expect(d.button("No mic")).to_be_disabled()
    audit(d.page, "call, no devices (phone)")
    d.shot(screenshot_dir(tmp_path), "absent-phone.png")


def test_call_recovers_without_reload_after_the_server_restarts_mid_call(rtcsvc, browser, people, room, tmp_path):  # noqa: F811
    svc = rtcsvc(tls=True)
    a = people(browser, svc.http_url, name="Ada")
    b = people(browser, svc.http_url, name="Grace", viewport=PHONE)
    a.join(room)
    b.join(room)
    (old_b,) = a.wait_connected_to(1)
    (old_a,) = b.wait_connected_to(1)
    for p in (a, b):
        p.page.evaluate("window.__sameDocument = true")

    svc.stop()  # SIGTERM by PID: the sockets close, the hub's memory is gone
    for p, device in ((a, "desktop"), (b, "phone")):
        banner = p.page.get_by_role("alert")
        expect(banner).to_contain_text("Connection to the server lost. Reconnecting…", timeout=30_000)
        expect(p.page.locator(".topbar").get_by_text("Reconnecting…")).to_be_visible()
        # The banner sits above the call's top bar, never over it.
        top = p.page.locator(".topbar").bounding_box()
        strip = banner.bounding_box()
        assert strip["y"] + strip["height"] <= top["y"] + 0.5, (strip, top)
        audit(p.page, f"reconnecting ({device})")
        p.shot(screenshot_dir(tmp_path), f"reconnecting-{device}.png")

    rtcsvc(port=svc.port, tls=True)  # a new process on the same port
    for p in (a, b):
        p.expect_connected(timeout=45_000)
    (new_b,) = a.wait_connected_to(1, timeout=45_000)
    (new_a,) = b.wait_connected_to(1, timeout=45_000)
    # The restarted server knew nothing of the old session: fresh ids, fresh connections.
    assert (new_a, new_b) != (old_a, old_b)
    a.wait_media_flowing(new_b)
    b.wait_media_flowing(new_a)
    for p, other in ((a, "Grace"), (b, "Ada")):
        assert p.page.evaluate("window.__sameDocument") is True  # no reload happened
        expect(p.page.get_by_role("article")).to_have_count(1)
        expect(p.tile(other)).to_be_visible()
        expect(p.page.get_by_role("alert")).to_be_hidden()
