"""Simulated networks for whole-call tests: network namespaces, veth links, NAT and firewalls.

A ``Topology`` builds its networks out of Linux network namespaces that only it creates and
names (``rtcnm-<random>-<role>``, so parallel runs never meet), joins them with veth pairs
created directly inside them, and runs servers and browsers in them by ``ip netns exec``. The
host's own interfaces, routes and firewall are never touched: every ``ip``, ``iptables``, ``nft``
and ``sysctl`` call goes through ``Netns.run``, which always names a namespace of this topology.
Only the documentation ranges 192.0.2.0/24, 198.51.100.0/24, 203.0.113.0/24 (the simulated
internet) and 100.64.0.0/10 (callers' LANs) are used; ``Topology.link`` refuses anything else.

``close()`` stops what was started in the namespaces by PID (SIGTERM, then SIGKILL), then any
process still inside one of them, then deletes the namespaces: ``ip netns del`` kills nothing,
so a process left behind would keep a namespace's network alive.

On top of that, ``CallNetwork`` builds the network of one call: a public router, a server
namespace with the real ``twistd rtcsvc`` (its own TLS listener) and the real coturn (the shipped
``deploy/coturn/turnserver.conf``), both with a certificate from a throwaway ``TestCA``, and per
caller a router (NAT, firewall or proxy, by ``CALLER_KINDS``) with the caller's namespace behind
it, where Chromium runs. Where TURN over TLS on 443 lives is a layout (``LAYOUTS``).
"""

from __future__ import annotations

import datetime
import ipaddress
import os
import re
import secrets
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import pytest

from tests.support.service import ROOT, TWISTD, stop_process, wait_for

#: The only networks a topology may use.
TEST_RANGES = tuple(
    ipaddress.ip_network(n)
    for n in ("192.0.2.0/24", "198.51.100.0/24", "203.0.113.0/24", "100.64.0.0/10")
)
PREFIX = "rtcnm"
IP = "/usr/sbin/ip"


def in_test_ranges(address: str) -> bool:
    """True when ``address`` (an address or network, with or without a prefix) is ours to use."""
    network = ipaddress.ip_network(address, strict=False)
    return any(network.subnet_of(r) for r in TEST_RANGES)


def _require_test_range(address: str) -> None:
    if not in_test_ranges(address):
        raise ValueError(f"{address} is outside the test ranges {[str(r) for r in TEST_RANGES]}")


def guard_rules(chain: str = "GUARD") -> list[list[str]]:
    """iptables commands for a chain that passes the test ranges and loopback and drops the rest.

    Hooked into OUTPUT and INPUT of a caller's namespace: whatever a browser tries outside the
    simulated internet (Google services, the host's resolver) is counted and dropped here.
    """
    rules = [["-N", chain]]
    for network in ("127.0.0.0/8", *map(str, TEST_RANGES)):
        rules.append(["-A", chain, "-d", network, "-j", "RETURN"])
    rules += [
        ["-A", chain, "-j", "NFLOG", "--nflog-prefix", "rtcnm-guard"],
        ["-A", chain, "-j", "DROP"],
        ["-A", "OUTPUT", "-j", chain],
    ]
    return rules


