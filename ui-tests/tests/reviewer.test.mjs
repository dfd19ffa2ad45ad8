// The reviewer web UI in a real browser: sign-in and out, live updates, one-click approval
// waking a waiting agent, reject with a reason, modify with the editor and its diff, a
// two-person confirm, shortcuts, CSRF refusal, re-authentication, session expiry, the phone
// viewport, and axe-core accessibility checks. Screenshots go to target/ui-artifacts.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import AxeBuilder from "@axe-core/playwright";
import { startServer, launchBrowser, signIn, screenshot, PASSWORD } from "./harness.mjs";

let server;
let browser;

before(async () => {
  server = await startServer();
  browser = await launchBrowser();
});

after(async () => {
  await browser?.close();
  await server?.stop();
});

async function newPage(options = {}) {
  const context = await browser.newContext({ viewport: { width: 1280, height: 860 }, ...options });
  const page = await context.newPage();
  return { context, page };
}

async function noSeriousViolations(page, what) {
  const results = await new AxeBuilder({ page }).analyze();
  const serious = results.violations.filter((v) => v.impact === "serious" || v.impact === "critical");
  assert.deepEqual(
    serious.map((v) => `${v.id}: ${v.help} (${v.nodes.map((n) => n.target.join(" ")).join(", ")})`),
    [],
    `${what} has no serious or critical accessibility violation`,
  );
}

test("sign in, see the queue live, approve with one click: the waiting agent returns", async () => {
  const { context, page } = await newPage();
  await page.goto(server.base + "/queue");
  await page.waitForURL(/\/sign-in/);
  await noSeriousViolations(page, "the sign-in page");
  await page.fill("#name", "rita");
  await page.fill("#password", "wrong password!");
  await page.click("button[type=submit]");
  await page.getByText("The name or the password is wrong.").waitFor();
  await page.fill("#password", PASSWORD);
  await Promise.all([page.waitForURL(/\/queue/), page.click("button[type=submit]")]);
  await page.locator("#live").getByText("Updates live").waitFor();

  // Submitted while the page is open: it appears without a reload.
  const submitted = await server.submit({
    action: "refund.create",
    args: { amount: 2500, currency: "USD", order: "A-1" },
    reasoning: "Customer was charged twice for order A-1",
    context: { customer: { id: "c_9", tier: "gold" } },
    confidence: 0.62,
  });
  const row = page.locator(`.row[data-id="${submitted.id}"]`);
  await row.waitFor({ timeout: 10000 });
  assert.match(await row.innerText(), /amount=2500/);
  await noSeriousViolations(page, "the queue");

  // The agent waits (long-poll) while the person decides.
  const waiting = server.action(submitted.id, 30);
  await row.locator("a").click();
  await page.waitForURL(new RegExp(`/actions/${submitted.id}`));
  await page.getByText("Customer was charged twice").waitFor();
  await noSeriousViolations(page, "the action page");
  await page.click("#approve-form button[type=submit]");
  const decided = await waiting;
  assert.equal(decided.status, "approved");
  assert.equal(decided.decisions[0].reviewer, "rita");
  await context.close();
});

test("reject asks for a reason, which the agent receives", async () => {
  const { context, page } = await newPage();
  await signIn(page, server.base, "rita");
  const submitted = await server.submit({ action: "email.send", args: { to: "all@example.com", subject: "Sale!" } });
  await page.goto(`${server.base}/actions/${submitted.id}`);
  // The browser itself refuses an empty reason (required), and so does the server.
  await page.click("#reject-form button[type=submit]");
  assert.equal(await page.locator("#reason").evaluate((el) => el.validity.valueMissing), true);
  await page.fill("#reason", "Never mail everyone");
  await page.click("#reject-form button[type=submit]");
  await page.waitForURL(/decided=/);
  const seen = await server.action(submitted.id);
  assert.equal(seen.status, "rejected");
  assert.equal(seen.decisions[0].reason, "Never mail everyone");
  await context.close();
});

