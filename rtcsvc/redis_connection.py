"""Where and how rtcsvc reaches Redis: the ``--redis`` URL, TLS, the ACL user, and why a
connection failed, in one line an operator can act on.

``redis://`` is clear text; ``rediss://`` is TLS, with Redis's certificate checked against the
CAs in ``?ca=FILE`` (or the system's trust store without it) and its name checked against the
URL's host by service_identity. ``user:password@`` logs in as a Redis ACL user on every
(re)connection; ``?password-file=FILE`` keeps the password out of the command line (``ps``).
Parsing reads nothing (:class:`RedisUrl`); the files are read once, when the service is
made, so a mistake stops start-up naming ``--redis``. The password never appears in a log line, a ``repr`` or ``str(address)``.
docs/scaling.md has the matching redis.conf lines and the ``ACL SETUSER`` line.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, quote, unquote, urlsplit

import txredisapi
from OpenSSL import SSL
from service_identity import VerificationError
from twisted.internet import defer, error, ssl
from twisted.internet.endpoints import HostnameEndpoint, wrapClientTLS
from twisted.internet.interfaces import IStreamClientEndpoint
from twisted.python.failure import Failure

#: Seconds to wait for TCP to connect (TLS and the login come after, bounded by the heartbeat).
CONNECT_TIMEOUT = 5

_PEM = re.compile(rb"-----BEGIN CERTIFICATE-----.+?-----END CERTIFICATE-----", re.S)


@dataclass(frozen=True)
class RedisAddress:
    host: str
    port: int
    db: int
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    #: rediss://: TLS, verifying Redis's certificate against ``trust`` (None: the system's CAs).
    tls: bool = False
    ca_file: str | None = None
    trust: tuple[bytes, ...] | None = field(default=None, repr=False)

    def __str__(self) -> str:
        """The URL without the password (safe to log)."""
        user = f"{quote(self.username, safe='')}@" if self.username else ""
        query = f"?ca={self.ca_file}" if self.ca_file else ""
        scheme = "rediss" if self.tls else "redis"
        return f"{scheme}://{user}{self.host}:{self.port}/{self.db}{query}"

    def endpoint(self, reactor: Any) -> IStreamClientEndpoint:
        """A client endpoint: TCP, wrapped in TLS for ``rediss://``."""
        tcp = HostnameEndpoint(reactor, self.host, self.port, timeout=CONNECT_TIMEOUT)
        if not self.tls:
            return tcp
        if self.trust is None:
            root = ssl.platformTrust()
        else:
            root = ssl.trustRootFromCertificates(
                [ssl.Certificate.loadPEM(pem) for pem in self.trust])
        return wrapClientTLS(ssl.optionsForClientTLS(self.host, trustRoot=root), tcp)


@dataclass(frozen=True)
class RedisUrl:
    """A checked ``--redis`` URL whose files are not read yet (see :meth:`read`)."""

    host: str
    port: int
    db: int
    username: str | None = None
    password: str | None = field(default=None, repr=False)  # given in the URL itself
    tls: bool = False
    password_file: str | None = None
    ca_file: str | None = None

    @classmethod
    def parse(cls, url: str) -> RedisUrl:
        """``redis[s]://[[user]:password@]host[:port][/db][?ca=FILE&password-file=FILE]``.

        Reads nothing; raises ValueError with a reason (never echoing a password).
        """
        parts = urlsplit(url)
        if parts.scheme not in ("redis", "rediss"):
            raise ValueError(f"must be a redis:// or rediss:// URL, not {_hide(url)!r}")
        tls = parts.scheme == "rediss"
        try:
            port = parts.port or 6379
        except ValueError:
            raise ValueError(f"has a bad port: {_hide(url)!r}") from None
        path = parts.path.strip("/")
        if path and not path.isdigit():
            raise ValueError(f"must end with a database number (/0), not /{path}")
        if not parts.hostname:
            raise ValueError(f"needs a host: {_hide(url)!r}")
        try:
            query = parse_qs(parts.query, keep_blank_values=True,
                             strict_parsing=bool(parts.query))
        except ValueError:
            raise ValueError(f"has a malformed query: ?{parts.query}") from None
        unknown = set(query) - {"ca", "password-file"}
        if unknown:
            raise ValueError(f"has unknown parameter(s) {', '.join(sorted(unknown))} "
                             "(known: ca, password-file)")
        for name, values in query.items():
            if len(values) != 1 or not values[0]:
                raise ValueError(f"needs exactly one non-empty {name}=")
        password = unquote(parts.password) if parts.password is not None else None
        if "password-file" in query and password is not None:
            raise ValueError("has both a password and password-file=: give one")
        if "ca" in query and not tls:
            raise ValueError("ca= needs TLS: use a rediss:// URL")
        return cls(parts.hostname, port, int(path or 0),
                   unquote(parts.username) if parts.username else None, password, tls,
                   query["password-file"][0] if "password-file" in query else None,
                   query["ca"][0] if "ca" in query else None)

    def read(self) -> RedisAddress:
        """The address with the files read: the password file and the CA certificates.

        Raises ValueError with a reason naming the URL's parameter.
        """
        password = self.password
        if self.password_file is not None:
            password = _read_password(self.password_file)
        trust = _read_certificates(self.ca_file) if self.ca_file is not None else None
        return RedisAddress(self.host, self.port, self.db, self.username, password, self.tls,
                            self.ca_file, trust)


