"""The real ``twistd -n rtcsvc`` process: HTTPS, WSS, headers, redirects, and SIGTERM."""

import json
import socket
import ssl
import stat
import subprocess
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from cryptography import x509
from OpenSSL import crypto
from service_identity import VerificationError
from service_identity.pyopenssl import verify_hostname
from websockets.sync.client import connect

from tests.support.service import ROOT, TWISTD, RtcsvcProcess

pytestmark = pytest.mark.slow


def pinned_context(cert_path: Path) -> ssl.SSLContext:
    """Trust exactly the service's self-signed certificate, with hostname checks on."""
    context = ssl.create_default_context(cafile=str(cert_path))
    context.check_hostname = True
    return context


def fetch(url, context=None):
    class NoRedirect(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, *args):
            return None

    opener = urllib.request.build_opener(NoRedirect, urllib.request.HTTPSHandler(context=context))
    try:
        response = opener.open(url, timeout=5)
    except urllib.error.HTTPError as e:
        response = e
    with response:
        return response.status, response.headers, response.read()


@pytest.fixture
def tls_service(rtcsvc):
    return rtcsvc(tls=True)


def test_the_generated_key_is_private_and_the_certificate_names_localhost(tls_service):
    key = tls_service.state_dir / "tls-key.pem"
    cert_path = tls_service.state_dir / "tls-cert.pem"
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert "localhost" in san.get_values_for_type(x509.DNSName)
    assert "127.0.0.1" in {str(ip) for ip in san.get_values_for_type(x509.IPAddress)}


def test_the_certificate_verifies_for_localhost_with_service_identity(tls_service):
    """Fetch the certificate over a real TLS handshake and check it as a client would."""
    pem = ssl.get_server_certificate(("127.0.0.1", tls_service.port))
    cert = crypto.load_certificate(crypto.FILETYPE_PEM, pem.encode())

    class Connection:  # what service_identity.pyopenssl reads from a connection
        def get_peer_certificate(self):
            return cert

    verify_hostname(Connection(), "localhost")
    with pytest.raises(VerificationError):
        verify_hostname(Connection(), "evil.example")
    assert pem.encode().strip() == (tls_service.state_dir / "tls-cert.pem").read_bytes().strip()


def test_a_client_pinning_the_certificate_completes_a_wss_exchange(tls_service):
    context = pinned_context(tls_service.state_dir / "tls-cert.pem")
    url = f"wss://localhost:{tls_service.port}/ws/pinned"
    origin = f"https://localhost:{tls_service.port}"
    with connect(url, ssl=context, origin=origin) as a, connect(url, ssl=context) as b:
        wa = json.loads(a.recv(timeout=5))
        wb = json.loads(b.recv(timeout=5))
        assert json.loads(a.recv(timeout=5)) == {"type": "peer-joined", "id": wb["id"]}
        b.send(json.dumps({"type": "signal", "to": wa["id"], "data": {"sdp": "offer"}}))
        assert json.loads(a.recv(timeout=5)) == {"type": "signal", "from": wb["id"],
                                                 "data": {"sdp": "offer"}}


def test_pages_carry_the_security_headers_and_hsts_over_tls(tls_service):
    context = pinned_context(tls_service.state_dir / "tls-cert.pem")
    status, headers, body = fetch(f"https://localhost:{tls_service.port}/", context)
    assert status == 200 and b"<html" in body.lower()
    csp = headers["Content-Security-Policy"]
    assert "default-src 'self'" in csp and "script-src 'self'" in csp and "http" not in csp
    assert headers["Strict-Transport-Security"].startswith("max-age=")
    assert headers["X-Content-Type-Options"] == "nosniff"
    assert headers["Referrer-Policy"] == "no-referrer"
    assert "camera=(self)" in headers["Permissions-Policy"]
    assert "display-capture=(self)" in headers["Permissions-Policy"]
    assert headers["Server"] is None


def test_plain_http_has_no_hsts_no_banner_and_no_directory_listing(rtcsvc):
    service = rtcsvc()
    status, headers, _ = fetch(f"{service.http_url}/")
    assert status == 200 and headers["Strict-Transport-Security"] is None
    assert headers["Server"] is None
    status, headers, body = fetch(f"{service.http_url}/js/")
    assert status == 404 and b"main.js" not in body
    assert headers["Content-Security-Policy"]  # error pages too


def test_a_room_link_serves_the_app_and_a_bad_one_does_not(rtcsvc):
    service = rtcsvc()
    _, _, index = fetch(f"{service.http_url}/")
    status, headers, body = fetch(f"{service.http_url}/r/Abc_123-x")
    assert status == 200 and body == index and headers["Content-Type"].startswith("text/html")
    assert fetch(f"{service.http_url}/r/bad.name")[0] == 404
    assert fetch(f"{service.http_url}/r/ok/extra")[0] == 404


