/** Every way a request can end, through `request` and `gated`, against the real server. */

import assert from "node:assert/strict";
import { after, before, test } from "node:test";

import { Denied, Expired, Rejected, type WaitMode, gated, mayRun, decisionReason } from "../src/index.js";
import { Server, pending, uniqueName } from "./server.js";

let server: Server;
before(async () => {
  server = await Server.start();
});
after(async () => {
  await server.close();
});

test("an allowed action runs at once", async () => {
  const decision = await server.agent().request("customer.get", { id: "c_9" });
  assert.equal(decision.status, "allowed");
  assert.equal(decision.tier, "auto");
  assert.equal(decision.rule, "lookups");
  assert.ok(mayRun(decision));
});

test("a denied action never runs", async () => {
  const ran: string[] = [];
  const drop = gated({ action: "db.drop", gate: server.agent() }, async ({ table }: { table: string }) => {
    ran.push(table);
  });
  await assert.rejects(drop({ table: "customers" }), (error: unknown) => {
    assert.ok(error instanceof Denied);
    assert.equal(error.action.status, "denied");
    return true;
  });
  assert.deepEqual(ran, []);
});

for (const waitMode of ["poll", "sse"] as WaitMode[]) {
  test(`approved: runs with the arguments (${waitMode})`, async () => {
    const name = uniqueName();
    const calls: unknown[] = [];
    const refund = gated(
      { action: name, gate: server.agent({ waitMode }), reasoning: "charged twice" },
      async (args: { order: string; amount: number }) => {
        calls.push(args);
        return "refunded";
      },
    );
    const result = refund({ order: "A-1", amount: 2500 });
    const reviewer = server.reviewer();
    const [waiting] = await pending(reviewer, name);
    assert.ok(waiting);
    assert.deepEqual(waiting.args, { order: "A-1", amount: 2500 });
    assert.equal(waiting.reasoning, "charged twice");
    await reviewer.approve(waiting.id, { reason: "duplicate confirmed" });
    assert.equal(await result, "refunded");
    assert.deepEqual(calls, [{ order: "A-1", amount: 2500 }]);
    const done = await reviewer.get(waiting.id);
    assert.equal(done.status, "approved");
    assert.equal(done.outcome?.status, "succeeded");
  });

  test(`rejected: the reviewer's reason in the error (${waitMode})`, async () => {
    const name = uniqueName();
    const ran: unknown[] = [];
    const refund = gated({ action: name, gate: server.agent({ waitMode }) }, async (args: { order: string }) => {
      ran.push(args);
    });
    const result = refund({ order: "A-1" });
    result.catch(() => undefined); // judged below
    const reviewer = server.reviewer();
    const [waiting] = await pending(reviewer, name);
    assert.ok(waiting);
    await reviewer.reject(waiting.id, { reason: "customer already refunded by bank" });
    await assert.rejects(result, (error: unknown) => {
      assert.ok(error instanceof Rejected);
      assert.equal(error.reason, "customer already refunded by bank");
      assert.equal(error.reviewer, "rita");
      assert.match(error.message, /customer already refunded by bank/);
      return true;
    });
    assert.deepEqual(ran, []);
  });

  test(`expired is never reported as rejected (${waitMode})`, async () => {
    // `slow.*` has a 2 s SLA and on_timeout = "reject": nobody decides, the SLA ends it.
    const refund = gated({ action: "slow.refund", gate: server.agent({ waitMode }) }, async () => "ran");
    await assert.rejects(refund({ order: "A-1" }), (error: unknown) => {
      assert.ok(error instanceof Expired);
      assert.ok(!(error instanceof Rejected));
      assert.equal(error.action.status, "expired");
      assert.deepEqual(error.action.decisions, []);
      return true;
    });
  });
}

test("modified: the function receives the reviewer's arguments", async () => {
  const name = uniqueName();
  const calls: unknown[] = [];
  const gate = server.agent();
  const refund = gated({ action: name, gate }, async (args: { order: string; amount: number }) => {
    calls.push(args);
  });
  const result = refund({ order: "A-1", amount: 2500 });
  const reviewer = server.reviewer();
  const [waiting] = await pending(reviewer, name);
  assert.ok(waiting);
  await reviewer.modify(waiting.id, { order: "A-1", amount: 100 }, { reason: "partial refund" });
  await result;
  assert.deepEqual(calls, [{ order: "A-1", amount: 100 }]);
  const done = await gate.get(waiting.id);
  assert.deepEqual(done.original_args, { order: "A-1", amount: 2500 });
});

test("request resolves with the final decision without throwing", async () => {
  const name = uniqueName();
  const gate = server.agent();
  const result = gate.request(name, { n: 1 });
  const reviewer = server.reviewer();
  const [waiting] = await pending(reviewer, name);
  assert.ok(waiting);
  await reviewer.reject(waiting.id, { reason: "no" });
  const decision = await result;
  assert.equal(decision.status, "rejected");
  assert.ok(!mayRun(decision));
  assert.equal(decisionReason(decision), "no");
});

test("cancel withdraws a pending action", async () => {
  const gate = server.agent();
  const submitted = await gate.submit(uniqueName(), { n: 1 });
  assert.equal(submitted.status, "pending");
  assert.equal((await gate.cancel(submitted.id)).status, "cancelled");
  assert.equal((await gate.wait(submitted.id, { timeout: 5 })).status, "cancelled");
});

test("a failing function reports a failed outcome and rethrows", async () => {
  const account = `acc-${uniqueName()}`;
  const lookup = gated({ action: "ledger.get", gate: server.agent() }, async (_: { account: string }) => {
    throw new Error("ledger offline");
  });
  await assert.rejects(lookup({ account }), /ledger offline/);
  const allowed = await server.reviewer().queue({ status: "allowed", action: "ledger.get", limit: 1000 });
  const done = allowed.find((a) => a.args["account"] === account);
  assert.equal(done?.outcome?.status, "failed");
  assert.deepEqual(done?.outcome?.detail, { error: "Error", message: "ledger offline" });
});
