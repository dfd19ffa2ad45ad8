/** Bad input and bad circumstances give a clear, typed error. */

import assert from "node:assert/strict";
import { after, before, test } from "node:test";

import {
  BadRequest, ConfigurationError, Conflict, ConnectionFailed, Countersign, CountersignError, Forbidden,
  IdempotencyMismatch, InvalidInput, NotFound, Unauthorized, WaitTimeout, gated,
} from "../src/index.js";
import { Server, freePort, uniqueName } from "./server.js";

let server: Server;
before(async () => {
  server = await Server.start();
});
after(async () => {
  await server.close();
});

test("no token is a configuration error; so is a URL that is not http", () => {
  const saved = process.env["COUNTERSIGN_TOKEN"];
  delete process.env["COUNTERSIGN_TOKEN"];
  try {
    assert.throws(() => new Countersign({ url: "http://127.0.0.1:7878" }), ConfigurationError);
    assert.throws(() => new Countersign({ url: "ftp://example", token: "t" }), ConfigurationError);
    assert.throws(() => new Countersign({ url: "not a url", token: "t" }), /http/);
  } finally {
    if (saved !== undefined) process.env["COUNTERSIGN_TOKEN"] = saved;
  }
});

test("the environment configures the default client", async () => {
  process.env["COUNTERSIGN_URL"] = server.url;
  process.env["COUNTERSIGN_TOKEN"] = server.agentToken;
  try {
    const lookup = gated({ action: "customer.get" }, async ({ id }: { id: string }) => id);
    assert.equal(await lookup({ id: "c_1" }), "c_1");
  } finally {
    delete process.env["COUNTERSIGN_URL"];
    delete process.env["COUNTERSIGN_TOKEN"];
  }
});

const BAD_INPUT: [string, Record<string, unknown>, RegExp][] = [
  ["action type", { action: 42 }, /action must be a string/],
  ["action name", { action: "refund create" }, /letters, digits/],
  ["args type", { args: ["a"] }, /args must be a plain object/],
  ["args JSON", { args: { n: 10n } }, /JSON-serializable/],
  ["confidence range", { confidence: 1.5 }, /from 0 to 1/],
  ["confidence type", { confidence: "high" }, /from 0 to 1/],
  ["hint name", { hints: { dangerous: true } }, /unknown hint/],
  ["hint value", { hints: { destructive: "yes" } }, /true or false/],
  ["reasoning", { reasoning: 7 }, /reasoning must be a string/],
  ["key", { idempotencyKey: "é" }, /printable ASCII/],
  ["timeout", { timeout: -1 }, /timeout must be/],
];

for (const [name, change, message] of BAD_INPUT) {
  test(`bad input is refused before sending: ${name}`, async () => {
    const call = { action: "refund.create", args: { amount: 1 }, ...change };
    const { action, args, ...options } = call as { action: string; args: Record<string, unknown> };
    await assert.rejects(server.agent().request(action, args, options), (error: unknown) => {
      assert.ok(error instanceof InvalidInput);
      assert.match(error.message, message);
      return true;
    });
  });
}

test("API errors are typed by their code", async () => {
  await assert.rejects(new Countersign({ url: server.url, token: "nope" }).request("customer.get"), (error: unknown) => {
    assert.ok(error instanceof Unauthorized);
    assert.equal(error.status, 401);
    assert.equal(error.code, "unauthorized");
    return true;
  });
  const agent = server.agent();
  const reviewer = server.reviewer();
  await assert.rejects(agent.get("no-such-action"), NotFound);
  const name = uniqueName();
  const key = `key-${name}`;
  await agent.submit(name, { amount: 1 }, { idempotencyKey: key });
  await assert.rejects(agent.submit(name, { amount: 2 }, { idempotencyKey: key }), (error: unknown) => {
    assert.ok(error instanceof IdempotencyMismatch);
    assert.ok(error instanceof BadRequest);
    return true;
  });
  const submitted = await agent.submit(name, { amount: 3 });
  await assert.rejects(agent.approve(submitted.id), Forbidden);
  await reviewer.reject(submitted.id, { reason: "no" });
  await assert.rejects(reviewer.approve(submitted.id), (error: unknown) => {
    assert.ok(error instanceof Conflict);
    assert.equal(error.code, "not_pending");
    return true;
  });
});

test("an unreachable server is ConnectionFailed", async () => {
  const gate = new Countersign({ url: `http://127.0.0.1:${await freePort()}`, token: "t", retryFor: 0.3 });
  await assert.rejects(gate.request("customer.get"), (error: unknown) => {
    assert.ok(error instanceof ConnectionFailed);
    assert.match(error.message, /127\.0\.0\.1/);
    return true;
  });
});

test("a wait that outlasts the caller's timeout", async () => {
  const gate = server.agent();
  await assert.rejects(gate.request(uniqueName(), { n: 1 }, { timeout: 1 }), (error: unknown) => {
    assert.ok(error instanceof WaitTimeout);
    assert.equal(error.action.status, "pending");
    return true;
  });
});

test("every error is a CountersignError", async () => {
  const errors = await import("../src/errors.js");
  for (const value of Object.values(errors)) {
    if (typeof value === "function" && value.prototype instanceof Error) {
      assert.ok(value === CountersignError || value.prototype instanceof CountersignError, value.name);
    }
  }
});
