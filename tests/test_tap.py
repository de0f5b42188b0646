"""``twistd rtcsvc`` options and the service tree they build, without real sockets."""

import dataclasses
from pathlib import Path

import pytest
from twisted.application.app import ServerOptions
from twisted.application.internet import StreamServerEndpointService
from twisted.internet.testing import MemoryReactorClock
from twisted.plugin import IPlugin, getPlugins
from twisted.python.usage import UsageError

from rtcsvc import tap
from rtcsvc.config import ServiceConfig, default_state_dir, read_files
from rtcsvc.protocol import SignalingFactory
from rtcsvc.web import default_static_dir


def parse(*argv):
    options = tap.Options()
    options.parseOptions(list(argv))
    return options


def listened(service, reactor):
    service.startService()
    return [(port, factory.__class__.__name__) for port, factory, _, _ in reactor.tcpServers] + \
        [(port, "ssl") for port, *_ in reactor.sslServers]


def test_twistd_finds_the_rtcsvc_plugin():
    names = [p.tapname for p in getPlugins(IPlugin) if hasattr(p, "tapname")]
    assert "rtcsvc" in names


def test_defaults_serve_https_8443_and_redirect_http_8080_on_loopback(tmp_path):
    reactor = MemoryReactorClock()
    service = tap.makeService(parse("--state-dir", str(tmp_path)), reactor)
    service.startService()
    tcp = {(port, interface) for port, _, _, interface in reactor.tcpServers}
    ssl = {(port, interface) for port, _, _, _, interface in reactor.sslServers}
    assert tcp == {(8080, "127.0.0.1")}
    assert ssl == {(8443, "127.0.0.1")}
    assert (tmp_path / "tls-key.pem").exists()
    service.stopService()


def test_listen_replaces_the_defaults_with_exactly_those_listeners(tmp_path):
    reactor = MemoryReactorClock()
    service = tap.makeService(parse("--state-dir", str(tmp_path),
                                    "--listen", "tcp:9001:interface=127.0.0.1",
                                    "--listen", "tcp:9002:interface=127.0.0.1"), reactor)
    service.startService()
    assert sorted(port for port, *_ in reactor.tcpServers) == [9001, 9002]
    assert reactor.sslServers == []
    # Both serve the whole site (pages and signaling on one port), not the redirect.
    factories = [factory for _, factory, _, _ in reactor.tcpServers]
    assert {type(factory.site.resource).__name__ for factory in factories} == {"SecurityHeaders"}
    assert all(factory.site.resource._root.children.get(b"ws") is not None
               for factory in factories)
    assert all(isinstance(factory.signaling, SignalingFactory) for factory in factories)
    assert all(isinstance(s, StreamServerEndpointService) for s in list(service)[:2])
    service.stopService()


def test_session_lines_are_logged_unless_no_session_log_is_given(tmp_path):
    for argv, logged in (((), True), (("--no-session-log",), False)):
        reactor = MemoryReactorClock()
        service = tap.makeService(parse("--state-dir", str(tmp_path),
                                        "--listen", "tcp:9001:interface=127.0.0.1", *argv),
                                  reactor)
        service.startService()
        [(_, factory, _, _)] = reactor.tcpServers
        assert factory.signaling.log_sessions is logged
        service.stopService()


def test_an_ssl_listener_without_a_key_uses_the_generated_certificate(tmp_path):
    reactor = MemoryReactorClock()
    service = tap.makeService(parse("--state-dir", str(tmp_path / "s"),
                                    "--listen", "ssl:9443:interface=127.0.0.1"), reactor)
    service.startService()
    assert [port for port, *_ in reactor.sslServers] == [9443]
    assert (tmp_path / "s" / "tls-cert.pem").exists()
    service.stopService()


@pytest.mark.parametrize("argv, option", [
    (["--max-peers", "1"], "--max-peers"),
    (["--max-peers", "lots"], "--max-peers"),
    (["--max-message-size", "10"], "--max-message-size"),
    (["--resume-grace", "-1"], "--resume-grace"),
    (["--turn-ttl", "5"], "--turn-ttl"),
    (["--turn-url", "http://x"], "--turn-url"),
    (["--turn-url", "turn:x:3478"], "--turn-secret-file"),
    (["--ice-server", "x.example.com"], "--ice-server"),
    (["--allowed-origin", "portal.example.com"], "--allowed-origin"),
    (["--trusted-proxy", "apache"], "--trusted-proxy"),
    (["--redis", "http://127.0.0.1/0"], "--redis"),
    (["--listen", ""], "--listen"),
])
def test_a_bad_option_value_raises_a_usage_error_of_one_line_naming_the_option(argv, option):
    with pytest.raises(UsageError) as bad:
        parse(*argv)
    message = str(bad.value)
    assert option in message and "\n" not in message
    assert "Parameter type enforcement" not in message


def test_on_twistds_command_line_a_bad_value_stops_with_that_one_line():
    # twistd would print its whole help above a UsageError; as its subcommand, one line.
    options = tap.Options()
    options.parent = ServerOptions()
    with pytest.raises(SystemExit) as stopped:
        options.parseOptions(["--max-peers", "1"])
    assert stopped.value.code == "twistd rtcsvc: error: --max-peers must be from 2 to 64, not 1"