class Netns:
    """One namespace of a ``Topology``; everything run here stays inside it."""

    def __init__(self, topology: "Topology", name: str, role: str):
        self.topology = topology
        self.name = name
        self.role = role

    def __repr__(self) -> str:
        return f"Netns({self.role})"

    def command(self, *argv: str) -> list[str]:
        """``argv`` as run inside this namespace."""
        return [IP, "netns", "exec", self.name, *argv]

    def run(self, *argv: str, check: bool = True, timeout: float = 30.0,
            input: str | None = None) -> subprocess.CompletedProcess:
        result = subprocess.run(self.command(*argv), capture_output=True, text=True,
                                timeout=timeout, input=input)
        if check and result.returncode != 0:
            raise RuntimeError(f"[{self.role}] {' '.join(argv)} exited with "
                               f"{result.returncode}: {result.stderr.strip()}")
        return result

    def shell(self, script: str, check: bool = True) -> subprocess.CompletedProcess:
        return self.run("sh", "-c", script, check=check)

    def iptables(self, *args: str, table: str = "filter") -> None:
        self.run("iptables", "-w", "-t", table, *args)

    def sysctl(self, key: str, value: str) -> None:
        self.run("sysctl", "-q", "-w", f"{key}={value}")

    def add_address(self, interface: str, cidr: str) -> None:
        _require_test_range(cidr)
        self.run(IP, "address", "add", cidr, "dev", interface)

    def add_route(self, destination: str, via: str) -> None:
        """``ip route add`` (never ``replace``: replacing a connected route breaks routing)."""
        if destination != "default":
            _require_test_range(destination)
        _require_test_range(via)
        self.run(IP, "route", "add", destination, "via", via)

    def enable_forwarding(self) -> None:
        self.sysctl("net.ipv4.ip_forward", "1")

    def install_guard(self) -> None:
        for rule in guard_rules():
            self.iptables(*rule)

    def guard_drops(self) -> int:
        """Packets the guard chain dropped so far."""
        out = self.run("iptables", "-w", "-L", "GUARD", "-v", "-n", "-x", check=False).stdout
        for line in out.splitlines():
            fields = line.split()
            if len(fields) > 2 and fields[2] == "DROP":
                return int(fields[0])
        return 0

    def popen(self, argv: list[str], log_path: Path, cwd: Path | None = None,
              env: dict | None = None) -> subprocess.Popen:
        """Start ``argv`` in this namespace, output to ``log_path``; stopped by ``close()``."""
        with open(log_path, "ab") as log:
            process = subprocess.Popen(self.command(*argv), stdin=subprocess.DEVNULL, stdout=log,
                                       stderr=subprocess.STDOUT, cwd=cwd,
                                       env={**os.environ, **(env or {})})
        self.topology.processes.append(process)
        return process

    def pids(self) -> list[int]:
        """Every process whose network namespace is this one."""
        out = subprocess.run([IP, "netns", "pids", self.name], capture_output=True, text=True)
        return [int(p) for p in out.stdout.split()]


class Topology:
    """A set of namespaces joined by veth links; ``close()`` removes all of it."""

    def __init__(self, workdir: Path):
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.run_id = secrets.token_hex(3)
        self.namespaces: list[Netns] = []
        self.processes: list[subprocess.Popen] = []
        self._cleanups: list = []

    def namespace(self, role: str) -> Netns:
        """A new namespace with its loopback up (browsers, coturn and rtcsvc all use it)."""
        name = f"{PREFIX}-{self.run_id}-{role}"
        subprocess.run([IP, "netns", "add", name], check=True, capture_output=True)
        ns = Netns(self, name, role)
        self.namespaces.append(ns)
        # IPv4 only: IPv6 link-local addresses would appear on each new link a second or two
        # later, and Chromium aborts a page load when it sees its network change then
        # (net::ERR_NETWORK_CHANGED). The test ranges are IPv4.
        ns.sysctl("net.ipv6.conf.all.disable_ipv6", "1")
        ns.sysctl("net.ipv6.conf.default.disable_ipv6", "1")
        ns.run(IP, "link", "set", "lo", "up")
        return ns

    def link(self, a: Netns, a_interface: str, a_cidr: str | None,
             b: Netns, b_interface: str, b_cidr: str | None) -> None:
        """A veth pair between two namespaces, made inside them (never in the host's)."""
        for cidr in (a_cidr, b_cidr):
            if cidr:
                _require_test_range(cidr)
        subprocess.run([IP, "link", "add", a_interface, "netns", a.name, "type", "veth",
                        "peer", "name", b_interface, "netns", b.name],
                       check=True, capture_output=True)
        for ns, interface, cidr in ((a, a_interface, a_cidr), (b, b_interface, b_cidr)):
            if cidr:
                ns.add_address(interface, cidr)
            ns.run(IP, "link", "set", interface, "up")

    def on_close(self, callback) -> None:
        """Run ``callback`` first thing in ``close()`` (browsers, before the servers go)."""
        self._cleanups.append(callback)

    def close(self) -> list[str]:
        """Stop everything and delete the namespaces; returns what went wrong (never raises)."""
        problems = []
        for callback in reversed(self._cleanups):
            try:
                callback()
            except Exception as e:  # a browser that already died, a closed pipe...
                problems.append(f"cleanup {callback!r}: {e}")
        for process in reversed(self.processes):
            try:
                stop_process(process, timeout=5)
            except Exception as e:
                problems.append(f"stopping pid {process.pid}: {e}")
        for ns in self.namespaces:
            # Children the started processes left (a browser's renderers, squid's helpers).
            for pid in ns.pids():
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            deadline = time.monotonic() + 5
            while ns.pids() and time.monotonic() < deadline:
                time.sleep(0.05)
        for ns in self.namespaces:
            result = subprocess.run([IP, "netns", "del", ns.name], capture_output=True, text=True)
            if result.returncode != 0:
                problems.append(f"ip netns del {ns.name}: {result.stderr.strip()}")
        self.namespaces.clear()
        return problems

    def __enter__(self) -> "Topology":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def leftover_namespaces() -> list[str]:
    """Namespaces of this kind that exist now (a test checks its own are gone)."""
    out = subprocess.run([IP, "netns", "list"], capture_output=True, text=True).stdout
    return [line.split()[0] for line in out.splitlines() if line.startswith(PREFIX + "-")]


