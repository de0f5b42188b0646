"""requirements.lock pins every dependency setup.cfg names, within setup.cfg's lower bounds.

The lock is what script/run, script/test and deploy/README.md install (script/refresh-lock
rewrites it after the suite passed on the newest releases); setup.cfg says what rtcsvc works
with at least. The two must agree, or a fresh install would take an untested version.
"""

import configparser
import re

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

from tests.support.service import ROOT


def locked() -> dict[str, Version]:
    pins = {}
    for line in (ROOT / "requirements.lock").read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        name, _, version = line.partition("==")
        assert version and re.fullmatch(r"[\w.+!-]+", version), f"not an exact pin: {line!r}"
        pins[canonicalize_name(name)] = Version(version)
    return pins


def declared() -> list[Requirement]:
    config = configparser.ConfigParser()
    config.read(ROOT / "setup.cfg")
    lines = config["options"]["install_requires"].splitlines()
    for extra in config["options.extras_require"].values():
        lines += extra.splitlines()
    return [Requirement(line) for line in lines if line.strip()]


def test_every_dependency_in_setup_cfg_is_pinned_in_the_lock_within_its_bounds():
    pins = locked()
    for requirement in declared():
        name = canonicalize_name(requirement.name)
        assert name in pins, f"{requirement.name} is not in requirements.lock"
        assert requirement.specifier.contains(pins[name], prereleases=True), \
            f"requirements.lock pins {name}=={pins[name]}, outside setup.cfg's {requirement}"


def test_the_lock_pins_each_package_once():
    names = [canonicalize_name(line.split("==")[0])
             for line in (ROOT / "requirements.lock").read_text().splitlines()
             if line.strip() and not line.startswith("#")]
    assert len(names) == len(set(names))