def test_without_listen_http_redirects_to_https_and_https_serves(tmp_path):
    """The defaults (8443 + 8080) are fixed ports; run them only when both are free."""
    for port in (8080, 8443):
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                pytest.skip(f"port {port} is taken on this machine")
    proc = subprocess.Popen([str(TWISTD), "-n", "--pidfile=", "rtcsvc",
                             "--state-dir", str(tmp_path / "state")],
                            cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    default = RtcsvcProcess(proc, 8443, tmp_path / "state", tmp_path / "none", "https")
    try:
        default.wait_ready(20)
        status, headers, _ = fetch("http://127.0.0.1:8080/r/room?x=1")
        assert status == 308
        assert headers["Location"] == "https://127.0.0.1:8443/r/room?x=1"
        # A Host header the client made up is not where the browser is sent.
        forged = urllib.request.Request("http://127.0.0.1:8080/r/room",
                                        headers={"Host": "evil.example"})
        status, headers, _ = fetch(forged)
        assert status == 308
        assert headers["Location"] == "https://localhost:8443/r/room"
    finally:
        default.stop()


def test_sigterm_closes_every_socket_with_1001_and_exits_promptly(rtcsvc):
    service = rtcsvc()
    url = f"{service.ws_url}/ws/closing"
    with connect(url) as a, connect(url) as b:
        a.recv(timeout=5)
        b.recv(timeout=5)
        service.proc.send_signal(15)
        service.proc.wait(10)  # "within a few seconds"
        for ws in (a, b):
            with pytest.raises(Exception):
                while True:
                    ws.recv(timeout=5)
            assert ws.protocol.close_rcvd is not None
            assert ws.protocol.close_rcvd.code == 1001


def test_a_bad_option_stops_twistd_with_one_line_and_no_traceback(tmp_path):
    result = subprocess.run([str(TWISTD), "-n", "--pidfile=", "rtcsvc", "--max-peers", "0"],
                            cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert result.returncode != 0
    output = (result.stdout + result.stderr).strip()
    assert output.splitlines() == [output] and "--max-peers" in output
    assert "Traceback" not in output


def every_option() -> list[str]:
    from rtcsvc.tap import Options

    names = [p[0] for p in Options.optParameters] + [f[0] for f in Options.optFlags]
    names += [m[4:].replace("_", "-") for m in dir(Options) if m.startswith("opt_")]
    return sorted(set(names) - {"help", "version"})


def test_twistd_help_and_the_readme_document_every_option():
    result = subprocess.run([str(TWISTD), "rtcsvc", "--help"], cwd=ROOT, capture_output=True,
                            text=True, timeout=60)
    readme = (ROOT / "README.md").read_text()
    assert len(every_option()) > 20
    for option in every_option():
        assert f"--{option}" in result.stdout, option
        assert f"`--{option}" in readme, f"--{option} is not in README's options table"


def test_the_log_never_holds_sdp_candidates_resume_tokens_or_turn_secrets(rtcsvc, tmp_path):
    secret = tmp_path / "turn-secret"
    secret.write_text("turn-secret-value-0123456789\n")
    service = rtcsvc(["--turn-url", "turn:127.0.0.1:3478", "--turn-secret-file", str(secret)])
    fetch(f"{service.http_url}/r/logged?resume=query-token-value")
    url = f"{service.ws_url}/ws/logged"
    with connect(url) as a, connect(url) as b:
        wa = json.loads(a.recv(timeout=5))
        json.loads(b.recv(timeout=5))
        a.recv(timeout=5)
        b.send(json.dumps({"type": "signal", "to": wa["id"], "data": {
            "sdp": "v=0 o=- 4611731400430051336 2 IN IP4 192.0.2.77",
            "candidate": "candidate:1 1 udp 2122260223 198.51.100.23 54321 typ host"}}))
        a.recv(timeout=5)
        with connect(f"{url}?resume={wa['resume']}") as again:
            again.recv(timeout=5)
    service.stop()
    log = service.log()
    assert "joined room=logged" in log  # the log is there, and names rooms and peers
    for private in ("192.0.2.77", "198.51.100.23", "4611731400430051336", "query-token-value",
                    wa["resume"], "turn-secret-value", wa["iceServers"][0]["credential"]):
        assert private not in log, private


def test_no_session_log_drops_the_join_and_leave_lines_and_nothing_else(rtcsvc):
    def one_call(service, room):
        url = f"{service.ws_url}/ws/{room}"
        with connect(url) as a, connect(url) as b:
            wa = json.loads(a.recv(timeout=5))
            json.loads(b.recv(timeout=5))
            a.recv(timeout=5)  # peer-joined
        fetch(f"{service.http_url}/r/{room}")
        service.stop()
        return wa["id"], service.log()

    peer, logged = one_call(rtcsvc(), "chatty")
    assert f"joined room=chatty peer={peer}" in logged
    assert f"left room=chatty peer={peer}" in logged

    peer, quiet = one_call(rtcsvc(["--no-session-log"]), "quiet")
    assert peer not in quiet
    assert "joined room=" not in quiet and "left room=" not in quiet
    # The rest of the log is as before: start-up, the access log of pages, shut-down.
    assert "GET /r/quiet HTTP/1.1" in quiet and "Server Shut Down." in quiet
