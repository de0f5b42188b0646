"""``rtcsvc-check``: is this deployment able to carry calls? One command, a verdict per part.

It takes the service's own options (``twistd rtcsvc``'s, parsed by ``rtcsvc.tap`` through
:func:`service_settings`, the only place that knows that parser) plus ``--url``, the public
address browsers use, and checks, each step bounded by ``--timeout``:

- the site (``rtcsvc.check_site``): TLS with ALPN http/1.1, the certificate's chain, names and
  days left; the WebSocket upgrade through the proxy (101 for the site's Origin, 403 for a
  foreign one);
- each ``--turn-url`` (``rtcsvc.check_turn``): the name, a ``turns:`` certificate, an
  allocation with credentials minted from ``--turn-secret-file``, a relayed round trip;
- Redis, with ``--redis``: a PING (after the login the URL asks for).

One line per check (PASS, WARN or FAIL and what was found, in words), or JSON with ``--json``;
the exit status is for monitoring: 0 all passed, 1 a warning, 2 a failure, 3 a usage error.
It is a plain asyncio program (aioice, the TURN client, is asyncio); the service's TURN
watchdog (``rtcsvc.turn_watchdog``) runs it as a child process with ``--turn-only --json``.
Secrets and minted credentials are never printed.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import ssl
import sys
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from rtcsvc.check_result import FAIL, PASS, WARN, Result, worst
from rtcsvc.check_site import (
    BROWSER_ALPN,
    certificate_checks,
    describe_connect_error,
    websocket_checks,
)

if TYPE_CHECKING:
    from rtcsvc.redis_connection import RedisAddress

EXIT_CODES = {PASS: 0, WARN: 1, FAIL: 2}
EXIT_USAGE = 3
DEFAULT_TIMEOUT = 10.0
DEFAULT_WARN_DAYS = 14


class UsageError(Exception):
    """A bad command line, said in one line."""


@dataclass(frozen=True)
class ServiceSettings:
    """What the checks need from the service's configuration."""

    turn_urls: tuple[str, ...] = ()
    turn_secret: bytes | None = None
    redis: RedisAddress | None = None
    room_secret: bytes | None = None


def service_settings(argv: list[str]) -> ServiceSettings:
    """Parse ``argv`` with the service's own parser and read the files it names, so values
    are checked and files read exactly as ``twistd rtcsvc`` does it."""
    from twisted.python.usage import UsageError as OptionsError

    from rtcsvc.config import ConfigError, read_files
    from rtcsvc.tap import Options
    from rtcsvc.web import default_static_dir

    options = Options()
    try:
        options.parseOptions(argv)
        files = read_files(options.config, default_static_dir())
    except (OptionsError, ConfigError) as e:
        raise UsageError(str(e)) from None
    return ServiceSettings(options.config.turn_urls, files.turn_secret, files.redis,
                           files.room_secret)


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="rtcsvc-check", allow_abbrev=False,
        description="Check an rtcsvc deployment: the public site's TLS and WebSocket upgrade, "
                    "each TURN URL (name, certificate, allocation with the shared secret, a "
                    "relayed round trip) and Redis. Takes every option of 'twistd rtcsvc' "
                    "too (the same command line, e.g. --turn-url, --turn-secret-file, "
                    "--redis) and checks what they configure.",
        epilog="Exit status: 0 all passed, 1 a warning, 2 a failure, 3 a usage error. "
               "docs/operations.md explains each line.")
    p.add_argument("--url", help="the public URL browsers open, e.g. https://chat.example.com")
    p.add_argument("--ca", metavar="FILE",
                   help="trust the CA certificates in this PEM file instead of the system's "
                        "(a private CA, or a self-signed certificate)")
    p.add_argument("--warn-days", type=int, default=DEFAULT_WARN_DAYS, metavar="DAYS",
                   help="warn when a certificate expires within this many days "
                        f"(default {DEFAULT_WARN_DAYS})")
    p.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT, metavar="S",
                   help=f"seconds each step may take (default {DEFAULT_TIMEOUT:g})")
    p.add_argument("--turn-only", action="store_true",
                   help="check only the TURN URLs (what the service's watchdog runs)")
    p.add_argument("--json", action="store_true", help="print one JSON object instead")
    return p


