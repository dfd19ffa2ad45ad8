/**
 * `examples/typescript/support-agent.ts` runs against the real server: its first refund is
 * approved with a smaller amount, its second rejected, and it tells the customer so.
 */

import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { join } from "node:path";
import { promisify } from "node:util";
import { after, before, test } from "node:test";

import type { Action } from "../src/index.js";
import { Server, eventually, pending } from "./server.js";

const EXAMPLE = join(import.meta.dirname ?? new URL(".", import.meta.url).pathname, "../../../../examples/typescript/build/support-agent.js");

let server: Server;
before(async () => {
  server = await Server.start();
});
after(async () => {
  await server.close();
});

test("the support agent example", async () => {
  const env = { ...process.env, COUNTERSIGN_URL: server.url, COUNTERSIGN_TOKEN: server.agentToken };
  const running = promisify(execFile)(process.execPath, [EXAMPLE], { env });
  const reviewer = server.reviewer();
  const [first] = await pending(reviewer, "refund.create");
  assert.ok(first);
  assert.equal(first.reasoning, "ticket T-1: I was charged twice for order A-1");
  await reviewer.modify(first.id, { ...first.args, amount: 2000 }, { reason: "one charge only" });
  let second: Action | undefined;
  await eventually(async () => {
    second = (await reviewer.queue({ action: "refund.create" })).find((a) => a.id !== first.id);
    return second !== undefined;
  }, "the second refund");
  await reviewer.reject((second as Action).id, { reason: "send a replacement instead" });
  const { stdout } = await running;
  assert.deepEqual(stdout.trim().split("\n"), [
    "T-1: refunded 2000 USD on A-1",
    "T-2: refund rejected by rita: send a replacement instead",
  ]);
});