test("modify: the editor checks JSON, the diff shows before approving, the agent gets the new arguments", async () => {
  const { context, page } = await newPage();
  await signIn(page, server.base, "rita");
  const submitted = await server.submit({ action: "refund.create", args: { amount: 900, order: "B-2" } });
  await page.goto(`${server.base}/actions/${submitted.id}`);
  await page.keyboard.press("m");
  const editor = page.locator("#args-editor");
  await editor.waitFor();
  await editor.fill('{"amount": 90');
  await page.getByText("Not valid JSON yet").waitFor();
  await editor.fill('{"amount": 450, "order": "B-2"}');
  await page.locator("#args-diff").getByText("amount: 900 → 450").waitFor();
  await page.click("#modify-form button[type=submit]");
  // The server's own diff and the new classification, before anything is decided.
  await page.locator("table.diff").getByText("450").waitFor();
  assert.equal((await server.action(submitted.id)).status, "pending");
  await screenshot(page, "action-modify-desktop");
  await page.click("#modify-form button.approve");
  await page.waitForURL(/decided=/);
  const seen = await server.action(submitted.id);
  assert.equal(seen.status, "approved");
  assert.deepEqual(seen.args, { amount: 450, order: "B-2" });
  assert.deepEqual(seen.original_args, { amount: 900, order: "B-2" });
  await context.close();
});

test("confirm: two different people in two browsers; the first cannot approve twice", async () => {
  const first = await newPage();
  const second = await newPage();
  await signIn(first.page, server.base, "rita");
  await signIn(second.page, server.base, "sam");
  const submitted = await server.submit({ action: "account.close", args: { account: "c_9" }, reasoning: "The customer asked to close the account" });
  const url = `${server.base}/actions/${submitted.id}`;
  await first.page.goto(url);
  await first.page.getByText("Irreversible: this needs two different people").waitFor();
  await first.page.fill("#confirm", "account.close");
  await first.page.click("#approve-form button[type=submit]");
  await first.page.waitForURL(/decided=/);
  await first.page.goto(url);
  await first.page.getByText("You approved this action already").waitFor();
  assert.equal(await first.page.locator("#approve-form").count(), 0);
  assert.equal((await server.action(submitted.id)).status, "pending");

  await second.page.goto(url);
  await second.page.getByText("approved first").waitFor();
  await second.page.fill("#confirm", "account.close");
  await second.page.click("#approve-form button[type=submit]");
  await second.page.waitForURL(/decided=/);
  assert.equal((await server.action(submitted.id)).status, "approved");
  await first.context.close();
  await second.context.close();
});

test("keyboard: j and Enter open an action, ? shows the help, a approves", async () => {
  const { context, page } = await newPage();
  await signIn(page, server.base, "sam");
  const submitted = await server.submit({ action: "invoice.void", args: { invoice: "INV-7" } });
  await page.goto(`${server.base}/queue?action=invoice.void`);
  await page.locator(`.row[data-id="${submitted.id}"]`).waitFor();
  await page.keyboard.press("j");
  await page.keyboard.press("Enter");
  await page.waitForURL(new RegExp(`/actions/${submitted.id}`));
  await page.keyboard.press("?");
  await page.locator("#help").getByText("Keyboard shortcuts").waitFor();
  await page.keyboard.press("Escape");
  await page.keyboard.press("a");
  await page.waitForURL(/decided=/);
  assert.equal((await server.action(submitted.id)).status, "approved");
  await context.close();
});

test("a forged form without the session's token is refused; signing out ends the session", async () => {
  const { context, page } = await newPage();
  await signIn(page, server.base, "rita");
  const submitted = await server.submit({ action: "user.delete", args: { user: "u_1" } });
  const forged = await context.request.post(`${server.base}/actions/${submitted.id}/decide`, {
    form: { verdict: "approve", csrf: "not-the-token" },
    maxRedirects: 0,
  });
  assert.equal(forged.status(), 403);
  assert.equal((await server.action(submitted.id)).status, "pending");
  await page.goto(server.base + "/queue");
  await page.click("text=Sign out");
  await page.waitForURL(/\/sign-in/);
  await page.goto(server.base + "/queue");
  await page.waitForURL(/\/sign-in/);
  await context.close();
});

test("the owner of the agent sees no buttons", async () => {
  const { context, page } = await newPage();
  await signIn(page, server.base, "olivia");
  const submitted = await server.submit({ action: "refund.create", args: { amount: 700 } });
  await page.goto(`${server.base}/actions/${submitted.id}`);
  await page.getByText("owns the agent").waitFor();
  assert.equal(await page.locator("#approve-form").count(), 0);
  await context.close();
});

