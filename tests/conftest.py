import dataclasses

import pytest
import pytest_twisted
from twisted.internet import reactor

from rtcsvc.tap import Options, makeService
from tests.support.redis import RedisServer
from tests.support.service import RtcsvcProcess, free_port


@pytest.fixture
def rtcsvc(tmp_path):
    """Start real ``twistd -n rtcsvc`` processes: ``rtcsvc(args=[...], tls=False)``.

    Every process started through the fixture is stopped by PID at teardown, pass or fail.
    """
    started = []

    def start(args=(), **kwargs):
        service = RtcsvcProcess.start(tmp_path / f"svc{len(started)}", args, **kwargs)
        started.append(service)
        return service

    yield start
    for service in started:
        service.stop()


@pytest.fixture
def redis(tmp_path):
    """A real redis-server on a free loopback port, stopped by PID at teardown."""
    server = RedisServer.start(tmp_path / "redis")
    yield server
    server.stop()


@pytest.fixture
def make_server(tmp_path):
    """``make_server(*argv, **config_overrides)`` -> base URL of a running in-process service.

    ``config_overrides`` replace fields of the parsed ServiceConfig, past the command line's
    bounds (``turn_ttl=2`` makes a credential refresh happen within a test)."""
    services = []

    def make(*argv, **overrides):
        port = free_port()
        options = Options()
        options.parseOptions(["--listen", f"tcp:{port}:interface=127.0.0.1",
                              "--state-dir", str(tmp_path / "state"), *argv])
        service = makeService(dataclasses.replace(options.config, **overrides), reactor)
        service.startService()
        services.append(service)
        return f"127.0.0.1:{port}"

    yield make
    for service in services:
        pytest_twisted.blockon(service.stopService())
