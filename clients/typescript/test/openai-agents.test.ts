/**
 * The OpenAI Agents SDK adapter with a real `Agent` and `run`, the model scripted by the
 * SDK's own `@openai/agents-core/testing` ScriptedModel (no network).
 */

import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import { after, before, test } from "node:test";

import { Agent, setTracingDisabled, tool } from "@openai/agents-core";
import { ScriptedModel, assistantMessage, functionCall } from "@openai/agents-core/testing";
import { z } from "zod";

import { CountersignApprovals } from "../src/adapters/openai-agents.js";
import { Server, pending, uniqueName } from "./server.js";

let server: Server;
before(async () => {
  setTracingDisabled(true);
  server = await Server.start();
});
after(async () => {
  await server.close();
});

function refundAgent(action: string, refunds: unknown[]) {
  const refund = tool({
    name: "refund",
    description: "Refund an order.",
    parameters: z.object({ order: z.string(), amount: z.number() }),
    execute: async ({ order, amount }) => {
      refunds.push({ order, amount });
      return `refunded ${amount} on ${order}`;
    },
  });
  const model = new ScriptedModel([
    [functionCall("refund", { order: "A-1", amount: 2500 }, { callId: `call_${randomUUID()}` })],
    [assistantMessage("done")],
  ]);
  const approvals = new CountersignApprovals(server.agent());
  const agent = new Agent({ name: "support", model, tools: [approvals.tool(refund, { action })] });
  return { agent, model, approvals };
}

/** The tool results the model was shown in its last call. */
function toolOutputs(model: ScriptedModel): string[] {
  const last = model.calls.at(-1);
  const input = (last?.request.input ?? []) as { type?: string; output?: unknown }[];
  return (Array.isArray(input) ? input : [])
    .filter((item) => item.type === "function_call_result")
    .map((item) => JSON.stringify(item.output));
}

for (const how of ["approve", "modify"] as const) {
  test(`an approved call runs with the approved arguments (${how})`, async () => {
    const name = uniqueName();
    const refunds: unknown[] = [];
    const { agent, model, approvals } = refundAgent(name, refunds);
    const running = approvals.run(agent, "refund A-1");
    const reviewer = server.reviewer();
    const [waiting] = await pending(reviewer, name);
    assert.ok(waiting);
    if (how === "modify") await reviewer.modify(waiting.id, { order: "A-1", amount: 100 });
    else await reviewer.approve(waiting.id);
    const result = await running;
    assert.equal(result.finalOutput, "done");
    const amount = how === "modify" ? 100 : 2500;
    assert.deepEqual(refunds, [{ order: "A-1", amount }]);
    assert.match(toolOutputs(model).join(), new RegExp(`refunded ${amount} on A-1`));
  });
}

test("a rejection is the tool's result, with the reason", async () => {
  const name = uniqueName();
  const refunds: unknown[] = [];
  const { agent, model, approvals } = refundAgent(name, refunds);
  const running = approvals.run(agent, "refund A-1");
  const reviewer = server.reviewer();
  const [waiting] = await pending(reviewer, name);
  assert.ok(waiting);
  await reviewer.reject(waiting.id, { reason: "refunded by the bank already" });
  assert.equal((await running).finalOutput, "done");
  assert.deepEqual(refunds, []);
  const [output] = toolOutputs(model);
  assert.match(output ?? "", /rita rejected/);
  assert.match(output ?? "", /refunded by the bank already/);
});

test("an expiry is told as an expiry", async () => {
  const refunds: unknown[] = [];
  const { agent, model, approvals } = refundAgent("slow.agent-refund", refunds); // 2 s SLA
  assert.equal((await approvals.run(agent, "refund A-1")).finalOutput, "done");
  assert.deepEqual(refunds, []);
  const [output] = toolOutputs(model);
  assert.match(output ?? "", /expired/);
  assert.doesNotMatch((output ?? "").replace("Nobody rejected", ""), /rejected/);
});

test("an allowed call runs without interrupting", async () => {
  const lookups: string[] = [];
  const lookup = tool({
    name: "lookup",
    description: "Look a customer up.",
    parameters: z.object({ customer: z.string() }),
    execute: async ({ customer }) => {
      lookups.push(customer);
      return "gold";
    },
  });
  const model = new ScriptedModel([
    [functionCall("lookup", { customer: "c_9" }, { callId: `call_${randomUUID()}` })],
    [assistantMessage("gold")],
  ]);
  const approvals = new CountersignApprovals(server.agent());
  const agent = new Agent({ name: "support", model, tools: [approvals.tool(lookup, { action: "customer.get" })] });
  const result = await approvals.run(agent, "who is c_9");
  assert.equal(result.finalOutput, "gold");
  assert.equal(result.interruptions.length, 0);
  assert.deepEqual(lookups, ["c_9"]);
});
