"""The public site's checks for ``rtcsvc-check``: its TLS, its certificate and the WebSocket
upgrade through whatever proxy is in front.

A browser refuses a page (and a ``turns:`` relay) whose certificate does not chain to a CA it
trusts, does not name the host it asked for, or has expired; the site must also negotiate
HTTP/1.1 by ALPN, since the signaling socket is an HTTP/1.1 Upgrade. Each of those is its own
line here, so one fault gives one FAIL naming it: the chain is verified without looking at the
dates, the names and the dates are read from the certificate itself. The certificate checks
serve ``turns:`` URLs too (``rtcsvc.check_turn``), with no ALPN offered, as Chromium does.

The WebSocket check speaks just enough HTTP/1.1 by hand to see the status line: ``101`` for the
site's own Origin, ``403`` for a foreign one. A 101 is closed again at once with a close frame.
Every network step is bounded by ``timeout`` seconds.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import datetime
import hashlib
import ipaddress
import os
import secrets
import socket
import ssl
import time
from urllib.parse import urlsplit

from cryptography import x509
from service_identity import CertificateError, VerificationError
from service_identity.cryptography import (
    verify_certificate_hostname,
    verify_certificate_ip_address,
)

from rtcsvc.check_result import FAIL, PASS, WARN, Result
from rtcsvc.invite import mint_room_token

#: OpenSSL's X509_V_FLAG_NO_CHECK_TIME: verify the chain, leave the dates to the expiry line.
_NO_CHECK_TIME = 0x200000
#: What browsers offer; the site must pick http/1.1 (WebSocketResource answers h2 with 426).
BROWSER_ALPN = ["h2", "http/1.1"]
FOREIGN_ORIGIN = "https://rtcsvc-check.invalid"
_WEBSOCKET_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


def describe_connect_error(error: BaseException, host: str, port: int, timeout: float) -> str:
    """Why a connection to host:port failed, in words."""
    if isinstance(error, (asyncio.TimeoutError, TimeoutError)):
        return (f"no answer from {host}:{port} within {timeout:g} s (a firewall dropping "
                "packets on the way, or a server that does not answer)")
    if isinstance(error, ConnectionRefusedError):
        return f"connection refused: nothing listens on {host}:{port}"
    if isinstance(error, ssl.SSLCertVerificationError):
        return error.verify_message or str(error)
    if isinstance(error, ssl.SSLError):
        return f"the TLS handshake with {host}:{port} failed ({error.reason or error})"
    if isinstance(error, socket.gaierror):
        return f"cannot resolve {host}: {error.strerror}"
    if isinstance(error, OSError):
        return f"cannot connect to {host}:{port}: {error.strerror or error}"
    return f"{type(error).__name__}: {error}"


async def _close(writer: asyncio.StreamWriter, timeout: float) -> None:
    writer.close()
    with contextlib.suppress(Exception):
        await asyncio.wait_for(writer.wait_closed(), timeout)


async def handshake(host: str, port: int, context: ssl.SSLContext, server_name: str,
                    timeout: float) -> tuple[bytes, str | None, str]:
    """TLS to host:port: ``(leaf certificate DER, ALPN protocol chosen, TLS version)``."""
    _, writer = await asyncio.wait_for(
        asyncio.open_connection(host, port, ssl=context, server_hostname=server_name,
                                ssl_handshake_timeout=timeout), timeout)
    try:
        tls = writer.get_extra_info("ssl_object")
        return tls.getpeercert(binary_form=True), tls.selected_alpn_protocol(), tls.version()
    finally:
        await _close(writer, timeout)


def unverified_context(alpn: list[str] | None = None) -> ssl.SSLContext:
    """Takes any certificate: for looking at it, and for steps that test something else."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    if alpn:
        context.set_alpn_protocols(alpn)
    return context


def chain_context(ca: str | None) -> ssl.SSLContext:
    """Verifies the chain against ``ca`` (a PEM file; else the system's CAs), ignoring dates
    and names."""
    context = ssl.create_default_context(cafile=ca)
    context.check_hostname = False
    with contextlib.suppress(ValueError, AttributeError):
        context.verify_flags |= _NO_CHECK_TIME
    return context


def names_in(cert: x509.Certificate) -> list[str]:
    """The DNS names and IP addresses the certificate is for (its subjectAltName)."""
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return []
    return ([str(name) for name in san.get_values_for_type(x509.DNSName)]
            + [str(address) for address in san.get_values_for_type(x509.IPAddress)])


def name_result(check: str, target: str, cert: x509.Certificate, host: str) -> Result:
    names = names_in(cert)
    listed = ", ".join(names) or "no subjectAltName at all"
    try:
        try:
            ipaddress.ip_address(host)
        except ValueError:
            verify_certificate_hostname(cert, host)
        else:
            verify_certificate_ip_address(cert, host)
    except (VerificationError, CertificateError):
        return Result(check, target, FAIL,
                      f"the certificate is for {listed}, not for {host}: browsers refuse it")
    return Result(check, target, PASS, f"the certificate names {host} ({listed})")


