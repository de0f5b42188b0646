"""coturn from the shipped ``deploy/coturn/`` files accepts exactly the credentials rtcsvc mints.

A private coturn runs ``turnserver-loopback.conf`` (only its ``@TOKEN@``s replaced) and a real
``twistd -n rtcsvc`` shares its secret through ``--turn-secret-file``. The TURN client is aioice's
(the ICE/TURN stack of aiortc), independent of both servers.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import grp
import hashlib
import hmac
import json
import os
import re
import secrets
import socket
import ssl
import stat
import struct
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
from websockets.asyncio.client import connect

from aioice import stun

from tests.support.apache import make_self_signed_certificate, stop_process  # noqa: E402
from tests.support.coturn import (  # noqa: E402
    DEPLOY_COTURN,
    TURNSERVER_BINARY,
    CoturnProcess,
    free_relay_range,
    free_udp_and_tcp_port,
    udp_answers_stun,
)
from tests.support.service import RtcsvcProcess, wait_for  # noqa: E402
from tests.support.turnclient import STEP, allocate, closing, exchange

pytestmark = [
    pytest.mark.slow,
]


@dataclass
class TurnDeployment:
    coturn: CoturnProcess
    service: RtcsvcProcess
    secret: str


@pytest.fixture
def turn_deployment(tmp_path, rtcsvc):
    secret = secrets.token_hex(32)
    secret_file = tmp_path / "turn-secret"
    secret_file.write_text(secret + "\n")
    coturn = CoturnProcess.start(tmp_path / "coturn", secret)
    try:
        service = rtcsvc(args=[
            "--turn-url", coturn.turn_url("udp"),
            "--turn-url", coturn.turn_url("tcp"),
            "--turn-secret-file", str(secret_file),
        ])
        yield TurnDeployment(coturn, service, secret)
    finally:
        coturn.stop()


def welcome_from(service: RtcsvcProcess, room: str = "turn") -> dict:
    """A real ``welcome`` from rtcsvc (the socket is closed again at once)."""

    async def fetch():
        async with connect(f"{service.ws_url}/ws/{room}", origin=service.http_url,
                           open_timeout=10) as ws:
            return json.loads(await asyncio.wait_for(ws.recv(), 10))

    welcome = asyncio.run(fetch())
    assert welcome["type"] == "welcome"
    return welcome


def turn_entry(welcome: dict) -> dict:
    entries = [entry for entry in welcome["iceServers"]
               if any(url.startswith("turn:") for url in entry["urls"])]
    assert len(entries) == 1, welcome["iceServers"]
    return entries[0]


def rest_credential(secret: str, username: str) -> str:
    """The TURN REST API password: base64(HMAC-SHA1(secret, username))."""
    digest = hmac.new(secret.encode(), username.encode(), hashlib.sha1).digest()
    return base64.b64encode(digest).decode()


async def refusal_code(port: int, username: str, password: str) -> int:
    with pytest.raises(stun.TransactionFailed) as refused:
        transport, _ = await allocate(port, username, password)
        transport.close()
    return refused.value.response.attributes["ERROR-CODE"][0]


@pytest.mark.parametrize("transport", ["udp", "tcp"])
def test_credentials_minted_by_rtcsvc_open_an_allocation(turn_deployment, transport):
    entry = turn_entry(welcome_from(turn_deployment.service))
    expiry, _, peer = entry["username"].partition(":")
    assert int(expiry) > time.time() + 3600 and peer

    async def scenario():
        relay, _ = await allocate(turn_deployment.coturn.port, entry["username"], entry["credential"],
                                  transport=transport)
        host, port = relay.get_extra_info("sockname")
        relay.close()
        return host, port

    host, port = asyncio.run(scenario())
    low, high = turn_deployment.coturn.relay_ports
    assert host == "127.0.0.1" and low <= port <= high


def test_data_flows_between_two_peers_through_the_relay(turn_deployment):
    """Each peer of one room allocates with its own minted credentials; datagrams cross."""
    alice = turn_entry(welcome_from(turn_deployment.service, "relayed"))
    bob = turn_entry(welcome_from(turn_deployment.service, "relayed"))
    assert alice["username"] != bob["username"]

    async def scenario():
        coturn = turn_deployment.coturn
        alice_relay, alice_in = await allocate(coturn.port, alice["username"], alice["credential"])
        bob_relay, bob_in = await allocate(coturn.port, bob["username"], bob["credential"])
        alice_address = alice_relay.get_extra_info("sockname")
        bob_address = bob_relay.get_extra_info("sockname")
        async with closing(alice_relay, bob_relay):
            got_bob, got_alice = await exchange(alice_relay, alice_in, bob_relay, bob_in,
                                                b"from alice", b"from bob")
            assert got_bob == (b"from alice", alice_address)
            assert got_alice == (b"from bob", bob_address)
            assert not alice_in.errors and not bob_in.errors

    asyncio.run(scenario())


def test_expired_credentials_are_refused(turn_deployment):
    """Correctly signed with the shared secret, but past their expiry time: 401."""
    username = f"{int(time.time()) - 60}:expired-peer"
    password = rest_credential(turn_deployment.secret, username)
    assert asyncio.run(refusal_code(turn_deployment.coturn.port, username, password)) == 401


def test_credentials_still_valid_are_accepted_when_signed_the_same_way(turn_deployment):
    """The control for the test above: only the expiry differs."""
    username = f"{int(time.time()) + 600}:fresh-peer"
    password = rest_credential(turn_deployment.secret, username)

    async def scenario():
        relay, _ = await allocate(turn_deployment.coturn.port, username, password)
        relay.close()

    asyncio.run(scenario())


def test_forged_credentials_are_refused(turn_deployment):
    entry = turn_entry(welcome_from(turn_deployment.service))
    coturn = turn_deployment.coturn
    # Signed with another secret.
    wrong = rest_credential(secrets.token_hex(32), entry["username"])
    assert asyncio.run(refusal_code(coturn.port, entry["username"], wrong)) == 401
    # A genuine credential, its username's expiry pushed later.
    expiry, _, peer = entry["username"].partition(":")
    stretched = f"{int(expiry) + 86400}:{peer}"
    assert asyncio.run(refusal_code(coturn.port, stretched, entry["credential"])) == 401


DEPLOY_HOOK = DEPLOY_COTURN.parent / "certbot" / "coturn-deploy-hook"
SHIPPED_TLS_DIR = "/etc/coturn/tls"  # where the hook writes and turnserver.conf reads


def issue_certificate(live: Path, name: str = "turn.example.com") -> Path:
    """A throwaway certificate laid out as certbot's live/<name>/ directory."""
    live.mkdir(parents=True, exist_ok=True)
    certificate, key = make_self_signed_certificate(live, name)
    certificate.rename(live / "fullchain.pem")
    key.rename(live / "privkey.pem")
    return live


