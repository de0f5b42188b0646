"""First contact: the README's run command, then a call in Chromium at https://localhost:8443/.

Exactly what a new user does on a fresh machine: ``script/run`` (bootstrap from the lock, then
``twistd rtcsvc`` on its defaults: HTTPS on 127.0.0.1:8443 with a certificate it generates,
HTTP on 127.0.0.1:8080 redirecting), then two people open the site in a browser that offers ALPN
and h2 like every browser, start a call and join it by its link. The default ports are fixed,
so this test needs them free (it says so if they are not).
"""

from __future__ import annotations

import os
import socket
import subprocess
import time

import pytest
from playwright.sync_api import expect

from tests.support.browser import browser, launch, playwright_driver  # noqa: F401
from tests.support.service import ROOT, stop_process, wait_for

pytestmark = pytest.mark.slow

SITE = "https://localhost:8443"


@pytest.fixture
def script_run(tmp_path):
    """``script/run`` on its defaults (state kept in tmp_path), stopped by PID afterwards."""
    for port in (8443, 8080):
        with socket.socket() as s:
            busy = s.connect_ex(("127.0.0.1", port)) == 0
        assert not busy, f"port {port} is taken: stop whatever serves it (a script/run?)"
    log_path = tmp_path / "script-run.log"
    with open(log_path, "wb") as log:
        # script/run execs twistd, so this PID is the server's.
        proc = subprocess.Popen([str(ROOT / "script" / "run"), "--state-dir",
                                 str(tmp_path / "state")], cwd=ROOT, stdin=subprocess.DEVNULL,
                                stdout=log, stderr=subprocess.STDOUT,
                                env={**os.environ, "VENV": os.environ.get("VENV", ".venv")})
    try:
        wait_for(lambda: proc.poll() is not None or "Serving the app at" in log_path.read_text(),
                 300, "script/run to serve the app")
        assert proc.poll() is None, log_path.read_text()
        yield log_path
    finally:
        stop_process(proc)


def start_call(page):
    page.goto(SITE + "/")
    page.get_by_role("button", name="Start a call").click()
    page.get_by_role("textbox", name="Your name").fill("Ada")
    page.get_by_role("button", name="Join call").click()
    return page.url


def join_by_link(page, link):
    page.goto(SITE + "/")
    page.get_by_role("textbox", name="Join with a link or room name").fill(link)
    page.get_by_role("button", name="Join", exact=True).click()
    page.get_by_role("textbox", name="Your name").fill("Grace")
    page.get_by_role("button", name="Join call").click()


def remote_video_plays(page) -> bool:
    # Frames arriving over WebRTC: the one thing here a person sees but the DOM cannot say.
    return page.evaluate("""() => { const v = document.querySelector('.tile video');
        return !!v && v.videoWidth > 0 && v.currentTime > 1; }""")


def test_script_run_serves_a_site_where_two_people_make_a_call(script_run, browser):  # noqa: F811
    contexts = [browser.new_context(ignore_https_errors=True,
                                    permissions=["camera", "microphone"]) for _ in range(2)]
    try:
        ada, grace = (context.new_page() for context in contexts)
        link = start_call(ada)
        assert link.startswith(SITE + "/r/")
        join_by_link(grace, link)
        for page, other in ((ada, "Grace"), (grace, "Ada")):
            expect(page.get_by_text(other, exact=True).first).to_be_visible(timeout=30_000)
            expect(page.get_by_role("button", name="Leave")).to_be_visible()
            deadline = time.monotonic() + 30
            while not remote_video_plays(page):
                assert time.monotonic() < deadline, f"no video from {other}"
                time.sleep(0.2)
    finally:
        for context in contexts:
            context.close()
    log = script_run.read_text()
    assert "Serving the app at https://localhost:8443/" in log
    assert "Serving the redirect to HTTPS at http://localhost:8080/" in log
    assert "Traceback" not in log


def test_plain_http_on_8080_sends_the_browser_to_the_https_site(script_run, browser):  # noqa: F811
    context = browser.new_context(ignore_https_errors=True)
    try:
        page = context.new_page()
        page.goto("http://localhost:8080/r/first-contact")
        assert page.url == SITE + "/r/first-contact"
        expect(page.get_by_role("button", name="Join call")).to_be_visible()
    finally:
        context.close()
