"""What people see when things go wrong: a full room, no camera, a server restart."""

from __future__ import annotations

import pytest

from tests.support.browser import (  # noqa: F401
    Participant, browser, launch, people, playwright_driver, room,
)

pytestmark = pytest.mark.slow


def test_room_full_is_shown_to_the_participant_who_does_not_fit(rtcsvc, browser, people, room):
    svc = rtcsvc(args=["--max-peers", "2"], tls=True)
    a, b, c = (people(browser, svc.http_url, name=n) for n in ("Ada", "Grace", "Linus"))
    a.join(room)
    b.join(room)
    a.wait_connected_to(1)

    c.join(room, expect_joined=False)
    c.wait("() => window.rtcsvc.state.notices.includes('room-full')", what="the room-full notice")
    banner = c.page.locator("#banner")
    assert banner.is_visible()
    assert "full" in banner.text_content()
    assert c.state["joined"] is False
    assert c.page.locator("#banner-action").text_content() == "Try again"
    # The two inside are undisturbed and never saw the third.
    for p in (a, b):
        assert len(p.state["peers"]) == 1

    # When someone leaves, "Try again" gets the third one in.
    b.page.click("#btn-leave")
    a.wait("() => window.rtcsvc.state.peers.length === 0")
    c.page.click("#banner-action")
    c.wait("() => window.rtcsvc.state.joined")
    c.wait_connected_to(1)


@pytest.fixture
def browser_without_devices(playwright_driver):
    """Chromium with no camera or microphone at all (no fake devices, no auto-accept)."""
    b = launch(playwright_driver, fake_media=False)
    yield b
    b.close()


@pytest.fixture
def browser_with_devices_but_no_fake_ui(playwright_driver):
    """Fake devices exist, but permission prompts are not auto-accepted: a context decides."""
    b = launch(playwright_driver, fake_media=False,
               extra_args=["--use-fake-device-for-media-stream"])
    yield b
    b.close()


def test_participant_whose_camera_and_microphone_are_denied_joins_receive_only_and_sees_the_other(
        rtcsvc, browser, browser_with_devices_but_no_fake_ui, people, room):
    svc = rtcsvc(tls=True)
    a = people(browser, svc.http_url, name="Ada")
    d = people(browser_with_devices_but_no_fake_ui, svc.http_url, name="Dee", permissions=())
    a.join(room)
    d.open_room(room)
    # The lobby already explains what will happen.
    note = d.page.locator("#preview-note")
    assert note.is_visible() and "blocked" in note.text_content()
    d.page.click("#join-now")
    d.wait("() => window.rtcsvc.state.joined")
    assert d.state["media"]["mode"] == "receive-only"
    assert d.state["media"]["problem"] == "denied"
    assert "media-denied" in d.state["notices"]

    (a_id,) = d.wait_connected_to(1)
    (d_id,) = a.wait_connected_to(1)
    sample = d.wait_media_flowing(a_id)
    assert sample["audio"] == ["live"] and sample["w"] > 0
    # Ada sees Dee as present, with no camera and no microphone.
    a.wait_peer(d_id, "p.muted && p.cameraOff")
    assert d.page.locator("#btn-mic").is_disabled() and d.page.locator("#btn-cam").is_disabled()


def test_participant_with_microphone_but_denied_camera_joins_audio_only(
        rtcsvc, browser, browser_with_devices_but_no_fake_ui, people, room):
    svc = rtcsvc(tls=True)
    a = people(browser, svc.http_url, name="Ada")
    d = people(browser_with_devices_but_no_fake_ui, svc.http_url, name="Dee", permissions=("microphone",))
    a.join(room)
    d.join(room)
    assert d.state["media"]["mode"] == "audio-only"
    (a_id,) = d.wait_connected_to(1)
    (d_id,) = a.wait_connected_to(1)
    d.wait_media_flowing(a_id)
    a.wait_peer(d_id, "!p.muted && p.cameraOff")
    # Ada receives Dee's live audio.
    a.wait(f"""() => {{ const v = document.querySelector('.tile[data-peer="{d_id}"] video');
                        return v && v.srcObject && v.srcObject.getAudioTracks().some(t => t.readyState === 'live'); }}""")


def test_participant_without_any_devices_joins_receive_only(
        rtcsvc, browser, browser_without_devices, people, room):
    svc = rtcsvc(tls=True)
    a = people(browser, svc.http_url, name="Ada")
    d = people(browser_without_devices, svc.http_url, name="Dee")
    a.join(room)
    d.join(room)
    assert d.state["media"]["mode"] == "receive-only"
    assert d.state["media"]["problem"] == "absent"
    (a_id,) = d.wait_connected_to(1)
    d.wait_media_flowing(a_id)


def test_call_recovers_without_reload_after_the_server_restarts_mid_call(rtcsvc, browser, people, room):
    svc = rtcsvc(tls=True)
    a = people(browser, svc.http_url, name="Ada")
    b = people(browser, svc.http_url, name="Grace")
    a.join(room)
    b.join(room)
    (old_b,) = a.wait_connected_to(1)
    (old_a,) = b.wait_connected_to(1)
    for p in (a, b):
        p.page.evaluate("window.__sameDocument = true")

    svc.stop()  # SIGTERM by PID: the sockets close, the hub's memory is gone
    for p in (a, b):
        p.wait("() => window.rtcsvc.state.signaling === 'reconnecting'", what="the drop to be noticed")
        p.wait("() => window.rtcsvc.state.notices.includes('connection-lost')")
        assert p.page.locator("#banner").is_visible()

    rtcsvc(port=svc.port, tls=True)  # a new process on the same port
    for p in (a, b):
        p.wait("() => window.rtcsvc.state.signaling === 'open'", timeout=30_000, what="the socket to reconnect")
    (new_b,) = a.wait_connected_to(1, timeout=30_000)
    (new_a,) = b.wait_connected_to(1, timeout=30_000)
    # The restarted server knew nothing of the old session: fresh ids, fresh connections.
    assert (new_a, new_b) != (old_a, old_b)
    a.wait_media_flowing(new_b)
    b.wait_media_flowing(new_a)
    for p in (a, b):
        assert p.page.evaluate("window.__sameDocument") is True  # no reload happened
        assert p.page.locator(".tile").count() == 1
        assert not p.page.locator("#banner").is_visible()