def run_deploy_hook(tmp_path: Path, lineage: Path, domains: str, tls_dir: Path,
                    on_reload: str = "") -> tuple[subprocess.CompletedProcess, list[str]]:
    """Run the shipped hook as certbot would, with a ``systemctl`` stub that logs its calls.

    The stub says coturn is active only when ``on_reload`` (a shell command, run on
    ``systemctl kill``) is given, as a host where coturn is not running yet.
    """
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    calls = tmp_path / "systemctl-calls"
    calls.write_text("")
    stub = bin_dir / "systemctl"
    stub.write_text(
        "#!/bin/sh\n"
        f'echo "$*" >> "{calls}"\n'
        'case "$1" in\n'
        f'  is-active) [ -n "{on_reload}" ] ;;\n'
        f"  kill) {on_reload or 'exit 1'} ;;\n"
        "esac\n"
    )
    stub.chmod(0o755)
    env = {
        **os.environ,
        "PATH": f"{bin_dir}:{os.environ['PATH']}",
        "RENEWED_LINEAGE": str(lineage),
        "RENEWED_DOMAINS": domains,
        "COTURN_TLS_DIR": str(tls_dir),
        "COTURN_GROUP": coturn_group(),
    }
    result = subprocess.run([str(DEPLOY_HOOK)], env=env, capture_output=True, text=True,
                            timeout=30)
    return result, calls.read_text().splitlines()


def coturn_group() -> str:
    """turnserver (Debian's coturn) when we may give files to it, else our own group."""
    if os.geteuid() == 0:
        try:
            grp.getgrnam("turnserver")
            return "turnserver"
        except KeyError:
            pass
    return grp.getgrgid(os.getegid()).gr_name


