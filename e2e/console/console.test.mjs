// The console in a real browser: Debian's headless Chromium driven by playwright-core.
// tests/console.rs starts the cluster (pacer up + the demo manifests) and two consoles,
// then runs this script with:
//   CONSOLE_URL, READONLY_URL  the two consoles (the second --read-only)
//   CONSOLE_TOKEN              the first console's token
//   STATE_DIR                  pacer up's state dir (pids/<node> to kill an agent)
//   EXPECTED                   JSON from `pacer status -o json`: {"nodes": [...], "instances": [...],
//                              "movable": [instances that are not clone instances]}
//   SCREENSHOTS                where to save a screenshot of each page
// It exits non-zero with the failed check's message on the first failure.
import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync, mkdirSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { chromium } from "playwright-core";

const env = (name) => {
  const value = process.env[name];
  if (!value) throw new Error(`${name} is not set (tests/console.rs sets it)`);
  return value;
};
const consoleUrl = env("CONSOLE_URL");
const readOnlyUrl = env("READONLY_URL");
const token = env("CONSOLE_TOKEN");
const stateDir = env("STATE_DIR");
const expected = JSON.parse(env("EXPECTED"));
const screenshots = env("SCREENSHOTS");
mkdirSync(screenshots, { recursive: true });

const profile = mkdtempSync(join(tmpdir(), "pacer-chromium-"));
// A fresh profile each run (playwright passes it as --user-data-dir).
const context = await chromium.launchPersistentContext(profile, {
  executablePath: "/usr/bin/chromium",
  headless: true,
  viewport: { width: 1280, height: 900 },
  args: [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--no-first-run",
  ],
});

const step = (text) => console.log(`console.test: ${text}`);
const failures = [];

