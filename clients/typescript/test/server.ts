/**
 * The real server for the tests: `countersign serve` on a free loopback port with a temporary
 * SQLite file and the test policy; tokens made with `countersign token create --db`.
 */

import { type ChildProcess, execFileSync, spawn } from "node:child_process";
import { mkdtempSync, openSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { randomUUID } from "node:crypto";

import { type Action, Countersign, type CountersignOptions } from "../src/index.js";

const ROOT = resolve(fileURLToPath(import.meta.url), "../../../../../");
export const BINARY = process.env["COUNTERSIGN_BIN"] ?? join(ROOT, "target", "debug", "countersign");

/** `slow.*` expires two seconds after submission; `*.get` runs at once; `db.drop` never. */
const POLICY = `
version = 1

[defaults]
tier = "approve"
sla = "30m"
on_timeout = "reject"

[[rules]]
name = "lookups"
actions = ["*.get"]
tier = "auto"

[[rules]]
name = "never"
actions = ["db.drop"]
tier = "deny"

[[rules]]
name = "quick expiry"
actions = ["slow.*"]
tier = "approve"
sla = "2s"
on_timeout = "reject"
`;

export function freePort(): Promise<number> {
  return new Promise((done, fail) => {
    const probe = createServer();
    probe.on("error", fail);
    probe.listen(0, "127.0.0.1", () => {
      const address = probe.address();
      probe.close(() => done(typeof address === "object" && address ? address.port : 0));
    });
  });
}

export class Server {
  process: ChildProcess | undefined;
  readonly agentToken: string;
  readonly reviewerToken: string;

  private constructor(readonly directory: string, readonly port: number) {
    const db = `sqlite://${join(directory, "countersign.db")}`;
    writeFileSync(join(directory, "policy.toml"), POLICY);
    writeFileSync(
      join(directory, "countersign.toml"),
      `listen = "127.0.0.1:${port}"\ndatabase = "${db}"\npolicy = "${join(directory, "policy.toml")}"\n` +
        `checkpoint_key = "${join(directory, "checkpoint.key")}"\n`,
    );
    const token = (...args: string[]) =>
      execFileSync(BINARY, ["token", "create", ...args, "--db", db], { encoding: "utf8" }).trim();
    this.agentToken = token("--role", "agent", "--name", "support-bot", "--owner", "olivia");
    this.reviewerToken = token("--role", "reviewer", "--name", "rita", "--groups", "support-leads");
  }

  get url(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  static async start(): Promise<Server> {
    const server = new Server(mkdtempSync(join(tmpdir(), "countersign-ts-")), await freePort());
    await server.start();
    return server;
  }

  async start(): Promise<void> {
    const log = openSync(join(this.directory, "serve.log"), "a");
    const child = spawn(BINARY, ["serve", "--config", join(this.directory, "countersign.toml")], {
      stdio: ["ignore", log, log],
    });
    this.process = child;
    const giveUp = Date.now() + 30_000;
    while (Date.now() < giveUp) {
      if (child.exitCode !== null) throw new Error(`the server exited: ${readFileSync(join(this.directory, "serve.log"), "utf8")}`);
      try {
        if ((await fetch(`${this.url}/healthz`)).status === 200) return;
      } catch {
        // not listening yet
      }
      await new Promise((r) => setTimeout(r, 50)); // polling for readiness, bounded by giveUp
    }
    throw new Error("the server did not answer /healthz within 30 s");
  }

  async stop(signal: NodeJS.Signals = "SIGTERM"): Promise<void> {
    const child = this.process;
    this.process = undefined;
    if (!child || child.exitCode !== null) return;
    const exited = new Promise((r) => child.once("exit", r));
    child.kill(signal);
    await exited;
  }

  async close(): Promise<void> {
    await this.stop();
    rmSync(this.directory, { recursive: true, force: true });
  }

  agent(options: CountersignOptions = {}): Countersign {
    return new Countersign({ url: this.url, token: this.agentToken, ...options });
  }

  reviewer(): Countersign {
    return new Countersign({ url: this.url, token: this.reviewerToken });
  }
}

/** An action name no other test uses (the default tier: a person decides). */
export const uniqueName = (): string => `test.${randomUUID().slice(0, 12)}`;

/** The reviewer's view of `count` pending actions named `action`, once queued (20 s at most). */
export async function pending(reviewer: Countersign, action: string, count = 1): Promise<Action[]> {
  const giveUp = Date.now() + 20_000;
  for (;;) {
    const found = await reviewer.queue({ action });
    if (found.length >= count) return found;
    if (Date.now() > giveUp) throw new Error(`${action} did not reach the queue`);
    await new Promise((r) => setTimeout(r, 20)); // a queue poll interval, not a wait for an outcome
  }
}

export async function eventually(check: () => Promise<boolean>, what: string): Promise<void> {
  const giveUp = Date.now() + 20_000;
  while (!(await check())) {
    if (Date.now() > giveUp) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20)); // a poll interval, bounded by giveUp
  }
}