def production_config(tmp_path: Path, secret: str, ipv6: bool = False) -> tuple[Path, dict]:
    """The shipped production turnserver.conf, made to run here by mechanical substitution.

    Placeholders become loopback values; the ports become free ones; logging goes to a file.
    The certificate is a throwaway one, put where coturn reads it by the shipped certbot deploy
    hook. Everything else (auth, TLS policy, denied peers, limits...) is as shipped. ``ipv6``:
    listen (and so relay) on ::1 as well, as a dual-stack host listens on its public IPv6
    address.
    """
    lineage = issue_certificate(tmp_path / "live" / "turn.example.com")
    tls_dir = tmp_path / "coturn-tls"
    result, _ = run_deploy_hook(tmp_path, lineage, "turn.example.com", tls_dir)
    assert result.returncode == 0, result.stderr
    certificate, key = tls_dir / "fullchain.pem", tls_dir / "privkey.pem"
    port, tls_port = free_udp_and_tcp_port(), free_udp_and_tcp_port()
    low, high = free_relay_range()
    text = (DEPLOY_COTURN / "turnserver.conf").read_text()
    replacements = {
        r"(?m)^listening-ip=203\.0\.113\.10$": "listening-ip=127.0.0.1"
                                               + ("\nlistening-ip=::1" if ipv6 else ""),
        r"(?m)^listening-port=\d+$": f"listening-port={port}",
        r"(?m)^tls-listening-port=\d+$": f"tls-listening-port={tls_port}",
        r"(?m)^min-port=\d+$": f"min-port={low}",
        r"(?m)^max-port=\d+$": f"max-port={high}",
        rf"(?m)^cert={SHIPPED_TLS_DIR}/fullchain\.pem$": f"cert={certificate}",
        rf"(?m)^pkey={SHIPPED_TLS_DIR}/privkey\.pem$": f"pkey={key}",
        r"(?m)^syslog$": f"log-file={tmp_path}/turnserver.log\nsimple-log",
        r"(?m)^pidfile=.*$": f"pidfile={tmp_path}/turnserver.pid\nuserdb={tmp_path}/turndb",
        r"(?m)^static-auth-secret=@TURN_SECRET@$": f"static-auth-secret={secret}",
    }
    for pattern, value in replacements.items():
        text, count = re.subn(pattern, value.replace("\\", "\\\\"), text)
        assert count == 1, f"turnserver.conf: {pattern} matched {count} times"
    conf = tmp_path / "turnserver.conf"
    conf.write_text(text)
    return conf, {"port": port, "tls_port": tls_port, "certificate": certificate,
                  "lineage": lineage, "tls_dir": tls_dir}


@contextlib.contextmanager
def running_production_coturn(tmp_path: Path, ipv6: bool = False):
    secret = secrets.token_hex(32)
    conf, info = production_config(tmp_path, secret, ipv6=ipv6)
    process = subprocess.Popen([TURNSERVER_BINARY, "-c", str(conf)], stdin=subprocess.DEVNULL,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        def ready():
            if process.poll() is not None:
                log = (tmp_path / "turnserver.log").read_text(errors="replace")
                raise RuntimeError(f"turnserver exited with {process.returncode}:\n{log}")
            return udp_answers_stun(info["port"])

        wait_for(ready, 20, "coturn (production config)")
        yield {**info, "secret": secret, "log": tmp_path / "turnserver.log", "pid": process.pid}
    finally:
        stop_process(process)


@pytest.fixture
def production_coturn(tmp_path):
    with running_production_coturn(tmp_path) as coturn:
        yield coturn


def has_ipv6_loopback() -> bool:
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_DGRAM) as probe:
            probe.bind(("::1", 0))
        return True
    except OSError:
        return False


@pytest.fixture
def dual_stack_production_coturn(tmp_path):
    """The production config listening on 127.0.0.1 and ::1: it relays over IPv6 as well."""
    if not has_ipv6_loopback():
        pytest.skip("no IPv6 loopback (::1) on this machine")
    with running_production_coturn(tmp_path, ipv6=True) as coturn:
        yield coturn


def _fresh_credentials(secret: str) -> tuple[str, str]:
    username = f"{int(time.time()) + 600}:peer"
    return username, rest_credential(secret, username)


