"""The shipped systemd units (``deploy/systemd/``) are valid, bounded, and their command works.

There is no systemd to run the unit here, so its ``ExecStart=`` command line is run as it stands,
with only what systemd or the host would provide substituted: the installed twistd, the state
directory, ``$CREDENTIALS_DIRECTORY`` and a free port for 8080. It then serves behind the shipped
Apache site, which proves the two halves' options pair up.
"""

from __future__ import annotations

import asyncio
import json
import re
import secrets
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
from websockets.asyncio.client import connect

from tests.support.apache import SERVER_NAME, ProxyFront, free_port, stop_process
from tests.support.service import ROOT, wait_for

UNIT = ROOT / "deploy" / "systemd" / "rtcsvc.service"
TEMPLATE = ROOT / "deploy" / "systemd" / "rtcsvc@.service"
INSTALLED_TWISTD = "/opt/rtcsvc/venv/bin/twistd"
TWISTD = str(Path(sys.executable).with_name("twistd"))


def unit_directives(text: str) -> list[tuple[str, str]]:
    """(key, value) pairs of a unit file, continuation lines joined."""
    joined = re.sub(r"\\\n\s*", " ", text)
    pairs = []
    for line in joined.splitlines():
        line = line.strip()
        if line and not line.startswith(("#", ";", "[")) and "=" in line:
            key, _, value = line.partition("=")
            pairs.append((key.strip(), value.strip()))
    return pairs


def exec_start(text: str) -> list[str]:
    commands = [value for key, value in unit_directives(text) if key == "ExecStart"]
    assert len(commands) == 1, commands
    return shlex.split(commands[0])


def test_unit_runs_twistd_in_the_foreground_as_an_unprivileged_sandboxed_user():
    directives = dict(unit_directives(UNIT.read_text()))
    argv = exec_start(UNIT.read_text())
    assert argv[0] == INSTALLED_TWISTD and "--nodaemon" in argv and "rtcsvc" in argv
    assert argv[argv.index("--listen") + 1] == "tcp:8080:interface=127.0.0.1"
    assert argv[argv.index("--trusted-proxy") + 1] == "127.0.0.1"
    assert directives["DynamicUser"] == "yes"
    assert directives["Restart"] == "on-failure"
    assert directives["NoNewPrivileges"] == "yes"
    assert directives["ProtectSystem"] == "strict"
    assert directives["CapabilityBoundingSet"] == ""
    assert directives["StateDirectory"] == "rtcsvc"