@pytest.fixture
def topology(tmp_path):
    """Namespaces for one test; torn down by PID, then ``ip netns del``, pass or fail.

    (Import it into a test module to use it.) Teardown fails the test if anything could not
    be stopped or a namespace of this run is left."""
    topo = Topology(tmp_path / "net")
    try:
        yield topo
    finally:
        problems = topo.close()
        assert not problems, problems
        assert not [n for n in leftover_namespaces() if topo.run_id in n]


# ---- the call network: a test CA, the server side, callers behind their routers ----------

DEPLOY_COTURN = ROOT / "deploy" / "coturn"
TURNSERVER = "/usr/bin/turnserver"
CHROMIUM = "/usr/bin/chromium"

#: The simulated internet uses deploy/coturn/turnserver.conf's own example addresses, so the
#: shipped file runs with only its certificate, secret and log paths substituted.
SERVER_ADDRESS = "203.0.113.10"
SECOND_ADDRESS = "198.51.100.20"
PUBLIC_GATEWAY = "203.0.113.1"
#: Where callers' routers (and open callers) sit on the simulated internet, as coturn writes it.
CALLERS_PUBLIC = "192.0.2.0-192.0.2.255"
SITE_NAME = "chat.test"
TURN_NAME = "turn.chat.test"
TURN443_NAME = "turn443.chat.test"


class TestCA:
    """A throwaway CA (root -> intermediate -> leaf) and one leaf certificate for ``names``.

    Servers get the leaf with the intermediate (``chain_pem``), browsers trust only the root:
    a server that sends the leaf alone fails, as on the Internet (nothing fetches the
    intermediate here).
    """

    def __init__(self, directory: Path, names: list[str]):
        from cryptography import x509
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.hazmat.primitives.asymmetric import ec
        from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

        directory.mkdir(parents=True, exist_ok=True)
        now = datetime.datetime.now(datetime.timezone.utc)

        def build(subject, issuer, public_key, signing_key, *, ca: bool, sans=()):
            builder = (
                x509.CertificateBuilder()
                .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
                .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, issuer)]))
                .public_key(public_key)
                .serial_number(x509.random_serial_number())
                .not_valid_before(now - datetime.timedelta(minutes=5))
                .not_valid_after(now + datetime.timedelta(days=2))
                .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
                .add_extension(x509.KeyUsage(
                    digital_signature=True, key_cert_sign=ca, crl_sign=ca,
                    content_commitment=False, key_encipherment=False, data_encipherment=False,
                    key_agreement=False, encipher_only=False, decipher_only=False), critical=True)
            )
            if sans:
                builder = builder.add_extension(
                    x509.SubjectAlternativeName([x509.DNSName(n) for n in sans]), critical=False)
                builder = builder.add_extension(
                    x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            return builder.sign(signing_key, hashes.SHA256())

        root_key = ec.generate_private_key(ec.SECP256R1())
        root = build("rtcsvc test root", "rtcsvc test root", root_key.public_key(), root_key, ca=True)
        mid_key = ec.generate_private_key(ec.SECP256R1())
        mid = build("rtcsvc test intermediate", "rtcsvc test root", mid_key.public_key(), root_key,
                    ca=True)
        leaf_key = ec.generate_private_key(ec.SECP256R1())
        leaf = build(names[0], "rtcsvc test intermediate", leaf_key.public_key(), mid_key,
                     ca=False, sans=names)

        def pem(cert):
            return cert.public_bytes(serialization.Encoding.PEM)

        self.ca_pem = directory / "ca.pem"
        self.ca_pem.write_bytes(pem(root))
        self.chain_pem = directory / "fullchain.pem"
        self.chain_pem.write_bytes(pem(leaf) + pem(mid))
        # certbot's names: cert.pem (leaf), chain.pem (intermediates), fullchain.pem (both).
        self.leaf_pem = directory / "cert.pem"
        self.leaf_pem.write_bytes(pem(leaf))
        self.intermediates_pem = directory / "chain.pem"
        self.intermediates_pem.write_bytes(pem(mid))
        self.key_pem = directory / "privkey.pem"
        self.key_pem.write_bytes(leaf_key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption()))
        self.key_pem.chmod(0o600)

    def trust_in_nss(self, home: Path) -> None:
        """Make ``home``'s NSS database (what Chromium on Linux reads) trust the root only."""
        db = home / ".pki" / "nssdb"
        db.mkdir(parents=True, exist_ok=True)
        subprocess.run(["certutil", "-d", f"sql:{db}", "-N", "--empty-password"], check=True,
                       capture_output=True)
        subprocess.run(["certutil", "-d", f"sql:{db}", "-A", "-t", "C,,", "-n", "rtcsvc-test-root",
                        "-i", str(self.ca_pem)], check=True, capture_output=True)