def test_production_config_refuses_to_relay_to_private_addresses(production_coturn):
    """denied-peer-ip: an allocation works, but the relay will not reach loopback or LANs."""
    username, password = _fresh_credentials(production_coturn["secret"])

    async def scenario():
        relay, inbox = await allocate(production_coturn["port"], username, password)
        async with closing(relay):
            for target in [("127.0.0.1", 9), ("10.1.2.3", 9), ("192.168.1.1", 9)]:
                relay.sendto(b"x", target)
            deadline = asyncio.get_running_loop().time() + STEP
            while len(inbox.errors) < 3:
                assert asyncio.get_running_loop().time() < deadline, inbox.errors
                await asyncio.sleep(0.05)
            codes = sorted(error.response.attributes["ERROR-CODE"][0] for error in inbox.errors)
            assert codes == [403, 403, 403]

    asyncio.run(scenario())


def test_production_config_serves_turn_over_tls(production_coturn):
    """turns: on the TLS port with the shipped TLS settings, and the shipped auth secret."""
    import ssl

    username, password = _fresh_credentials(production_coturn["secret"])

    async def scenario():
        context = ssl.create_default_context(cafile=str(production_coturn["certificate"]))
        context.check_hostname = False
        relay, _ = await allocate(production_coturn["tls_port"], username, password,
                                  transport="tcp", ssl=context)
        async with closing(relay):
            pass  # allocated over TLS: that is what this test proves

    asyncio.run(scenario())


def test_certbot_deploy_hook_gives_coturn_a_readable_copy_and_reloads_it(tmp_path):
    """Chain 0644 and key 0640, group turnserver, in the directory turnserver.conf names."""
    lineage = issue_certificate(tmp_path / "live" / "chat.example.com")
    tls_dir = tmp_path / "coturn-tls"
    result, calls = run_deploy_hook(tmp_path, lineage, "chat.example.com turn.example.com",
                                    tls_dir, on_reload="true")
    assert result.returncode == 0, result.stderr
    gid = grp.getgrnam(coturn_group()).gr_gid
    for name, mode in (("fullchain.pem", 0o644), ("privkey.pem", 0o640)):
        copy = tls_dir / name
        assert copy.read_bytes() == (lineage / name).read_bytes()
        assert (stat.S_IMODE(copy.stat().st_mode), copy.stat().st_gid) == (mode, gid), name
    assert stat.S_IMODE(tls_dir.stat().st_mode) == 0o750 and tls_dir.stat().st_gid == gid
    assert sorted(p.name for p in tls_dir.iterdir()) == ["fullchain.pem", "privkey.pem"]
    assert calls == ["is-active --quiet coturn", "kill --signal=SIGUSR2 coturn"]
    # The hook's default directory is the one the shipped turnserver.conf reads.
    assert f"COTURN_TLS_DIR=${{COTURN_TLS_DIR:-{SHIPPED_TLS_DIR}}}" in DEPLOY_HOOK.read_text()
    conf = (DEPLOY_COTURN / "turnserver.conf").read_text()
    assert f"\ncert={SHIPPED_TLS_DIR}/fullchain.pem\n" in conf
    assert f"\npkey={SHIPPED_TLS_DIR}/privkey.pem\n" in conf


def test_certbot_deploy_hook_leaves_other_certificates_alone(tmp_path):
    lineage = issue_certificate(tmp_path / "live" / "www.example.com", "www.example.com")
    tls_dir = tmp_path / "coturn-tls"
    result, calls = run_deploy_hook(tmp_path, lineage, "www.example.com", tls_dir,
                                    on_reload="true")
    assert result.returncode == 0, result.stderr
    assert not tls_dir.exists() and calls == []


def test_coturn_serves_the_renewed_certificate_after_the_deploy_hook(production_coturn, tmp_path):
    """The hook's SIGUSR2 makes a running coturn serve the new certificate, without a restart."""

    def served() -> bytes:
        pem = ssl.get_server_certificate(("127.0.0.1", production_coturn["tls_port"]), timeout=5)
        return ssl.PEM_cert_to_DER_cert(pem)

    old = production_coturn["certificate"].read_bytes()
    assert served() == ssl.PEM_cert_to_DER_cert(old.decode())
    renewed = issue_certificate(tmp_path / "renewed" / "turn.example.com")
    new = ssl.PEM_cert_to_DER_cert((renewed / "fullchain.pem").read_text())
    result, calls = run_deploy_hook(tmp_path, renewed, "turn.example.com",
                                    production_coturn["tls_dir"],
                                    on_reload=f"kill -USR2 {production_coturn['pid']}")
    assert result.returncode == 0, result.stderr
    assert "kill --signal=SIGUSR2 coturn" in calls
    wait_for(lambda: served() == new, 10, "coturn serving the renewed certificate")


