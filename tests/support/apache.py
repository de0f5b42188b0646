"""A private Apache httpd built from the shipped site files in ``deploy/apache/``, for tests.

The site files are included unchanged. What a Debian install keeps in ``apache2.conf`` and
``ports.conf`` (ServerRoot, PidFile, Listen, LoadModule, the mutex and runtime directories) goes
into a top-level config generated here, which ``Define``s the ``RTCSVC_*`` variables before it
``Include``s the site files: their ``<IfDefine !RTCSVC_...>`` guards then keep our values (free
ports on 127.0.0.1, a throwaway certificate, the test's rtcsvc as backend) instead of the
production defaults. ``apache2 -DFOREGROUND`` runs as a child process and is stopped by PID.
"""

from __future__ import annotations

import datetime
import os
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

DEPLOY_APACHE = Path(__file__).resolve().parents[2] / "deploy" / "apache"
APACHE_BINARY = "/usr/sbin/apache2"
MODULES_DIR = Path("/usr/lib/apache2/modules")

# The modules the shipped site files need (plus mpm_event to run at all). log_config, unixd and
# version are compiled into Debian's apache2 and must not be loaded again.
MODULES = (
    "mpm_event",
    "authz_core",
    "authz_host",
    "alias",
    "rewrite",
    "headers",
    "proxy",
    "proxy_http",
    "proxy_wstunnel",
    "socache_shmcb",
    "ssl",
)


def apache_available() -> bool:
    return Path(APACHE_BINARY).exists() and (MODULES_DIR / "mod_proxy_wstunnel.so").exists()


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nobody listened on a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for_port(port: int, process: subprocess.Popen, timeout: float, log: Path) -> None:
    """Return once 127.0.0.1:port accepts connections; fail early if the process died."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(
                f"process exited with {process.returncode} before listening on {port}:\n"
                + _tail(log)
            )
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(f"nothing listened on 127.0.0.1:{port} within {timeout} s:\n" + _tail(log))


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


def _tail(path: Path, lines: int = 40) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return f"({path} unreadable)"


def make_self_signed_certificate(directory: Path, hostname: str) -> tuple[Path, Path]:
    """A throwaway certificate for hostname (and 127.0.0.1): (certificate path, key path)."""
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, hostname)])
    now = datetime.datetime.now(datetime.timezone.utc)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName(hostname), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path = directory / "cert.pem"
    key_path = directory / "key.pem"
    cert_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    key_path.chmod(0o600)
    return cert_path, key_path


@dataclass
class ApacheProcess:
    """A running private Apache; ``ports`` maps a name (``"https"``, ``"http"``) to its port."""

    process: subprocess.Popen
    ports: dict[str, int]
    server_root: Path
    defines: dict[str, str | None] = field(default_factory=dict)

    @property
    def error_log(self) -> Path:
        return self.server_root / "logs" / "error.log"

    @classmethod
    def start(
        cls,
        root: Path,
        site_files: list[str],
        defines: dict[str, str | None],
        ports: dict[str, int],
        timeout: float = 20.0,
    ) -> "ApacheProcess":
        """Start Apache with the shipped ``site_files`` (names in deploy/apache/).

        ``defines`` are emitted as ``Define NAME VALUE`` (``None``: a bare ``Define NAME``) ahead
        of the site files; ``ports`` are the ports to ``Listen`` on at 127.0.0.1.
        """
        root.mkdir(parents=True, exist_ok=True)
        for sub in ("logs", "run", "mutex"):
            (root / sub).mkdir(exist_ok=True)
        # Apache's children run as www-data when we are root: they must reach the mutex and
        # runtime directories, and the temporary directories above them are often 0700.
        if os.geteuid() == 0:
            for sub in ("run", "mutex"):
                shutil.chown(root / sub, "www-data", "www-data")
        conf = root / "httpd.conf"
        conf.write_text(_top_level_config(root, site_files, defines, ports))
        log = root / "logs" / "error.log"
        check = subprocess.run(
            [APACHE_BINARY, "-f", str(conf), "-t"],
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        if check.returncode != 0:
            raise RuntimeError(f"apache2 -t refused {conf}:\n{check.stdout}{check.stderr}")
        stdout = open(root / "logs" / "stdout.log", "wb")
        try:
            process = subprocess.Popen(
                [APACHE_BINARY, "-f", str(conf), "-DFOREGROUND"],
                stdin=subprocess.DEVNULL,
                stdout=stdout,
                stderr=subprocess.STDOUT,
                cwd=root,
            )
        finally:
            stdout.close()
        apache = cls(process=process, ports=dict(ports), server_root=root, defines=dict(defines))
        try:
            for port in ports.values():
                wait_for_port(port, process, timeout, log)
        except BaseException:
            apache.stop()
            raise
        return apache

    def stop(self) -> None:
        stop_process(self.process)


def _top_level_config(
    root: Path, site_files: list[str], defines: dict[str, str | None], ports: dict[str, int]
) -> str:
    lines = [
        f'ServerRoot "{root}"',
        f'PidFile "{root}/run/httpd.pid"',
        f'DefaultRuntimeDir "{root}/run"',
        f"Mutex file:{root}/mutex default",
        f'ErrorLog "{root}/logs/error.log"',
        "LogLevel warn",
        'LogFormat "%h %l %u %t \\"%r\\" %>s %b \\"%{Origin}i\\"" rtcsvc_test',
        f'CustomLog "{root}/logs/access.log" rtcsvc_test',
        "ServerName 127.0.0.1",
        # A small mpm_event: tests need a handful of connections, not hundreds of threads.
        "StartServers 1",
        "ServerLimit 2",
        "ThreadsPerChild 25",
        "MaxRequestWorkers 50",
        "MinSpareThreads 10",
        "MaxSpareThreads 50",
        "Timeout 60",
    ]
    if os.geteuid() == 0:
        lines += ["User www-data", "Group www-data"]
    lines += [f"LoadModule {name}_module {MODULES_DIR}/mod_{name}.so" for name in MODULES]
    lines.append(f'SSLSessionCache "shmcb:{root}/run/ssl_scache(512000)"')
    lines += [f"Listen 127.0.0.1:{port}" for port in ports.values()]
    for name, value in defines.items():
        lines.append(f"Define {name}" if value is None else f'Define {name} "{value}"')
    lines += [f'Include "{DEPLOY_APACHE / site}"' for site in site_files]
    return "\n".join(lines) + "\n"