def expiry_result(check: str, target: str, cert: x509.Certificate, warn_days: int,
                  now: datetime.datetime | None = None) -> Result:
    now = now or datetime.datetime.now(datetime.timezone.utc)
    ends, begins = cert.not_valid_after_utc, cert.not_valid_before_utc
    days = (ends - now).total_seconds() / 86400
    numbers = {"days_left": round(days, 1), "not_after": ends.isoformat()}
    when = ends.strftime("%Y-%m-%d %H:%M UTC")
    if now < begins:
        return Result(check, target, FAIL, "the certificate is not valid yet (from "
                      f"{begins:%Y-%m-%d %H:%M UTC}); check this host's clock", numbers)
    if days < 0:
        return Result(check, target, FAIL, f"the certificate expired {-days:.0f} days ago "
                      f"({when}): browsers refuse it; renew it", numbers)
    if days < warn_days:
        return Result(check, target, WARN, f"the certificate expires in {days:.0f} days "
                      f"({when}), under --warn-days {warn_days}: is renewal working?", numbers)
    return Result(check, target, PASS, f"the certificate is valid for {days:.0f} more days "
                  f"(until {when})", numbers)


async def certificate_checks(prefix: str, target: str, host: str, port: int, *,
                             ca: str | None, warn_days: int, timeout: float,
                             alpn: list[str] | None = None) -> list[Result]:
    """``<prefix>tls``, then ``<prefix>certificate-chain``, ``-name`` and ``-expiry``.

    With ``alpn`` (the site), the protocol the server picks must be http/1.1.
    """
    check = f"{prefix}tls"
    try:
        der, chosen, version = await handshake(host, port, unverified_context(alpn), host,
                                               timeout)
    except Exception as e:
        message = describe_connect_error(e, host, port, timeout)
        if alpn and isinstance(e, ssl.SSLError) and await _works_without_alpn(host, port,
                                                                              timeout):
            message += (": it succeeds only without ALPN, so every browser is refused (the "
                        "server has no protocol in common with http/1.1)")
        return [Result(check, target, FAIL, message)]
    if not alpn:
        results = [Result(check, target, PASS, f"{version} handshake")]
    elif chosen == "http/1.1":
        results = [Result(check, target, PASS, f"{version}, ALPN http/1.1")]
    elif chosen is None:
        results = [Result(check, target, WARN, f"{version}, but no ALPN protocol chosen "
                          "(browsers fall back to HTTP/1.1)")]
    else:
        results = [Result(check, target, FAIL, f"{version}, ALPN chose {chosen}: the "
                          "signaling socket needs http/1.1 (set Protocols http/1.1)")]
    check = f"{prefix}certificate-chain"
    trust = f"the CAs in {ca}" if ca else "the system's CAs"
    try:
        await handshake(host, port, chain_context(ca), host, timeout)
    except ssl.SSLCertVerificationError as e:
        results.append(Result(check, target, FAIL, f"the certificate chain does not verify "
                              f"against {trust}: {e.verify_message}"
                              + _chain_hint(e.verify_code)))
    except Exception as e:
        results.append(Result(check, target, FAIL, describe_connect_error(e, host, port,
                                                                          timeout)))
    else:
        results.append(Result(check, target, PASS, f"the chain verifies against {trust}"))
    cert = x509.load_der_x509_certificate(der)
    results.append(name_result(f"{prefix}certificate-name", target, cert, host))
    results.append(expiry_result(f"{prefix}certificate-expiry", target, cert, warn_days))
    return results


def _chain_hint(code: int) -> str:
    # 20: unable to get local issuer; 21: unable to verify the first certificate.
    if code in (20, 21):
        return (" (is the intermediate certificate served? Use the full chain, e.g. certbot's "
                "fullchain.pem, or extraCertChain= on an rtcsvc ssl: listener)")
    if code in (18, 19):
        return " (a self-signed certificate: browsers refuse it unless told to trust it)"
    return ""


async def _works_without_alpn(host: str, port: int, timeout: float) -> bool:
    try:
        await handshake(host, port, unverified_context(), host, timeout)
    except Exception:
        return False
    return True


def site_origin(url: str) -> str:
    """The Origin a browser sends from pages of ``url``: scheme, host, port if not default."""
    parts = urlsplit(url)
    default = {"https": 443, "http": 80}[parts.scheme]
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    port = f":{parts.port}" if parts.port and parts.port != default else ""
    return f"{parts.scheme}://{host}{port}"


