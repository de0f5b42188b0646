"""A private coturn built from the shipped ``deploy/coturn/turnserver-loopback.conf``, for tests.

The shipped file marks what differs per run with ``@TOKEN@``s (ports, secret, realm, state
directory); they are replaced mechanically and nothing else is changed. ``turnserver -c`` runs in
the foreground as a child process on 127.0.0.1 and is stopped by PID.
"""

from __future__ import annotations

import random
import socket
import subprocess
from dataclasses import dataclass
from pathlib import Path

from tests.support.service import stop_process, wait_for

DEPLOY_COTURN = Path(__file__).resolve().parents[2] / "deploy" / "coturn"
TURNSERVER_BINARY = "/usr/bin/turnserver"


def free_udp_and_tcp_port() -> int:
    """A port on 127.0.0.1 free for both UDP and TCP (TURN listens on both)."""
    for _ in range(50):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
            udp.bind(("127.0.0.1", 0))
            port = udp.getsockname()[1]
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as tcp:
                try:
                    tcp.bind(("127.0.0.1", port))
                except OSError:
                    continue
                return port
    raise RuntimeError("no port free for both UDP and TCP on 127.0.0.1")


def free_relay_range(size: int = 40) -> tuple[int, int]:
    """A run of UDP ports on 127.0.0.1, above the kernel's ephemeral range, all free now."""
    for _ in range(50):
        low = random.randrange(61000 - size, 65000 - size)
        sockets = []
        try:
            for port in range(low, low + size):
                s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                sockets.append(s)
                s.bind(("127.0.0.1", port))
            return low, low + size - 1
        except OSError:
            continue
        finally:
            for s in sockets:
                s.close()
    raise RuntimeError("no free relay port range on 127.0.0.1")


def render_loopback_config(tokens: dict[str, str]) -> str:
    """The shipped loopback config with every ``@TOKEN@`` replaced; unknown tokens are an error."""
    text = (DEPLOY_COTURN / "turnserver-loopback.conf").read_text()
    for name, value in tokens.items():
        marker = f"@{name}@"
        if marker not in text:
            raise KeyError(f"turnserver-loopback.conf has no {marker}")
        text = text.replace(marker, value)
    leftover = [line for line in text.splitlines() if "@" in line and not line.startswith("#")]
    if leftover:
        raise ValueError(f"tokens left unreplaced: {leftover}")
    return text


def udp_answers_stun(port: int) -> bool:
    """True once a STUN Binding request to 127.0.0.1:port gets any STUN reply."""
    import os
    import struct

    request = struct.pack("!HHI12s", 0x0001, 0, 0x2112A442, os.urandom(12))
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(0.2)
        try:
            sock.sendto(request, ("127.0.0.1", port))
            reply, _ = sock.recvfrom(2048)
        except OSError:
            return False
    return len(reply) >= 20 and reply[8:20] == request[8:20]


@dataclass
class CoturnProcess:
    """A running private coturn on 127.0.0.1:``port`` (UDP and TCP)."""

    process: subprocess.Popen
    port: int
    realm: str
    relay_ports: tuple[int, int]
    directory: Path

    @property
    def log_path(self) -> Path:
        return self.directory / "turnserver.log"

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def turn_url(self, transport: str = "udp") -> str:
        return f"turn:127.0.0.1:{self.port}?transport={transport}"

    @classmethod
    def start(
        cls, directory: Path, secret: str, realm: str = "rtcsvc.test", timeout: float = 20.0,
        port: int | None = None, extra_config: str = "",
    ) -> "CoturnProcess":
        """Start coturn on ``port`` (a free one if None: give the old one to restart in place).

        ``extra_config`` is appended to the shipped file, for a layout it does not cover.
        """
        directory.mkdir(parents=True, exist_ok=True)
        port = port or free_udp_and_tcp_port()
        low, high = free_relay_range()
        conf = directory / "turnserver.conf"
        conf.write_text(
            render_loopback_config(
                {
                    "LISTENING_PORT": str(port),
                    "MIN_PORT": str(low),
                    "MAX_PORT": str(high),
                    "TURN_SECRET": secret,
                    "REALM": realm,
                    "STATE_DIR": str(directory),
                }
            ) + extra_config
        )
        log = open(directory / "turnserver.log", "wb")
        try:
            process = subprocess.Popen(
                [TURNSERVER_BINARY, "-c", str(conf)],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=directory,
            )
        finally:
            log.close()
        coturn = cls(process, port, realm, (low, high), directory)

        def ready():
            if process.poll() is not None:
                raise RuntimeError(f"turnserver exited with {process.returncode}:\n{coturn.log()}")
            return udp_answers_stun(port)

        try:
            wait_for(ready, timeout, f"coturn on UDP port {port}")
        except BaseException:
            coturn.stop()
            raise
        return coturn

    def stop(self) -> None:
        stop_process(self.process)
