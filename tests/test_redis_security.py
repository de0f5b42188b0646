"""``--redis rediss://user@host/0?ca=...&password-file=...``: TLS to Redis and an ACL user.

The process tests run a real redis-server configured with docs/scaling.md's redis.conf lines
(TLS only, no default user) and the documented ``ACL SETUSER`` line, run as written, with a
throwaway CA made here. Two rtcsvc processes share a room through it; each way of getting it
wrong (wrong CA, a certificate for another name, wrong password, ``redis://`` on the TLS port)
is one readable log line, /healthz 503, no traceback and no password in the log.
"""

from __future__ import annotations

import hashlib
import json
import re
import socket
import time
from pathlib import Path

import pytest
from websockets.sync.client import connect

from rtcsvc.redis_connection import parse_redis_url
from rtcsvc.redis_lua import SCRIPTS
from tests.support.redis import RedisServer, UnreadyRtcsvc, make_ca, make_server_certificate

pytestmark = [
    pytest.mark.filterwarnings("ignore:connect\\(\\) must be used as a context manager"),
]

ROOT = Path(__file__).resolve().parent.parent
SCALING = (ROOT / "docs" / "scaling.md").read_text()
PASSWORD = "s3cret-Pa55word-for-rtcsvc"
ADMIN = ("admin", "admin-password-xyz")
TROUBLE = "joins are refused, retrying"


def documented_acl_line() -> str:
    lines = [line for line in SCALING.splitlines() if line.startswith("ACL SETUSER rtcsvc ")]
    assert len(lines) == 1, "docs/scaling.md ships one ACL SETUSER line"
    return lines[0]


def documented_redis_conf() -> list[str]:
    blocks = re.findall(r"```conf\n(.*?)```", SCALING, re.S)
    tls = [block for block in blocks if "tls-port" in block]
    assert len(tls) == 1, "docs/scaling.md ships one redis.conf block with the TLS lines"
    return tls[0].splitlines()


# -- the URL


def test_rediss_urls_name_the_ca_and_the_password_file(tmp_path):
    ca, _, _ = make_ca(tmp_path, "ca")
    secret = tmp_path / "password"
    secret.write_text(PASSWORD + "\n")
    address = parse_redis_url(
        f"rediss://rtcsvc@redis.internal:6380/2?ca={ca}&password-file={secret}")
    assert (address.tls, address.host, address.port, address.db) == (True, "redis.internal",
                                                                      6380, 2)
    assert (address.username, address.password) == ("rtcsvc", PASSWORD)
    assert address.trust and address.trust[0].startswith(b"-----BEGIN CERTIFICATE-----")
    # Log lines show the address: never the password.
    assert PASSWORD not in str(address) and PASSWORD not in repr(address)
    assert str(address) == f"rediss://rtcsvc@redis.internal:6380/2?ca={ca}"
    inline = parse_redis_url("redis://rtcsvc:pa%40ss@127.0.0.1/0")
    assert inline.password == "pa@ss" and not inline.tls and "pa@ss" not in repr(inline)


@pytest.mark.parametrize("url, reason", [
    ("http://127.0.0.1/0", "must be a redis:// or rediss:// URL"),
    ("redis://127.0.0.1/0?ca=/etc/ca.pem", "ca= needs TLS"),
    ("rediss://127.0.0.1/0?ca=/nonexistent/ca.pem", "ca: cannot read /nonexistent/ca.pem"),
    ("rediss://127.0.0.1/0?password-file=/nonexistent/pw", "password-file: cannot read"),
    ("rediss://127.0.0.1/0?cert=x", "unknown parameter(s) cert"),
    ("rediss://u:hunter2hunter2@127.0.0.1/0?password-file=/x", "both a password and"),
])
def test_bad_redis_urls_say_why_without_echoing_a_password(url, reason):
    with pytest.raises(ValueError) as bad:
        parse_redis_url(url)
    assert reason in str(bad.value)
    assert "hunter2" not in str(bad.value)


def test_a_ca_file_without_certificates_is_refused(tmp_path):
    junk = tmp_path / "ca.pem"
    junk.write_text("not a certificate\n")
    with pytest.raises(ValueError, match="holds no PEM certificate"):
        parse_redis_url(f"rediss://127.0.0.1/0?ca={junk}")


def test_the_documented_acl_allows_exactly_the_commands_rtcsvc_sends():
    """Every command the Lua scripts call, and the ones the hub sends itself; nothing more."""
    line = documented_acl_line()
    assert " ~rtcsvc:* &rtcsvc:* " in line and " reset " in line
    granted = {rule[1:].upper() for rule in line.split() if rule.startswith("+")}
    scripts = {name.upper() for text in SCRIPTS.values()
               for name in re.findall(r"redis\.p?call\('(\w+)'", text)}
    hub = {"PING", "SELECT", "INFO", "SCRIPT|LOAD", "EVALSHA", "SUBSCRIBE"}
    assert granted == scripts | hub