test("post-hoc review and the audit page", async () => {
  const { context, page } = await newPage();
  await signIn(page, server.base, "ada");
  const logged = await server.submit({ action: "refund.create", args: { amount: 20 } });
  assert.equal(logged.status, "allowed");
  await page.goto(server.base + "/reviews");
  await page.locator(`.row[data-id="${logged.id}"] a`).click();
  // The shortcut belongs to the action page: press it once that page is loaded.
  await page.waitForURL(new RegExp(`/actions/${logged.id}`));
  await page.locator("#ok-form").waitFor();
  await page.keyboard.press("l");
  await page.waitForURL(/\/reviews\?decided=/);
  await page.goto(server.base + "/audit");
  await page.click("text=Verify now");
  await page.locator(".verify .notice.ok").getByText("Verified").waitFor();
  await noSeriousViolations(page, "the audit page");
  await screenshot(page, "audit-desktop");
  await context.close();
});

test("approve and allow similar for an hour; the grants page revokes it", async () => {
  const { context, page } = await newPage();
  await signIn(page, server.base, "rita");
  // An action no other test submits: the grant must not change their stories.
  const first = await server.submit({ action: "invoice.send", args: { invoice: "INV-1" } });
  await page.goto(`${server.base}/actions/${first.id}`);
  await Promise.all([page.waitForURL(/grant=/), page.click("#approve-and-grant")]);
  await page.getByText("without asking for an hour").waitFor();
  const second = await server.submit({ action: "invoice.send", args: { invoice: "INV-2" } });
  assert.equal(second.status, "allowed");
  assert.ok(second.grant, "the action names the grant that allowed it");
  await page.goto(server.base + "/grants");
  const grant = page.locator(`#grant-${second.grant}`);
  await grant.waitFor();
  await noSeriousViolations(page, "the grants page");
  await screenshot(page, "grants-desktop");
  await Promise.all([page.waitForURL(/revoked=/), grant.getByRole("button", { name: /Revoke/ }).click()]);
  await page.getByText("You revoked grant").waitFor();
  const third = await server.submit({ action: "invoice.send", args: { invoice: "INV-3" } });
  assert.equal(third.status, "pending");
  await context.close();
});

test("screenshots and the phone viewport (390×844): no sideways scrolling, buttons big enough to tap", async () => {
  for (let i = 0; i < 6; i++) {
    await server.submit({
      action: i % 2 ? "refund.create" : "email.send",
      args: i % 2 ? { amount: 1000 + i * 250, currency: "USD", order: `C-${i}` } : { to: `customer${i}@example.com`, subject: "Your refund", body: "Hello! ".repeat(40) },
      reasoning: "Follow-up on ticket #" + (4000 + i),
      confidence: 0.5 + i / 20,
    });
  }
  const closure = await server.submit({ action: "account.close", args: { account: "c_42", reason: "customer request", refund_balance: true }, reasoning: "Customer asked twice; balance is zero", context: { ticket: { id: 981, channel: "email" } }, confidence: 0.88 });
  const desktop = await newPage();
  await signIn(desktop.page, server.base, "sam");
  await screenshot(desktop.page, "queue-desktop");
  await desktop.page.goto(`${server.base}/actions/${closure.id}`);
  await screenshot(desktop.page, "action-desktop");
  await desktop.context.close();

  const phone = await newPage({ viewport: { width: 390, height: 844 }, isMobile: true, hasTouch: true, deviceScaleFactor: 2 });
  await signIn(phone.page, server.base, "sam");
  for (const [path, name] of [["/queue", "queue-phone"], [`/actions/${closure.id}`, "action-phone"]]) {
    await phone.page.goto(server.base + path);
    // eslint-disable-next-line no-undef -- runs in the page
    const width = await phone.page.evaluate(() => document.documentElement.scrollWidth);
    assert.ok(width <= 390, `${path} fits the phone's width (${width} px)`);
    const small = await phone.page.$$eval("button, .button, .row-link", (els) =>
      els.filter((el) => el.offsetParent !== null && el.getBoundingClientRect().height < 44).map((el) => el.outerHTML.slice(0, 80)));
    assert.deepEqual(small, [], `${path}: every button is at least 44 px tall`);
    await screenshot(phone.page, name);
    // What the phone shows at first, without scrolling.
    await screenshot(phone.page, name + "-first-screen", false);
  }
  await phone.context.close();
});
