"""Start and stop a private ``redis-server`` for whole-process tests of ``--redis``.

Each instance listens on a free loopback port with persistence off, its own directory and
redis.conf (extra lines for TLS and ACL users), and is stopped by its PID.
:meth:`RedisServer.restart` brings it back on the same port (empty, as after a crash without
persistence), which is what the reconnection tests need. :func:`make_ca` and
:func:`make_server_certificate` make throwaway TLS material; :class:`UnreadyRtcsvc` is an
rtcsvc process that is allowed to start without reaching Redis.
"""

from __future__ import annotations

import datetime
import ipaddress
import os
import shutil
import signal
import socket
import ssl
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterable
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from tests.support.service import RtcsvcProcess, free_port, stop_process, wait_for

REDIS_SERVER = shutil.which("redis-server") or "/usr/bin/redis-server"


class RedisServer:
    """``config``: extra redis.conf lines (TLS, users). With TLS, ``ca`` is the CA file a
    client trusts and ``server_name`` the name it checks; ``admin`` is (user, password) for
    :meth:`command` when the default user is off."""

    def __init__(self, workdir: Path, port: int | None = None, config: Iterable[str] = (),
                 tls: bool = False, ca: Path | None = None,
                 admin: tuple[str, str] | None = None, server_name: str = "127.0.0.1"):
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.port = port or free_port()
        self.proc: subprocess.Popen | None = None
        self.log_path = self.workdir / f"redis-{self.port}.log"
        self.config = list(config)
        self.tls = tls
        self.ca = ca
        self.admin = admin
        self.server_name = server_name

    @property
    def url(self) -> str:
        return f"{'rediss' if self.tls else 'redis'}://127.0.0.1:{self.port}/0"

    @classmethod
    def start(cls, workdir: Path, port: int | None = None, **options) -> "RedisServer":
        server = cls(workdir, port, **options)
        server.run()
        return server

    def run(self, timeout: float = 10.0) -> None:
        conf = self.workdir / f"redis-{self.port}.conf"
        ports = [] if self.tls else [f"port {self.port}"]
        conf.write_text("\n".join([
            "bind 127.0.0.1", *ports, 'save ""', "appendonly no", f"dir {self.workdir}",
            *self.config, "",
        ]))
        log = open(self.log_path, "ab")
        # stdin/stdout not inherited as pipes: nothing here ever waits on them.
        self.proc = subprocess.Popen(
            [REDIS_SERVER, str(conf)],
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
        """One command over a fresh socket (TLS and AUTH as configured); returns the first reply
        line (enough for tests)."""
        with socket.create_connection(("127.0.0.1", self.port), timeout=2) as raw:
            s = raw
            if self.tls:
                s = ssl.create_default_context(cafile=str(self.ca)).wrap_socket(
                    raw, server_hostname=self.server_name)
            if self.admin is not None:
                s.sendall(_encode("AUTH", *self.admin))
                assert _first_line(s) == b"+OK", "admin AUTH refused"
            s.sendall(_encode(*args))
            return _first_line(s)

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


def _encode(*args: str) -> bytes:
    parts = [f"*{len(args)}\r\n".encode()]
    for arg in args:
        data = arg.encode()
        parts.append(b"$%d\r\n%s\r\n" % (len(data), data))
    return b"".join(parts)


def _first_line(s) -> bytes:
    reply = b""
    while b"\r\n" not in reply:
        chunk = s.recv(65536)
        if not chunk:
            break
        reply += chunk
    return reply.split(b"\r\n", 1)[0]


def make_ca(directory: Path, name: str) -> tuple[Path, ec.EllipticCurvePrivateKey,
                                                 x509.Certificate]:
    """A throwaway CA: ``directory/<name>.pem`` (certificate), its key and certificate."""
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"rtcsvc test CA {name}")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(subject).issuer_name(subject)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False,
                                         False), critical=True)
            .sign(key, hashes.SHA256()))
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{name}.pem"
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return path, key, cert


def make_server_certificate(directory: Path, ca_key, ca_cert, names=("localhost",),
                            addresses=("127.0.0.1",)) -> tuple[Path, Path]:
    """A server certificate for ``names``/``addresses`` signed by the CA: (cert, key) files."""
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.timezone.utc)
    alt = [x509.DNSName(n) for n in names] + [x509.IPAddress(ipaddress.ip_address(a))
                                               for a in addresses]
    cert = (x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "redis")]))
            .issuer_name(ca_cert.subject).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName(alt), critical=False)
            .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]),
                           critical=False)
            .sign(ca_key, hashes.SHA256()))
    cert_path, key_path = directory / "redis.crt", directory / "redis.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_path, key_path


class UnreadyRtcsvc(RtcsvcProcess):
    """An rtcsvc process that counts as started once /healthz answers at all (200 or 503):
    for tests of a process that cannot reach Redis."""

    def wait_ready(self, timeout: float) -> None:
        def answers():
            if self.proc.poll() is not None:
                raise RuntimeError(f"rtcsvc exited with {self.proc.returncode}:\n{self.log()}")
            try:
                with urllib.request.urlopen(f"{self.http_url}/healthz", timeout=2):
                    return True
            except urllib.error.HTTPError:
                return True
            except OSError:
                return False

        wait_for(answers, timeout, f"rtcsvc on port {self.port}")

    def health(self) -> int:
        try:
            with urllib.request.urlopen(f"{self.http_url}/healthz", timeout=5) as r:
                return r.status
        except urllib.error.HTTPError as e:
            return e.code
