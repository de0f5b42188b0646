"""TLS as a real client sees it: ``openssl s_client`` against the running service."""

import subprocess

import pytest

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
