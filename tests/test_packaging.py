"""An installed rtcsvc works outside the source tree: the wheel carries the app and the plugin."""

import subprocess
import sys
import zipfile

import pytest

from tests.support.service import ROOT

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def wheel(tmp_path_factory):
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
                    "-q", "-w", str(out), str(ROOT)], check=True, timeout=300,
                   capture_output=True)
    (path,) = out.glob("rtcsvc-*.whl")
    return zipfile.ZipFile(path)


def test_the_wheel_carries_every_file_of_the_web_app(wheel):
    shipped = {name.split("/data/share/rtcsvc/static/", 1)[1]
               for name in wheel.namelist() if "/data/share/rtcsvc/static/" in name}
    in_tree = {str(p.relative_to(ROOT / "static")) for p in (ROOT / "static").rglob("*")
               if p.is_file()}
    assert in_tree and shipped == in_tree


def test_the_wheel_carries_the_twistd_plugin_and_no_plugins_package_init(wheel):
    names = set(wheel.namelist())
    assert "twisted/plugins/rtcsvc_plugin.py" in names
    assert "twisted/plugins/__init__.py" not in names and "twisted/__init__.py" not in names
