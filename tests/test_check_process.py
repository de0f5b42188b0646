"""rtcsvc-check against real servers: it passes on a good setup and names each fault.

The setup is deploy/README.md's one-port layout, for real: ``twistd -n rtcsvc`` serves its site
over TLS with a certificate from a private CA (given to rtcsvc-check with ``--ca``) and passes
``turns:`` on the same port to a private coturn (``tcp-proxy-port``), which also takes TURN over
UDP itself. rtcsvc-check is the installed console script, given the service's own options.
Faults: a secret that is not coturn's, a certificate for another name, an expired certificate,
closed ports, and Redis up and down.
"""

from __future__ import annotations

import datetime
import json
import secrets
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.support.coturn import CoturnProcess, free_udp_and_tcp_port
from tests.support.redis import RedisServer
from tests.support.service import free_port
from tests.test_check import issue, make_ca

pytestmark = pytest.mark.slow

RTCSVC_CHECK = Path(sys.executable).with_name("rtcsvc-check")
STEP = "3"  # --timeout: every step here answers in milliseconds, or never


@dataclass
class Deployment:
    url: str
    ca: Path
    service_args: list[str]
    secret_file: Path
    coturn: CoturnProcess

    @property
    def turns_url(self) -> str:
        return self.service_args[1]


@pytest.fixture
def deploy(tmp_path, rtcsvc):
    """``deploy(names=["localhost"], **dates)``: coturn + rtcsvc on TLS with a leaf for names."""
    ca = make_ca(tmp_path / "ca")
    coturns = []

    def start(names=("localhost", "127.0.0.1"), **dates) -> Deployment:
        secret = secrets.token_hex(32)
        secret_file = tmp_path / "turn-secret"
        secret_file.write_text(secret + "\n")
        proxy_port = free_udp_and_tcp_port()
        coturn = CoturnProcess.start(tmp_path / "coturn", secret,
                                     extra_config=f"tcp-proxy-port={proxy_port}\n")
        coturns.append(coturn)
        cert, key = issue(ca, tmp_path / "leaf", list(names), **dates)
        port = free_port()
        args = ["--turn-url", f"turns:localhost:{port}?transport=tcp",
                "--turn-url", coturn.turn_url("udp"),
                "--turn-secret-file", str(secret_file)]
        rtcsvc(args=[*args, "--turn-backend", f"tcp:127.0.0.1:{proxy_port}",
                     "--listen", f"ssl:{port}:interface=127.0.0.1:privateKey={key}:certKey={cert}"],
               port=port, tls=True)
        return Deployment(f"https://localhost:{port}", ca[2], args, secret_file, coturn)

    yield start
    for coturn in coturns:
        coturn.stop()


def run_check(*args: str, json_output: bool = True):
    """Run the console script: (exit status, parsed JSON or the text, stderr)."""
    result = subprocess.run([str(RTCSVC_CHECK), "--timeout", STEP, *(["--json"] if json_output
                                                                      else []), *args],
                            capture_output=True, text=True, timeout=120)
    output = json.loads(result.stdout) if json_output else result.stdout
    return result.returncode, output, result.stderr


def by_check(report: dict, target: str | None = None) -> dict[str, dict]:
    return {c["check"]: c for c in report["checks"] if target is None or c["target"] == target}


def statuses(report: dict, target: str) -> dict[str, str]:
    return {name: c["status"] for name, c in by_check(report, target).items()}


def test_a_good_setup_passes_every_check_and_exits_0(deploy):
    setup = deploy()
    code, text, _ = run_check("--url", setup.url, "--ca", str(setup.ca), *setup.service_args,
                              json_output=False)
    lines = text.splitlines()
    assert code == 0, text
    assert lines[-1] == "PASS: all 16 checks passed"
    assert all(line.startswith("PASS  ") for line in lines[:-1]), text
    assert [line.split()[1] for line in lines[:-1]] == [
        "tls", "certificate-chain", "certificate-name", "certificate-expiry",
        "websocket", "websocket-origin",
        "turn-resolve", "turn-tls", "turn-certificate-chain", "turn-certificate-name",
        "turn-certificate-expiry", "turn-allocation", "turn-relay",
        "turn-resolve", "turn-allocation", "turn-relay",
    ]
    assert "ALPN http/1.1" in text and "answered 101" in text and "refused (403)" in text
    assert setup.secret_file.read_text().strip() not in text


def test_a_good_setup_in_json_has_timings_and_days_left(deploy):
    setup = deploy()
    code, report, _ = run_check("--url", setup.url, "--ca", str(setup.ca), *setup.service_args)
    assert code == 0 and report["status"] == "pass"
    checks = by_check(report, setup.turns_url)
    assert 0 < checks["turn-allocation"]["seconds"] < 3
    assert 0 < checks["turn-relay"]["seconds"] < 3
    assert 89 < by_check(report, setup.url)["certificate-expiry"]["days_left"] <= 90


def test_a_secret_that_is_not_coturns_is_named_on_every_turn_url(deploy, tmp_path):
    setup = deploy()
    wrong = tmp_path / "wrong-secret"
    wrong.write_text(secrets.token_hex(32))
    args = [a if a != str(setup.secret_file) else str(wrong) for a in setup.service_args]
    code, report, _ = run_check("--url", setup.url, "--ca", str(setup.ca), *args)
    assert code == 2 and report["status"] == "fail"
    failed = [c for c in report["checks"] if c["status"] == "fail"]
    assert [c["check"] for c in failed] == ["turn-allocation", "turn-allocation"]
    for c in failed:
        assert "401" in c["message"]
        assert "does not match coturn's static-auth-secret" in c["message"]
    assert wrong.read_text() not in json.dumps(report)


