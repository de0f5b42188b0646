"""TLS as real clients see it: openssl s_client, curl and Python ssl, with and without ALPN."""

import socket
import ssl
import subprocess

import pytest

from tests.support.service import wait_for

pytestmark = pytest.mark.slow  # openssl comes from Debian, installed by script/test


def s_client(port, *args):
    # SECLEVEL=0 lets the *client* offer anything, so a refusal can only come from the server.
    result = subprocess.run(
        ["openssl", "s_client", "-connect", f"127.0.0.1:{port}", "-servername", "localhost",
         "-cipher", "DEFAULT@SECLEVEL=0", *args],
        input="", capture_output=True, text=True, timeout=30,
    )
    return result.stdout + result.stderr


@pytest.fixture(scope="module")
def tls_port(tmp_path_factory):
    from tests.support.service import RtcsvcProcess

    service = RtcsvcProcess.start(tmp_path_factory.mktemp("tls"), tls=True)
    yield service.port
    service.stop()


@pytest.mark.parametrize("version", ["-tls1", "-tls1_1"])
def test_tls_before_1_2_is_refused_by_the_server(tls_port, version):
    output = s_client(tls_port, version)
    assert "alert protocol version" in output
    assert "Cipher is (NONE)" in output


@pytest.mark.parametrize("version, protocol", [("-tls1_2", "TLSv1.2"), ("-tls1_3", "TLSv1.3")])
def test_tls_1_2_and_1_3_negotiate_forward_secret_aead_ciphers(tls_port, version, protocol):
    output = s_client(tls_port, version)
    line = next(line for line in output.splitlines() if "Cipher is" in line)
    assert protocol in line
    cipher = line.rsplit(" ", 1)[-1]
    assert "GCM" in cipher or "CHACHA20" in cipher
    if protocol == "TLSv1.2":
        assert cipher.startswith("ECDHE-")


def test_a_legacy_cbc_cipher_without_forward_secrecy_is_refused(tls_port):
    output = s_client(tls_port, "-tls1_2", "-cipher", "AES128-SHA:@SECLEVEL=0")
    assert "Cipher is (NONE)" in output


# ---- ALPN: every browser and curl offer it; Twisted 26 refused them all when the port named
# ---- no protocol (alert 80), while clients without ALPN, like the tests above, still worked.


def test_curl_as_it_comes_gets_the_page_over_http_1_1(tls_port):
    result = subprocess.run(
        ["curl", "-sS", "-k", "-v", "--max-time", "10", f"https://127.0.0.1:{tls_port}/healthz"],
        capture_output=True, text=True, timeout=30)
    assert result.returncode == 0, result.stderr
    assert '"status":"ok"' in result.stdout
    assert "ALPN: server accepted http/1.1" in result.stderr


def test_openssl_offering_h2_and_http_1_1_negotiates_http_1_1(tls_port):
    output = s_client(tls_port, "-alpn", "h2,http/1.1")
    assert "ALPN protocol: http/1.1" in output, output
    assert "Cipher is (NONE)" not in output


def test_python_ssl_offering_alpn_gets_http_1_1_and_a_response(tls_port):
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    context.set_alpn_protocols(["h2", "http/1.1"])
    with socket.create_connection(("127.0.0.1", tls_port), timeout=10) as raw:
        with context.wrap_socket(raw, server_hostname="localhost") as tls:
            assert tls.selected_alpn_protocol() == "http/1.1"
            tls.sendall(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
            response = b""
            while chunk := tls.recv(65536):
                response += chunk
    assert response.startswith(b"HTTP/1.1 200"), response


def test_a_client_offering_only_h2_is_refused_at_once_and_the_log_says_why(tmp_path):
    """No hang and no silent drop: a TLS alert for the client, one readable line for the log."""
    from tests.support.service import RtcsvcProcess

    service = RtcsvcProcess.start(tmp_path / "svc", tls=True)
    try:
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        context.set_alpn_protocols(["h2"])
        with socket.create_connection(("127.0.0.1", service.port), timeout=10) as raw:
            with pytest.raises(ssl.SSLError, match="ALERT"):
                context.wrap_socket(raw, server_hostname="localhost")
        s_client(service.port, "-tls1_1")
        wait_for(lambda: service.log().count("TLS handshake with 127.0.0.1 failed") >= 2, 10,
                 "two handshake failures in the log")
    finally:
        service.stop()
    failures = [line for line in service.log().splitlines() if "TLS handshake" in line]
    assert len(failures) == 2, failures
    assert "unsupported protocol" in failures[1]
    assert "Traceback" not in service.log()
