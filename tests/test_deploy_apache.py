"""rtcsvc behind the shipped Apache site files (``deploy/apache/``), proven with real processes.

A private Apache runs the shipped vhost files unchanged (only ``Define``s prepended, see
``tests/support/apache.py``) in front of a real ``twistd -n rtcsvc --trusted-proxy 127.0.0.1``.
Each test runs over four fronts: HTTPS (rtcsvc-ssl.conf) and plain HTTP (rtcsvc-plain-http.conf),
each with mod_proxy_wstunnel and with mod_proxy_http's ``upgrade=websocket``.
"""

from __future__ import annotations

import asyncio
import http.client
import json
import re
import secrets
import time
from dataclasses import dataclass

import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import InvalidStatus

from tests.support.apache import (
    MODULES,
    SERVER_NAME,
    ApacheProcess,
    ProxyFront,
    config_test,
    free_port,
    make_self_signed_certificate,
    write_config,
)
from tests.support.service import RtcsvcProcess, wait_for

pytestmark = [
    pytest.mark.slow,
]

RESUME_GRACE = 2.0
STEP = 10.0  # bound on every single wait for a message


@dataclass
class Deployment:
    front: ProxyFront
    service: RtcsvcProcess


@pytest.fixture(
    params=[(True, False), (True, True), (False, False), (False, True)],
    ids=["https-wstunnel", "https-upgrade", "http-wstunnel", "http-upgrade"],
)
def deployment(request, rtcsvc, tmp_path):
    tls, upgrade = request.param
    service = rtcsvc(args=["--trusted-proxy", "127.0.0.1", "--resume-grace", str(RESUME_GRACE)])
    front = ProxyFront.start(tmp_path / "apache", service.port, tls=tls, upgrade=upgrade)
    try:
        yield Deployment(front, service)
    finally:
        front.stop()


async def open_socket(front: ProxyFront, room: str, origin: str | None = None,
                      query: str = "", headers: dict[str, str] | None = None) -> ClientConnection:
    """A WebSocket to /ws/<room> through Apache, as a browser on the public site opens it."""
    tls_options = {"ssl": front.ssl_context(), "server_hostname": SERVER_NAME} if front.tls else {}
    return await connect(
        front.ws_uri(room) + query,
        host="127.0.0.1",
        port=front.port,
        origin=origin or front.origin,
        additional_headers=headers,
        open_timeout=STEP,
        close_timeout=STEP,
        ping_interval=None,
        **tls_options,
    )


async def receive(ws: ClientConnection) -> dict:
    return json.loads(await asyncio.wait_for(ws.recv(), STEP))


async def join(front: ProxyFront, room: str, **kwargs) -> tuple[ClientConnection, dict]:
    ws = await open_socket(front, room, **kwargs)
    welcome = await receive(ws)
    assert welcome["type"] == "welcome", welcome
    return ws, welcome


async def handshake_status(front: ProxyFront, room: str, **kwargs) -> int:
    """The HTTP status of a WebSocket handshake that is expected to be refused."""
    with pytest.raises(InvalidStatus) as refused:
        ws = await open_socket(front, room, **kwargs)
        await ws.close()
    return refused.value.response.status_code


def test_page_and_healthz_are_served_through_apache(deployment):
    front = deployment.front
    status, headers, body = front.request("GET", "/")
    assert status == 200
    assert headers["Content-Type"].startswith("text/html")
    assert b"<html" in body.lower()
    status, _, body = front.request("GET", "/healthz")
    assert status == 200, body
    if front.tls:
        assert headers["Strict-Transport-Security"].startswith("max-age=")


