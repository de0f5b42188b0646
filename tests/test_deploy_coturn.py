"""coturn from the shipped ``deploy/coturn/`` files accepts exactly the credentials rtcsvc mints.

A private coturn runs ``turnserver-loopback.conf`` (only its ``@TOKEN@``s replaced) and a real
``twistd -n rtcsvc`` shares its secret through ``--turn-secret-file``. The TURN client is aioice's
(the ICE/TURN stack of aiortc), independent of both servers.
"""

from __future__ import annotations

import asyncio
import base64
import grp
import hashlib
import hmac
import json
import os
import re
import secrets
import ssl
import stat
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
from websockets.asyncio.client import connect

from aioice import stun
from aioice.turn import create_turn_endpoint

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

pytestmark = [
    pytest.mark.slow,
]

STEP = 15.0  # bound on each TURN transaction (aioice retransmits for up to ~40 s otherwise)


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


class Collector(asyncio.DatagramProtocol):
    def __init__(self):
        self.received: asyncio.Queue = asyncio.Queue()
        self.errors: list[Exception] = []

    def datagram_received(self, data, addr):
        self.received.put_nowait((data, addr))

    def error_received(self, exc):
        self.errors.append(exc)


async def allocate(port: int, username: str, password: str, transport="udp", ssl=None):
    """A TURN allocation on 127.0.0.1:port: (TurnTransport, Collector)."""
    return await asyncio.wait_for(
        create_turn_endpoint(Collector, ("127.0.0.1", port), username=username,
                             password=password, transport=transport, ssl=ssl),
        STEP)


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
        try:
            # Both send, as ICE checks do: each side's send installs the permission the other
            # side's datagrams need to be let through.
            deadline = asyncio.get_running_loop().time() + STEP
            while True:
                alice_relay.sendto(b"from alice", bob_address)
                bob_relay.sendto(b"from bob", alice_address)
                try:
                    got_bob = await asyncio.wait_for(bob_in.received.get(), 0.5)
                    got_alice = await asyncio.wait_for(alice_in.received.get(), 0.5)
                    break
                except asyncio.TimeoutError:
                    assert asyncio.get_running_loop().time() < deadline, "nothing was relayed"
            assert got_bob == (b"from alice", alice_address)
            assert got_alice == (b"from bob", bob_address)
            assert not alice_in.errors and not bob_in.errors
        finally:
            alice_relay.close()
            bob_relay.close()
            await asyncio.sleep(0.1)

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


def production_config(tmp_path: Path, secret: str) -> tuple[Path, dict]:
    """The shipped production turnserver.conf, made to run here by mechanical substitution.

    Placeholders become loopback values; the ports become free ones; logging goes to a file.
    The certificate is a throwaway one, put where coturn reads it by the shipped certbot deploy
    hook. Everything else (auth, TLS policy, denied peers...) is as shipped.
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
        r"(?m)^listening-ip=203\.0\.113\.10$": "listening-ip=127.0.0.1",
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


@pytest.fixture
def production_coturn(tmp_path):
    secret = secrets.token_hex(32)
    conf, info = production_config(tmp_path, secret)
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


def _fresh_credentials(secret: str) -> tuple[str, str]:
    username = f"{int(time.time()) + 600}:peer"
    return username, rest_credential(secret, username)


def test_production_config_refuses_to_relay_to_private_addresses(production_coturn):
    """denied-peer-ip: an allocation works, but the relay will not reach loopback or LANs."""
    username, password = _fresh_credentials(production_coturn["secret"])

    async def scenario():
        relay, inbox = await allocate(production_coturn["port"], username, password)
        try:
            for target in [("127.0.0.1", 9), ("10.1.2.3", 9), ("192.168.1.1", 9)]:
                relay.sendto(b"x", target)
            deadline = asyncio.get_running_loop().time() + STEP
            while len(inbox.errors) < 3:
                assert asyncio.get_running_loop().time() < deadline, inbox.errors
                await asyncio.sleep(0.05)
            codes = sorted(error.response.attributes["ERROR-CODE"][0] for error in inbox.errors)
            assert codes == [403, 403, 403]
        finally:
            relay.close()
            await asyncio.sleep(0.1)

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
        relay.close()
        await asyncio.sleep(0.1)

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
