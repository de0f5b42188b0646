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

#: Waits (3 s at most) until no finite CSS transition or animation runs: a toast fading out is
#: half transparent for a moment, and axe would measure its contrast mid-fade. Endless ones (a
#: pulsing indicator) are what the screen looks like at rest, and are not waited for.
AT_REST = """async () => {
    const deadline = performance.now() + 3000;
    const moving = () => document.getAnimations().filter(a => a.playState === 'running'
        && Number.isFinite(a.effect ? a.effect.getComputedTiming().endTime : Infinity));
    while (moving().length && performance.now() < deadline) {
        await new Promise(resolve => setTimeout(resolve, 50));
    }
}"""

#: The violations of one axe run, each with its nodes in words.
VIOLATIONS = """async () => {
    const r = await window.axe.run(document, {resultTypes: ['violations']});
    return r.violations.map(v => ({id: v.id, impact: v.impact, help: v.help,
        nodes: v.nodes.map(n => n.target.join(' ') + ': ' + n.failureSummary)}));
}"""


def audit_page(evaluate: Callable[[str], Any], inject: Callable[[str], Any], what: str) -> None:
    """Assert that axe finds no serious or critical violation on the page, once at rest.

    ``evaluate(js)`` returns a JS function's value in the page; ``inject(source)`` runs a
    script's source there (axe, once per document).
    """
    assert AXE.exists(), f"axe-core is missing: run `npm ci --prefix tests/js` ({AXE})"
    if not evaluate("() => !!window.axe"):
        inject(AXE.read_text())
    evaluate(AT_REST)
    result = evaluate(VIOLATIONS)
    bad = [v for v in result if v["impact"] in ("serious", "critical")]
    assert not bad, f"axe on {what}:\n" + json.dumps(bad, indent=1, ensure_ascii=False)
