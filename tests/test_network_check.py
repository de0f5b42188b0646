"""The lobby's network check in the network matrix: the verdict a person reads is right for
the network they sit behind, and the report for IT names what is blocked.

One browser per profile, in the lobby only (nobody joins): the check runs by itself while the
camera preview runs (static/js/netcheck.js, verdict.js). Same topology as
``tests/test_network_matrix.py`` (``tests/support/netns.py``): real rtcsvc, real coturn with
the shipped turnserver.conf, a caller behind a router of the profile's kind.
"""

from __future__ import annotations

import re
import time

import pytest
from playwright.sync_api import expect

from tests.support.browser import (  # noqa: F401
    PHONE,
    Participant,
    audit,
    playwright_driver,
    record_sent_frames,
    room,
    screenshot_dir,
    sent_messages,
)
from tests.support.netns import LAYOUTS, CallNetwork, StrictTLS, topology  # noqa: F401

pytestmark = [pytest.mark.slow, pytest.mark.netmatrix]

#: netcheck.js BOUNDS: probe 5 s + gathering 6 s + at most three media tests of 8 s + 2 s.
#: Without any relay (the control) nothing is sent: probe + gathering.
CHECK_BOUND_S, NO_RELAY_BOUND_S, SLACK_S = 41, 11, 6
IPV4 = re.compile(r"\b(?:\d{1,3}\.){3}\d{1,3}\b")

#: profile -> (router kind, STUN only?, the headline, the telemetry, ports the report must call blocked)
PROFILES = {
    "open": ("open", False, "Calls will work (direct)", {"verdict": "direct", "transport": "udp"}, []),
    "udp-blocked": ("udp-blocked", False, "Calls will work through the relay (TCP, port 3478)",
                    {"verdict": "relay", "transport": "tcp"},
                    ["UDP 3478 to turn.chat.test (STUN)", "UDP 3478 to turn.chat.test (TURN relay over UDP)"]),
    "tcp443-only": ("tcp443-only", False, "Calls will work through the relay (TLS, port 443)",
                    {"verdict": "relay", "transport": "tls"},
                    ["UDP 3478 to turn.chat.test (STUN)", "TCP 3478 to turn.chat.test",
                     "TCP 5349 to turn.chat.test"]),
    "proxy": ("proxy", False, "Calls will work through the relay (TLS, port 443)",
              {"verdict": "relay", "transport": "tls"},
              ["UDP 3478 to turn.chat.test (STUN)", "TCP 3478 to turn.chat.test",
               "TCP 5349 to turn.chat.test"]),
    "stun-only-symmetric-nat": ("symmetric-nat", True, "Calls cannot work from this network",
                                {"verdict": "none", "transport": "none"}, []),
}


def sent_netchecks(frames) -> list[dict]:
    return [message["data"] for message in sent_messages(frames, "netcheck")]


def open_room(person, room):
    try:
        person.open_room(room)
    except Exception:  # Chromium may see its new namespace's links settle (ERR_NETWORK_CHANGED)
        person.open_room(room)


def open_lobby(net, playwright, kind, label, room):
    caller = net.add_caller(label, kind)
    browser = net.launch_browser(playwright, caller)
    person = Participant(StrictTLS(browser), net.site_url, name=label.title())
    person.frames = record_sent_frames(person.page)
    open_room(person, room)
    person.shown = time.monotonic()
    return browser, person