# ---- What a credential holder may make coturn do (issue 13, item 5) ---------------------------
#
# aioice's TURN client only asks for UDP allocations of its socket's address family, so these
# tests speak TURN themselves: a few hand-built STUN messages over one TCP connection each.

STUN_COOKIE = 0x2112A442
ALLOCATE, CREATE_PERMISSION = 0x0003, 0x0008
ATTR_USERNAME, ATTR_MESSAGE_INTEGRITY, ATTR_ERROR_CODE = 0x0006, 0x0008, 0x0009
ATTR_XOR_PEER_ADDRESS, ATTR_REALM, ATTR_NONCE = 0x0012, 0x0014, 0x0015
ATTR_REQUESTED_ADDRESS_FAMILY, ATTR_REQUESTED_TRANSPORT = 0x0017, 0x0019
ATTR_FINGERPRINT = 0x8028
UDP, TCP = 17, 6  # REQUESTED-TRANSPORT's protocol numbers (RFC 5766, RFC 6062)
IPV4, IPV6 = 1, 2  # REQUESTED-ADDRESS-FAMILY (RFC 6156)


def _stun_attribute(kind: int, value: bytes) -> bytes:
    return struct.pack("!HH", kind, len(value)) + value + bytes(-len(value) % 4)


def _xor_peer_address(host: str, transaction_id: bytes) -> bytes:
    import ipaddress

    address = ipaddress.ip_address(host)
    pad = struct.pack("!I", STUN_COOKIE) + transaction_id
    family = IPV4 if address.version == 4 else IPV6
    xored = bytes(a ^ b for a, b in zip(address.packed, pad))
    return struct.pack("!BBH", 0, family, 9 ^ (STUN_COOKIE >> 16)) + xored


class RawTurnClient:
    """One TURN control connection over TCP, long-term credentials, requests answered in order."""

    def __init__(self, port: int, username: str, password: str, timeout: float = STEP):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self.username, self.password = username, password
        self.realm = self.nonce = self.key = None

    def close(self) -> None:
        self.sock.close()

    def request(self, method: int, attributes) -> int | None:
        """Send one request; None for a success response, else its ERROR-CODE.

        ``attributes``: (type, value) pairs, or a function of the transaction id giving them
        (XOR-PEER-ADDRESS depends on it).
        """
        make = attributes if callable(attributes) else (lambda _: attributes)
        if self.nonce is None:  # the first request is answered 401 with the realm and a nonce
            code, reply = self._exchange(method, make)
            assert code == 401, code
            self.realm, self.nonce = reply[ATTR_REALM], reply[ATTR_NONCE]
            self.key = hashlib.md5(b"%s:%s:%s" % (self.username.encode(), self.realm,
                                                  self.password.encode())).digest()
        return self._exchange(method, make)[0]

    def _exchange(self, method, make) -> tuple[int | None, dict[int, bytes]]:
        transaction = os.urandom(12)
        attributes = list(make(transaction))
        if self.key is not None:
            attributes = [(ATTR_USERNAME, self.username.encode()), (ATTR_REALM, self.realm),
                          (ATTR_NONCE, self.nonce)] + attributes
        body = b"".join(_stun_attribute(kind, value) for kind, value in attributes)
        if self.key is not None:
            header = struct.pack("!HHI12s", method, len(body) + 24, STUN_COOKIE, transaction)
            body += _stun_attribute(ATTR_MESSAGE_INTEGRITY,
                                    hmac.new(self.key, header + body, hashlib.sha1).digest())
        header = struct.pack("!HHI12s", method, len(body) + 8, STUN_COOKIE, transaction)
        import binascii

        crc = binascii.crc32(header + body) ^ 0x5354554E
        body += _stun_attribute(ATTR_FINGERPRINT, struct.pack("!I", crc))
        self.sock.sendall(struct.pack("!HHI12s", method, len(body), STUN_COOKIE, transaction)
                          + body)
        header = self._read(20)
        kind, length, _, answered = struct.unpack("!HHI12s", header)
        assert answered == transaction and kind & 0x3EEF == method, (hex(kind), method)
        data, reply, at = self._read(length), {}, 0
        while at < length:
            attribute, size = struct.unpack("!HH", data[at:at + 4])
            reply.setdefault(attribute, data[at + 4:at + 4 + size])
            at += 4 + size + (-size % 4)
        error = reply.get(ATTR_ERROR_CODE)
        return (None if error is None else (error[2] & 7) * 100 + error[3]), reply

    def _read(self, size: int) -> bytes:
        data = b""
        while len(data) < size:
            chunk = self.sock.recv(size - len(data))
            if not chunk:
                raise ConnectionError("coturn closed the connection")
            data += chunk
        return data

    def allocate(self, transport: int = UDP, family: int | None = None) -> int | None:
        attributes = [(ATTR_REQUESTED_TRANSPORT, struct.pack("!I", transport << 24))]
        if family is not None:
            attributes.append((ATTR_REQUESTED_ADDRESS_FAMILY, struct.pack("!I", family << 24)))
        return self.request(ALLOCATE, attributes)

    def permit(self, peer: str) -> int | None:
        """CreatePermission for ``peer`` (no packet goes to it): None if granted."""
        return self.request(CREATE_PERMISSION,
                            lambda transaction: [(ATTR_XOR_PEER_ADDRESS,
                                                  _xor_peer_address(peer, transaction))])