def test_a_certificate_for_another_name_is_named_for_the_site_and_the_turns_url(deploy):
    setup = deploy(names=["chat.example.com"])
    code, report, _ = run_check("--url", setup.url, "--ca", str(setup.ca), *setup.service_args)
    assert code == 2
    for prefix, target in (("", setup.url), ("turn-", setup.turns_url)):
        checks = by_check(report, target)
        name = checks[f"{prefix}certificate-name"]
        assert name["status"] == "fail"
        assert "is for chat.example.com, not for localhost" in name["message"]
        assert checks[f"{prefix}certificate-chain"]["status"] == "pass"
        assert checks[f"{prefix}certificate-expiry"]["status"] == "pass"
    # Only the names are wrong: TURN itself still works behind that certificate.
    assert by_check(report, setup.turns_url)["turn-allocation"]["status"] == "pass"


def test_an_expired_certificate_is_named_with_its_age(deploy):
    now = datetime.datetime.now(datetime.timezone.utc)
    setup = deploy(not_before=now - datetime.timedelta(days=100),
                   not_after=now - datetime.timedelta(days=5, hours=1))
    code, report, _ = run_check("--url", setup.url, "--ca", str(setup.ca), *setup.service_args)
    assert code == 2
    for prefix, target in (("", setup.url), ("turn-", setup.turns_url)):
        checks = by_check(report, target)
        expiry = checks[f"{prefix}certificate-expiry"]
        assert expiry["status"] == "fail" and "expired 5 days ago" in expiry["message"]
        assert expiry["days_left"] <= -5
        assert checks[f"{prefix}certificate-chain"]["status"] == "pass"
        assert checks[f"{prefix}certificate-name"]["status"] == "pass"


def test_a_certificate_expiring_soon_warns_and_exits_1(deploy):
    now = datetime.datetime.now(datetime.timezone.utc)
    setup = deploy(not_after=now + datetime.timedelta(days=9))
    code, report, _ = run_check("--url", setup.url, "--ca", str(setup.ca), *setup.service_args)
    assert code == 1 and report["status"] == "warn"
    assert by_check(report, setup.url)["certificate-expiry"]["status"] == "warn"


def test_an_untrusted_certificate_fails_the_chain(deploy, tmp_path):
    setup = deploy()
    other_ca = make_ca(tmp_path / "other-ca")[2]
    code, report, _ = run_check("--url", setup.url, "--ca", str(other_ca), *setup.service_args)
    assert code == 2
    chain = by_check(report, setup.url)["certificate-chain"]
    assert chain["status"] == "fail" and "does not verify" in chain["message"]


def test_closed_ports_are_named_per_transport(deploy):
    setup = deploy()
    closed = free_udp_and_tcp_port()
    args = ["--turn-url", f"turn:127.0.0.1:{closed}?transport=udp",
            "--turn-url", f"turn:127.0.0.1:{closed}?transport=tcp",
            "--turn-url", f"turns:localhost:{closed}?transport=tcp",
            # coturn with tcp-proxy-port listens on UDP only: its TCP port is closed too.
            "--turn-url", setup.coturn.turn_url("tcp"),
            "--turn-secret-file", str(setup.secret_file)]
    code, report, _ = run_check("--url", f"https://localhost:{closed}", "--ca", str(setup.ca),
                                *args)
    assert code == 2
    site = by_check(report, f"https://localhost:{closed}")
    assert "connection refused" in site["tls"]["message"]
    udp = by_check(report, f"turn:127.0.0.1:{closed}?transport=udp")["turn-allocation"]
    assert udp["status"] == "fail"
    assert f"no TURN answer from 127.0.0.1:{closed} over UDP" in udp["message"]
    tcp = by_check(report, f"turn:127.0.0.1:{closed}?transport=tcp")["turn-allocation"]
    assert f"connection refused: nothing listens on 127.0.0.1:{closed} (TCP)" in tcp["message"]
    tls = by_check(report, f"turns:localhost:{closed}?transport=tcp")
    assert tls["turn-tls"]["status"] == "fail"
    assert "connection refused" in tls["turn-tls"]["message"]
    assert "turn-allocation" not in tls  # the TLS line already named the fault
    coturn_tcp = by_check(report, setup.coturn.turn_url("tcp"))["turn-allocation"]
    assert "connection refused" in coturn_tcp["message"]


def test_turn_only_checks_nothing_but_the_turn_urls(deploy):
    setup = deploy()
    code, report, _ = run_check("--turn-only", "--url", setup.url, *setup.service_args)
    assert code == 2  # no --ca: the turns: chain is not trusted
    assert {c["target"] for c in report["checks"]} == {setup.turns_url,
                                                       setup.coturn.turn_url("udp")}


def test_redis_answers_ping_and_a_stopped_one_is_named(tmp_path):
    redis = RedisServer.start(tmp_path / "redis")
    try:
        code, report, _ = run_check("--redis", redis.url)
        assert code == 0 and by_check(report)["redis"]["message"].startswith("PONG")
    finally:
        redis.stop()
    code, report, _ = run_check("--redis", redis.url)
    assert code == 2
    assert "connection refused" in by_check(report)["redis"]["message"]
