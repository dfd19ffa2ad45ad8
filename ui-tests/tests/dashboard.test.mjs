// The dashboard in a real browser: the charts (SVG drawn by the server, with accessible
// names and their numbers as tables), the per-rule and per-reviewer tables, the
// rubber-stamp warning, what a reviewer sees of others, and axe-core's checks. Screenshots
// go to target/ui-artifacts.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import AxeBuilder from "@axe-core/playwright";
import { startServer, launchBrowser, signIn, screenshot } from "./harness.mjs";

let server;
let browser;

before(async () => {
  // Every approval in this test comes within seconds: at these thresholds (70% approvals,
  // most of them within a minute, from two decisions on), rita is a rubber stamp.
  server = await startServer(
    "[stats]\nrubber_stamp_min_decisions = 2\nrubber_stamp_approval_rate = 0.7\nfast_approval_seconds = 60\n",
  );
  browser = await launchBrowser();
  const decide = async (id, body) => {
    const response = await fetch(`${server.base}/v1/actions/${id}/decisions`, {
      method: "POST",
      headers: { "Authorization": "Bearer " + server.ritaToken, "Content-Type": "application/json" },
      body: JSON.stringify(body),
    });
    assert.equal(response.status, 200, await response.text());
  };
  for (const [amount, body] of [
    [2500, { verdict: "approve" }],
    [3000, { verdict: "approve" }],
    [4000, { verdict: "modify", args: { amount: 400 }, reason: "one item, not ten" }],
    [5000, { verdict: "reject", reason: "refunded by the bank already" }],
  ]) {
    const submitted = await server.submit({ action: "refund.create", args: { amount }, reasoning: "charged twice" });
    await decide(submitted.id, body);
  }
  await server.submit({ action: "refund.create", args: { amount: 20 } });
  await server.submit({ action: "order.get", args: { id: 1 } });
});

after(async () => {
  await browser?.close();
  await server?.stop();
});

async function noSeriousViolations(page, what) {
  const results = await new AxeBuilder({ page }).analyze();
  const serious = results.violations.filter((v) => v.impact === "serious" || v.impact === "critical");
  assert.deepEqual(
    serious.map((v) => `${v.id}: ${v.help} (${v.nodes.map((n) => n.target.join(" ")).join(", ")})`),
    [],
    `${what} has no serious or critical accessibility violation`,
  );
}

test("an admin sees charts, the tables and who looks like a rubber stamp", async () => {
  const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
  const page = await context.newPage();
  await signIn(page, server.base, "ada");
  await page.click("nav[aria-label=Main] >> text=Dashboard");
  await page.waitForURL(/\/dashboard/);
  // Three charts, each an image with a name, drawn without a script or another origin.
  const charts = page.locator("svg[role=img]");
  assert.equal(await charts.count(), 3);
  for (const name of ["Actions submitted", "Outcomes of actions that needed a person", "Review latency"]) {
    await page.getByRole("img", { name: new RegExp(name) }).waitFor();
  }
  assert.ok(await page.locator("#rates path").count() >= 1);
  // Today's figures: 6 actions, 3 of the 4 decided ones approved (one with changes).
  const glance = await page.locator(".headlines").innerText();
  assert.match(glance, /Actions\s+6/);
  assert.match(glance, /Approved\s+75%/);
  assert.match(glance, /Modified\s+25%/);
  const rules = await page.locator("#rules").innerText();
  assert.match(rules, /large refunds\s+4\s+3\s+1\s+1\s+0\s+0\s+75%\s+25%\s+25%\s+0%/);
  assert.match(rules, /small refunds\s+1/);
  const reviewers = page.locator("#reviewers tbody tr");
  assert.equal(await reviewers.count(), 1);
  assert.match(await reviewers.first().innerText(), /rita\s+4\s+75%/);
  assert.equal(await page.locator("#reviewers tr.rubber-stamp").count(), 1);
  const warnings = await page.locator(".warnings").innerText();
  assert.match(warnings, /rita approved 75% of 4 decisions/, warnings);
  // The numbers behind a chart, as a table.
  await page.locator("#rates summary").click();
  assert.match(await page.locator("#rates table").innerText(), /Approved/);
  await noSeriousViolations(page, "the dashboard");
  await screenshot(page, "dashboard");
  // Other ranges: hours over two days, a quarter by day.
  await page.click(".ranges >> text=48 hours");
  await page.waitForURL(/range=2d/);
  assert.equal(await page.locator("svg[role=img]").count(), 3);
  await page.goto(server.base + "/dashboard?range=1y");
  assert.match(await page.locator("main").innerText(), /2d, 14d or 90d/);
  await context.close();
});

test("a reviewer sees the figures and only their own row; a phone gets the same page", async () => {
  const context = await browser.newContext({ viewport: { width: 390, height: 844 }, isMobile: true, hasTouch: true });
  const page = await context.newPage();
  await signIn(page, server.base, "sam");
  await page.goto(server.base + "/dashboard");
  await page.getByText("other reviewers' are for administrators").waitFor();
  // sam decided nothing: no row, and nobody else's.
  assert.equal(await page.locator("#reviewers").count(), 0);
  assert.equal(await page.locator(".warnings").count(), 0);
  assert.equal(await page.locator("svg[role=img]").count(), 3);
  await noSeriousViolations(page, "the dashboard on a phone");
  await screenshot(page, "dashboard-phone");
  await context.close();
});