@contextlib.contextmanager
def turn_clients(port: int, secret: str, peer: str = "peer"):
    """``open()`` -> a new RawTurnClient with one fresh credential; all closed on exit."""
    username = f"{int(time.time()) + 600}:{peer}"
    password = rest_credential(secret, username)
    clients = []

    def open_client() -> RawTurnClient:
        clients.append(RawTurnClient(port, username, password))
        return clients[-1]

    try:
        yield open_client
    finally:
        for client in clients:
            client.close()


def test_loopback_config_refuses_rfc_6062_tcp_allocations(tmp_path):
    """no-tcp-relay: 442. (Without it coturn granted the TCP allocation.) UDP still works."""
    secret = secrets.token_hex(32)
    coturn = CoturnProcess.start(tmp_path / "coturn", secret)
    try:
        with turn_clients(coturn.port, secret) as open_client:
            assert open_client().allocate(TCP) == 442
            assert open_client().allocate(UDP) is None
    finally:
        coturn.stop()


def test_production_config_refuses_rfc_6062_tcp_allocations(production_coturn):
    """no-tcp-relay: 442, so no TCP connection is ever opened from the TURN host."""
    with turn_clients(production_coturn["port"], production_coturn["secret"]) as open_client:
        assert open_client().allocate(TCP) == 442
        assert open_client().allocate(UDP) is None


# One address in each range the production config denies, and public ones it must still relay
# to (a deny list that catches these would refuse every call).
DENIED_IPV4 = ["0.1.2.3", "10.1.2.3", "100.64.1.2", "127.0.0.1", "127.1.2.3", "169.254.169.254",
               "172.16.1.2", "172.31.255.254", "192.0.0.8", "192.0.2.1", "192.88.99.1",
               "192.168.1.1", "198.18.0.1", "198.19.255.254", "198.51.100.1", "203.0.113.1",
               "224.0.0.1", "239.255.255.250", "240.0.0.1", "255.255.255.255"]
DENIED_IPV6 = ["::1", "::ffff:127.0.0.1", "::ffff:10.0.0.1", "::ffff:169.254.169.254",
               "::ffff:8.8.8.8", "64:ff9b::7f00:1", "64:ff9b:1::a00:1", "100::1", "2001::1",
               "2001:1ff::1", "2001:db8::1", "2002:7f00:1::1", "fc00::1", "fd12:3456::1",
               "fe80::1", "febf::1", "ff02::1", "ff0e::1"]
PUBLIC_IPV4 = ["8.8.8.8", "1.1.1.1", "100.128.0.1", "172.32.0.1", "198.20.0.1", "223.255.255.1"]
PUBLIC_IPV6 = ["2606:4700:4700::1111", "2001:200::1", "2a00:1450::1", "fec0::1"]


def assert_permits_only_public_peers(coturn: dict, family: int, denied, public) -> None:
    """One allocation of ``family``: a permission for each ``denied`` peer is refused (403),
    one for each ``public`` peer granted."""
    with turn_clients(coturn["port"], coturn["secret"]) as open_client:
        client = open_client()
        assert client.allocate(UDP, family) is None
        refused = {peer: client.permit(peer) for peer in denied}
        assert refused == dict.fromkeys(denied, 403)
        granted = {peer: client.permit(peer) for peer in public}
        assert granted == dict.fromkeys(public, None)


