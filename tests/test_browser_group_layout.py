"""Group calls of four to six people as each of them sees them, on a laptop and on a phone.

Everyone joins one room; the stage shows every person, none covering another, the controls or
the "who is presenting" strip, each name readable. When one person presents their screen, the
others see that person's tile take the large area, everybody else still visible beside it (a
laptop) or below it (a phone); when the presentation stops, the equal grid is back. Asserted by
what is visible (roles, labels, text, ``to_be_visible``, bounding boxes) and audited with
axe-core in each state. With ``RTCSVC_SCREENSHOTS=1`` the pictures go to docs/screenshots/
(``group-<n>[-presenting]-<device>.png``), else to the test's temporary directory.

Every browser shares one small, slow fake camera clip (``small_fake_video``): six people in one
browser are thirty peer connections, each encoding video, on two cores.
"""

from __future__ import annotations

import time

import pytest
from playwright.sync_api import expect

from tests.support.browser import (  # noqa: F401  (pytest fixtures)
    DESKTOP, PHONE, assert_touch_sized, audit, box, inside, launch, overlap, people,
    playwright_driver, room, screenshot_dir, small_fake_video,
)

pytestmark = pytest.mark.slow

DEVICES = {"desktop": DESKTOP, "phone": PHONE}
NAMES = ("Ada", "Grace", "Linus", "Barbara", "Edsger", "Margaret")


@pytest.fixture(scope="module")
def browser(playwright_driver, tmp_path_factory):  # noqa: F811
    """Headless Chromium whose fake camera plays a 160x120 clip at 5 frames a second."""
    clip = small_fake_video(tmp_path_factory.mktemp("camera") / "camera.y4m")
    b = launch(playwright_driver, extra_args=[f"--use-file-for-fake-video-capture={clip}"])
    yield b
    b.close()


def eventually(check, timeout: float = 10.0):
    """Run ``check`` until it stops failing (the layout settles after a change); its value."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return check()
        except AssertionError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def cells(me) -> dict:
    """What ``me`` sees on the stage: each other person's tile by name, and their own video."""
    page = me.page
    seen = {}
    for other in me.others:
        seen[other] = me.tile(other)
    seen[f"{me.name} (you)"] = page.get_by_role("figure", name="Your video")
    return seen


def everyone_visible_and_apart(me) -> dict:
    """Every cell visible, inside the stage, its name readable in full; no cell overlapping
    another, the controls or the presenting strip. Returns the cells' boxes by name."""
    page = me.page
    stage = box(page.get_by_role("region", name="Call area"))
    controls = box(page.get_by_role("navigation", name="Call controls"))
    strip = page.locator("#presenting")
    covers = [controls] + ([box(strip)] if strip.is_visible() else [])
    boxes = {}
    for name, cell in cells(me).items():
        expect(cell).to_be_visible()
        label = cell.get_by_text(name, exact=True)
        expect(label).to_be_visible()
        b, text = box(cell), box(label)
        assert inside(b, stage), (me.name, name, b, stage)
        assert inside(text, b), (me.name, name, "name outside its tile", text, b)
        assert label.evaluate("e => e.scrollWidth <= e.clientWidth"), (me.name, name, "name cut short")
        for other in covers:
            assert not overlap(b, other), (me.name, name, b, other)
        boxes[name] = b
    names = list(boxes)
    for i, a in enumerate(names):
        for c in names[i + 1:]:
            assert not overlap(boxes[a], boxes[c]), (me.name, a, boxes[a], c, boxes[c])
    return boxes


def area(b) -> float:
    return b["width"] * b["height"]


def assert_equal_grid(me) -> None:
    boxes = everyone_visible_and_apart(me)
    sizes = [(round(b["width"]), round(b["height"])) for b in boxes.values()]
    widths, heights = [w for w, _ in sizes], [h for _, h in sizes]
    assert max(widths) - min(widths) <= 2 and max(heights) - min(heights) <= 2, (me.name, boxes)


