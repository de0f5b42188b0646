import pytest

from tests.support.service import RtcsvcProcess


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
