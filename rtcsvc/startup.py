"""Starting up: one readable line for each mistake a sysadmin can make, and where the app is.

twistd prints a traceback for any exception raised while it builds or starts a service. For a
port that is already taken (the likeliest mistake: starting rtcsvc twice), a port out of range,
a state directory rtcsvc cannot write or a key file it cannot read, those 30-40 lines hide one
fact. Here such failures become a :class:`StartupError`: a ``SystemExit`` whose message is that
fact, naming the option, so twistd stops with status 1 and the one line. Anything else still
gets its traceback: it is a bug, not a mistake.

Once a port listens, the log says which URL it serves, so the first thing a person reads after
``script/run`` is where to point the browser.
"""

from __future__ import annotations

import errno
import socket

from twisted.application.internet import StreamServerEndpointService
from twisted.internet.error import CannotListenError
from twisted.internet.interfaces import IListeningPort, IProtocolFactory, IStreamServerEndpoint
from twisted.logger import Logger

_log = Logger()

#: Why a bind fails, in the words a sysadmin needs (errno -> advice).
_BIND_ERRORS: dict[int | None, str] = {  # keyed by OSError.errno, which may be None
    errno.EADDRINUSE: "the port is already in use (is rtcsvc or another server running on it?)",
    errno.EACCES: "permission denied (ports below 1024 need root; twistd's --uid/--gid drop it "
                  "after binding)",
    errno.EADDRNOTAVAIL: "this machine has no such address",
}


class StartupError(SystemExit):
    """Stops twistd with one line on stderr and a non-zero status."""

    def __init__(self, message: str):
        super().__init__(f"twistd rtcsvc: error: {message}")


def bind_failure(error: BaseException) -> str:
    """Why a listening port could not be opened, in one line."""
    if isinstance(error, CannotListenError):
        cause = error.socketError
        if isinstance(cause, OSError) and cause.errno in _BIND_ERRORS:
            return _BIND_ERRORS[cause.errno]
        if isinstance(cause, OverflowError):
            return "the port is out of range (0-65535)"
        return str(getattr(cause, "strerror", None) or cause)
    if isinstance(error, OverflowError):
        return "the port is out of range (0-65535)"
    if isinstance(error, OSError):
        return _BIND_ERRORS.get(error.errno) or error.strerror or str(error)
    return str(error)


def public_url(scheme: str, host: str, port: int) -> str:
    """The URL a person would type for a port listening on ``host``."""
    if host in ("127.0.0.1", "::1", "localhost"):
        name = "localhost"  # the name the generated certificate carries
    elif host in ("0.0.0.0", "::", ""):
        name = socket.gethostname()
    elif ":" in host:
        name = f"[{host}]"
    else:
        name = host
    default = {"https": 443, "http": 80}[scheme]
    return f"{scheme}://{name}{'' if port == default else f':{port}'}/"


class ListenerService(StreamServerEndpointService):
    """A listening port that fails to start with one line, and logs its URL once it listens.

    ``option`` is the command-line spelling of this listener (``--listen tcp:8080``), so the
    error names what to change. ``scheme`` is what a browser uses to reach it; ``role`` says
    what it serves, for the start-up line.
    """

    def __init__(self, endpoint: IStreamServerEndpoint, factory: IProtocolFactory, option: str,
                 scheme: str, role: str = "the app"):
        super().__init__(endpoint, factory)  # type: ignore[no-untyped-call]
        self._option = option
        self._scheme = scheme
        self._role = role

    def privilegedStartService(self) -> None:
        self._raiseSynchronously = True
        try:
            super().privilegedStartService()  # type: ignore[no-untyped-call]
        except (CannotListenError, OverflowError, OSError) as e:
            raise StartupError(f"{self._option}: {bind_failure(e)}") from None
        # Twisted declares it None until listening starts; the call above has just started it.
        self._waitingForPort.addCallback(self._announce)  # type: ignore[union-attr]

    def _announce(self, port: IListeningPort) -> IListeningPort:
        address = port.getHost()
        url = public_url(self._scheme, getattr(address, "host", ""), getattr(address, "port", 0))
        _log.info("Serving {role} at {url} (listening on {option})", role=self._role, url=url,
                  option=self._option.removeprefix("--listen "))
        return port