# -- against a real redis-server speaking TLS only


@pytest.fixture
def pki(tmp_path):
    """A CA that signed Redis's certificate (for 127.0.0.1), and an unrelated one."""
    directory = tmp_path / "pki"
    ca, ca_key, ca_cert = make_ca(directory, "ca")
    other_ca, _, _ = make_ca(directory, "other-ca")
    cert, key = make_server_certificate(directory, ca_key, ca_cert)
    return {"ca": ca, "other_ca": other_ca, "cert": cert, "key": key,
            "ca_key": ca_key, "ca_cert": ca_cert, "dir": directory}


def start_tls_redis(workdir: Path, pki, cert=None, key=None,
                    server_name="127.0.0.1") -> RedisServer:
    """docs/scaling.md's redis.conf block and ACL SETUSER line, with this test's paths."""
    server = RedisServer(workdir, tls=True, ca=pki["ca"], admin=ADMIN, server_name=server_name)
    conf = []
    for line in documented_redis_conf():
        line = line.replace("6380", str(server.port))
        line = line.replace("/etc/redis/tls/redis.crt", str(cert or pki["cert"]))
        line = line.replace("/etc/redis/tls/redis.key", str(key or pki["key"]))
        line = line.replace("/etc/redis/tls/ca.crt", str(pki["ca"]))
        conf.append(line)
    assert "port 0" in conf and "user default off" in conf
    server.config = conf + [f"user {ADMIN[0]} on >{ADMIN[1]} ~* &* +@all"]
    server.run()
    digest = hashlib.sha256(PASSWORD.encode()).hexdigest()
    acl = documented_acl_line().replace("<sha256 of the password>", digest)
    assert server.command(*acl.split()) == b"+OK"
    return server


@pytest.fixture
def tls_redis(tmp_path, pki):
    server = start_tls_redis(tmp_path / "redis", pki)
    yield server
    server.stop()


@pytest.fixture
def password_file(tmp_path):
    path = tmp_path / "redis-password"
    path.write_text(PASSWORD + "\n")
    return path


@pytest.fixture
def unready(tmp_path):
    """``unready(url)``: an rtcsvc process that may not reach Redis; stopped by PID at
    teardown."""
    started = []

    def start(url, *args):
        service = UnreadyRtcsvc.start(tmp_path / f"svc{len(started)}", ["--redis", url, *args])
        started.append(service)
        return service

    yield start
    for service in started:
        service.stop()


def trouble_lines(service) -> list[str]:
    return [line for line in service.log().splitlines() if TROUBLE in line]


def refused_with_one_line(service, *expected: str, within: float = 10.0) -> str:
    """The process reports one trouble line (and keeps it at one over several retries),
    answers /healthz 503, logs no traceback and no password."""
    deadline = time.monotonic() + within
    while not trouble_lines(service):
        assert time.monotonic() < deadline, f"no trouble line:\n{service.log()}"
        time.sleep(0.1)
    time.sleep(3)  # the back-off is capped at 2 s: several more attempts meanwhile
    lines = trouble_lines(service)
    assert len(lines) == 1, lines
    for text in expected:
        assert text in lines[0], lines[0]
    assert service.health() == 503
    log = service.log()
    assert "Traceback" not in log, log
    assert PASSWORD not in log
    return lines[0]


def signal_crosses(a, b, room) -> None:
    """A room spanning two processes: welcome, peer-joined and a signal each way."""
    first = connect(f"{a.ws_url}/ws/{room}", origin=a.http_url, open_timeout=5)
    second = connect(f"{b.ws_url}/ws/{room}", origin=b.http_url, open_timeout=5)
    try:
        one = json.loads(first.recv(timeout=5))
        two = json.loads(second.recv(timeout=5))
        assert two["peers"] == [one["id"]]
        assert json.loads(first.recv(timeout=5)) == {"type": "peer-joined", "id": two["id"]}
        first.send(json.dumps({"type": "signal", "to": two["id"], "data": "offer"}))
        assert json.loads(second.recv(timeout=5)) == {"type": "signal", "from": one["id"],
                                                       "data": "offer"}
        second.send(json.dumps({"type": "signal", "to": one["id"], "data": "answer"}))
        assert json.loads(first.recv(timeout=5)) == {"type": "signal", "from": two["id"],
                                                      "data": "answer"}
    finally:
        first.close()
        second.close()


