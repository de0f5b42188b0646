// Drives Debian's Firefox ESR for the Python browser tests (tests/support/firefox.py), over
// WebDriver BiDi with puppeteer-core (npm; it downloads no browser: the executable is given).
//
// Protocol: one JSON object per line. Requests on stdin, {"id", "op", ...}; one answer per
// request on stdout, {"id", "ok": true, "value"} or {"id", "ok": false, "error"}. The first
// line written is {"ready": true, "pid", "version"} once Firefox runs; stdin closing (or
// {"op": "quit"}) closes Firefox and ends the driver. Logs go to stderr.
//
// Elements are found as a person finds them: a chain of steps, each looked for inside the
// elements the step before found: {role, name} (Firefox's own accessibility tree, exact
// accessible name), {text} (visible text containing it), or {css} for the few places that
// have no role. Waits poll every 100 ms up to the request's timeout (ms); nothing waits forever.

import readline from "node:readline";
import puppeteer from "puppeteer-core";

const args = JSON.parse(process.argv[2] || "{}");
const log = (...a) => process.stderr.write(`firefox-driver: ${a.join(" ")}\n`);

const browser = await puppeteer.launch({
  browser: "firefox",
  executablePath: args.executable || "/usr/bin/firefox-esr",
  headless: args.headless !== false,
  acceptInsecureCerts: true,
  protocolTimeout: 60_000,
  args: args.args || [],
  extraPrefsFirefox: {
    // A fake camera and microphone, no permission prompts (getDisplayMedia then shares the
    // primary monitor), media that plays without a click.
    "media.navigator.streams.fake": true,
    "media.navigator.permission.disabled": true,
    "media.autoplay.default": 0,
    "media.autoplay.blocking_policy": 0,
    "media.autoplay.block-webaudio": false,
    // No "Pop out this video" button over a video the pointer happens to rest on.
    "media.videocontrols.picture-in-picture.video-toggle.enabled": false,
    // Keep timers running in pages that are not in front.
    "dom.min_background_timeout_value": 4,
    "dom.timeout.enable_budget_timer_throttling": false,
    ...(args.prefs || {}),
  },
});

const pages = new Map(); // page id -> {page, context}
let nextPage = 1;

function pageOf(req) {
  const entry = pages.get(req.page);
  if (!entry) throw new Error(`no page ${req.page}`);
  return entry.page;
}

const cssString = (s) => JSON.stringify(String(s));

// Firefox computes ARIA 1.3's "image" where ARIA 1.2 (and Playwright) say "img".
const ROLE_ALIASES = { img: ["img", "image"] };

/** The selectors (any of which may match) for one step. */
function selectorsOf(step) {
  if (step.role !== undefined || step.name !== undefined) {
    const roles = step.role === undefined ? [undefined] : ROLE_ALIASES[step.role] || [step.role];
    return roles.map((role) => {
      const parts = [];
      if (step.name !== undefined) parts.push(`[name=${cssString(step.name)}]`);
      if (role !== undefined) parts.push(`[role=${cssString(role)}]`);
      return `::-p-aria(${parts.join("")})`;
    });
  }
  if (step.text !== undefined) return [`::-p-text(${cssString(step.text)})`];
  if (step.css !== undefined) return [step.css];
  throw new Error(`bad step ${JSON.stringify(step)}`);
}