# ---- deployment layouts: where TURN over TLS on 443 lives -------------------------------------

class Layout(Protocol):
    """What a deployment layout decides; ``CallNetwork`` asks nothing else of it.

    Two are registered in ``LAYOUTS``: ``second-address`` (behind Apache) and ``one-port``
    (rtcsvc carries TURN on its own 443). A profile runs in every layout it lists.
    """

    name: str
    names: list[str]                 # DNS names the certificate covers (first: its subject)
    turn443_name: str                # the name in the turns: URL on port 443
    host_map: dict[str, str]         # name -> address, what callers resolve
    tcp443_destinations: list[str]   # what a 443-only firewall must let through
    extra_server_addresses: list[str]
    turn_urls: list[str]             # --turn-url values for rtcsvc
    stun_url: str                    # --ice-server value for rtcsvc
    turns443_url: str                # the turns: URL on port 443 a TLS relay must come from
    coturn_tls_port: int             # where coturn takes those TLS relay connections

    def coturn_config(self, text: str) -> str: ...
    def rtcsvc_args(self) -> list[str]: ...
    def prepare_server(self, server: "Netns", shipped_config: str) -> None: ...


class SecondAddressLayout:
    """deploy/README.md's layout behind Apache: coturn's TLS port also on 443 of a second address.

    The site (here rtcsvc's own TLS listener, standing where Apache stands) keeps 443 of the main
    address; ``turn443.chat.test`` names the second address, whose port 443 is redirected to
    coturn's TLS port by the nftables lines shipped in turnserver.conf, run as written.
    """

    name = "second-address"
    names = [SITE_NAME, TURN_NAME, TURN443_NAME]
    #: The name in the turns: URL on port 443 (what a proxy sees in CONNECT, and the SNI).
    turn443_name = TURN443_NAME
    host_map = {SITE_NAME: SERVER_ADDRESS, TURN_NAME: SERVER_ADDRESS, TURN443_NAME: SECOND_ADDRESS}
    #: Where a caller behind a 443-only firewall must be let through (TCP 443).
    tcp443_destinations = [SERVER_ADDRESS, SECOND_ADDRESS]
    extra_server_addresses = [SECOND_ADDRESS]
    turn_urls = [
        f"turn:{TURN_NAME}:3478?transport=udp",
        f"turn:{TURN_NAME}:3478?transport=tcp",
        f"turns:{TURN_NAME}:5349?transport=tcp",
        f"turns:{TURN443_NAME}:443?transport=tcp",
    ]
    stun_url = f"stun:{TURN_NAME}:3478"
    turns443_url = f"turns:{TURN443_NAME}:443?transport=tcp"
    #: Where TLS relay connections reach coturn: its TLS port, straight from the caller.
    coturn_tls_port = 5349

    def coturn_config(self, text: str) -> str:
        """Uncomment the second ``listening-ip``, as turnserver.conf says to."""
        return _substitute(text, {rf"(?m)^#listening-ip={re.escape(SECOND_ADDRESS)}$":
                                  f"listening-ip={SECOND_ADDRESS}"})

    def rtcsvc_args(self) -> list[str]:
        return []

    def prepare_server(self, server: Netns, shipped_config: str) -> None:
        """Run turnserver.conf's own nft commands (the 443 -> coturn TLS redirect)."""
        _run_shipped_nft_lines(server, shipped_config, "turnserver.conf")


