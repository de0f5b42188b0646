"""The TURN checks of ``rtcsvc-check`` (and so of the service's TURN watchdog), one URL at a time.

For each ``--turn-url``: its name resolves; for ``turns:`` the relay's certificate is checked as
a browser checks it (``rtcsvc.check_site.certificate_checks``: chain, name, dates); an
allocation succeeds with credentials minted from the configured secret exactly as the service
mints them (``rtcsvc.turn.mint_turn_credentials``); and two allocations relay datagrams to each
other. The TURN client is aioice's (a maintained implementation independent of coturn), driven
over the URL's own transport. The allocation step takes any certificate: the certificate lines
already judge it, so a wrong secret is still named as such behind a broken certificate.

coturn answers a credential signed with another secret with 401 and nothing more, which is why
the message for a 401 says what it almost always means. Credentials are never printed.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs

from aioice import stun
from aioice.turn import create_turn_endpoint

from rtcsvc.check_result import FAIL, PASS, WARN, Result
from rtcsvc.check_site import certificate_checks, describe_connect_error, unverified_context
from rtcsvc.turn import mint_turn_credentials

#: Lifetime of the credentials a check mints: short, and still tolerant of some clock skew.
CHECK_TTL = 600
#: The "peer id" part of the username, so coturn's log tells checks from calls.
CHECK_PEER = "rtcsvc-check"


@dataclass(frozen=True)
class TurnServer:
    url: str
    tls: bool
    host: str
    port: int
    transport: str


def parse_turn_url(url: str) -> TurnServer:
    """``turn[s]:host[:port][?transport=udp|tcp]`` (RFC 7065); ValueError says what is wrong."""
    scheme, _, rest = url.partition(":")
    if scheme not in ("turn", "turns"):
        raise ValueError("not a turn: or turns: URL")
    tls = scheme == "turns"
    where, _, query = rest.partition("?")
    if where.startswith("["):
        host, _, after = where[1:].partition("]")
        port = after[1:] if after.startswith(":") else ""
    else:
        host, _, port = where.partition(":")
    if not host:
        raise ValueError("no host")
    if port and not port.isdigit():
        raise ValueError(f"bad port {port!r}")
    transport = parse_qs(query).get("transport", ["tcp" if tls else "udp"])[0].lower()
    if transport not in ("udp", "tcp") or tls and transport != "tcp":
        raise ValueError(f"transport={transport} (turn: takes udp or tcp, turns: tcp)")
    return TurnServer(url, tls, host, int(port) if port else 5349 if tls else 3478, transport)


class _Inbox(asyncio.DatagramProtocol):
    """What one allocation received, and the relay's refusals (e.g. 403 to a denied peer)."""

    def __init__(self) -> None:
        self.received: asyncio.Queue[tuple[bytes, Any]] = asyncio.Queue()
        self.errors: list[Exception] = []
        self.closed: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def datagram_received(self, data: bytes, addr: Any) -> None:
        self.received.put_nowait((data, addr))

    def error_received(self, exc: Exception) -> None:
        self.errors.append(exc)

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.closed.done():
            self.closed.set_result(None)


def describe_turn_error(error: BaseException, server: TurnServer, timeout: float) -> str:
    where = f"{server.host}:{server.port}"
    if isinstance(error, stun.TransactionFailed):
        code, reason = error.response.attributes.get("ERROR-CODE", (0, "no error code"))
        if code == 401:
            return ("coturn refused the credentials minted with the configured secret (401 "
                    "Unauthorized): the secret in --turn-secret-file does not match coturn's "
                    "static-auth-secret (or this host's clock and coturn's differ by more than "
                    f"{CHECK_TTL // 60} minutes)")
        if code == 403:
            return (f"coturn forbids this allocation (403 {reason}): this client's address is "
                    "denied, or the transport is switched off in turnserver.conf")
        if code == 486:
            return (f"coturn refused: allocation quota reached (486 {reason}): user-quota per "
                    "credential or total-quota is exhausted")
        if code == 508:
            return (f"coturn is out of relay ports (508 {reason}): widen min-port/max-port or "
                    "raise total-quota")
        return f"coturn refused the allocation ({code} {reason})"
    if isinstance(error, (asyncio.TimeoutError, TimeoutError, stun.TransactionTimeout)):
        if server.transport == "udp":
            return (f"no TURN answer from {where} over UDP within {timeout:g} s: nothing "
                    "listens there (coturn down or on another port), or UDP is blocked on the way")
        return (f"no TURN answer from {where} over {'TLS' if server.tls else 'TCP'} within "
                f"{timeout:g} s (is it coturn listening there?)")
    if isinstance(error, ConnectionRefusedError):
        return (f"connection refused: nothing listens on {where} "
                f"({'TLS' if server.tls else server.transport.upper()}); is coturn running?")
    if isinstance(error, ConnectionError) or isinstance(error, OSError) and not error.errno:
        return (f"{where} closed the connection during the allocation ({error or 'EOF'}): not "
                "a TURN server there, or it refused TLS")
    return describe_connect_error(error, server.host, server.port, timeout)


async def _allocate(server: TurnServer, address: str, username: str, password: str,
                    timeout: float) -> tuple[Any, _Inbox]:
    # For turns: connect by name, so the ClientHello carries SNI as a browser's does.
    target = (server.host if server.tls else address, server.port)
    return await asyncio.wait_for(
        create_turn_endpoint(_Inbox, target, username=username, password=password,
                             transport=server.transport,
                             ssl=unverified_context() if server.tls else None),
        timeout)