def test_unit_passes_systemd_analyze_verify(tmp_path):
    unit = tmp_path / "rtcsvc.service"
    unit.write_text(UNIT.read_text().replace(INSTALLED_TWISTD, TWISTD))
    result = subprocess.run(["systemd-analyze", "verify", str(unit)], capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "rtcsvc.service" not in result.stderr, result.stderr


def test_template_unit_passes_systemd_analyze_verify(tmp_path):
    """rtcsvc@.service, verified as the instance rtcsvc@8081 (a link to it, as systemd names it)."""
    template = tmp_path / "rtcsvc@.service"
    template.write_text(TEMPLATE.read_text().replace(INSTALLED_TWISTD, TWISTD))
    instance = tmp_path / "rtcsvc@8081.service"
    instance.symlink_to(template.name)
    result = subprocess.run(["systemd-analyze", "verify", str(instance)], capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "rtcsvc@" not in result.stderr, result.stderr


# ---- Resource limits and the IP allow-list (issue 13, item 9) -------------------------------

def size_in_bytes(value: str) -> int:
    """A systemd size (1G, 768M, 4096) in bytes; systemd's suffixes are powers of 1024."""
    match = re.fullmatch(r"(\d+)([KMGT]?)", value)
    assert match, f"not a plain size: {value!r}"
    return int(match.group(1)) * 1024 ** " KMGT".index(match.group(2) or " ")


def default_of(option: str):
    from rtcsvc.tap import Options

    return Options()[option]


@pytest.mark.parametrize("unit", [UNIT, TEMPLATE], ids=lambda unit: unit.name)
def test_unit_bounds_memory_tasks_and_descriptors_with_headroom_over_max_connections(unit):
    directives = unit_directives(unit.read_text())
    settings = dict(directives)
    argv = exec_start(unit.read_text())
    max_connections = (int(argv[argv.index("--max-connections") + 1])
                       if "--max-connections" in argv else default_of("max-connections"))
    # Every signaling socket, plus page connections from Apache, Redis and the process's own
    # files (the arithmetic is in the unit's comment): --max-connections must bite first.
    nofile = int(settings["LimitNOFILE"])
    assert max_connections + 1000 + 100 <= nofile <= 4 * max_connections, (nofile, max_connections)
    # Memory: room for every idle socket (~12 KiB each) over the process, and a bound.
    memory_max = size_in_bytes(settings["MemoryMax"])
    assert 256 * 2**20 + max_connections * 12 * 2**10 <= memory_max <= 8 * 2**30
    assert size_in_bytes(settings["MemoryHigh"]) < memory_max
    # One event-loop thread and Twisted's pool of 10: a bound well above, far below the host's.
    assert 16 <= int(settings["TasksMax"]) <= 256
    for key in ("LimitNOFILE", "MemoryMax", "MemoryHigh", "TasksMax"):
        assert [k for k, _ in directives].count(key) == 1, key


@pytest.mark.parametrize("unit", [UNIT, TEMPLATE], ids=lambda unit: unit.name)
def test_unit_talks_to_loopback_only_and_everything_it_uses_is_there(unit):
    """IPAddressDeny=any + IPAddressAllow=localhost, and the command line needs no more."""
    import ipaddress

    directives = unit_directives(unit.read_text())
    assert [value for key, value in directives if key == "IPAddressDeny"] == ["any"]
    assert [value for key, value in directives if key == "IPAddressAllow"] == ["localhost"]
    argv = exec_start(unit.read_text())

    def loopback(address: str) -> bool:
        return ipaddress.ip_address(address).is_loopback

    listens = [argv[i + 1] for i, arg in enumerate(argv) if arg == "--listen"]
    assert listens and all(loopback(re.search(r"interface=([^:]+)", endpoint).group(1))
                           for endpoint in listens), listens
    assert loopback(argv[argv.index("--trusted-proxy") + 1])
    if "--redis" in argv:
        from urllib.parse import urlsplit

        assert loopback(urlsplit(argv[argv.index("--redis") + 1]).hostname)
    # Whoever moves Redis elsewhere is told, in the unit, what to add.
    if unit == TEMPLATE:
        assert "IPAddressAllow=10.0.0.7" in unit.read_text()


@pytest.mark.slow
def test_unit_command_line_serves_the_app_behind_the_shipped_apache_site(tmp_path):
    credentials = tmp_path / "credentials"
    credentials.mkdir()
    (credentials / "turn-secret").write_text(secrets.token_hex(32) + "\n")
    state = tmp_path / "state"
    port = free_port()
    argv = []
    for arg in exec_start(UNIT.read_text()):
        arg = arg.replace("${CREDENTIALS_DIRECTORY}", str(credentials))
        arg = arg.replace("/var/lib/rtcsvc", str(state))
        arg = arg.replace("tcp:8080:", f"tcp:{port}:")
        argv.append(TWISTD if arg == INSTALLED_TWISTD else arg)
    log_path = tmp_path / "rtcsvc.log"
    nofile = int(dict(unit_directives(UNIT.read_text()))["LimitNOFILE"])

    def as_limited_by_the_unit():
        import resource

        hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
        limit = nofile if hard == resource.RLIM_INFINITY else min(nofile, hard)
        resource.setrlimit(resource.RLIMIT_NOFILE, (limit, limit))

    with open(log_path, "wb") as log:
        process = subprocess.Popen(argv, cwd=tmp_path, stdin=subprocess.DEVNULL, stdout=log,
                                   stderr=subprocess.STDOUT, preexec_fn=as_limited_by_the_unit)
    front = None
    try:
        def listening():
            if process.poll() is not None:
                raise RuntimeError(f"rtcsvc exited:\n{log_path.read_text()}")
            import socket

            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                return True
            except OSError:
                return False

        wait_for(listening, 20, "rtcsvc started from the unit's command line")
        front = ProxyFront.start(tmp_path / "apache", port, tls=True, upgrade=False)
        status, _, _ = front.request("GET", "/healthz")
        assert status == 200

        async def welcome():
            async with connect(front.ws_uri("unit"), host="127.0.0.1", port=front.port,
                               ssl=front.ssl_context(), server_hostname=SERVER_NAME,
                               origin=front.origin, open_timeout=10) as ws:
                return json.loads(await asyncio.wait_for(ws.recv(), 10))

        message = asyncio.run(welcome())
        assert message["type"] == "welcome"
        turn = [entry for entry in message["iceServers"] if "username" in entry]
        assert turn and all(entry["credential"] for entry in turn), message["iceServers"]
    finally:
        if front is not None:
            front.stop()
        stop_process(process)
