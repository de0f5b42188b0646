"""One line of ``rtcsvc-check``'s verdict: what was checked, on which target, and how it went.

Shared by the site checks (``rtcsvc.check_site``), the TURN checks (``rtcsvc.check_turn``), the
command (``rtcsvc.check``) and the service's TURN watchdog, which reads them back from the
command's ``--json`` output. A message says what is wrong in words an operator can act on, and
never holds a secret or a credential.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from typing import Any

PASS, WARN, FAIL = "pass", "warn", "fail"


@dataclass(frozen=True)
class Result:
    #: What was checked, e.g. ``tls``, ``certificate-chain``, ``turn-allocation``.
    check: str
    #: The URL it was checked on (the public URL, a TURN URL or the Redis URL without password).
    target: str
    status: str
    message: str
    #: Numbers worth graphing: ``seconds`` a step took, ``days_left`` on a certificate...
    numbers: dict[str, Any] = field(default_factory=dict)

    def as_json(self) -> dict[str, Any]:
        out = asdict(self)
        out.update(out.pop("numbers"))
        return out


def worst(results: Iterable[Result]) -> str:
    """``fail`` if any failed, else ``warn`` if any warned, else ``pass``."""
    statuses = {result.status for result in results}
    return FAIL if FAIL in statuses else WARN if WARN in statuses else PASS