def test_the_command_line_becomes_a_frozen_config_with_the_same_defaults():
    config = parse().config
    assert config == ServiceConfig(state_dir=default_state_dir())
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.max_peers = 60  # type: ignore[misc]


def test_every_option_reaches_the_config():
    config = parse("--listen", "tcp:9001", "--max-peers", "4", "--turn-url", "turn:t:3478",
                   "--turn-secret-file", "/etc/rtcsvc/turn", "--trusted-proxy", "10.0.0.0/8",
                   "--redis", "rediss://u@r.example:6380/2?password-file=/pw",
                   "--no-session-log", "--handshake-rate", "2.5").config
    assert config.listen == ("tcp:9001",)
    assert config.max_peers == 4
    assert config.turn_urls == ("turn:t:3478",)
    assert config.turn_secret_file == Path("/etc/rtcsvc/turn")
    assert [str(n) for n in config.trusted_proxies] == ["10.0.0.0/8"]
    assert config.redis is not None and config.redis.password_file == "/pw"
    assert (config.redis.host, config.redis.port, config.redis.db) == ("r.example", 6380, 2)
    assert config.session_log is False
    assert config.handshake_rate == 2.5


@pytest.mark.parametrize("argv, line", [
    (["--turn-url", "turn:x:3478", "--turn-secret-file", "/nonexistent"],
     "--turn-secret-file: cannot read /nonexistent: No such file or directory"),
    (["--room-secret-file", "/nonexistent"],
     "--room-secret-file: cannot read /nonexistent: No such file or directory"),
    (["--static", "/nonexistent"], "--static /nonexistent has no index.html"),
    (["--redis", "rediss://127.0.0.1/0?ca=/nonexistent/ca.pem"],
     "--redis ca: cannot read /nonexistent/ca.pem: No such file or directory"),
])
def test_parsing_reads_no_file_and_making_the_service_stops_on_one_it_cannot_use(
        argv, line, tmp_path):
    options = parse("--state-dir", str(tmp_path), *argv)  # parses: files are not read yet
    with pytest.raises(SystemExit) as stopped:
        tap.makeService(options, MemoryReactorClock())
    assert stopped.value.code == f"twistd rtcsvc: error: {line}"


def test_a_short_turn_secret_is_refused(tmp_path):
    secret = tmp_path / "secret"
    secret.write_text("short\n")
    options = parse("--turn-url", "turn:x:3478", "--turn-secret-file", str(secret))
    with pytest.raises(SystemExit, match="shorter than 16 bytes"):
        tap.makeService(options, MemoryReactorClock())


def test_a_program_makes_the_service_from_a_config_without_a_command_line(tmp_path):
    reactor = MemoryReactorClock()
    config = ServiceConfig(listen=("tcp:9007:interface=127.0.0.1",), state_dir=tmp_path,
                           max_peers=3)
    service = tap.makeService(config, reactor)
    service.startService()
    try:
        [(port, factory, _, _)] = reactor.tcpServers
        assert port == 9007 and factory.signaling.hub.max_peers == 3
    finally:
        service.stopService()


def test_turn_urls_and_their_secret_go_together_in_a_config_too():
    with pytest.raises(ValueError, match="--turn-url and --turn-secret-file go together"):
        ServiceConfig(turn_urls=("turn:x:3478",))


def test_the_help_gives_each_option_one_line_without_rewriting_the_handlers():
    options = tap.Options()
    assert "  " not in options.docs["listen"] and "\n" not in options.docs["listen"]
    assert "tcp:8080:interface=127.0.0.1 or ssl:443" in options.docs["listen"]
    assert "\n" in tap.Options.opt_listen.__doc__  # the method's own docstring is untouched


def test_the_static_dir_defaults_to_the_app_shipped_with_rtcsvc():
    assert (default_static_dir() / "index.html").is_file()
    assert parse().config.static is None
    assert read_files(ServiceConfig(), default_static_dir()).static == default_static_dir()


def test_the_running_service_collects_cycles_in_larger_batches_and_restores_the_setting(tmp_path):
    import gc

    before = gc.get_threshold()
    service = tap.makeService(parse("--state-dir", str(tmp_path),
                                    "--listen", "tcp:9005:interface=127.0.0.1"),
                              MemoryReactorClock())
    service.startService()
    try:
        assert gc.get_threshold() == tap.GC_THRESHOLD
    finally:
        service.stopService()
    assert gc.get_threshold() == before


def test_handshake_rate_reaches_the_factory_and_zero_turns_it_off(tmp_path):
    def factory(*argv):
        reactor = MemoryReactorClock()
        tap.makeService(parse("--state-dir", str(tmp_path), "--listen", "tcp:8080", *argv),
                        reactor).startService()
        return reactor.tcpServers[0][1].signaling

    assert factory().limits.handshake_rate == 10.0
    assert factory("--handshake-rate", "2.5").admission.handshakes.rate == 2.5
    assert factory("--handshake-rate", "0").admission.handshakes is None
    with pytest.raises(UsageError, match="--handshake-rate must be at least 0"):
        parse("--handshake-rate", "-1")
