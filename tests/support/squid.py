"""A private squid, the HTTP CONNECT proxy of a corporate network, for the network matrix.

It runs in a caller's router namespace (``tests/support/netns.py``), listens on the router's LAN
address, and allows what such proxies usually allow: CONNECT to port 443 only, from the LAN,
optionally only with a user name and password (Basic auth, checked by squid's own
``basic_ncsa_auth`` helper). It resolves the test's names from its own hosts file: the caller's
browser hands the proxy host names, never addresses, for pages.

squid drops root for its ``proxy`` user, which cannot enter pytest's private temporary
directories, so its files live in a directory of their own, removed by ``close()``.
"""

from __future__ import annotations

import pwd
import shutil
import subprocess
import tempfile
from pathlib import Path

from tests.support.service import stop_process, wait_for

SQUID = "/usr/sbin/squid"
NCSA_AUTH = "/usr/lib/squid/basic_ncsa_auth"
PORT = 3128


def squid_config(directory: Path, address: str, port: int, authenticated: bool,
                 sites: list[str]) -> str:
    auth = ""
    allow = "http_access allow localnet"
    if authenticated:
        auth = (f"auth_param basic program {NCSA_AUTH} {directory}/passwd\n"
                "auth_param basic realm rtcsvc-test-proxy\n"
                "acl authenticated proxy_auth REQUIRED\n")
        allow = "http_access allow localnet authenticated"
    return f"""\
http_port {address}:{port}
pid_filename none
cache_effective_user proxy
access_log stdio:{directory}/access.log squid
cache_log {directory}/cache.log
cache_store_log none
cache deny all
cache_mem 8 MB
coredump_dir {directory}
hosts_file {directory}/hosts
dns_nameservers 127.0.0.1
shutdown_lifetime 0 seconds
netdb_filename none
{auth}acl localnet src 100.64.0.0/10
acl SSL_ports port 443
acl CONNECT method CONNECT
acl test_sites dstdomain {" ".join(sites)}
http_access deny CONNECT !SSL_ports
# Browsers hand a proxy every name they want (Chromium's Google services too): only the
# test's own names get anywhere, so squid never even looks the others up.
http_access deny !test_sites
{allow}
http_access deny all
"""


class Squid:
    """A running squid in namespace ``ns`` on ``address:port``."""

    def __init__(self, process, directory: Path, log_dir: Path, address: str, port: int):
        self.process = process
        self.directory = directory
        self.log_dir = log_dir
        self.address = address
        self.port = port

    @classmethod
    def start(cls, ns, log_dir: Path, address: str, *, hosts: dict[str, str],
              credentials: tuple[str, str] | None = None, port: int = PORT) -> "Squid":
        log_dir.mkdir(parents=True, exist_ok=True)
        directory = Path(tempfile.mkdtemp(prefix="rtcnm-squid-"))
        proxy = pwd.getpwnam("proxy")
        directory.chmod(0o755)
        (directory / "hosts").write_text(
            "".join(f"{ip} {name}\n" for name, ip in hosts.items()))
        if credentials is not None:
            username, password = credentials
            hashed = subprocess.run(["openssl", "passwd", "-apr1", password], check=True,
                                    capture_output=True, text=True).stdout.strip()
            (directory / "passwd").write_text(f"{username}:{hashed}\n")
        conf = directory / "squid.conf"
        conf.write_text(squid_config(directory, address, port, credentials is not None,
                                     sorted(hosts)))
        for name in ("access.log", "cache.log"):
            (directory / name).touch()
        for path in directory.iterdir():
            shutil.chown(path, proxy.pw_uid, proxy.pw_gid)
        shutil.chown(directory, proxy.pw_uid, proxy.pw_gid)
        process = ns.popen([SQUID, "-N", "-f", str(conf)], log_dir / "squid.out")
        squid = cls(process, directory, log_dir, address, port)

        def ready():
            if process.poll() is not None:
                raise RuntimeError(f"squid exited with {process.returncode}:\n"
                                   f"{squid.cache_log()}")
            return "Accepting HTTP Socket connections" in squid.cache_log()

        try:
            wait_for(ready, 20, "squid", interval=0.1)
        except BaseException:
            squid.close()
            raise
        return squid

    def access_log(self) -> str:
        return (self.directory / "access.log").read_text(errors="replace")

    def cache_log(self) -> str:
        return (self.directory / "cache.log").read_text(errors="replace")

    def tunnels(self, with_user: bool = False) -> list[str]:
        """The access log's CONNECTs: ``"<result code> CONNECT <host:port>"`` (then the proxy
        user, ``-`` for none, with ``with_user``)."""
        lines = []
        for line in self.access_log().splitlines():
            fields = line.split()
            if len(fields) > 7 and fields[5] == "CONNECT":
                user = f" {fields[7]}" if with_user else ""
                lines.append(f"{fields[3]} CONNECT {fields[6]}{user}")
        return lines

    def close(self) -> None:
        """Stop squid by PID; keep its logs next to the test's other files, then remove its own."""
        stop_process(self.process, timeout=5)
        for name in ("access.log", "cache.log"):
            if (self.directory / name).exists():
                shutil.copy(self.directory / name, self.log_dir / name)
        shutil.rmtree(self.directory, ignore_errors=True)
