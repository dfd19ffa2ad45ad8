/**
 * Restarts on either side: a waiting call outlives a server restart, and an agent restarted
 * mid-wait finds its action again by idempotency key and runs it exactly once.
 */

import assert from "node:assert/strict";
import { execFile, spawn } from "node:child_process";
import { readFileSync, writeFileSync, mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { after, before, test } from "node:test";

import type { WaitMode } from "../src/index.js";
import { Server, eventually, pending, uniqueName } from "./server.js";

let server: Server;
before(async () => {
  server = await Server.start();
});
after(async () => {
  await server.close();
});

async function openWaits(): Promise<number> {
  const text = await (await fetch(`${server.url}/metrics`)).text();
  const line = text.split("\n").find((l) => l.startsWith("countersign_open_waits"));
  return line ? Number(line.split(/\s+/).pop()) : 0;
}

for (const waitMode of ["poll", "sse"] as WaitMode[]) {
  test(`a waiting call resumes after the server restarts (${waitMode})`, async () => {
    const agent = server.agent({ waitMode });
    const submitted = await agent.submit(uniqueName(), { order: "A-1" });
    const result = agent.wait(submitted.id);
    await eventually(async () => (await openWaits()) >= 1, "the wait to reach the server");
    // A crash, not a polite stop: the wait's connection is cut mid-request.
    await server.stop("SIGKILL");
    await server.start();
    await server.reviewer().approve(submitted.id, { reason: "after the restart" });
    const decision = await result;
    assert.equal(decision.status, "approved");
    assert.equal(decision.id, submitted.id);
  });
}

const INDEX = fileURLToPath(new URL("../src/index.js", import.meta.url));
const AGENT = `
import { appendFileSync } from "node:fs";
import { AlreadyExecuted, Countersign, gated } from ${JSON.stringify(INDEX)};
const [url, token, action, ledger] = process.argv.slice(2);
const refund = gated(
  { action, gate: new Countersign({ url, token }), idempotencyKey: (a) => \`refund/\${a.order}\` },
  async ({ order, amount }) => appendFileSync(ledger, \`\${order} \${amount}\\n\`),
);
try {
  await refund({ order: "A-1", amount: 2500 });
  console.log("ran");
} catch (error) {
  if (!(error instanceof AlreadyExecuted)) throw error;
  console.log("already ran");
}
`;

test("an agent restarted mid-wait resumes the same action and runs it once", async () => {
  const directory = mkdtempSync(join(tmpdir(), "countersign-agent-"));
  const script = join(directory, "agent.mjs");
  writeFileSync(script, AGENT);
  const ledger = join(directory, "ledger.txt");
  writeFileSync(ledger, "");
  const name = uniqueName();
  const args = [script, server.url, server.agentToken, name, ledger];

  const first = spawn(process.execPath, args, { stdio: "ignore" });
  const reviewer = server.reviewer();
  const [waiting] = await pending(reviewer, name);
  assert.ok(waiting);
  const exited = new Promise((r) => first.once("exit", r));
  first.kill("SIGKILL"); // the agent dies while it waits
  await exited;
  await reviewer.approve(waiting.id);

  const run = promisify(execFile);
  assert.equal((await run(process.execPath, args)).stdout.trim(), "ran");
  assert.equal((await run(process.execPath, args)).stdout.trim(), "already ran");
  assert.equal(readFileSync(ledger, "utf8"), "A-1 2500\n");
  const [approved, ...others] = await reviewer.queue({ status: "approved", action: name });
  assert.equal(others.length, 0);
  assert.equal(approved?.id, waiting.id);
  assert.ok(approved?.outcome);
});
