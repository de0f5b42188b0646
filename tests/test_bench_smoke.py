"""The shared yardstick's protocol-v1 conformance check (``smoke.js``) against the real rtcsvc.

``../shared/bench/smoke.js`` is what the benchmark's reference relays (ref-node, ref-py) pass;
running it against ``twistd -n rtcsvc`` shows the benchmark compares relays that speak the same
protocol. Needs node and npm (its only dependency, ``ws``, is installed into a temporary copy).
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.support.service import ROOT, RtcsvcProcess

SHARED = Path(os.environ.get("RTCSVC_YARDSTICK", ROOT.parent / "shared" / "bench"))
MAX_PEERS = 6

pytestmark = [
    pytest.mark.slow,
]


@pytest.fixture(scope="module")
def smoke_js(tmp_path_factory) -> Path:
    """smoke.js in a writable copy with its npm dependencies installed."""
    where = tmp_path_factory.mktemp("yardstick")
    for name in ("smoke.js", "package.json", "package-lock.json"):
        shutil.copy(SHARED / name, where / name)
    subprocess.run(["npm", "ci", "--no-audit", "--no-fund"], cwd=where, check=True,
                   capture_output=True, timeout=300)
    return where / "smoke.js"


def _benchmark_args() -> list[str]:
    # smoke.js sends 200 signals in one burst, past the default --rate-burst.
    return ["--max-peers", str(MAX_PEERS), "--rate-limit", "0"]


def test_rtcsvc_passes_the_yardstick_conformance_check(smoke_js, tmp_path):
    """All 17 checks of smoke.js pass against a real ``twistd -n rtcsvc``, as for the references."""
    service = RtcsvcProcess.start(tmp_path / "svc", _benchmark_args())
    try:
        done = subprocess.run(
            ["node", str(smoke_js), service.ws_url, "--max-peers", str(MAX_PEERS)],
            cwd=smoke_js.parent, capture_output=True, text=True, timeout=120)
    finally:
        service.stop()
    report = done.stdout + done.stderr
    assert done.returncode == 0, report
    assert "17 passed, 0 failed" in report, report