async def _release(relays: list[tuple[Any, _Inbox]], timeout: float) -> None:
    for relay, _ in relays:
        relay.close()
    # Wait for the deallocations, so coturn frees them now rather than at their expiry.
    closing = [inbox.closed for _, inbox in relays]
    if closing:
        await asyncio.wait(closing, timeout=timeout)


async def resolve(server: TurnServer, timeout: float) -> list[str]:
    kind = socket.SOCK_DGRAM if server.transport == "udp" else socket.SOCK_STREAM
    infos = await asyncio.wait_for(
        asyncio.get_running_loop().getaddrinfo(server.host, server.port, type=kind), timeout)
    addresses = list(dict.fromkeys(str(info[4][0]) for info in infos))
    # aioice relays within its socket's address family; IPv4 first, as the TURN hosts' A record.
    return sorted(addresses, key=lambda a: ":" in a)


async def turn_checks(url: str, secret: bytes, *, ca: str | None, warn_days: int,
                      timeout: float) -> list[Result]:
    """All the checks of one TURN URL, in order; a failed step skips the ones needing it."""
    try:
        server = parse_turn_url(url)
    except ValueError as e:
        return [Result("turn-url", url, FAIL, f"cannot read this TURN URL: {e}")]
    try:
        addresses = await resolve(server, timeout)
    except Exception as e:
        if isinstance(e, socket.gaierror):
            message = f"the name {server.host} does not resolve ({e.strerror})"
        else:
            message = describe_connect_error(e, server.host, server.port, timeout)
        return [Result("turn-resolve", url, FAIL, message)]
    results = []
    literal = _is_ip(server.host)
    if server.tls and literal:
        results.append(Result("turn-resolve", url, WARN, f"{server.host} is an IP address: "
                              "browsers want a host name in a turns: URL, on the certificate"))
    elif literal:
        results.append(Result("turn-resolve", url, PASS, f"{server.host} is an IP address "
                              "(no name to resolve)"))
    else:
        results.append(Result("turn-resolve", url, PASS, f"{server.host} is "
                              f"{', '.join(addresses)}"))
    if server.tls:
        handshake, *certificate = await certificate_checks(
            "turn-", url, server.host, server.port, ca=ca, warn_days=warn_days, timeout=timeout)
        results += [handshake, *certificate]
        if handshake.status == FAIL:  # no TLS at all: an allocation would only repeat it
            return results
    username, password = mint_turn_credentials(secret, CHECK_PEER, time.time(), CHECK_TTL)
    relays: list[tuple[Any, _Inbox]] = []
    try:
        started = time.monotonic()
        try:
            relays.append(await _allocate(server, addresses[0], username, password, timeout))
        except Exception as e:
            results.append(Result("turn-allocation", url, FAIL,
                                  describe_turn_error(e, server, timeout)))
            return results
        took = time.monotonic() - started
        relayed = relays[0][0].get_extra_info("sockname")
        results.append(Result("turn-allocation", url, PASS, f"allocated relay address "
                              f"{relayed[0]}:{relayed[1]} in {took * 1000:.0f} ms",
                              {"seconds": round(took, 4)}))
        try:
            relays.append(await _allocate(server, addresses[0], username, password, timeout))
        except Exception as e:
            results.append(Result("turn-relay", url, FAIL, "a second allocation failed: "
                                  + describe_turn_error(e, server, timeout)))
            return results
        results.append(await _round_trip(url, relays, timeout))
        return results
    finally:
        await _release(relays, timeout)


async def _round_trip(url: str, relays: list[tuple[Any, _Inbox]], timeout: float) -> Result:
    """Both allocations send to each other (each send installs the permission the other's
    datagrams need) until each has received one."""
    (a, a_in), (b, b_in) = relays
    a_address, b_address = a.get_extra_info("sockname"), b.get_extra_info("sockname")
    loop = asyncio.get_running_loop()
    started = loop.time()
    got = {}
    while loop.time() - started < timeout:
        if "b" not in got:
            a.sendto(b"rtcsvc-check a", b_address)
        if "a" not in got:
            b.sendto(b"rtcsvc-check b", a_address)
        for name, inbox in (("a", a_in), ("b", b_in)):
            if name not in got:
                try:
                    await asyncio.wait_for(inbox.received.get(), 0.25)
                    got[name] = loop.time() - started
                except asyncio.TimeoutError:
                    pass
        if len(got) == 2:
            took = max(got.values())
            return Result("turn-relay", url, PASS, f"two allocations exchanged datagrams "
                          f"through the relay in {took * 1000:.0f} ms", {"seconds": round(took, 4)})
    refusals = [e for inbox in (a_in, b_in) for e in inbox.errors
                if isinstance(e, stun.TransactionFailed)]
    if refusals:
        code, reason = refusals[0].response.attributes.get("ERROR-CODE", (0, ""))
        return Result("turn-relay", url, FAIL, f"coturn refused to relay between two of its "
                      f"own relay addresses ({code} {reason}): its denied-peer-ip must not "
                      "cover the relay address (relayed calls meet there)")
    return Result("turn-relay", url, FAIL, f"no datagram crossed between two allocations "
                  f"within {timeout:g} s: the relay ports (min-port..max-port) may be blocked")


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True
