"""rtcsvc-check without servers: reading TURN URLs, judging certificates, words for TURN
refusals, the service's own option parsing, the verdict and the exit status.

The checks against real servers (rtcsvc over TLS, coturn, Redis) are in test_check_process.py.
"""

from __future__ import annotations

import configparser
import datetime
import ipaddress
import json
from pathlib import Path

import pytest
from aioice import stun
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from rtcsvc import check
from rtcsvc.check_result import FAIL, PASS, WARN, Result, worst
from rtcsvc.check_site import expiry_result, name_result, site_origin
from rtcsvc.check_turn import TurnServer, describe_turn_error, parse_turn_url
from tests.support.service import ROOT

NOW = datetime.datetime(2030, 6, 1, tzinfo=datetime.timezone.utc)


# ---- certificates: a private CA and the leaves the tests need ----

def make_ca(directory: Path) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey, Path]:
    """A private CA: (certificate, key, PEM path to give --ca)."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "rtcsvc test CA")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=3650))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False,
                                         False), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()),
                           critical=False)
            .sign(key, hashes.SHA256()))
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "ca.pem"
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return cert, key, path


def issue(ca, directory: Path, names: list[str], not_before: datetime.datetime | None = None,
          not_after: datetime.datetime | None = None) -> tuple[Path, Path]:
    """A leaf for ``names`` (DNS names or IP addresses) signed by ``ca``: (cert path, key path)."""
    ca_cert, ca_key, _ = ca
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.timezone.utc)
    alt = []
    for name in names:
        try:
            alt.append(x509.IPAddress(ipaddress.ip_address(name)))
        except ValueError:
            alt.append(x509.DNSName(name))
    cert = (x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0])]))
            .issuer_name(ca_cert.subject).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(not_before or now - datetime.timedelta(days=1))
            .not_valid_after(not_after or now + datetime.timedelta(days=90))
            .add_extension(x509.SubjectAlternativeName(alt), critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]),
                           critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(
                ca_key.public_key()), critical=False)
            .sign(ca_key, hashes.SHA256()))
    directory.mkdir(parents=True, exist_ok=True)
    cert_path, key_path = directory / "cert.pem", directory / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_path, key_path


def leaf(tmp_path, names, **dates) -> x509.Certificate:
    cert_path, _ = issue(make_ca(tmp_path / "ca"), tmp_path / "leaf", names, **dates)
    return x509.load_pem_x509_certificate(cert_path.read_bytes())


# ---- TURN URLs ----

@pytest.mark.parametrize("url, expected", [
    ("turn:turn.example.com", ("turn.example.com", 3478, "udp", False)),
    ("turn:turn.example.com:3479?transport=tcp", ("turn.example.com", 3479, "tcp", False)),
    ("turns:turn.example.com?transport=tcp", ("turn.example.com", 5349, "tcp", True)),
    ("turns:chat.example.com:443", ("chat.example.com", 443, "tcp", True)),
    ("turn:[2001:db8::1]:3478?transport=udp", ("2001:db8::1", 3478, "udp", False)),
    ("turn:192.0.2.1", ("192.0.2.1", 3478, "udp", False)),
])
def test_turn_urls_give_host_port_transport_and_tls(url, expected):
    server = parse_turn_url(url)
    assert (server.host, server.port, server.transport, server.tls) == expected


@pytest.mark.parametrize("url", ["stun:x:3478", "turn:", "turn:x:port",
                                 "turns:x:5349?transport=udp", "turn:x?transport=sctp"])
def test_malformed_turn_urls_are_refused_with_a_reason(url):
    with pytest.raises(ValueError):
        parse_turn_url(url)


# ---- certificates ----

def test_a_certificate_for_the_name_passes_and_one_for_another_name_fails(tmp_path):
    cert = leaf(tmp_path, ["turn.example.com", "192.0.2.7"])
    assert name_result("n", "t", cert, "turn.example.com").status == PASS
    assert name_result("n", "t", cert, "192.0.2.7").status == PASS
    wrong = name_result("n", "t", cert, "chat.example.com")
    assert wrong.status == FAIL
    assert "for turn.example.com, 192.0.2.7, not for chat.example.com" in wrong.message


def test_expiry_passes_warns_under_the_threshold_and_fails_when_expired_or_not_yet_valid(
        tmp_path):
    cert = leaf(tmp_path, ["x.example"], not_before=NOW - datetime.timedelta(days=80),
                not_after=NOW + datetime.timedelta(days=10))
    assert expiry_result("e", "t", cert, 7, now=NOW).status == PASS
    warned = expiry_result("e", "t", cert, 14, now=NOW)
    assert warned.status == WARN and "expires in 10 days" in warned.message
    assert warned.numbers["days_left"] == 10.0
    expired = expiry_result("e", "t", cert, 14, now=NOW + datetime.timedelta(days=13))
    assert expired.status == FAIL and "expired 3 days ago" in expired.message
    early = expiry_result("e", "t", cert, 14, now=NOW - datetime.timedelta(days=90))
    assert early.status == FAIL and "not valid yet" in early.message


# ---- what a TURN refusal means ----

def refusal(code: int, reason: str) -> stun.TransactionFailed:
    message = stun.Message(stun.Method.ALLOCATE, stun.Class.ERROR)
    message.attributes["ERROR-CODE"] = (code, reason)
    return stun.TransactionFailed(message)


def test_a_401_is_said_to_be_a_secret_that_does_not_match_coturns():
    server = TurnServer("turn:t:3478", False, "t", 3478, "udp")
    text = describe_turn_error(refusal(401, "Unauthorized"), server, 5)
    assert "does not match coturn's static-auth-secret" in text
    assert "486" in describe_turn_error(refusal(486, "Allocation Quota Reached"), server, 5)


def test_silence_over_udp_and_a_refused_tcp_connection_are_told_apart():
    udp = TurnServer("turn:t:3478", False, "t", 3478, "udp")
    tcp = TurnServer("turn:t:3478?transport=tcp", False, "t", 3478, "tcp")
    assert "over UDP within 5 s" in describe_turn_error(TimeoutError(), udp, 5)
    assert "connection refused" in describe_turn_error(ConnectionRefusedError(), tcp, 5)


# ---- the site ----

@pytest.mark.parametrize("url, origin", [
    ("https://chat.example.com", "https://chat.example.com"),
    ("https://chat.example.com:443/", "https://chat.example.com"),
    ("https://Chat.Example.com:8443/x", "https://chat.example.com:8443"),
    ("http://127.0.0.1:8080", "http://127.0.0.1:8080"),
    ("https://[::1]:8443", "https://[::1]:8443"),
])
def test_the_origin_is_what_a_browser_sends_from_the_sites_pages(url, origin):
    assert site_origin(url) == origin


# ---- the command ----

def test_the_service_options_are_read_by_the_services_own_parser(tmp_path):
    secret = tmp_path / "secret"
    secret.write_text("0123456789abcdef0123\n")
    settings = check.service_settings(["--turn-url", "turn:t:3478", "--turn-secret-file",
                                       str(secret), "--redis", "redis://127.0.0.1:6390/2"])
    assert settings.turn_urls == ("turn:t:3478",)
    assert settings.turn_secret == b"0123456789abcdef0123"
    assert (settings.redis.host, settings.redis.port, settings.redis.db) == ("127.0.0.1", 6390, 2)


def test_a_bad_service_option_is_a_one_line_usage_error_naming_it(capsys, tmp_path):
    assert check.main(["--turn-url", "turn:t:3478"]) == check.EXIT_USAGE
    err = capsys.readouterr().err.strip()
    assert err.splitlines() == [err] and err.startswith("rtcsvc-check: error: ")
    assert "--turn-secret-file" in err
    assert check.main([]) == check.EXIT_USAGE
    assert "nothing to check" in capsys.readouterr().err


def test_a_secret_file_it_cannot_read_is_a_usage_error_naming_the_option(capsys, tmp_path):
    absent = tmp_path / "absent"
    assert check.main(["--turn-url", "turn:t:3478", "--turn-secret-file", str(absent)]) == \
        check.EXIT_USAGE
    err = capsys.readouterr().err.strip()
    assert err == f"rtcsvc-check: error: --turn-secret-file: cannot read {absent}: " \
                  "No such file or directory"


def test_the_exit_status_is_the_worst_verdict():
    results = [Result("a", "t", PASS, "ok")]
    assert worst(results) == PASS and check.EXIT_CODES[worst(results)] == 0
    results.append(Result("b", "t", WARN, "soon"))
    assert check.EXIT_CODES[worst(results)] == 1
    results.append(Result("c", "t", FAIL, "broken"))
    assert check.EXIT_CODES[worst(results)] == 2
    text = check.render_text(results)
    assert text.splitlines() == ["PASS  a  t: ok", "WARN  b  t: soon", "FAIL  c  t: broken",
                                 "FAIL: 1 of 3 checks failed"]


def test_json_output_flattens_the_numbers_into_each_check():
    result = Result("turn-allocation", "turn:t", PASS, "allocated", {"seconds": 0.05})
    assert json.loads(json.dumps(result.as_json())) == {
        "check": "turn-allocation", "target": "turn:t", "status": "pass",
        "message": "allocated", "seconds": 0.05}


def test_rtcsvc_check_is_an_installed_command_and_aioice_a_runtime_dependency():
    config = configparser.ConfigParser()
    config.read(ROOT / "setup.cfg")
    scripts = config["options.entry_points"]["console_scripts"]
    assert "rtcsvc-check = rtcsvc.check:main" in scripts
    assert any(line.strip().startswith("aioice")
               for line in config["options"]["install_requires"].splitlines())