@pytest.mark.parametrize("tls", [True, False], ids=["https", "plain-http-behind-tls"])
def test_every_https_response_carries_exactly_one_hsts_header(rtcsvc, tmp_path, tls):
    """Apache sets HSTS, rtcsvc does not add its own behind it, and Apache's 503 has it too.

    ``plain-http-behind-tls``: rtcsvc-plain-http.conf with the public scheme https, as behind
    a load balancer that ends TLS.
    """
    service = rtcsvc(args=["--trusted-proxy", "127.0.0.1"])
    front = ProxyFront.start(tmp_path / "apache", service.port, tls=tls, upgrade=False,
                             public_scheme="https")
    try:
        for path in ("/", "/healthz", "/js/", "/no-such-page"):
            _, headers, _ = front.request("GET", path)
            hsts = headers.get_all("Strict-Transport-Security") or []
            assert len(hsts) == 1 and hsts[0].startswith("max-age="), (path, hsts)
        service.stop()  # now only Apache answers
        status, headers, _ = front.request("GET", "/")
        assert status == 503
        assert len(headers.get_all("Strict-Transport-Security") or []) == 1
    finally:
        front.stop()


def start_balancer(tmp_path, service: RtcsvcProcess) -> ApacheProcess:
    """rtcsvc-balancer.conf (TLS ended in front) with both members on one rtcsvc."""
    port = free_port()
    backend = f"127.0.0.1:{service.port}"
    return ApacheProcess.start(
        tmp_path / "apache", ["rtcsvc-balancer.conf"],
        {"RTCSVC_SERVER_NAME": SERVER_NAME, "RTCSVC_HTTP_PORT": str(port),
         "RTCSVC_BACKEND_1": backend, "RTCSVC_BACKEND_2": backend},
        {"http": port},
        modules=MODULES + ("slotmem_shm", "proxy_balancer", "lbmethod_bybusyness",
                           "lbmethod_byrequests"),
    )


def plain_request(port: int, path: str, headers: dict[str, str] | None = None):
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        connection.request("GET", path, headers={"Host": SERVER_NAME, **(headers or {})})
        response = connection.getresponse()
        response.read()
        return response
    finally:
        connection.close()


def test_balancer_site_sends_exactly_one_hsts_header(rtcsvc, tmp_path):
    service = rtcsvc(args=["--trusted-proxy", "127.0.0.1"])
    apache = start_balancer(tmp_path, service)
    try:
        response = plain_request(apache.ports["http"], "/")
        assert response.status == 200
        assert len(response.msg.get_all("Strict-Transport-Security") or []) == 1
    finally:
        apache.stop()


def test_plain_http_site_with_public_scheme_http_sends_no_hsts(rtcsvc, tmp_path):
    service = rtcsvc(args=["--trusted-proxy", "127.0.0.1"])
    front = ProxyFront.start(tmp_path / "apache", service.port, tls=False, upgrade=False)
    try:
        _, headers, _ = front.request("GET", "/")
        assert headers.get_all("Strict-Transport-Security") is None
    finally:
        front.stop()


def test_protocol_v1_exchange_through_apache(deployment):
    """welcome, peer-joined, an addressed signal and peer-left on a clean close, via the proxy."""

    async def scenario():
        front = deployment.front
        alice, alice_welcome = await join(front, "lobby")
        assert alice_welcome["peers"] == []
        bob, bob_welcome = await join(front, "lobby")
        assert bob_welcome["peers"] == [alice_welcome["id"]]
        assert await receive(alice) == {"type": "peer-joined", "id": bob_welcome["id"]}

        offer = {"sdp": "v=0 fake offer", "kind": "offer"}
        await alice.send(json.dumps({"type": "signal", "to": bob_welcome["id"], "data": offer}))
        assert await receive(bob) == {"type": "signal", "from": alice_welcome["id"], "data": offer}

        await bob.close()
        assert await receive(alice) == {"type": "peer-left", "id": bob_welcome["id"]}
        await alice.close()

    asyncio.run(scenario())


def test_dropped_connection_becomes_peer_left_after_the_grace_period(deployment):
    """A client vanishing without a close frame reaches rtcsvc through Apache as a drop."""

    async def scenario():
        front = deployment.front
        alice, _ = await join(front, "drops")
        bob, bob_welcome = await join(front, "drops")
        await receive(alice)  # peer-joined
        bob.transport.abort()
        loop = asyncio.get_running_loop()
        dropped_at = loop.time()
        assert await receive(alice) == {"type": "peer-left", "id": bob_welcome["id"]}
        # Not at once: rtcsvc kept the seat for a resume, so it saw a drop, not a clean close.
        assert loop.time() - dropped_at >= RESUME_GRACE * 0.8
        await alice.close()

    asyncio.run(scenario())