class OnePortLayout:
    """deploy/README.md's layout without Apache: one name, one port for everything.

    rtcsvc's own TLS listener on 443 of the site's address also carries TURN
    (``--turn-backend``): after TLS, a connection that speaks STUN goes to coturn's
    ``tcp-proxy-port`` on loopback with a PROXY v2 header. coturn runs turnserver.conf with
    ``deploy/coturn/turnserver-one-port.conf`` appended as shipped, and that file's nftables
    lines (the proxy port reachable from loopback only) run as written. A 443-only caller
    needs exactly TCP 443 to ``chat.test``; UDP 3478 stays for the rest.
    """

    name = "one-port"
    names = [SITE_NAME]
    turn443_name = SITE_NAME
    host_map = {SITE_NAME: SERVER_ADDRESS}
    tcp443_destinations = [SERVER_ADDRESS]
    extra_server_addresses: list[str] = []
    #: coturn has no TCP/TLS listener of its own with tcp-proxy-port: no turn:...tcp, no 5349.
    turn_urls = [
        f"turn:{SITE_NAME}:3478?transport=udp",
        f"turns:{SITE_NAME}:443?transport=tcp",
    ]
    stun_url = f"stun:{SITE_NAME}:3478"
    turns443_url = f"turns:{SITE_NAME}:443?transport=tcp"
    shipped = DEPLOY_COTURN / "turnserver-one-port.conf"

    def __init__(self):
        text = self.shipped.read_text()
        ports = re.findall(r"(?m)^tcp-proxy-port=(\d+)$", text)
        assert len(ports) == 1, f"{self.shipped.name}: tcp-proxy-port lines {ports}"
        #: Where TLS relay connections reach coturn: its proxy port, through rtcsvc.
        self.coturn_tls_port = int(ports[0])

    def coturn_config(self, text: str) -> str:
        """turnserver.conf with the shipped one-port lines appended, as that file says."""
        return text + "\n# Appended: deploy/coturn/turnserver-one-port.conf\n" + self.shipped.read_text()

    def rtcsvc_args(self) -> list[str]:
        return ["--turn-backend", f"tcp:127.0.0.1:{self.coturn_tls_port}"]

    def prepare_server(self, server: Netns, shipped_config: str) -> None:
        """Run turnserver-one-port.conf's own nft commands (the proxy port: loopback only)."""
        _run_shipped_nft_lines(server, self.shipped.read_text(), self.shipped.name)


def _run_shipped_nft_lines(server: Netns, shipped_text: str, file_name: str) -> None:
    """Run, in the server namespace, the three ``# nft ...`` lines a shipped file documents."""
    commands = [line.strip()[1:].strip() for line in shipped_text.splitlines()
                if re.match(r"#\s+nft ", line)]
    assert len(commands) == 3, f"{file_name}'s nft lines changed: {commands}"
    for command in commands:
        server.shell(command)


LAYOUTS: dict[str, type[Layout]] = {
    SecondAddressLayout.name: SecondAddressLayout,
    OnePortLayout.name: OnePortLayout,
}


def _substitute(text: str, replacements: dict[str, str]) -> str:
    for pattern, value in replacements.items():
        text, count = re.subn(pattern, value.replace("\\", "\\\\"), text)
        if count != 1:
            raise AssertionError(f"turnserver.conf: {pattern!r} matched {count} times")
    return text


def render_production_coturn(ca: TestCA, secret: str, directory: Path, layout,
                             full_chain: bool = True) -> str:
    """deploy/coturn/turnserver.conf as shipped, but for this run's certificate, secret, logs.

    ``full_chain=False`` gives coturn the leaf alone (the mistake of pointing ``cert=`` at
    certbot's cert.pem instead of fullchain.pem)."""
    text = (DEPLOY_COTURN / "turnserver.conf").read_text()
    certificate = ca.chain_pem if full_chain else ca.leaf_pem
    text = _substitute(text, {
        r"(?m)^cert=/etc/coturn/tls/fullchain\.pem$": f"cert={certificate}",
        r"(?m)^pkey=/etc/coturn/tls/privkey\.pem$": f"pkey={ca.key_pem}",
        r"(?m)^static-auth-secret=@TURN_SECRET@$": f"static-auth-secret={secret}",
        r"(?m)^syslog$": f"log-file={directory}/turnserver.log\nsimple-log",
        r"(?m)^pidfile=.*$": f"pidfile={directory}/turnserver.pid\nuserdb={directory}/turndb",
    })
    # The simulated Internet is made of documentation ranges, which the shipped file may deny
    # as peers; as it says for such hosts, allow the server's own addresses (each relayed
    # browser's peer is the other's relay here) and the callers' public side. Callers' LANs
    # (100.64.0.0/10) stay denied, as on the Internet.
    allowed = sorted(set(layout.host_map.values())) + [CALLERS_PUBLIC]
    text += "\n# Added by tests/support/netns.py\n" + "".join(
        f"allowed-peer-ip={a}\n" for a in allowed)
    return layout.coturn_config(text)


