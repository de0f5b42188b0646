"""Switching camera and microphone in the middle of a call, with two fake devices of each."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from tests.support.browser import audit, launch, people, playwright_driver, room  # noqa: F401

pytestmark = pytest.mark.slow

OUTGOING = "([id, kind]) => window.rtcsvc.outgoing(id).filter((t) => t.kind === kind)"


@pytest.fixture(scope="module")
def two_device_browser(playwright_driver):  # noqa: F811
    """Chromium whose fake capture offers two cameras and several microphones."""
    b = launch(playwright_driver, fake_media=False, extra_args=[
        "--use-fake-device-for-media-stream=device-count=2",
        "--use-fake-ui-for-media-stream",
    ])
    yield b
    b.close()


def test_choosing_another_camera_and_microphone_mid_call_replaces_what_the_other_side_gets(
        rtcsvc, two_device_browser, people, room):  # noqa: F811
    service = rtcsvc(tls=True)
    alice = people(two_device_browser, service.http_url, name="Alice")
    bob = people(two_device_browser, service.http_url, name="Bob")
    alice.join(room)
    bob.join(room)
    alice.wait_connected_to(1)
    bob.wait_media_flowing(alice.id)
    (video,) = alice.page.evaluate(OUTGOING, [bob.id, "video"])
    (audio,) = alice.page.evaluate(OUTGOING, [bob.id, "audio"])

    alice.button("Devices").click()
    panel = alice.page.get_by_role("complementary", name="Devices")
    camera_picker = panel.get_by_role("combobox", name="Camera")
    mic_picker = panel.get_by_role("combobox", name="Microphone")
    expect(panel).to_be_visible()
    audit(alice.page, "the Devices panel")
    cameras = camera_picker.locator("option").evaluate_all("(os) => os.map((o) => [o.value, o.textContent])")
    assert len(cameras) == 2, cameras
    other_camera = next(value for value, label in cameras if label != video["label"])
    camera_picker.select_option(other_camera)
    alice.wait(
        "([id, label]) => window.rtcsvc.outgoing(id).some((t) => t.kind === 'video' && t.label "
        "&& t.label !== label)", [bob.id, video["label"]], what="the other camera on the sender")

    microphones = mic_picker.locator("option").evaluate_all("(os) => os.map((o) => [o.value, o.textContent])")
    other_mic = next(value for value, label in microphones if label != audio["label"])
    mic_picker.select_option(other_mic)
    alice.wait(
        "([id, label]) => window.rtcsvc.outgoing(id).some((t) => t.kind === 'audio' && t.label "
        "&& t.label !== label)", [bob.id, audio["label"]], what="the other microphone")

    # The pickers show what is in use now.
    expect(camera_picker).to_have_value(other_camera)
    expect(mic_picker).to_have_value(other_mic)
    # Same connection (replaceTrack, no renegotiation needed), media still arriving at Bob.
    bob.wait_media_flowing(alice.id)
    assert bob.state["peers"][0]["connectionState"] == "connected"
    assert bob.state["peers"][0]["restarts"] == 0