def assert_verdict(net, person, profile):
    """The verdict appeared by itself within the bound, with the profile's headline; the report
    names each blocked port and holds no address; only verdict + transport reached rtcsvc."""
    kind, stun_only, headline, telemetry, blocked = PROFILES[profile]
    box = person.page.locator("#netcheck")
    bound = NO_RELAY_BOUND_S if stun_only else CHECK_BOUND_S
    try:
        expect(box).to_have_attribute("data-state", re.compile("^(direct|relay|none)$"),
                                      timeout=max(1, bound + SLACK_S - (time.monotonic() - person.shown)) * 1000)
    except AssertionError as e:
        pytest.fail(f"{profile}: no verdict within {bound + SLACK_S} s: {e}\n"
                    f"{box.inner_text()}\n{net.diagnostics()}")
    took = time.monotonic() - person.shown
    status = person.page.get_by_role("status").filter(has_text="Calls ")
    details = person.page.locator("#netcheck-details").inner_text()
    report = person.page.locator("#netcheck-report").text_content()
    print(f"\n{profile}: verdict by {took:.1f} s: {status.inner_text()!r}\n{details}")
    assert status.inner_text() == headline, f"{details}\n{report}\n{net.diagnostics()}"
    for rule in blocked:
        assert re.search(rf"^- {re.escape(rule)}.*BLOCKED", report, re.M), report
    if not blocked:
        assert "BLOCKED" not in report, report
    assert not IPV4.search(report), report
    expect(person.page.get_by_role("button", name="Check again")).to_be_enabled()
    expect(person.page.get_by_role("button", name="Copy a report for your IT department")).to_be_enabled()
    wait_until = time.monotonic() + 5
    while not sent_netchecks(person.frames) and time.monotonic() < wait_until:
        time.sleep(0.1)
    assert sent_netchecks(person.frames) == [telemetry], person.frames


def test_the_lobby_says_whether_calls_will_work_from_each_network(topology, playwright_driver, room,
                                                                 tmp_path):
    """One server side, four people in their lobbies behind four networks at once (open, UDP
    blocked, only TCP 443, only a CONNECT proxy): each reads the verdict for their network."""
    net = CallNetwork(topology, LAYOUTS["second-address"]())
    people = {}
    for profile in ("open", "udp-blocked", "tcp443-only", "proxy"):
        people[profile] = open_lobby(net, playwright_driver, PROFILES[profile][0],
                                     profile.replace("-", ""), room)
    for profile, (browser, person) in people.items():
        assert_verdict(net, person, profile)
    browser, person = people["tcp443-only"]
    # Accessible and photographed, desktop and phone (docs/screenshots/lobby-netcheck-*).
    audit(person.page, "the lobby with its network verdict")
    person.page.locator(".netcheck-more summary").click()
    person.page.locator("#netcheck").screenshot(path=str(screenshot_dir(tmp_path) / "lobby-netcheck-report-desktop.png"))
    person.page.locator(".netcheck-more summary").click()
    person.page.screenshot(path=str(screenshot_dir(tmp_path) / "lobby-netcheck-desktop.png"), full_page=True)
    phone = Participant(StrictTLS(browser), net.site_url, name="Alice", viewport=PHONE)
    open_room(phone, room)
    expect(phone.page.locator("#netcheck")).to_have_attribute(
        "data-state", "relay", timeout=(CHECK_BOUND_S + SLACK_S) * 1000)
    audit(phone.page, "the lobby with its network verdict, phone")
    phone.page.screenshot(path=str(screenshot_dir(tmp_path) / "lobby-netcheck-phone.png"), full_page=True)
    # Check again reruns it, and says so while it runs.
    browser, person = people["open"]
    box = person.page.locator("#netcheck")
    person.page.get_by_role("button", name="Check again").click()
    expect(box).to_have_attribute("data-state", "running")
    expect(box).to_have_attribute("data-state", "direct", timeout=(CHECK_BOUND_S + SLACK_S) * 1000)
    wait_until = time.monotonic() + 5
    while len(sent_netchecks(person.frames)) < 2 and time.monotonic() < wait_until:
        time.sleep(0.1)
    assert sent_netchecks(person.frames) == [PROFILES["open"][3]] * 2, person.frames


def test_stun_only_behind_a_symmetric_nat_the_lobby_says_calls_cannot_work(topology,
                                                                          playwright_driver, room):
    """The negative control: no relay offered, a NAT with a new port per destination."""
    net = CallNetwork(topology, LAYOUTS["second-address"](), stun_only=True)
    browser, person = open_lobby(net, playwright_driver, "symmetric-nat", "alice", room)
    assert_verdict(net, person, "stun-only-symmetric-nat")