async def upgrade_status(url: str, path: str, origin: str, timeout: float) -> tuple[int, str]:
    """Send a WebSocket handshake for ``path`` with ``origin``; ``(status, reason)``.

    A 101 must carry the right ``Sec-WebSocket-Accept`` (else status 0); it is then closed
    with a close frame (1000), so the room is left at once.
    """
    parts = urlsplit(url)
    host, https = parts.hostname, parts.scheme == "https"
    port = parts.port or (443 if https else 80)
    context = unverified_context(["http/1.1"]) if https else None
    reader, writer = await asyncio.wait_for(
        asyncio.open_connection(host, port, ssl=context, server_hostname=host if https else None),
        timeout)
    try:
        key = base64.b64encode(os.urandom(16))
        writer.write(
            b"GET " + path.encode("ascii") + b" HTTP/1.1\r\n"
            b"Host: " + parts.netloc.rsplit("@", 1)[-1].encode("idna") + b"\r\n"
            b"Upgrade: websocket\r\nConnection: Upgrade\r\n"
            b"Sec-WebSocket-Key: " + key + b"\r\nSec-WebSocket-Version: 13\r\n"
            b"Origin: " + origin.encode("ascii") + b"\r\n"
            b"User-Agent: rtcsvc-check\r\n\r\n")
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), timeout)
        status_line, *lines = head.decode("latin-1").split("\r\n")
        _, status, reason = (status_line.split(" ", 2) + ["", ""])[:3]
        if status != "101":
            return int(status) if status.isdigit() else 0, reason
        headers = {}
        for line in lines:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        accept = base64.b64encode(hashlib.sha1(key + _WEBSOCKET_GUID).digest()).decode()
        if headers.get("sec-websocket-accept") != accept:
            return 0, "101 with a wrong Sec-WebSocket-Accept"
        mask = os.urandom(4)
        payload = bytes(b ^ mask[i % 4] for i, b in enumerate((1000).to_bytes(2, "big")))
        writer.write(bytes([0x88, 0x80 | 2]) + mask + payload)
        with contextlib.suppress(Exception):
            await asyncio.wait_for(writer.drain(), timeout)
        return 101, reason
    finally:
        await _close(writer, timeout)


async def websocket_checks(url: str, timeout: float,
                           room_secret: bytes | None = None) -> list[Result]:
    """``websocket``: 101 with the site's Origin; ``websocket-origin``: 403 with a foreign one."""
    parts = urlsplit(url)
    room = f"rtcsvc-check-{secrets.token_hex(6)}"
    host = parts.hostname or ""
    port = parts.port or (443 if parts.scheme == "https" else 80)
    path = f"{parts.path.rstrip('/')}/ws/{room}"
    if room_secret is not None:
        # A closed room (--room-secret-file): come with an invite, as a browser would.
        path += f"?token={mint_room_token(room_secret, room, int(time.time()) + 60)}"
    origin = site_origin(url)
    shown = f"{parts.path.rstrip('/')}/ws/{room}"
    results = []
    started = time.monotonic()
    try:
        status, reason = await upgrade_status(url, path, origin, timeout)
    except Exception as e:
        return [Result("websocket", url, FAIL, describe_connect_error(e, host, port, timeout))]
    seconds = {"seconds": round(time.monotonic() - started, 4)}
    if status == 101:
        results.append(Result("websocket", url, PASS, f"{shown} answered 101 Switching "
                              f"Protocols to the site's own Origin {origin}", seconds))
    elif status == 403:
        results.append(Result("websocket", url, FAIL, f"{shown} refused the site's own Origin "
                              f"{origin} (403): behind a proxy, rtcsvc needs --trusted-proxy "
                              "with the proxy's address and the proxy must send "
                              "X-Forwarded-Proto and the Host browsers use (deploy/README.md); "
                              "or --url is not the address browsers use", seconds))
    elif status == 426:
        results.append(Result("websocket", url, FAIL, f"{shown} answered 426 {reason}: the "
                              "upgrade reached rtcsvc without its Upgrade headers or over "
                              "HTTP/2; the proxy must pass WebSocket upgrades on /ws/ "
                              "(mod_proxy_wstunnel, or upgrade=websocket)", seconds))
    elif status in (502, 503, 504):
        results.append(Result("websocket", url, FAIL, f"{shown} answered {status} {reason}: "
                              "the proxy cannot reach rtcsvc (is it running, on the address "
                              "the proxy forwards to?)", seconds))
    else:
        what = f"{status} {reason}".strip() if status else reason
        results.append(Result("websocket", url, FAIL, f"{shown} answered {what} instead of "
                              "101: the WebSocket upgrade does not get through to rtcsvc (in "
                              "Apache, ProxyPass /ws/ must come before ProxyPass /)", seconds))
    try:
        status, reason = await upgrade_status(url, path, FOREIGN_ORIGIN, timeout)
    except Exception as e:
        results.append(Result("websocket-origin", url, FAIL,
                              describe_connect_error(e, host, port, timeout)))
        return results
    if status == 403:
        results.append(Result("websocket-origin", url, PASS,
                              f"a foreign Origin ({FOREIGN_ORIGIN}) is refused (403)"))
    elif status == 101:
        results.append(Result("websocket-origin", url, FAIL, f"a foreign Origin "
                              f"({FOREIGN_ORIGIN}) was let in (101): any web page could open "
                              "signaling sockets here (check --allowed-origin, and that the "
                              "proxy does not rewrite Origin)"))
    else:
        results.append(Result("websocket-origin", url, FAIL, f"a foreign Origin got "
                              f"{status} {reason} instead of 403"))
    return results
