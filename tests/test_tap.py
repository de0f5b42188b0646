"""``twistd rtcsvc`` options and the service tree they build, without real sockets."""

import pytest
from twisted.application.internet import StreamServerEndpointService
from twisted.internet.testing import MemoryReactorClock
from twisted.plugin import IPlugin, getPlugins
from twisted.python.usage import UsageError

from rtcsvc import tap
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
    (["--turn-url", "turn:x:3478", "--turn-secret-file", "/nonexistent"], "--turn-secret-file"),
    (["--ice-server", "x.example.com"], "--ice-server"),
    (["--allowed-origin", "portal.example.com"], "--allowed-origin"),
    (["--trusted-proxy", "apache"], "--trusted-proxy"),
    (["--static", "/nonexistent"], "--static"),
    (["--listen", ""], "--listen"),
])
def test_a_bad_option_value_stops_with_one_line_naming_the_option(argv, option):
    with pytest.raises(SystemExit) as stopped:
        parse(*argv)
    message = str(stopped.value.code)
    assert option in message and "\n" not in message


def test_a_short_turn_secret_is_refused(tmp_path):
    secret = tmp_path / "secret"
    secret.write_text("short\n")
    with pytest.raises(SystemExit, match="shorter than 16 bytes"):
        parse("--turn-url", "turn:x:3478", "--turn-secret-file", str(secret))


def test_validation_raises_usage_error_for_programmatic_callers():
    options = tap.Options()
    with pytest.raises(UsageError):
        usage_parse = super(tap.Options, options).parseOptions
        usage_parse(["--max-peers", "0"])


def test_the_static_dir_defaults_to_the_app_shipped_with_rtcsvc():
    assert (default_static_dir() / "index.html").is_file()
    assert parse()["static"] == default_static_dir()


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
    with pytest.raises(SystemExit, match="--handshake-rate must be at least 0"):
        parse("--handshake-rate", "-1")