def test_resume_token_in_the_query_string_passes_through_apache(deployment):
    async def scenario():
        front = deployment.front
        alice, _ = await join(front, "resumes")
        bob, bob_welcome = await join(front, "resumes")
        await receive(alice)  # peer-joined
        bob.transport.abort()
        bob, resumed = await join(front, "resumes", query=f"?resume={bob_welcome['resume']}")
        assert resumed["id"] == bob_welcome["id"]
        assert resumed.get("resumed") is True
        await alice.send(json.dumps({"type": "signal", "to": bob_welcome["id"], "data": 1}))
        assert (await receive(bob))["data"] == 1
        await bob.close()
        assert (await receive(alice))["type"] == "peer-left"
        await alice.close()

    asyncio.run(scenario())


def test_public_origin_is_accepted_and_others_are_refused(deployment):
    """rtcsvc checks Origin against the scheme and host the browser used, not its own."""

    async def scenario():
        front = deployment.front
        ws, _ = await join(front, "origins", origin=front.origin)
        await ws.close()
        assert await handshake_status(front, "origins", origin="https://evil.example") == 403
        # The same host under the other scheme: only the forwarded scheme makes this differ.
        other_scheme = "http" if front.tls else "https"
        assert await handshake_status(
            front, "origins", origin=f"{other_scheme}://{front.host}") == 403

    asyncio.run(scenario())


def test_client_cannot_choose_its_host_or_address_through_apache(deployment):
    """X-Forwarded-Host / X-Forwarded-For sent by the browser are dropped, not believed."""

    async def scenario():
        front = deployment.front
        forged = {"X-Forwarded-Host": "evil.example", "X-Forwarded-For": "203.0.113.7"}
        assert await handshake_status(
            front, "forged", origin=f"{front.scheme}://evil.example", headers=forged) == 403
        ws, welcome = await join(front, "forged", headers=forged)
        await ws.close()
        return welcome["id"]

    peer = asyncio.run(scenario())
    joined = [line for line in deployment.service.log().splitlines()
              if "joined" in line and peer in line]
    assert joined, deployment.service.log()
    assert "client=127.0.0.1" in joined[0]
    assert "203.0.113.7" not in deployment.service.log()


def test_port_80_redirects_to_https_except_acme_challenges(rtcsvc, tmp_path):
    service = rtcsvc(args=["--trusted-proxy", "127.0.0.1"])
    front = ProxyFront.start(tmp_path / "apache", service.port, tls=True, upgrade=False)
    try:
        status, headers, _ = front.request("GET", "/rooms/abc?x=1", port=front.redirect_port,
                                           tls=False)
        assert status == 301
        assert headers["Location"] == f"https://{SERVER_NAME}:{front.port}/rooms/abc?x=1"
        status, _, _ = front.request("GET", "/.well-known/acme-challenge/token", tls=False,
                                     port=front.redirect_port)
        assert status == 404
    finally:
        front.stop()


@pytest.mark.parametrize(
    "sites",
    [["rtcsvc-ssl.conf", "rtcsvc-http.conf"], ["rtcsvc-plain-http.conf"]],
    ids=["https", "plain-http"],
)
def test_site_files_parse_with_their_shipped_defaults(tmp_path, sites):
    """Only the certificate paths are given: every other value is the file's own default."""
    certificate, key = make_self_signed_certificate(tmp_path, SERVER_NAME)
    conf = write_config(tmp_path, sites,
                        {"RTCSVC_TLS_CERT": str(certificate), "RTCSVC_TLS_KEY": str(key)},
                        {"any": free_port()})
    result = config_test(conf)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Syntax OK" in result.stdout + result.stderr
    assert not re.search(r"used but not defined", result.stdout + result.stderr)


