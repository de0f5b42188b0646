"""axe-core audits of the screen as it is, for Chromium (Playwright) and Firefox (the Node driver).

The rule (no serious or critical violation) and the failure report are written once here;
``tests.support.browser.audit`` and ``tests.support.firefox.audit`` differ only in how they run a
script in their page, and pass that in. axe-core comes from npm (``npm ci --prefix tests/js``
installs it) and is injected through the browser's automation channel (Playwright's
``page.evaluate``, the Firefox driver's ``run``), which the page's CSP does not govern.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Callable

AXE = Path(__file__).resolve().parents[1] / "js" / "node_modules" / "axe-core" / "axe.min.js"

#: The violations of one axe run, each with its nodes in words.
VIOLATIONS = """async () => {
    const r = await window.axe.run(document, {resultTypes: ['violations']});
    return r.violations.map(v => ({id: v.id, impact: v.impact, help: v.help,
        nodes: v.nodes.map(n => n.target.join(' ') + ': ' + n.failureSummary)}));
}"""


def audit_page(evaluate: Callable[[str], Any], inject: Callable[[str], Any], what: str) -> None:
    """Assert that axe finds no serious or critical violation on the page now.

    ``evaluate(js)`` returns a JS function's value in the page; ``inject(source)`` runs a
    script's source there (axe, once per document).
    """
    assert AXE.exists(), f"axe-core is missing: run `npm ci --prefix tests/js` ({AXE})"
    if not evaluate("() => !!window.axe"):
        inject(AXE.read_text())
    result = evaluate(VIOLATIONS)
    bad = [v for v in result if v["impact"] in ("serious", "critical")]
    assert not bad, f"axe on {what}:\n" + json.dumps(bad, indent=1, ensure_ascii=False)
