// The fixture of the browser tests: a real `countersign serve` on a free loopback port
// with its own database, policy and people, and headless Chromium (Debian's package)
// driven by playwright-core.
import { spawn, execFileSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync, mkdirSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve, dirname } from "node:path";
import { fileURLToPath } from "node:url";
import { chromium } from "playwright-core";

const here = dirname(fileURLToPath(import.meta.url));
export const root = resolve(here, "../..");
export const BIN = process.env.COUNTERSIGN_BIN || join(root, "target/debug/countersign");
export const ARTIFACTS = process.env.UI_ARTIFACTS || join(root, "target/ui-artifacts");
export const PASSWORD = "correct horse battery";

export const POLICY = `
version = 1

[defaults]
tier = "approve"
sla = "30m"

[[rules]]
name = "lookups"
actions = ["*.get"]
tier = "auto"

[[rules]]
name = "small refunds"
actions = ["refund.create"]
when = "args.amount <= 100"
tier = "logged"
review_sample = 1.0

[[rules]]
name = "large refunds"
actions = ["refund.create"]
tier = "approve"
approvers = ["support-leads"]
sla = "15m"

[[rules]]
name = "account closure"
actions = ["account.close"]
tier = "confirm"
approvers = ["support-leads"]
`;

function run(args, input) {
  return execFileSync(BIN, args, { input, encoding: "utf8", stdio: ["pipe", "pipe", "pipe"] }).trim();
}

/** Starts a server with `config` (TOML lines) and the test's people and tokens. */
export async function startServer(config = "") {
  const dir = mkdtempSync(join(tmpdir(), "countersign-ui-"));
  const db = "sqlite://" + join(dir, "countersign.db");
  writeFileSync(join(dir, "policy.toml"), POLICY);
  writeFileSync(join(dir, "countersign.toml"), `policy = "policy.toml"\n${config}\n`);
  for (const [name, flags] of [
    ["rita", ["--groups", "support-leads"]],
    ["sam", ["--groups", "support-leads"]],
    ["olivia", ["--groups", "support-leads"]],
    ["ada", ["--groups", "support-leads", "--admin"]],
  ]) {
    run(["user", "add", name, ...flags, "--password-stdin", "--db", db], PASSWORD + "\n");
  }
  const agent = run(["token", "create", "--role", "agent", "--name", "support-bot", "--owner", "olivia", "--db", db]);
  const ritaToken = run(["token", "create", "--role", "reviewer", "--name", "rita", "--db", db]);
  const child = spawn(BIN, ["serve", "--config", join(dir, "countersign.toml"), "--listen", "127.0.0.1:0", "--db", db], {
    cwd: dir,
    env: { ...process.env, RUST_LOG: "info" },
    stdio: ["ignore", "ignore", "pipe"],
  });
  const base = await new Promise((resolveBase, reject) => {
    let seen = "";
    const timer = setTimeout(() => reject(new Error("the server did not start: " + seen)), 30000);
    child.stderr.on("data", (chunk) => {
      seen += chunk.toString();
      const match = seen.match(/address=(\S+)/);
      if (match) { clearTimeout(timer); resolveBase("http://" + match[1]); }
    });
    child.on("exit", (code) => reject(new Error("the server exited with " + code + ": " + seen)));
  });
  return {
    base, agent, ritaToken, dir,
    async submit(body) {
      const response = await fetch(base + "/v1/actions", {
        method: "POST",
        headers: { "Authorization": "Bearer " + agent, "Content-Type": "application/json" },
        body: JSON.stringify(body),
      });
      if (response.status !== 201) throw new Error("submit: " + response.status + " " + await response.text());
      return response.json();
    },
    async action(id, wait = 0) {
      const response = await fetch(base + "/v1/actions/" + id + (wait ? "?wait=" + wait : ""), {
        headers: { "Authorization": "Bearer " + agent },
      });
      return response.json();
    },
    async stop() {
      child.kill("SIGTERM");
      await new Promise((done) => child.on("close", done));
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** Headless Chromium from Debian's package; playwright gives it a fresh profile. */
export async function launchBrowser() {
  return chromium.launch({
    executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
    headless: true,
    args: [
      "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
      "--disable-background-networking", "--disable-component-update", "--disable-sync",
      "--disable-quic",
    ],
  });
}

export async function signIn(page, base, name) {
  await page.goto(base + "/sign-in");
  await page.fill("#name", name);
  await page.fill("#password", PASSWORD);
  await Promise.all([page.waitForURL(/\/queue/), page.click("button[type=submit]")]);
}

export async function screenshot(page, name, fullPage = true) {
  mkdirSync(ARTIFACTS, { recursive: true });
  await page.screenshot({ path: join(ARTIFACTS, name + ".png"), fullPage });
}