def dropped_and_resumed_across(a, b) -> None:
    """The rest of the scripts under the ACL: a drop queues signals, a resume on the other
    process delivers them, a leave frees the seat."""
    alice = connect(f"{a.ws_url}/ws/resume", origin=a.http_url, open_timeout=5)
    bob = connect(f"{b.ws_url}/ws/resume", origin=b.http_url, open_timeout=5)
    try:
        first = json.loads(alice.recv(timeout=5))
        welcome = json.loads(bob.recv(timeout=5))
        json.loads(alice.recv(timeout=5))  # peer-joined
        bob.socket.shutdown(socket.SHUT_RDWR)  # gone without a close frame: dropped
        bob.socket.close()
        time.sleep(0.5)
        for i in range(3):
            alice.send(json.dumps({"type": "signal", "to": welcome["id"], "data": i}))
        back = connect(f"{a.ws_url}/ws/resume?resume={welcome['resume']}", origin=a.http_url,
                       open_timeout=5)
        try:
            again = json.loads(back.recv(timeout=5))
            assert again["resumed"] is True and again["peers"] == [first["id"]]
            assert [json.loads(back.recv(timeout=5))["data"] for _ in range(3)] == [0, 1, 2]
        finally:
            back.close()
        assert json.loads(alice.recv(timeout=5)) == {"type": "peer-left", "id": welcome["id"]}
    finally:
        alice.close()


@pytest.mark.slow
def test_two_processes_share_a_room_over_tls_as_the_documented_acl_user(
        tls_redis, pki, password_file, rtcsvc):
    url = (f"rediss://rtcsvc@127.0.0.1:{tls_redis.port}/0"
           f"?ca={pki['ca']}&password-file={password_file}")
    a = rtcsvc(args=["--redis", url])
    b = rtcsvc(args=["--redis", url])
    signal_crosses(a, b, "secure")
    # Both really are the limited user, over TLS (the default user is off anyway).
    assert int(tls_redis.command("CLIENT", "KILL", "USER", "rtcsvc")[1:]) == 4
    # Reconnected and logged in again: the room works across the processes once more.
    deadline = time.monotonic() + 10
    for attempt in range(1000):
        try:
            signal_crosses(a, b, f"again-{attempt}")
            break
        except (AssertionError, TimeoutError, ConnectionError, KeyError):
            assert time.monotonic() < deadline, "no room across processes after reconnecting"
            time.sleep(0.3)
    dropped_and_resumed_across(a, b)
    for service in (a, b):
        log = service.log()
        assert PASSWORD not in log and "Traceback" not in log
        assert f"Redis rediss://rtcsvc@127.0.0.1:{tls_redis.port}/0?ca={pki['ca']} connected" \
            in log


@pytest.mark.slow
def test_a_redis_certificate_from_another_ca_is_refused(tls_redis, pki, password_file,
                                                       unready):
    service = unready(f"rediss://rtcsvc@127.0.0.1:{tls_redis.port}/0"
                      f"?ca={pki['other_ca']}&password-file={password_file}")
    refused_with_one_line(service, "not signed by a CA we trust", "certificate verify failed")


@pytest.mark.slow
def test_a_redis_certificate_for_another_name_is_refused(tmp_path, pki, password_file,
                                                        unready):
    (tmp_path / "elsewhere").mkdir()
    cert, key = make_server_certificate(tmp_path / "elsewhere", pki["ca_key"], pki["ca_cert"],
                                        names=("redis.example",), addresses=())
    server = start_tls_redis(tmp_path / "redis-elsewhere", pki, cert=cert, key=key,
                             server_name="redis.example")
    try:
        service = unready(f"rediss://rtcsvc@127.0.0.1:{server.port}/0"
                          f"?ca={pki['ca']}&password-file={password_file}")
        refused_with_one_line(service, "not valid for the host")
    finally:
        server.stop()


@pytest.mark.slow
def test_a_wrong_password_is_one_line_and_a_fixed_one_is_picked_up(tls_redis, pki, tmp_path,
                                                                  unready):
    wrong = tmp_path / "wrong-password"
    wrong.write_text("not-" + PASSWORD)
    service = unready(f"rediss://rtcsvc@127.0.0.1:{tls_redis.port}/0"
                      f"?ca={pki['ca']}&password-file={wrong}")
    line = refused_with_one_line(service, "refused the login (AUTH): WRONGPASS")
    assert "not-" + PASSWORD not in service.log()
    assert "password-file" not in line  # the URL as logged has no query but ca=
    # The operator gives the user that password: the next attempt logs in (no restart).
    assert tls_redis.command("ACL", "SETUSER", "rtcsvc", ">not-" + PASSWORD) == b"+OK"
    deadline = time.monotonic() + 10
    while service.health() != 200:
        assert time.monotonic() < deadline, f"never recovered:\n{service.log()}"
        time.sleep(0.2)


@pytest.mark.slow
def test_a_clear_text_client_gets_nothing_from_the_tls_port(tls_redis, password_file, unready):
    service = unready(f"redis://rtcsvc@127.0.0.1:{tls_redis.port}/0"
                      f"?password-file={password_file}")
    refused_with_one_line(service, "closed the connection before answering", "rediss://")
