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
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

from tests.support.service import free_port, stop_process

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

    @property
    def access_log(self) -> Path:
        """Where the shipped site files log (``${APACHE_LOG_DIR}/access.log``)."""
        return self.server_root / "logs" / "access.log"

    @classmethod
    def start(
        cls,
        root: Path,
        site_files: list[str],
        defines: dict[str, str | None],
        ports: dict[str, int],
        timeout: float = 20.0,
        modules: tuple[str, ...] = MODULES,
    ) -> "ApacheProcess":
        """Start Apache with the shipped ``site_files`` (names in deploy/apache/).

        ``defines`` are emitted as ``Define NAME VALUE`` (``None``: a bare ``Define NAME``) ahead
        of the site files; ``ports`` are the ports to ``Listen`` on at 127.0.0.1; ``modules``
        the modules to load.
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
        conf.write_text(_top_level_config(root, site_files, defines, ports, modules))
        log = root / "logs" / "error.log"
        check = config_test(conf, timeout)
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


def config_test(conf: Path, timeout: float = 20.0) -> subprocess.CompletedProcess:
    """``apache2 -t``: parse the configuration and report, without starting anything."""
    return subprocess.run(
        [APACHE_BINARY, "-f", str(conf), "-t"], capture_output=True, text=True, timeout=timeout
    )


def write_config(
    root: Path, site_files: list[str], defines: dict[str, str | None], ports: dict[str, int]
) -> Path:
    """Write the top-level config for these site files under root (for ``config_test``)."""
    for sub in ("logs", "run", "mutex"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    conf = root / "httpd.conf"
    conf.write_text(_top_level_config(root, site_files, defines, ports))
    return conf


def _top_level_config(
    root: Path,
    site_files: list[str],
    defines: dict[str, str | None],
    ports: dict[str, int],
    modules: tuple[str, ...] = MODULES,
) -> str:
    lines = [
        f'ServerRoot "{root}"',
        f'PidFile "{root}/run/httpd.pid"',
        f'DefaultRuntimeDir "{root}/run"',
        f"Mutex file:{root}/mutex default",
        f'ErrorLog "{root}/logs/error.log"',
        "LogLevel warn",
        # As Debian's envvars and conf-enabled/other-vhosts-access-log.conf: the site files log
        # to ${APACHE_LOG_DIR}/access.log themselves; a vhost without its own CustomLog would
        # land in other_vhosts_access.log, whole request line (%r) and Referer included.
        f'Define APACHE_LOG_DIR "{root}/logs"',
        'LogFormat "%v:%p %h %l %u %t \\"%r\\" %>s %O \\"%{Referer}i\\" \\"%{User-Agent}i\\""'
        " vhost_combined",
        f'CustomLog "{root}/logs/other_vhosts_access.log" vhost_combined',
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
    lines += [f"LoadModule {name}_module {MODULES_DIR}/mod_{name}.so" for name in modules]
    lines.append(f'SSLSessionCache "shmcb:{root}/run/ssl_scache(512000)"')
    lines += [f"Listen 127.0.0.1:{port}" for port in ports.values()]
    for name, value in defines.items():
        lines.append(f"Define {name}" if value is None else f'Define {name} "{value}"')
    lines += [f'Include "{DEPLOY_APACHE / site}"' for site in site_files]
    return "\n".join(lines) + "\n"


SERVER_NAME = "chat.test"


@dataclass
class ProxyFront:
    """The shipped Apache site in front of one rtcsvc, as a browser on the Internet sees it.

    ``tls``: rtcsvc-ssl.conf + rtcsvc-http.conf (HTTPS, and port 80's redirect); otherwise
    rtcsvc-plain-http.conf telling rtcsvc the public scheme is http. ``upgrade``: the
    Apache >= 2.4.47 ``upgrade=websocket`` switch instead of mod_proxy_wstunnel. Clients connect
    to 127.0.0.1 but name the site ``chat.test`` (Host header, TLS SNI), as a browser would.
    """

    apache: ApacheProcess
    tls: bool
    upgrade: bool
    port: int
    redirect_port: int | None
    certificate: Path | None

    @property
    def scheme(self) -> str:
        return "https" if self.tls else "http"

    @property
    def host(self) -> str:
        return f"{SERVER_NAME}:{self.port}"

    @property
    def origin(self) -> str:
        return f"{self.scheme}://{self.host}"

    def ws_uri(self, room: str) -> str:
        return f"{'wss' if self.tls else 'ws'}://{self.host}/ws/{room}"

    def ssl_context(self):
        import ssl

        if not self.tls:
            return None
        context = ssl.create_default_context(cafile=str(self.certificate))
        return context

    @classmethod
    def start(cls, root: Path, backend_port: int, tls: bool, upgrade: bool,
              modules: tuple[str, ...] = MODULES, public_scheme: str = "http") -> "ProxyFront":
        """``public_scheme``: what rtcsvc-plain-http.conf tells rtcsvc (without ``tls`` only)."""
        port = free_port()
        defines: dict[str, str | None] = {
            "RTCSVC_SERVER_NAME": SERVER_NAME,
            "RTCSVC_BACKEND": f"127.0.0.1:{backend_port}",
        }
        if upgrade:
            defines["RTCSVC_WS_UPGRADE"] = None
        certificate = None
        redirect_port = None
        if tls:
            root.mkdir(parents=True, exist_ok=True)
            certificate, key = make_self_signed_certificate(root, SERVER_NAME)
            redirect_port = free_port()
            defines.update(
                RTCSVC_HTTPS_PORT=str(port),
                RTCSVC_HTTP_PORT=str(redirect_port),
                RTCSVC_HTTPS_ORIGIN=f"https://{SERVER_NAME}:{port}",
                RTCSVC_TLS_CERT=str(certificate),
                RTCSVC_TLS_KEY=str(key),
            )
            sites = ["rtcsvc-ssl.conf", "rtcsvc-http.conf"]
            ports = {"https": port, "http": redirect_port}
        else:
            defines.update(RTCSVC_HTTP_PORT=str(port), RTCSVC_PUBLIC_SCHEME=public_scheme)
            sites = ["rtcsvc-plain-http.conf"]
            ports = {"http": port}
        apache = ApacheProcess.start(root, sites, defines, ports, modules=modules)
        return cls(apache, tls, upgrade, port, redirect_port, certificate)

    def request(self, method: str, path: str, headers: dict[str, str] | None = None,
                port: int | None = None, tls: bool | None = None, timeout: float = 10.0):
        """One HTTP request through Apache: (status, headers, body).

        ``headers`` is the response's ``http.client.HTTPMessage``: ``headers[name]`` is the first
        value (or None), ``headers.get_all(name)`` every one, so duplicates stay visible.
        """
        import http.client

        tls = self.tls if tls is None else tls
        port = port or self.port
        sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        if tls:
            sock = self.ssl_context().wrap_socket(sock, server_hostname=SERVER_NAME)
        connection = http.client.HTTPConnection(SERVER_NAME, port, timeout=timeout)
        connection.sock = sock
        try:
            connection.request(method, path, headers={"Host": f"{SERVER_NAME}:{port}",
                                                      **(headers or {})})
            response = connection.getresponse()
            return response.status, response.msg, response.read()
        finally:
            connection.close()

    def stop(self) -> None:
        self.apache.stop()