STUN_PROBE = """
import os, socket, struct, sys
request = struct.pack("!HHI12s", 1, 0, 0x2112A442, os.urandom(12))
with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
    s.settimeout(0.3)
    s.sendto(request, (sys.argv[1], int(sys.argv[2])))
    reply = s.recv(2048)
sys.exit(0 if reply[8:20] == request[8:20] else 1)
"""


# ---- callers: the network a browser sits behind ------------------------------------------------

#: Caller network kinds (what the caller's router does) and what each needs from the browser.
CALLER_KINDS = ("open", "symmetric-nat", "udp-blocked", "tcp443-only", "proxy",
                "udp-large-blackhole")
#: UDP datagrams of at least this many bytes (IP length) vanish behind a "udp-large-blackhole"
#: router: STUN checks and TURN requests (about 100-200 bytes) pass, a DTLS handshake flight
#: carrying a certificate and video packets (300-1200) do not, as on a path whose MTU problem
#: nobody reports (a tunnel or a broken PPPoE link dropping large datagrams silently).
BLACKHOLE_MIN_BYTES = 300


@dataclass
class Caller:
    """One person's side: a router namespace, a caller namespace behind it, maybe a proxy."""

    label: str
    kind: str
    router: Netns
    ns: Netns
    address: str          # the caller's own (host candidate) address
    wan_address: str      # the router's address on the simulated internet
    proxy: object = None  # a tests.support.squid.Squid for kind "proxy"
    home: Path | None = None
    browser_log: Path | None = None

    def browser_args(self, host_map: dict[str, str]) -> list[str]:
        """Resolver rules that map the test names and nothing else (no Google services)."""
        # WebRTC looks STUN/TURN names up fully qualified ("turn.chat.test."): map both forms.
        rules = [f"MAP {name}{dot} {address}" for name, address in host_map.items()
                 for dot in ("", ".")]
        rules.append("MAP * ~NOTFOUND")
        excluded = sorted(set(host_map.values()))
        if self.proxy is not None:
            excluded.append(self.proxy.address)
        rules += [f"EXCLUDE {address}" for address in excluded]
        args = [f"--host-resolver-rules={', '.join(rules)}"]
        if self.proxy is not None:
            args.append(f"--proxy-server=http://{self.proxy.address}:{self.proxy.port}")
        return args