def test_production_config_denies_every_special_purpose_ipv4_range(production_coturn):
    assert_permits_only_public_peers(production_coturn, IPV4, DENIED_IPV4, PUBLIC_IPV4)


def test_production_config_denies_ipv4_mapped_and_special_purpose_ipv6_peers(
        dual_stack_production_coturn):
    """An IPv6 allocation naming ::ffff:127.0.0.1 (IPv4-mapped loopback) and the like: 403.

    coturn checks an IPv6 peer against the IPv6 lines only; before ::ffff:0:0/96 was denied it
    granted ::ffff:127.0.0.1 and ::ffff:10.0.0.1.
    """
    assert_permits_only_public_peers(dual_stack_production_coturn, IPV6, DENIED_IPV6, PUBLIC_IPV6)


def shipped_setting(name: str, conf: str = "turnserver.conf") -> str:
    """The one value of ``name`` in a shipped deploy/coturn file."""
    values = re.findall(rf"(?m)^{re.escape(name)}=(\S+)$", (DEPLOY_COTURN / conf).read_text())
    assert len(values) == 1, (name, values)
    return values[0]


def test_production_config_caps_allocations_per_credential(production_coturn):
    """user-quota: one credential gets that many allocations at once, then 486."""
    quota = int(shipped_setting("user-quota"))
    assert 15 <= quota <= 50  # a 6-person mesh over 3 TURN URLs needs 15
    assert quota * 100 <= int(shipped_setting("total-quota")) < 16384  # the relay ports
    with turn_clients(production_coturn["port"], production_coturn["secret"]) as open_client:
        assert [open_client().allocate(UDP) for _ in range(quota)] == [None] * quota
        assert open_client().allocate(UDP) == 486
    # Another peer's credential is not affected.
    with turn_clients(production_coturn["port"], production_coturn["secret"], "other") as again:
        assert again().allocate(UDP) is None


def test_each_allocations_bandwidth_is_capped(tmp_path):
    """max-bps: a peer sending 4x the cap through its relay gets about the cap across.

    On the loopback config (the production one refuses loopback peers, which relayed addresses
    here are), whose cap is the production one's. Each direction is counted on its own; the
    receiving side is measured here.
    """
    cap = int(shipped_setting("max-bps"))
    assert 250_000 <= cap <= 1_250_000  # bytes/s: 2-10 Mbit/s, one video call's stream
    assert int(shipped_setting("max-bps", "turnserver-loopback.conf")) == cap
    secret = secrets.token_hex(32)
    coturn = CoturnProcess.start(tmp_path / "coturn", secret)
    alice = _fresh_credentials(secret)
    bob = (f"{int(time.time()) + 600}:bob",)
    bob += (rest_credential(secret, bob[0]),)

    async def scenario():
        port = coturn.port
        alice_relay, _ = await allocate(port, *alice)
        bob_relay, bob_in = await allocate(port, *bob)
        alice_address = alice_relay.get_extra_info("sockname")
        bob_address = bob_relay.get_extra_info("sockname")
        loop = asyncio.get_running_loop()
        async with closing(alice_relay, bob_relay):
            # Permissions both ways first (a few datagrams), as ICE checks would.
            deadline = loop.time() + STEP
            while bob_in.received.empty():
                assert loop.time() < deadline, "nothing was relayed"
                alice_relay.sendto(b"hello", bob_address)
                bob_relay.sendto(b"hello", alice_address)
                await asyncio.sleep(0.2)
            while not bob_in.received.empty():
                bob_in.received.get_nowait()
            payload = b"x" * 1000
            seconds, rate = 3.0, 4 * cap
            start = loop.time()
            sent = 0
            while (elapsed := loop.time() - start) < seconds:
                while sent < rate * elapsed:
                    alice_relay.sendto(payload, bob_address)
                    sent += len(payload)
                await asyncio.sleep(0.005)
            await asyncio.sleep(0.5)  # what coturn still had queued
            received = 0
            while not bob_in.received.empty():
                received += len(bob_in.received.get_nowait()[0])
            return sent / seconds, received / seconds

    try:
        sent, received = asyncio.run(scenario())
    finally:
        coturn.stop()
    assert sent > 3 * cap
    assert received < 1.5 * cap, (sent, received, cap)
