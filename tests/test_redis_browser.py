"""A browser call whose two participants land on different rtcsvc processes sharing a Redis.

Headless Chromium (fake camera and microphone) opens the app from process A for one person and
from process B for the other, as a balancer could; the call connects and media flows both ways,
which needs every offer, answer and ICE candidate to cross processes through Redis.
"""

from __future__ import annotations

import pytest

from tests.support.browser import browser, people, playwright_driver, room  # noqa: F401

pytestmark = [
    pytest.mark.slow,
]


def test_a_call_between_two_processes_connects_and_media_flows_both_ways(
        redis, rtcsvc, browser, people, room):
    a = rtcsvc(args=["--redis", redis.url], tls=True)
    b = rtcsvc(args=["--redis", redis.url], tls=True)
    ada = people(browser, a.http_url, name="Ada")
    grace = people(browser, b.http_url, name="Grace")
    ada.join(room)
    grace.join(room)
    (grace_id,) = ada.wait_connected_to(1)
    (ada_id,) = grace.wait_connected_to(1)
    for viewer, other in ((ada, grace_id), (grace, ada_id)):
        sample = viewer.wait_media_flowing(other)
        assert sample["w"] > 0 and sample["h"] > 0
        assert sample["video"] == ["live"], sample