@dataclass
class CallNetwork:
    """The simulated internet for one call: server side (rtcsvc + coturn) and its callers.

    ``pub`` routes between the server namespace (``SERVER_ADDRESS`` and the layout's other
    addresses) and each caller's router. A caller ``n`` gets a router whose WAN is
    ``192.0.2.(16n+2)/28`` and a LAN ``100.64.n.0/24`` (NATed) or ``192.0.2.(128+16n)/28``
    (``open``: routed, public, so the callers reach each other's host candidates).
    """

    topology: Topology
    layout: Layout
    stun_only: bool = False
    coturn_full_chain: bool = True
    callers: list = field(default_factory=list)

    def __post_init__(self):
        self.workdir = self.topology.workdir
        self.ca = TestCA(self.workdir / "ca", self.layout.names)
        self.secret = secrets.token_hex(32)
        self.pub = self.topology.namespace("pub")
        self.server = self.topology.namespace("srv")
        self.pub.enable_forwarding()
        self.topology.link(self.pub, "srv", f"{PUBLIC_GATEWAY}/24",
                           self.server, "pub", f"{SERVER_ADDRESS}/24")
        for address in self.layout.extra_server_addresses:
            self.server.add_address("pub", f"{address}/32")
            self.pub.add_route(f"{address}/32", SERVER_ADDRESS)
        self.server.add_route("default", PUBLIC_GATEWAY)
        self.coturn = self._start_coturn()
        self.rtcsvc = self._start_rtcsvc()

    # -- server side --

    @property
    def site_url(self) -> str:
        return f"https://{SITE_NAME}"

    def _start_coturn(self) -> subprocess.Popen:
        directory = self.workdir / "coturn"
        directory.mkdir()
        shipped = (DEPLOY_COTURN / "turnserver.conf").read_text()
        self.layout.prepare_server(self.server, shipped)
        conf = directory / "turnserver.conf"
        conf.write_text(render_production_coturn(self.ca, self.secret, directory, self.layout,
                                                 self.coturn_full_chain))
        self.coturn_log = directory / "turnserver.log"
        process = self.server.popen([TURNSERVER, "-c", str(conf)], directory / "stdout.log",
                                    cwd=directory)

        def ready():
            if process.poll() is not None:
                raise RuntimeError(f"turnserver exited with {process.returncode}:\n"
                                   f"{_tail(self.coturn_log)}")
            return self.server.run(sys.executable, "-c", STUN_PROBE, SERVER_ADDRESS, "3478",
                                   check=False).returncode == 0

        wait_for(ready, 20, "coturn in the server namespace", interval=0.2)
        return process

    def _start_rtcsvc(self) -> subprocess.Popen:
        directory = self.workdir / "rtcsvc"
        directory.mkdir()
        secret_file = directory / "turn-secret"
        secret_file.write_text(self.secret)
        args = ["--listen", f"ssl:443:interface={SERVER_ADDRESS}:privateKey={self.ca.key_pem}"
                            f":certKey={self.ca.leaf_pem}:extraCertChain={self.ca.intermediates_pem}",
                "--state-dir", str(directory / "state"),
                "--ice-server", self.layout.stun_url]
        if not self.stun_only:
            for url in self.layout.turn_urls:
                args += ["--turn-url", url]
            args += ["--turn-secret-file", str(secret_file), *self.layout.rtcsvc_args()]
        self.rtcsvc_log = directory / "rtcsvc.log"
        process = self.server.popen([str(TWISTD), "-n", "--pidfile=", "--logfile=-", "rtcsvc",
                                     *args], self.rtcsvc_log, cwd=ROOT)

        def ready():
            if process.poll() is not None:
                raise RuntimeError(f"rtcsvc exited with {process.returncode}:\n"
                                   f"{_tail(self.rtcsvc_log)}")
            return self.server.run(
                "curl", "-fsS", "-o", "/dev/null", "--max-time", "2", "--cacert",
                str(self.ca.ca_pem), "--resolve", f"{SITE_NAME}:443:{SERVER_ADDRESS}",
                f"{self.site_url}/healthz", check=False).returncode == 0

        wait_for(ready, 30, "rtcsvc in the server namespace", interval=0.2)
        return process

    # -- callers --

    def add_caller(self, label: str, kind: str, proxy_credentials=None) -> Caller:
        if kind not in CALLER_KINDS:
            raise ValueError(f"unknown caller kind {kind!r}")
        n = len(self.callers) + 1
        router = self.topology.namespace(f"r{n}")
        ns = self.topology.namespace(f"c{n}")
        gateway, wan = f"192.0.2.{16 * n + 1}", f"192.0.2.{16 * n + 2}"
        self.topology.link(self.pub, f"r{n}", f"{gateway}/28", router, "wan", f"{wan}/28")
        router.add_route("default", gateway)
        router.enable_forwarding()
        if kind == "open":
            lan_gw, address, prefix = f"192.0.2.{128 + 16 * n + 1}", f"192.0.2.{128 + 16 * n + 2}", 28
            self.pub.add_route(f"192.0.2.{128 + 16 * n}/28", wan)
        else:
            lan_gw, address, prefix = f"100.64.{n}.1", f"100.64.{n}.2", 24
        self.topology.link(router, "lan", f"{lan_gw}/{prefix}", ns, "eth0", f"{address}/{prefix}")
        ns.add_route("default", lan_gw)
        ns.install_guard()
        caller = Caller(label, kind, router, ns, address, wan)
        _configure_router(caller, self.layout)
        if kind == "proxy":
            from tests.support.squid import Squid

            caller.proxy = Squid.start(router, self.workdir / f"squid-{label}", lan_gw,
                                       hosts=self.layout.host_map, credentials=proxy_credentials)
            self.topology.on_close(caller.proxy.close)
        self.callers.append(caller)
        return caller

    def launch_browser(self, playwright, caller: Caller, *, proxy_credentials=None):
        """Chromium inside the caller's namespace, trusting the test root through its own HOME."""
        from tests.support.browser import BASE_ARGS, FAKE_MEDIA_ARGS

        caller.home = self.workdir / f"home-{caller.label}"
        caller.browser_log = self.workdir / f"chromium-{caller.label}.log"
        self.ca.trust_in_nss(caller.home)
        wrapper = self.workdir / f"chromium-{caller.label}"
        wrapper.write_text("#!/bin/sh\n"
                           f'exec {IP} netns exec {caller.ns.name} {CHROMIUM} "$@" '
                           f"2>>{caller.browser_log}\n")
        wrapper.chmod(0o755)
        options = dict(
            executable_path=str(wrapper), headless=True,
            args=[*BASE_ARGS, *FAKE_MEDIA_ARGS, *caller.browser_args(self.layout.host_map)],
            env={**os.environ, "HOME": str(caller.home)},
        )
        if proxy_credentials is not None:
            # Playwright sets the proxy itself and answers its 407 with these (Chromium has no
            # flag for proxy credentials: a person would type them into the browser's prompt).
            username, password = proxy_credentials
            options["args"] = [a for a in options["args"] if not a.startswith("--proxy-server")]
            options["proxy"] = {"server": f"http://{caller.proxy.address}:{caller.proxy.port}",
                                "username": username, "password": password}
        browser = playwright.chromium.launch(**options)
        self.topology.on_close(browser.close)
        return browser

    # -- evidence --

    def diagnostics(self) -> str:
        """coturn's and squid's log lines and the guard chains' drop counts, for a failure."""
        parts = [f"--- coturn ({self.coturn_log.name}, last lines)", _tail(self.coturn_log, 60)]
        for caller in self.callers:
            parts.append(f"--- {caller.label} ({caller.kind}): guard dropped "
                         f"{caller.ns.guard_drops()} packets")
            if caller.proxy is not None:
                parts += [f"--- squid access log ({caller.label})", caller.proxy.access_log()]
        parts += ["--- rtcsvc (last lines)", _tail(self.rtcsvc_log, 30)]
        return "\n".join(parts)


