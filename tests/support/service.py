"""Start and stop the real ``twistd -n rtcsvc`` process for whole-process tests.

Each instance gets free loopback ports and its own state directory, waits until ``/healthz``
answers, and is stopped by its PID (SIGTERM, then SIGKILL) so a failing test never leaves a
server behind.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
TWISTD = Path(sys.executable).with_name("twistd")


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now (the kernel picks it)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def stop_process(process: subprocess.Popen, timeout: float = 10.0) -> None:
    """SIGTERM the process by its PID, then SIGKILL it if it is still there after timeout."""
    if process.poll() is not None:
        return
    try:
        os.kill(process.pid, signal.SIGTERM)
        process.wait(timeout=timeout)
    except ProcessLookupError:
        pass
    except subprocess.TimeoutExpired:
        os.kill(process.pid, signal.SIGKILL)
        process.wait(timeout=timeout)


def wait_for(predicate, timeout: float, what: str, interval: float = 0.05):
    deadline = time.monotonic() + timeout
    while True:
        result = predicate()
        if result:
            return result
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


class RtcsvcProcess:
    """One running ``twistd -n rtcsvc``; ``http_url``/``ws_url`` point at its first listener."""

    def __init__(self, proc: subprocess.Popen, port: int, state_dir: Path, log_path: Path,
                 scheme: str = "http"):
        self.proc = proc
        self.pid = proc.pid
        self.port = port
        self.state_dir = state_dir
        self.log_path = log_path
        self.scheme = scheme

    @property
    def http_url(self) -> str:
        return f"{self.scheme}://127.0.0.1:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"{'wss' if self.scheme == 'https' else 'ws'}://127.0.0.1:{self.port}"

    @classmethod
    def start(cls, workdir: Path, args=(), port: int | None = None, tls: bool = False,
              timeout: float = 20.0, env=None) -> "RtcsvcProcess":
        """Start rtcsvc listening on ``port`` (free one if None) unless ``args`` has --listen."""
        workdir = Path(workdir)
        workdir.mkdir(parents=True, exist_ok=True)
        state_dir = workdir / "state"
        args = list(args)
        port = port or free_port()
        if not any(a.startswith("--listen") for a in args):
            kind = "ssl" if tls else "tcp"
            args += ["--listen", f"{kind}:{port}:interface=127.0.0.1"]
        if not any(a.startswith("--state-dir") for a in args):
            args += ["--state-dir", str(state_dir)]
        log_path = workdir / f"rtcsvc-{port}.log"
        log = open(log_path, "ab")
        proc = subprocess.Popen(
            [str(TWISTD), "-n", "--pidfile=", "--logfile=-", "rtcsvc", *args],
            cwd=str(ROOT), stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
            env={**os.environ, **(env or {})},
        )
        log.close()
        service = cls(proc, port, state_dir, log_path, "https" if tls else "http")
        try:
            service.wait_ready(timeout)
        except BaseException:
            service.stop()
            raise
        return service

    def wait_ready(self, timeout: float) -> None:
        import ssl

        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE

        def ready():
            if self.proc.poll() is not None:
                raise RuntimeError(f"rtcsvc exited with {self.proc.returncode}:\n{self.log()}")
            try:
                with urllib.request.urlopen(f"{self.http_url}/healthz", timeout=2,
                                            context=context) as r:
                    return r.status == 200
            except OSError:
                return False

        wait_for(ready, timeout, f"rtcsvc on port {self.port}")

    def client_context(self):
        """An ``ssl`` context that trusts exactly this process's generated certificate."""
        import ssl

        if self.scheme != "https":
            return None
        return ssl.create_default_context(cafile=str(self.state_dir / "tls-cert.pem"))

    def get(self, path: str) -> bytes:
        """GET ``path`` from the first listener (verifying its certificate over TLS)."""
        with urllib.request.urlopen(f"{self.http_url}{path}", timeout=5,
                                    context=self.client_context()) as response:
            return response.read()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self, timeout: float = 10.0) -> int | None:
        """SIGTERM by PID, SIGKILL if it is still there after ``timeout``; returns the status."""
        stop_process(self.proc, timeout)
        return self.proc.returncode

    def kill(self) -> None:
        """SIGKILL: the process dies without closing anything."""
        if self.proc.poll() is None:
            os.kill(self.pid, signal.SIGKILL)
            self.proc.wait(10)