try {
  // Script errors and console errors (a content security policy violation is one) on
  // every page this test opens.
  context.on("page", (opened) => watch(opened));
  const watch = (opened) => {
    opened.on("pageerror", (error) => failures.push(`page error: ${error.message}`));
    // Chromium logs every 4xx answer as an error: 403 (the forged action below) and
    // 422 (the refused manifest) are the answers this test asks for.
    const expected = /Failed to load resource: the server responded with a status of (403|422)/;
    opened.on("console", (message) => {
      if (message.type() === "error" && !expected.test(message.text())) failures.push(`console error on ${opened.url()}: ${message.text()}`);
    });
  };
  const page = context.pages()[0] || await context.newPage();
  if (context.pages()[0] === page) watch(page);
  // Every form control of the page has a label.
  const labelled = async (on, name) => {
    const unlabelled = await on.$$eval("input, select, textarea", (controls) =>
      controls.filter((control) => control.type !== "hidden" && control.labels.length === 0 && !control.getAttribute("aria-label")).map((control) => control.id || control.name));
    assert.deepEqual(unlabelled, [], `every form control of ${name} has a label`);
  };

  // 1. The status page lists every node and resource instance of the demo.
  step("status lists every node and resource");
  await page.goto(consoleUrl);
  await page.waitForSelector("#connection[data-state=live]", { timeout: 15000 });
  const nodes = await page.$$eval("#nodes tbody tr", (rows) => rows.map((row) => row.dataset.node));
  assert.deepEqual([...nodes].sort(), [...expected.nodes].sort(), "the nodes shown are pacer status's");
  const instances = await page.$$eval("#resources tbody tr", (rows) => rows.map((row) => row.dataset.instance));
  for (const instance of expected.instances) assert.ok(instances.includes(instance), `resource ${instance} is shown`);
  await page.screenshot({ path: join(screenshots, "status-1280.png"), fullPage: true });

  await labelled(page, "the status page");

  // Everything after this must happen without a reload: a marker on the window survives only then.
  await page.evaluate(() => { window.__noReload = true; });
  // Every state each node had on screen, as the event stream delivered them.
  await page.evaluate(() => {
    window.__seen = {};
    const record = () => {
      for (const row of document.querySelectorAll("#nodes tbody tr")) {
        const states = (window.__seen[row.dataset.node] ||= []);
        if (states[states.length - 1] !== row.dataset.state) states.push(row.dataset.state);
      }
      for (const row of document.querySelectorAll("#fencing tbody tr")) {
        const key = `fencing:${row.dataset.fenced}`;
        const states = (window.__seen[key] ||= []);
        if (states[states.length - 1] !== row.dataset.fencingState) states.push(row.dataset.fencingState);
      }
    };
    record();
    new MutationObserver(record).observe(document.getElementById("status"), { childList: true, subtree: true });
  });

  // 2. Standby on a node: its resources move away, shown without a reload; then unstandby.
  step("standby n1 from the page");
  await page.fill("#token", token);
  await page.click("#token-form button[type=submit]");
  await page.click("#nodes tr[data-node=n1] button[data-action=standby]");
  await page.waitForSelector("#nodes tr[data-node=n1][data-state=standby]", { timeout: 30000 });
  await page.waitForFunction(() => document.querySelectorAll("#resources tr[data-node=n1]").length === 0, null, { timeout: 60000 });
  const logged = await page.textContent("#command-log");
  assert.ok(logged.includes("$ pacer node standby n1"), `the command log shows the command (${logged})`);
  await page.screenshot({ path: join(screenshots, "standby-1280.png"), fullPage: true });
  step("unstandby n1");
  await page.click("#nodes tr[data-node=n1] button[data-action=unstandby]");
  await page.waitForSelector("#nodes tr[data-node=n1][data-state=online]", { timeout: 30000 });

  // A resource's action dialog, and a refused action shown in the log.
  step("a resource's actions");
  const firstResource = await page.getAttribute("#resources tbody tr button[data-open-actions]", "data-open-actions");
  await page.click(`#resources button[data-open-actions="${firstResource}"]`);
  await page.waitForSelector("#resource-dialog[open]");
  await page.screenshot({ path: join(screenshots, "actions-dialog.png") });
  await page.click("#resource-dialog button[value=close]");

  // 3. An agent killed: the node unclean, its fencing, then its resources on the survivors.
  step("kill n2's agent");
  const pid = Number(readFileSync(join(stateDir, "pids", "n2"), "utf8").trim());
  process.kill(pid, "SIGKILL");
  await page.waitForFunction(() => (window.__seen.n2 || []).includes("unclean"), null, { timeout: 60000 });
  await page.waitForFunction(() => (window.__seen["fencing:n2"] || []).length > 0, null, { timeout: 60000 });
  // Every resource that is not a clone instance runs again, on a survivor.
  await page.waitForFunction(
    (movable) => document.querySelectorAll("#resources tr[data-node=n2]").length === 0
      && movable.every((name) => ["n1", "n3"].includes(document.querySelector(`#resources tr[data-instance="${name}"]`)?.dataset.node)),
    expected.movable, { timeout: 90000 });
  await page.screenshot({ path: join(screenshots, "after-fencing-1280.png"), fullPage: true });
  const seen = await page.evaluate(() => window.__seen);
  step(`states seen: ${JSON.stringify(seen)}`);
  assert.equal(await page.evaluate(() => window.__noReload), true, "the page was never reloaded");

  // 4. Phone width: nothing wider than the screen but the tables' own scrolling.
  step("phone width");
  await page.setViewportSize({ width: 390, height: 844 });
  const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
  assert.ok(overflow <= 0, `the page fits a 390 px screen (overflows by ${overflow} px)`);
  await page.screenshot({ path: join(screenshots, "status-390.png"), fullPage: true });

  // 5. The read-only console: no action at all, and a forged action is refused.
  step("read-only console");
  const readOnly = await context.newPage();
  await readOnly.goto(readOnlyUrl);
  await readOnly.waitForSelector("#connection[data-state=live]", { timeout: 15000 });
  assert.equal(await readOnly.locator("button[data-action], button[data-open-actions], #token-form, #resource-dialog").count(), 0, "a read-only console shows no action");
  const forged = await readOnly.evaluate(async (token) => {
    const response = await fetch("/api/action", { method: "POST", headers: { "Content-Type": "application/json", Authorization: `Bearer ${token}` }, body: JSON.stringify({ verb: "standby", node: "n1" }) });
    return response.status;
  }, token);
  assert.equal(forged, 403, "a read-only console refuses an action with 403");
  await readOnly.screenshot({ path: join(screenshots, "read-only-1280.png"), fullPage: true });

  // 6. The other pages, in a page of their own (the status page above is never left).
  const pages = await context.newPage();

  step("sandbox: a node failure, simulated");
  await pages.goto(`${consoleUrl}sandbox`);
  await labelled(pages, "the sandbox");
  await pages.check("input[name=nodeFail][value=n3]");
  await pages.click("#simulate");
  await pages.waitForSelector("#simulation");
  assert.notEqual(await pages.getAttribute("#revised-nodes tr[data-node=n3]", "data-state"), "online", "n3 is lost in the simulation");
  assert.ok(await pages.locator("#transition li").count() > 0, "the simulation shows what would move");
  await pages.screenshot({ path: join(screenshots, "sandbox-1280.png"), fullPage: true });
  const live = await (await fetch(`${consoleUrl}api/status`)).json();
  assert.equal(live.status.nodes.find((node) => node.name === "n3").state, "online", "the sandbox changed nothing: n3 is online");

  step("history: a decision replayed");
  await pages.goto(`${consoleUrl}history`);
  await labelled(pages, "the history");
  await pages.click("#decisions tbody tr:first-child a[href$=replay]");
  await pages.waitForSelector("#replay-verdict");
  assert.equal(await pages.getAttribute("#replay-verdict", "data-matches"), "true", "the replay decides the same");
  await pages.goto(`${consoleUrl}history`);
  await pages.screenshot({ path: join(screenshots, "history-1280.png"), fullPage: true });

  step("why: a resource's scores");
  await pages.goto(consoleUrl);
  await pages.click(`#resources a[href="/why/${expected.movable[0]}"]`);
  await pages.waitForSelector("#why section.instance");
  await pages.screenshot({ path: join(screenshots, "why-1280.png"), fullPage: true });

  step("configuration: the picture, and a bad manifest's problems in the page");
  await pages.goto(`${consoleUrl}config`);
  await labelled(pages, "the configuration");
  assert.ok(await pages.evaluate(() => document.getElementById("graph").naturalWidth > 0), "the picture is drawn");
  await pages.fill("#change-manifests", "apiVersion: pacer.io/v1alpha1\nkind: Resource\nmetadata: {name: broken}\nspec:\n  agent: ocf:heartbeat:Dummy\n  stickiness: lots\n");
  await pages.click("#diff-button");
  await pages.waitForSelector("#change-result .diagnostics");
  const problem = await pages.textContent("#change-result .diagnostics");
  assert.match(problem, /manifests:\d+/, `the problem names the line: ${problem}`);
  assert.match(problem, /Resource\/broken/, `the problem names the object: ${problem}`);
  await pages.screenshot({ path: join(screenshots, "config-1280.png"), fullPage: true });

  assert.deepEqual(failures, [], "no script errors in the pages");
  step("all checks passed");
} finally {
  await context.close();
  rmSync(profile, { recursive: true, force: true });
}
