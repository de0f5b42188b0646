"""The real ``twistd -n rtcsvc``: a mistake at start-up is one line and a non-zero status;
a good start says where to open the app."""

import subprocess

import pytest

from tests.support.service import ROOT, TWISTD, RtcsvcProcess

pytestmark = pytest.mark.slow


def twistd(*args, cwd=ROOT):
    done = subprocess.run([str(TWISTD), "-n", "--pidfile=", "rtcsvc", *args], cwd=cwd,
                          stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=60)
    return done.returncode, done.stdout + done.stderr


def errors(output: str) -> list[str]:
    assert "Traceback" not in output, output
    return [line for line in output.splitlines() if "twistd rtcsvc: error:" in line]


def test_starting_a_second_rtcsvc_on_the_same_port_fails_with_one_line(rtcsvc, tmp_path):
    first = rtcsvc(tls=True)
    status, output = twistd("--listen", f"ssl:{first.port}:interface=127.0.0.1",
                            "--state-dir", str(tmp_path / "second"))
    assert status != 0
    [line] = errors(output)
    assert f"--listen ssl:{first.port}:interface=127.0.0.1: the port is already in use" in line
    assert first.get("/healthz")  # the first one is unharmed


def test_a_port_out_of_range_fails_with_one_line(tmp_path):
    status, output = twistd("--listen", "tcp:99999", "--state-dir", str(tmp_path))
    assert status != 0
    [line] = errors(output)
    assert "--listen tcp:99999: the port is out of range" in line


def test_a_state_dir_that_is_not_a_directory_fails_with_one_line(tmp_path):
    (tmp_path / "state").write_text("")
    status, output = twistd("--listen", "ssl:0:interface=127.0.0.1",
                            "--state-dir", str(tmp_path / "state"))
    assert status != 0
    [line] = errors(output)
    assert "--state-dir" in line and "is not a directory" in line


def test_an_unreadable_certificate_fails_with_one_line(tmp_path):
    status, output = twistd("--listen", f"ssl:0:privateKey={tmp_path}/k.pem:certKey={tmp_path}/c.pem")
    assert status != 0
    [line] = errors(output)
    assert "cannot read" in line and "No such file or directory" in line


def test_a_bad_option_value_fails_with_one_line_and_no_page_of_help(tmp_path):
    status, output = twistd("--max-peers", "1", "--state-dir", str(tmp_path))
    assert status != 0
    [line] = errors(output)
    assert line.endswith("twistd rtcsvc: error: --max-peers must be from 2 to 64, not 1")
    assert "--max-message-size" not in output  # twistd's help is not printed above it


def test_a_secret_file_that_cannot_be_read_fails_with_one_line(tmp_path):
    status, output = twistd("--turn-url", "turn:127.0.0.1:3478", "--turn-secret-file",
                            str(tmp_path / "absent"), "--state-dir", str(tmp_path))
    assert status != 0
    [line] = errors(output)
    assert f"--turn-secret-file: cannot read {tmp_path}/absent: No such file" in line


def test_a_started_service_logs_the_url_of_each_listener(tmp_path):
    service = RtcsvcProcess.start(tmp_path, tls=True)
    try:
        log = service.log()
    finally:
        service.stop()
    assert f"Serving the app at https://localhost:{service.port}/" in log
