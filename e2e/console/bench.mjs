// The console's page, measured in headless Chromium (benches/console.rs runs it):
//   node bench.mjs URL TOKEN LOADS ROUNDS
// - LOADS fresh page loads: navigation to the HTML's arrival, DOMContentLoaded, the
//   first contentful paint, and "live" (the event stream's first frame on screen);
//   then the page's JS heap and DOM nodes (Chrome's Performance.getMetrics).
// - ROUNDS status changes: standby (then unstandby) of the last node, asked of the
//   console's API by this script; from the request until the row's new state is on
//   screen (a MutationObserver in the page stamps it), and until the API answered.
// Prints one JSON object. Figures only.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { chromium } from "playwright-core";

const [url, token, loads, rounds] = [process.argv[2], process.argv[3], Number(process.argv[4] || 5), Number(process.argv[5] || 10)];
const profile = mkdtempSync(join(tmpdir(), "pacer-bench-"));
const context = await chromium.launchPersistentContext(profile, {
  executablePath: "/usr/bin/chromium",
  headless: true,
  viewport: { width: 1280, height: 900 },
  args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--disable-background-networking", "--disable-component-update", "--disable-sync", "--no-first-run"],
});
const result = { loads: [], latency: [] };
try {
  for (let load = 0; load < loads; load++) {
    const page = await context.newPage();
    const started = Date.now();
    await page.goto(url, { waitUntil: "domcontentloaded", timeout: 120000 });
    await page.waitForSelector("#connection[data-state=live]", { timeout: 120000 });
    const live = Date.now() - started;
    const timing = await page.evaluate(() => {
      const navigation = performance.getEntriesByType("navigation")[0];
      const paint = performance.getEntriesByName("first-contentful-paint")[0];
      return { responseEnd: navigation.responseEnd, domContentLoaded: navigation.domContentLoadedEventEnd, firstContentfulPaint: paint ? paint.startTime : null, bytes: navigation.transferSize };
    });
    const session = await context.newCDPSession(page);
    await session.send("Performance.enable");
    const { metrics } = await session.send("Performance.getMetrics");
    const metric = (name) => metrics.find((entry) => entry.name === name)?.value;
    result.loads.push({ ...timing, live, jsHeapUsed: metric("JSHeapUsedSize"), domNodes: metric("Nodes"), rows: await page.locator("#resources tbody tr").count() });
    await page.close();
  }

  const page = await context.newPage();
  await page.goto(url, { waitUntil: "domcontentloaded", timeout: 120000 });
  await page.waitForSelector("#connection[data-state=live]", { timeout: 120000 });
  const node = await page.evaluate(() => [...document.querySelectorAll("#nodes tbody tr")].pop().dataset.node);
  await page.evaluate((node) => {
    window.__changes = [];
    let last = document.querySelector(`#nodes tr[data-node="${node}"]`)?.dataset.state;
    new MutationObserver(() => {
      const state = document.querySelector(`#nodes tr[data-node="${node}"]`)?.dataset.state;
      if (state !== last) { window.__changes.push({ state, at: Date.now() }); last = state; }
    }).observe(document.getElementById("status"), { childList: true, subtree: true });
  }, node);
  for (let round = 0; round < rounds * 2; round++) {
    const verb = round % 2 === 0 ? "standby" : "unstandby";
    const want = verb === "standby" ? "standby" : "online";
    const seen = await page.evaluate(() => window.__changes.length);
    const asked = Date.now();
    const response = await fetch(`${url}api/action`, { method: "POST", headers: { "Content-Type": "application/json", Authorization: `Bearer ${token}` }, body: JSON.stringify({ verb, node }) });
    const answered = Date.now();
    if (!response.ok) throw new Error(`${verb} ${node}: HTTP ${response.status} ${await response.text()}`);
    await page.waitForFunction(([seen, want]) => window.__changes.slice(seen).some((change) => change.state === want), [seen, want], { timeout: 60000 });
    const shown = await page.evaluate(([seen, want]) => window.__changes.slice(seen).find((change) => change.state === want).at, [seen, want]);
    result.latency.push({ verb, toScreen: shown - asked, toAnswer: answered - asked });
    await new Promise((resolve) => setTimeout(resolve, 300));
  }
} finally {
  await context.close();
  rmSync(profile, { recursive: true, force: true });
}
console.log(JSON.stringify(result));
