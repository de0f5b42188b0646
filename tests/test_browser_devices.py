"""Switching camera and microphone in the middle of a call, with two fake devices of each."""

from __future__ import annotations

import pytest

from tests.support.browser import launch, people, playwright_driver, room  # noqa: F401

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

    alice.page.click("#btn-settings")
    cameras = alice.page.eval_on_selector_all(
        "#call-cam option", "(os) => os.map((o) => [o.value, o.textContent])")
    assert len(cameras) == 2, cameras
    other_camera = next(value for value, label in cameras if label != video["label"])
    alice.page.select_option("#call-cam", other_camera)
    alice.wait(
        "([id, label]) => window.rtcsvc.outgoing(id).some((t) => t.kind === 'video' && t.label "
        "&& t.label !== label)", [bob.id, video["label"]], what="the other camera on the sender")

    microphones = alice.page.eval_on_selector_all(
        "#call-mic option", "(os) => os.map((o) => [o.value, o.textContent])")
    other_mic = next(value for value, label in microphones if label != audio["label"])
    alice.page.select_option("#call-mic", other_mic)
    alice.wait(
        "([id, label]) => window.rtcsvc.outgoing(id).some((t) => t.kind === 'audio' && t.label "
        "&& t.label !== label)", [bob.id, audio["label"]], what="the other microphone")

    # Same connection (replaceTrack, no renegotiation needed), media still arriving at Bob.
    bob.wait_media_flowing(alice.id)
    assert bob.state["peers"][0]["connectionState"] == "connected"
    assert bob.state["peers"][0]["restarts"] == 0
