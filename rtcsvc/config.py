"""The service's settings as one typed, frozen value, and the files they name.

``twistd rtcsvc``'s command line (:mod:`rtcsvc.tap`) becomes a :class:`ServiceConfig`;
``makeService`` builds the service from one, and so may a program that embeds rtcsvc, with no
command line at all. Parsing checks the shape and range of every value and touches no file, so a
config is a plain value that tests can make and compare. What its paths hold (the TURN and room
secrets, Redis's password and CA, the app's directory) is read by :func:`read_files` when the
service is made, and a file that cannot be used stops start-up with a :class:`ConfigError`
naming the option, like any other mistake an operator can make.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from ipaddress import IPv4Network, IPv6Network
from pathlib import Path

from rtcsvc.redis_connection import RedisAddress, RedisUrl
from rtcsvc.turn import DEFAULT_MINTS_PER_HOUR, DEFAULT_TTL
from rtcsvc.turn_watchdog import DEFAULT_INTERVAL as DEFAULT_TURN_CHECK_INTERVAL

Network = IPv4Network | IPv6Network

#: The listeners without ``--listen``: HTTPS on loopback, and plain HTTP that redirects to it.
DEFAULT_HTTPS_PORT = 8443
DEFAULT_HTTP_PORT = 8080
#: Shortest secret accepted for TURN credentials and invite tokens (they are HMAC keys).
MIN_SECRET_BYTES = 16


class ConfigError(Exception):
    """A file named by an option cannot be used; the message names the option, in one line."""


def default_state_dir() -> Path:
    """``$XDG_STATE_HOME/rtcsvc``, else ``~/.local/state/rtcsvc``."""
    base = os.environ.get("XDG_STATE_HOME") or os.path.join(os.path.expanduser("~"),
                                                            ".local", "state")
    return Path(base) / "rtcsvc"


@dataclass(frozen=True)
class ServiceConfig:
    """Every setting of one rtcsvc service; the defaults are those of ``twistd rtcsvc``.

    Field names follow the long options (``--max-peers`` is ``max_peers``); ``--help`` and
    docs/reliability.md say what each one bounds.
    """

    listen: tuple[str, ...] = ()  # empty: the default HTTPS listener and its redirect
    state_dir: Path = field(default_factory=default_state_dir)
    static: Path | None = None  # None: the app installed with rtcsvc
    ice_servers: tuple[str, ...] = ()
    turn_urls: tuple[str, ...] = ()
    turn_secret_file: Path | None = None
    turn_backend: str | None = None
    turn_ttl: int = DEFAULT_TTL
    turn_mint_rate: float = DEFAULT_MINTS_PER_HOUR
    turn_check_interval: float = DEFAULT_TURN_CHECK_INTERVAL
    max_peers: int = 6
    max_message_size: int = 65536
    resume_grace: float = 30.0
    rate_limit: float = 50.0
    rate_burst: int = 300
    max_connections: int = 10000
    max_connections_per_client: int = 200
    handshake_rate: float = 10.0
    max_send_buffer: int = 1 << 20
    ping_interval: float = 20.0
    ping_timeout: float = 10.0
    handshake_timeout: float = 10.0
    idle_timeout: float = 60.0
    room_secret_file: Path | None = None
    redis: RedisUrl | None = None
    allowed_origins: tuple[str, ...] = ()
    trusted_proxies: tuple[Network, ...] = ()
    metrics_allow: tuple[Network, ...] = ()  # empty: loopback only
    session_log: bool = True

    def __post_init__(self) -> None:
        # The one rule between options that a program building a config could break too.
        if bool(self.turn_urls) != (self.turn_secret_file is not None):
            raise ValueError("--turn-url and --turn-secret-file go together")


@dataclass(frozen=True)
class ConfigFiles:
    """What the files a :class:`ServiceConfig` names hold, read once at start-up."""

    static: Path
    turn_secret: bytes | None = field(default=None, repr=False)
    room_secret: bytes | None = field(default=None, repr=False)
    redis: RedisAddress | None = None


def read_files(config: ServiceConfig, installed_static: Path) -> ConfigFiles:
    """Read (or check) every file ``config`` names; raise :class:`ConfigError` for the first
    that cannot be used. ``installed_static`` is the app served without ``--static``."""
    static = installed_static if config.static is None else config.static
    if config.static is not None and not (static / "index.html").is_file():
        raise ConfigError(f"--static {static} has no index.html")
    redis = None
    if config.redis is not None:
        try:
            redis = config.redis.read()
        except ValueError as e:
            raise ConfigError(f"--redis {e}") from None
    return ConfigFiles(
        static=static,
        turn_secret=_read_secret("turn-secret-file", config.turn_secret_file),
        room_secret=_read_secret("room-secret-file", config.room_secret_file),
        redis=redis,
    )


def _read_secret(option: str, path: Path | None) -> bytes | None:
    if path is None:
        return None
    try:
        secret = path.read_bytes().strip()
    except OSError as e:
        raise ConfigError(f"--{option}: cannot read {path}: {e.strerror}") from None
    if len(secret) < MIN_SECRET_BYTES:
        raise ConfigError(f"--{option}: the secret in {path} is shorter than "
                          f"{MIN_SECRET_BYTES} bytes")
    return secret
