"""Start-up mistakes a sysadmin can make stop rtcsvc with one line naming the option.

The pure rungs: ``rtcsvc.startup`` with endpoints that fail, and ``makeService`` against a
``MemoryReactor`` with bad state directories and key files. The real process is
``tests/test_startup_process.py``.
"""

import errno

import pytest
from twisted.internet import defer
from twisted.internet.error import CannotListenError
from twisted.internet.testing import MemoryReactorClock
from twisted.logger import LogLevel, capturedLogs

from rtcsvc import tap
from rtcsvc.startup import ListenerService, StartupError, bind_failure, public_url


class RefusingEndpoint:
    def __init__(self, error):
        self.error = error

    def listen(self, factory):
        return defer.fail(self.error)


class ListeningEndpoint:
    class Port:
        class Address:
            host, port = "127.0.0.1", 8443

        def getHost(self):
            return self.Address()

        def stopListening(self):
            return None

    def listen(self, factory):
        return defer.succeed(self.Port())


def one_line(stopped: SystemExit) -> str:
    message = str(stopped.code)
    assert "\n" not in message and "Traceback" not in message
    return message


@pytest.mark.parametrize("error, words", [
    (CannotListenError("127.0.0.1", 8443, OSError(errno.EADDRINUSE, "Address already in use")),
     "already in use"),
    (CannotListenError("0.0.0.0", 443, OSError(errno.EACCES, "Permission denied")),
     "ports below 1024 need root"),
    (CannotListenError("192.0.2.1", 80, OSError(errno.EADDRNOTAVAIL, "Cannot assign")),
     "no such address"),
    (OverflowError("bind(): port must be 0-65535."), "out of range"),
])
def test_a_port_that_cannot_listen_stops_start_up_with_one_line_naming_the_listener(error, words):
    listener = ListenerService(RefusingEndpoint(error), None, "--listen tcp:8443", "http")
    with pytest.raises(StartupError) as stopped:
        listener.privilegedStartService()
    message = one_line(stopped.value)
    assert message.startswith("twistd rtcsvc: error: --listen tcp:8443: ")
    assert words in message


def test_an_unexpected_listen_failure_is_not_disguised_as_a_mistake():
    listener = ListenerService(RefusingEndpoint(ZeroDivisionError()), None, "--listen x", "http")
    with pytest.raises(ZeroDivisionError):
        listener.privilegedStartService()


def test_a_listening_port_logs_the_url_to_open():
    listener = ListenerService(ListeningEndpoint(), None, "--listen ssl:8443", "https")
    with capturedLogs() as events:
        listener.privilegedStartService()
    lines = [e for e in events if e.get("log_namespace") == "rtcsvc.startup"]
    assert len(lines) == 1 and lines[0]["log_level"] == LogLevel.info
    assert lines[0]["url"] == "https://localhost:8443/"


@pytest.mark.parametrize("scheme, host, port, url", [
    ("https", "127.0.0.1", 8443, "https://localhost:8443/"),
    ("https", "::1", 443, "https://localhost/"),
    ("http", "192.0.2.7", 80, "http://192.0.2.7/"),
    ("http", "2001:db8::1", 8080, "http://[2001:db8::1]:8080/"),
])
def test_the_url_logged_for_a_port_is_the_one_a_person_types(scheme, host, port, url):
    assert public_url(scheme, host, port) == url


def test_bind_failure_without_a_known_errno_still_says_the_system_reason():
    error = CannotListenError("h", 1, OSError(errno.ENOBUFS, "No buffer space available"))
    assert bind_failure(error) == "No buffer space available"


def make(*argv):
    options = tap.Options()
    options.parseOptions(list(argv))
    return tap.makeService(options, MemoryReactorClock())


def test_a_state_dir_that_is_a_file_stops_with_one_line_naming_the_option(tmp_path):
    not_a_dir = tmp_path / "state"
    not_a_dir.write_text("")
    with pytest.raises(SystemExit) as stopped:
        make("--state-dir", str(not_a_dir))
    message = one_line(stopped.value)
    assert message.endswith(f"--state-dir {not_a_dir}: {not_a_dir} is not a directory")


def test_a_state_dir_that_cannot_be_created_stops_with_one_line_naming_the_option(tmp_path):
    (tmp_path / "file").write_text("")
    with pytest.raises(SystemExit) as stopped:
        make("--state-dir", str(tmp_path / "file" / "rtcsvc"))
    message = one_line(stopped.value)
    assert "--state-dir" in message and "Not a directory" in message


def test_a_damaged_certificate_in_the_state_dir_says_which_file_and_what_to_do(tmp_path):
    make("--state-dir", str(tmp_path))  # makes the key and certificate
    (tmp_path / "tls-cert.pem").write_text("not a certificate\n")
    with pytest.raises(SystemExit) as stopped:
        make("--state-dir", str(tmp_path))
    message = one_line(stopped.value)
    assert "tls-cert.pem is not a PEM certificate" in message and "delete it" in message


def test_a_missing_key_file_stops_with_one_line_naming_the_listener(tmp_path):
    listen = f"ssl:8443:privateKey={tmp_path}/absent.key:certKey={tmp_path}/absent.pem"
    with pytest.raises(SystemExit) as stopped:
        make("--listen", listen)
    message = one_line(stopped.value)
    assert f"--listen {listen}: cannot read" in message and "No such file" in message


def test_a_key_file_that_is_not_pem_stops_with_one_line_naming_the_listener(tmp_path):
    junk = tmp_path / "junk.pem"
    junk.write_text("hello\n")
    with pytest.raises(SystemExit) as stopped:
        make("--listen", f"ssl:8443:privateKey={junk}:certKey={junk}")
    assert "not valid PEM" in one_line(stopped.value)


def test_an_unknown_endpoint_type_stops_with_one_line_naming_the_listener(tmp_path):
    with pytest.raises(SystemExit) as stopped:
        make("--state-dir", str(tmp_path), "--listen", "tpc:8080")
    assert "--listen tpc:8080: Unknown endpoint type" in one_line(stopped.value)