def test_websocket_upgrade_switch_needs_no_wstunnel(tmp_path, rtcsvc):
    """With RTCSVC_WS_UPGRADE, mod_proxy_http alone carries the WebSocket (Apache >= 2.4.47)."""

    async def scenario(front):
        ws, welcome = await join(front, "upgrade-only")
        assert welcome["peers"] == []
        await ws.close()

    service = rtcsvc(args=["--trusted-proxy", "127.0.0.1"])
    without_wstunnel = tuple(m for m in MODULES if m != "proxy_wstunnel")
    front = ProxyFront.start(tmp_path / "apache", service.port, tls=False, upgrade=True,
                             modules=without_wstunnel)
    try:
        asyncio.run(scenario(front))
    finally:
        front.stop()


# ---- Tokens stay out of Apache's logs (issue 13, item 4) ---------------------------------------

def invite_shaped_token() -> str:
    """Looks like an rtcsvc invite token (expiry.base64url); unique, so a log search is exact."""
    return f"{int(time.time()) + 3600}.{secrets.token_urlsafe(32)}"


def apache_logs(apache: ApacheProcess) -> str:
    """Everything Apache wrote: the sites' access log, Debian's catch-all one, the error log."""
    return "\n".join(path.read_text(errors="replace")
                     for path in sorted((apache.server_root / "logs").glob("*.log")))


def test_access_log_keeps_no_invite_or_resume_token(deployment):
    """A socket and a page with ?token=...&resume=... are logged by path alone.

    Without the sites' own query-less CustomLog, their requests go to Debian's
    other_vhosts_access.log as whole request lines, tokens and Referer included.
    """
    front = deployment.front
    invite = invite_shaped_token()

    async def scenario():
        alice, welcome = await join(front, "logged", query=f"?token={invite}")
        alice.transport.abort()
        alice, resumed = await join(front, "logged",
                                    query=f"?token={invite}&resume={welcome['resume']}")
        assert resumed["id"] == welcome["id"] and resumed.get("resumed") is True
        await alice.close()
        return welcome["resume"]

    resume = asyncio.run(scenario())
    link = f"/r/logged?token={invite}"
    status, _, _ = front.request("GET", link, headers={"Referer": f"{front.origin}{link}"})
    assert status == 200
    if front.tls:  # the port-80 site redirects the same link
        status, headers, _ = front.request("GET", link, port=front.redirect_port, tls=False)
        assert status == 301 and invite in headers["Location"]

    access_log = front.apache.access_log

    def logged() -> list[str]:
        text = access_log.read_text(errors="replace") if access_log.exists() else ""
        return [line for line in text.splitlines() if "/logged" in line]

    # Apache logs an upgraded request when its tunnel ends: both sockets, the page, the redirect.
    expected = 4 if front.tls else 3
    wait_for(lambda: len(logged()) >= expected, STEP,
             f"{expected} requests in {access_log}:\n{apache_logs(front.apache)}")
    assert sum('"GET /ws/logged HTTP/1.1" 101 ' in line for line in logged()) == 2, logged()
    assert sum('"GET /r/logged HTTP/1.1" 200 ' in line for line in logged()) == 1, logged()
    everything = apache_logs(front.apache)
    assert invite not in everything and resume not in everything
    assert "token=" not in everything and "resume=" not in everything


def test_balancer_access_log_keeps_no_token(rtcsvc, tmp_path):
    service = rtcsvc(args=["--trusted-proxy", "127.0.0.1"])
    apache = start_balancer(tmp_path, service)
    invite, resume = invite_shaped_token(), secrets.token_urlsafe(24)
    try:
        assert plain_request(apache.ports["http"], f"/r/logged?token={invite}").status == 200
        plain_request(apache.ports["http"], f"/ws/logged?token={invite}&resume={resume}")
        wait_for(lambda: apache.access_log.exists()
                 and apache.access_log.read_text().count("/logged") == 2,
                 STEP, f"both requests in {apache.access_log}:\n{apache_logs(apache)}")
    finally:
        apache.stop()
    everything = apache_logs(apache)
    assert invite not in everything and resume not in everything
