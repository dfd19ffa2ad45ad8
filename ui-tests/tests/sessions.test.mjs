// Sessions against the clock, on a server with short windows: a stale session is asked for
// its password before an irreversible approval, and an idle session ends.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { setTimeout as sleep } from "node:timers/promises";
import { startServer, launchBrowser, signIn, PASSWORD } from "./harness.mjs";

let server;
let browser;

before(async () => {
  server = await startServer('reauth_window = "1s"\nsession_idle_timeout = "3s"');
  browser = await launchBrowser();
});

after(async () => {
  await browser?.close();
  await server?.stop();
});

test("a stale session must type its password to confirm; an idle one ends", async () => {
  const submitted = await server.submit({ action: "account.close", args: { account: "c_7" } });
  // The first approval through the API, by rita's reviewer token: the same person as her login.
  const first = await fetch(`${server.base}/v1/actions/${submitted.id}/decisions`, {
    method: "POST",
    headers: { "Authorization": "Bearer " + server.ritaToken, "Content-Type": "application/json" },
    body: JSON.stringify({ verdict: "approve", confirm: "account.close" }),
  });
  assert.equal(first.status, 200);
  const context = await browser.newContext();
  const page = await context.newPage();
  await signIn(page, server.base, "sam");
  await page.goto(`${server.base}/actions/${submitted.id}`);
  // The re-authentication window is 1 s here: wait it out (the only way to age a real session).
  await sleep(1200);
  await page.fill("#confirm", "account.close");
  if (await page.locator("#approve-form #password").count() === 0) {
    await page.click("#approve-form button[type=submit]");
    await page.getByText("type your password again").waitFor();
  }
  await page.fill("#approve-form #password", PASSWORD);
  await page.fill("#confirm", "account.close");
  await page.click("#approve-form button[type=submit]");
  await page.waitForURL(/decided=/);
  assert.equal((await server.action(submitted.id)).status, "approved");

  // Idle for longer than the 3 s idle timeout (again, only time can make a session idle).
  await sleep(3500);
  await page.goto(server.base + "/queue");
  await page.waitForURL(/\/sign-in/);
  await page.getByText("idle for too long").waitFor();
  await context.close();
});
