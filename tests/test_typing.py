"""The package type-checks: ``mypy --strict`` with the zope.interface plugin, as configured in
setup.cfg's ``[mypy]`` section. The rung below the unit tests: it reads every module and runs
none of them."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_rtcsvc_type_checks_under_mypy_strict_with_the_zope_plugin():
    done = subprocess.run([sys.executable, "-m", "mypy", "--config-file", "setup.cfg"],
                          cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