class StrictTLS:
    """A browser whose new contexts check certificates: ``Participant`` accepts any by default,
    and these tests prove the CA the browser trusts is enough (the page and TURN over TLS)."""

    def __init__(self, browser):
        self._browser = browser

    def new_context(self, **options):
        options["ignore_https_errors"] = False
        return self._browser.new_context(**options)


def _configure_router(caller: Caller, layout: Layout) -> None:
    """The caller's router: NAT and firewall for its kind (filter rules on FORWARD)."""
    r = caller.router
    if caller.kind != "open":
        masquerade = ["-A", "POSTROUTING", "-o", "wan", "-j", "MASQUERADE"]
        if caller.kind == "symmetric-nat":
            masquerade.append("--random-fully")  # a new mapped port per destination
        r.iptables(*masquerade, table="nat")
        # A NAT lets in only what answers a mapping: nothing new from outside.
        r.iptables("-P", "FORWARD", "DROP")
        r.iptables("-A", "FORWARD", "-m", "conntrack", "--ctstate", "ESTABLISHED,RELATED",
                   "-j", "ACCEPT")
    if caller.kind in ("symmetric-nat", "udp-blocked", "udp-large-blackhole"):
        if caller.kind == "udp-blocked":
            r.iptables("-A", "FORWARD", "-i", "lan", "-p", "udp", "-j", "DROP")
        if caller.kind == "udp-large-blackhole":
            # Both ways, before the ESTABLISHED rule lets answers in.
            r.iptables("-I", "FORWARD", "1", "-p", "udp", "-m", "length", "--length",
                       f"{BLACKHOLE_MIN_BYTES}:65535", "-j", "DROP")
        r.iptables("-A", "FORWARD", "-i", "lan", "-j", "ACCEPT")
    elif caller.kind == "tcp443-only":
        for address in layout.tcp443_destinations:
            r.iptables("-A", "FORWARD", "-i", "lan", "-p", "tcp", "-d", address,
                       "--dport", "443", "-j", "ACCEPT")
    # "proxy": nothing is forwarded at all; the browser reaches only squid on the router.


def _tail(path: Path, lines: int = 40) -> str:
    try:
        return "\n".join(Path(path).read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return f"({path} unreadable)"