def parse_redis_url(url: str) -> RedisAddress:
    """Parse a ``--redis`` URL and read the files it names (:class:`RedisUrl`), at once."""
    return RedisUrl.parse(url).read()


def _hide(url: str) -> str:
    """``url`` with any password replaced, for error messages."""
    return re.sub(r"(//[^/@:]*:)[^/@]*@", r"\1***@", url)


def _read_password(path: str) -> str:
    try:
        secret = Path(path).read_text(encoding="utf-8").strip()
    except (OSError, UnicodeError) as e:
        raise ValueError(f"password-file: cannot read {path}: "
                         f"{getattr(e, 'strerror', None) or e}") from None
    if not secret:
        raise ValueError(f"password-file: {path} is empty")
    return secret


def _read_certificates(path: str) -> tuple[bytes, ...]:
    try:
        data = Path(path).read_bytes()
    except OSError as e:
        raise ValueError(f"ca: cannot read {path}: {e.strerror}") from None
    pems = tuple(_PEM.findall(data))
    if not pems:
        raise ValueError(f"ca: {path} holds no PEM certificate")
    for pem in pems:
        try:
            ssl.Certificate.loadPEM(pem)
        except Exception:
            raise ValueError(f"ca: {path} holds a certificate that does not parse") from None
    return pems


class HandshakeRefused(Exception):
    """Redis answered the login (or SELECT, or PING) with an error: retrying will not help
    until the operator changes something, so it is reported, not thrown."""


@defer.inlineCallbacks
def handshake(protocol: Any, address: RedisAddress) -> Any:
    """AUTH (as the ACL user), SELECT the database, PING: on every (re)connection, before the
    connection counts as usable. The PING makes a server that never answers like Redis (a TLS
    port spoken to in clear) show up here rather than in the first real command."""
    steps: list[tuple[tuple[str | int, ...], str]] = []
    if address.password is not None:
        if address.username:
            steps.append((("AUTH", address.username, address.password), "login (AUTH)"))
        else:
            steps.append((("AUTH", address.password), "login (AUTH)"))
    if address.db:
        steps.append((("SELECT", address.db), f"SELECT {address.db}"))
    steps.append((("PING",), "PING"))
    for command, what in steps:
        try:
            yield protocol.execute_command(*command)
        except txredisapi.ResponseError as e:
            # Redis's own words (WRONGPASS ..., NOPERM ...) never contain the password.
            raise HandshakeRefused(f"refused the {what}: {str(e).rstrip('.')}") from None


def explain(reason: Failure) -> str:
    """Why a connection ended before it was usable, as a phrase an operator can act on."""
    value = reason.value
    if isinstance(value, VerificationError):
        return ("its TLS certificate is not valid for the host in the URL "
                "(the name or address must be in the certificate's subjectAltName)")
    if isinstance(value, SSL.Error):
        detail = ", ".join(str(part[2]) for part in (value.args[0] if value.args else [])
                           if isinstance(part, tuple) and len(part) == 3) or str(value)
        if "certificate verify failed" in detail:
            return ("its TLS certificate is not signed by a CA we trust "
                    f"({detail}; check ?ca=)")
        return f"the TLS handshake failed ({detail}; is it a TLS port?)"
    if isinstance(value, (error.ConnectionDone, error.ConnectionLost)):
        return ("it closed the connection before answering "
                "(a TLS port reached with redis://? then use rediss://)")
    return str(value) or type(value).__name__