/** Every element matching the chain of steps (visible ones only where `visible`). */
async function findAll(page, steps, { visible = true } = {}) {
  let roots = [page];
  for (const [i, step] of steps.entries()) {
    const found = [];
    for (const root of roots) {
      const matches = [];
      for (const selector of selectorsOf(step)) matches.push(...(await root.$$(selector)));
      for (const el of matches) {
        const last = i === steps.length - 1;
        if ((!last || visible) && !(await el.isVisible().catch(() => false))) continue;
        found.push(el);
      }
    }
    roots = found;
    if (!roots.length) break;
  }
  return roots;
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const describe = (steps) => steps.map((s) => JSON.stringify(s)).join(" > ");

async function poll(what, timeout, probe) {
  const deadline = Date.now() + (timeout ?? 15_000);
  for (;;) {
    const value = await probe();
    if (value) return value;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeout} ms: ${what}`);
    await sleep(100);
  }
}

/** The one visible element the steps name (the first, when several match). */
async function one(page, req) {
  return poll(`a visible ${describe(req.steps)}`, req.timeout, async () => (await findAll(page, req.steps))[0]);
}

const ops = {
  async newPage(req) {
    const context = await browser.createBrowserContext();
    const page = await context.newPage();
    if (req.viewport) await page.setViewport(req.viewport);
    const id = nextPage++;
    const console = [];
    page.on("console", (m) => console.push(`${m.type()}: ${m.text()}`));
    page.on("pageerror", (e) => console.push(`pageerror: ${e.message}`));
    pages.set(id, { page, context, console });
    return id;
  },
  /** A script run in every document the page loads from now on, before the app's own. */
  async addInitScript(req) {
    await pageOf(req).evaluateOnNewDocument(req.source);
    return null;
  },
  async closePage(req) {
    const entry = pages.get(req.page);
    if (!entry) return null;
    pages.delete(req.page);
    await entry.context.close();
    return null;
  },
  async console(req) {
    return pages.get(req.page).console;
  },
  async goto(req) {
    await pageOf(req).goto(req.url, { waitUntil: "load", timeout: req.timeout ?? 30_000 });
    return null;
  },
  async url(req) {
    return pageOf(req).url();
  },
  async click(req) {
    const el = await one(pageOf(req), req);
    await el.click();
    return null;
  },
  async fill(req) {
    const page = pageOf(req);
    const el = await one(page, req);
    // Select what is there and type over it, as a person does.
    await el.click({ count: 3 });
    await page.keyboard.press("Backspace");
    await el.type(req.value);
    return null;
  },
  async press(req) {
    const el = await one(pageOf(req), req);
    await el.press(req.key);
    return null;
  },
  async value(req) {
    const el = await one(pageOf(req), req);
    return el.evaluate((e) => e.value);
  },
  async text(req) {
    const el = await one(pageOf(req), req);
    return el.evaluate((e) => e.innerText);
  },
  /** Wait until `count` visible elements match (at least one when count is absent). */
  async expectVisible(req) {
    const page = pageOf(req);
    return poll(`${req.count ?? "a"} visible ${describe(req.steps)}`, req.timeout, async () => {
      const n = (await findAll(page, req.steps)).length;
      return req.count === undefined ? n > 0 && n : n === req.count && { n };
    }).then((r) => (typeof r === "object" ? r.n : r));
  },
  async expectHidden(req) {
    const page = pageOf(req);
    await poll(`no visible ${describe(req.steps)}`, req.timeout, async () => (await findAll(page, req.steps)).length === 0);
    return null;
  },
  async box(req) {
    const el = await one(pageOf(req), req);
    return el.boundingBox();
  },
  /** Run `fn` (a function's source) in the page with `arg`; its (awaited) JSON result. */
  async evaluate(req) {
    const page = pageOf(req);
    // The app's CSP has no 'unsafe-eval'; BiDi's script.callFunction is not governed by it.
    return page.evaluate(`(${req.fn})(${JSON.stringify(req.arg ?? null)})`);
  },
  /** Run a script's source in the page (e.g. axe-core), not governed by the page's CSP. */
  async run(req) {
    await pageOf(req).evaluate(req.source);
    return null;
  },
  async screenshot(req) {
    await pageOf(req).screenshot({ path: req.path, fullPage: !!req.fullPage });
    return req.path;
  },
  /** Drop files made in the page (`make`: a function returning a DataTransfer) on an element. */
  async drop(req) {
    const page = pageOf(req);
    const target = await one(page, req);
    // Built here and sent over BiDi (script.callFunction): the page's CSP forbids eval there.
    // eslint-disable-next-line no-new-func
    const dropOn = new Function("el", "arg", `return (async () => {
      const dt = await (${req.make})(arg);
      for (const type of ["dragenter", "dragover", "drop"]) {
        el.dispatchEvent(new DragEvent(type, { bubbles: true, cancelable: true, dataTransfer: dt }));
      }
    })();`);
    await target.evaluate(dropOn, req.arg ?? null);
    return null;
  },
  async setOffline(req) {
    await pageOf(req).setOfflineMode(!!req.offline);
    return null;
  },
};

const proc = browser.process();
process.stdout.write(`${JSON.stringify({ ready: true, pid: proc ? proc.pid : null, version: await browser.version() })}\n`);

let quitting = false;
async function quit() {
  if (quitting) return;
  quitting = true;
  try {
    await Promise.race([browser.close(), sleep(10_000)]);
  } finally {
    process.exit(0);
  }
}

const rl = readline.createInterface({ input: process.stdin });
// One request at a time, in order: the tests are sequential, and so are people.
let chain = Promise.resolve();
rl.on("line", (line) => {
  if (!line.trim()) return;
  chain = chain.then(async () => {
    let req;
    try {
      req = JSON.parse(line);
      if (req.op === "quit") return quit();
      const op = ops[req.op];
      if (!op) throw new Error(`unknown op ${req.op}`);
      const t0 = Date.now();
      const value = await op(req);
      log(`${req.op} ${req.steps ? describe(req.steps) : ""} ${Date.now() - t0} ms`);
      process.stdout.write(`${JSON.stringify({ id: req.id, ok: true, value: value ?? null })}\n`);
    } catch (err) {
      let error = String((err && err.message) || err);
      // What the person had on screen when it went wrong.
      const entry = req && pages.get(req.page);
      if (entry) {
        const screen = await entry.page.evaluate("document.body.innerText").catch(() => "<unavailable>");
        error += `\nscreen text: ${JSON.stringify(String(screen).slice(0, 1200))}`;
      }
      process.stdout.write(`${JSON.stringify({ id: req && req.id, ok: false, error })}\n`);
    }
  });
});
rl.on("close", () => chain.then(quit));