def assert_presenter_spotlit(me, presenter: str) -> None:
    """The presenter's tile is by far the largest; everyone else is still there."""
    boxes = everyone_visible_and_apart(me)
    big = boxes.pop(presenter)
    largest_other = max(area(b) for b in boxes.values())
    assert area(big) >= 2 * largest_other, (me.name, presenter, big, boxes)


def walk_a_group(rtcsvc, browser, people, room, tmp_path, count: int, device: str) -> None:  # noqa: F811
    shots = screenshot_dir(tmp_path)
    viewport = DEVICES[device]
    svc = rtcsvc(tls=True)
    group = [people(browser, svc.http_url, name=n, viewport=viewport) for n in NAMES[:count]]
    for p in group:
        p.others = [n for n in NAMES[:count] if n != p.name]
        p.join(room)
    for p in group:
        p.wait_connected_to(count - 1, timeout=120_000)
    presenter, viewer = group[0], group[1]
    # Six people in one browser on two cores react slowly: wider bounds for every wait.
    ms = 15_000 if count <= 4 else 60_000
    viewers = group[1:]

    # ---- everyone in an equal grid ----
    for p in group:
        expect(p.page.get_by_text(f"{count} people")).to_be_visible(timeout=ms)
        eventually(lambda p=p: assert_equal_grid(p), ms / 1000)
    assert_touch_sized(viewer.page)
    audit(viewer.page, f"a group of {count} ({device})")
    viewer.page.wait_for_timeout(1000)
    viewer.shot(shots, f"group-{count}-{device}.png")

    # ---- one presents: the others see the screen large, everyone else beside or below ----
    presenter.button("Share screen").click()
    expect(presenter.page.get_by_text("You are presenting your screen to everyone")).to_be_visible(timeout=ms)
    expect(presenter.button("Stop presenting")).to_be_visible(timeout=ms)
    for p in viewers:
        expect(p.page.get_by_text(f"{presenter.name} is presenting their screen")).to_be_visible(timeout=ms)
        expect(p.page.get_by_role("article", name=f"{presenter.name}, presenting")).to_be_visible(timeout=ms)
    viewer.wait_media_flowing(presenter.id, timeout=2 * ms)
    viewer.page.wait_for_timeout(1000)
    viewer.shot(shots, f"group-{count}-presenting-{device}.png")
    for p in viewers:
        eventually(lambda p=p: assert_presenter_spotlit(p, presenter.name), ms / 1000)
    # The presenter keeps the grid of faces (their own screen is in their own cell).
    eventually(lambda: everyone_visible_and_apart(presenter), ms / 1000)
    assert_touch_sized(viewer.page)
    audit(viewer.page, f"a group of {count}, someone presenting ({device})")
    audit(presenter.page, f"a group of {count}, presenting ({device})")

    # ---- the presentation stops: back to the equal grid ----
    presenter.button("Stop presenting").click()
    expect(presenter.button("Share screen")).to_be_visible(timeout=ms)
    for p in viewers:
        expect(p.page.get_by_text(f"{presenter.name} is presenting their screen")).to_be_hidden(timeout=ms)
        expect(p.tile(presenter.name)).to_be_visible(timeout=ms)
        eventually(lambda p=p: assert_equal_grid(p), ms / 1000)
    audit(viewer.page, f"a group of {count}, presentation over ({device})")

    for p in group:
        bad = [m for m in p.console if "Content Security Policy" in m or "pageerror" in m]
        assert not bad, f"{p.name}: {bad}"


@pytest.mark.parametrize("device", DEVICES)
def test_a_presenter_among_four_gets_the_large_area_and_the_grid_returns(
        rtcsvc, browser, people, room, tmp_path, device):  # noqa: F811
    walk_a_group(rtcsvc, browser, people, room, tmp_path, 4, device)


@pytest.mark.parametrize("device", ["desktop"])
def test_a_presenter_among_six_gets_the_large_area_and_the_grid_returns(
        rtcsvc, browser, people, room, tmp_path, device):  # noqa: F811
    walk_a_group(rtcsvc, browser, people, room, tmp_path, 6, device)
