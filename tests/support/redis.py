"""Start and stop a private ``redis-server`` for whole-process tests of ``--redis``.

Each instance listens on a free loopback port with persistence off and its own directory, and is
stopped by its PID. :meth:`RedisServer.restart` brings it back on the same port (empty, as after
a crash without persistence), which is what the reconnection tests need.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

from tests.support.service import free_port, stop_process, wait_for

REDIS_SERVER = shutil.which("redis-server") or "/usr/bin/redis-server"


class RedisServer:
    def __init__(self, workdir: Path, port: int | None = None):
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.port = port or free_port()
        self.proc: subprocess.Popen | None = None
        self.log_path = self.workdir / f"redis-{self.port}.log"

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    @classmethod
    def start(cls, workdir: Path, port: int | None = None) -> "RedisServer":
        server = cls(workdir, port)
        server.run()
        return server

    def run(self, timeout: float = 10.0) -> None:
        log = open(self.log_path, "ab")
        # stdin/stdout not inherited as pipes: nothing here ever waits on them.
        self.proc = subprocess.Popen(
            [REDIS_SERVER, "--bind", "127.0.0.1", "--port", str(self.port), "--save", "",
             "--appendonly", "no", "--dir", str(self.workdir)],
            stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
        )
        log.close()

        def ready():
            if self.proc.poll() is not None:
                raise RuntimeError(f"redis-server exited:\n{self.log_path.read_text()}")
            try:
                return self.command("PING") == b"+PONG"
            except OSError:
                return False

        wait_for(ready, timeout, f"redis-server on port {self.port}")

    def command(self, *args: str) -> bytes:
        """One command over a fresh socket; returns the first reply line (enough for tests)."""
        parts = [f"*{len(args)}\r\n".encode()]
        for arg in args:
            data = arg.encode()
            parts.append(b"$%d\r\n%s\r\n" % (len(data), data))
        with socket.create_connection(("127.0.0.1", self.port), timeout=2) as s:
            s.sendall(b"".join(parts))
            reply = b""
            while b"\r\n" not in reply:
                chunk = s.recv(65536)
                if not chunk:
                    break
                reply += chunk
        return reply.split(b"\r\n", 1)[0]

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM by PID (SIGKILL if it lingers)."""
        if self.proc is not None:
            stop_process(self.proc, timeout)

    def kill(self) -> None:
        """SIGKILL: Redis dies with its data (no persistence)."""
        if self.proc is not None and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)

    def restart(self, down_for: float = 0.0) -> None:
        """Kill it and start an empty one on the same port."""
        self.kill()
        time.sleep(down_for)
        self.run()