async def redis_check(address: RedisAddress, timeout: float) -> Result:
    """PING, after AUTH when the URL has a password (never shown)."""
    target = str(address)
    context = None
    if address.tls:
        cadata = "".join(pem.decode("ascii") + "\n" for pem in address.trust or ())
        context = ssl.create_default_context(cadata=cadata or None)
    started = time.monotonic()
    try:
        reader, writer = await asyncio.wait_for(asyncio.open_connection(
            address.host, address.port, ssl=context,
            server_hostname=address.host if address.tls else None), timeout)
    except Exception as e:
        return Result("redis", target, FAIL, describe_connect_error(e, address.host,
                                                                    address.port, timeout))
    try:
        if address.password is not None:
            login = [address.username, address.password] if address.username else [
                address.password]
            writer.write(_command("AUTH", *login))
            answer = await asyncio.wait_for(reader.readline(), timeout)
            if not answer.startswith(b"+OK"):
                return Result("redis", target, FAIL, "Redis refused the login: "
                              + _redis_error(answer))
        writer.write(_command("PING"))
        answer = await asyncio.wait_for(reader.readline(), timeout)
    except Exception as e:
        return Result("redis", target, FAIL, describe_connect_error(e, address.host,
                                                                    address.port, timeout))
    finally:
        writer.close()
    took = time.monotonic() - started
    if answer.startswith(b"+PONG"):
        return Result("redis", target, PASS, f"PONG in {took * 1000:.0f} ms",
                      {"seconds": round(took, 4)})
    return Result("redis", target, FAIL, "PING got " + _redis_error(answer))


def _command(*words: str) -> bytes:
    out = [f"*{len(words)}\r\n".encode()]
    for word in words:
        data = word.encode()
        out.append(b"$%d\r\n%s\r\n" % (len(data), data))
    return b"".join(out)


def _redis_error(answer: bytes) -> str:
    text = answer.decode("utf-8", "replace").strip().lstrip("-+")
    return text or "no answer (connection closed)"


async def run_checks(args: argparse.Namespace, settings: ServiceSettings) -> list[Result]:
    from rtcsvc.check_turn import turn_checks

    results: list[Result] = []
    if args.url and not args.turn_only:
        parts = urlsplit(args.url)
        if parts.scheme == "https":
            results += await certificate_checks(
                "", args.url, parts.hostname, parts.port or 443, ca=args.ca,
                warn_days=args.warn_days, timeout=args.timeout, alpn=BROWSER_ALPN)
        else:
            results.append(Result("tls", args.url, WARN, "not an https:// URL: browsers give "
                                  "camera and microphone only to https pages (or localhost)"))
        results += await websocket_checks(args.url, args.timeout, settings.room_secret)
    # The URLs are independent: check them side by side, report them in order.
    secret = settings.turn_secret or b""  # the service's parser pairs it with --turn-url
    for per_url in await asyncio.gather(*(
            turn_checks(url, secret, ca=args.ca, warn_days=args.warn_days,
                        timeout=args.timeout) for url in settings.turn_urls)):
        results += per_url
    if settings.redis is not None and not args.turn_only:
        results.append(await redis_check(settings.redis, args.timeout))
    return results


def render_text(results: list[Result]) -> str:
    lines = [f"{r.status.upper():4}  {r.check}  {r.target}: {r.message}" for r in results]
    verdict = worst(results)
    failed = sum(r.status == FAIL for r in results)
    warned = sum(r.status == WARN for r in results)
    if verdict == FAIL:
        summary = f"FAIL: {failed} of {len(results)} checks failed"
    elif verdict == WARN:
        summary = f"WARN: {warned} of {len(results)} checks warned, none failed"
    else:
        summary = f"PASS: all {len(results)} checks passed"
    return "\n".join(lines + [summary])


def main(argv: list[str] | None = None) -> int:
    args, rest = parser().parse_known_args(argv)
    try:
        if args.timeout <= 0 or args.warn_days < 0:
            raise UsageError("--timeout must be positive and --warn-days not negative")
        if args.url is not None and urlsplit(args.url).scheme not in ("http", "https"):
            raise UsageError(f"--url must be an https:// (or http://) URL, not {args.url!r}")
        settings = service_settings(rest)
        if args.turn_only and not settings.turn_urls:
            raise UsageError("--turn-only needs --turn-url and --turn-secret-file")
        if not (args.url or settings.turn_urls or settings.redis):
            raise UsageError("nothing to check: give --url, --turn-url (with "
                             "--turn-secret-file) or --redis")
    except UsageError as e:
        print(f"rtcsvc-check: error: {e}", file=sys.stderr)
        return EXIT_USAGE
    results = asyncio.run(run_checks(args, settings))
    verdict = worst(results)
    if args.json:
        print(json.dumps({"status": verdict, "checks": [r.as_json() for r in results]},
                         indent=1))
    else:
        print(render_text(results))
    return EXIT_CODES[verdict]


if __name__ == "__main__":
    sys.exit(main())
