/**
 * The client against the server's own `/v1/openapi.json`: every property and enum value the
 * document gives for the objects the client reads and the bodies it sends must be one the
 * client knows (the field lists in `src/models.ts`, held equal to the types by the compiler),
 * and the other way round. Schemas are found from the operations, enums wherever the document
 * puts them, so the check follows the document as it changes.
 */

import assert from "node:assert/strict";
import { after, before, test } from "node:test";

import {
  ACTION_FIELDS, ACTION_REQUIRED, DECISION_BODY_FIELDS, DECISION_FIELDS, DECISION_REQUIRED, HINTS,
  OUTCOME_BODY_FIELDS, OUTCOME_FIELDS, OUTCOME_REQUIRED, OUTCOME_STATUSES, REVIEW_STATES, STATUSES, SUBMIT_FIELDS, TIERS,
  VERDICTS,
} from "../src/index.js";
import { Server } from "./server.js";

type Schema = { [key: string]: any };

let server: Server;
let document: Schema;
before(async () => {
  server = await Server.start();
  document = (await (await fetch(`${server.url}/v1/openapi.json`)).json()) as Schema;
});
after(async () => {
  await server.close();
});

function resolve(schema: Schema): Schema {
  for (;;) {
    if (schema["$ref"]) {
      schema = (schema["$ref"] as string).replace(/^#\//, "").split("/").reduce((node: Schema, part) => node[part], document);
      continue;
    }
    const combinator = ["oneOf", "anyOf", "allOf"].find((c) => Array.isArray(schema[c]));
    const options = combinator ? (schema[combinator] as Schema[]).filter((o) => o["type"] !== "null") : [];
    if (options.length !== 1) return schema;
    schema = options[0] as Schema;
  }
}

/** The properties of an object schema; for a choice of object shapes (`oneOf` a verdict), the
 * properties of every shape, an enum's values gathered across them. */
function properties(schema: Schema): Record<string, Schema> {
  const resolved = resolve(schema);
  const shapes = (["oneOf", "anyOf"].map((c) => resolved[c]).find(Array.isArray) as Schema[] | undefined) ?? [resolved];
  const merged: Record<string, Schema> = {};
  for (const shape of shapes) {
    for (const [name, value] of Object.entries((resolve(shape)["properties"] ?? {}) as Record<string, Schema>)) {
      const prop = resolve(value);
      const earlier = merged[name];
      if (earlier?.["enum"] && prop["enum"]) {
        merged[name] = { ...prop, enum: [...new Set([...(earlier["enum"] as unknown[]), ...(prop["enum"] as unknown[])])] };
      } else {
        merged[name] = earlier ?? prop;
      }
    }
  }
  return merged;
}

const operation = (path: string, method: string): Schema => document["paths"][path][method];
const answer = (path: string, method: string): Schema => operation(path, method)["responses"]["200"]["content"]["application/json"]["schema"];
const body = (path: string, method: string): Schema => operation(path, method)["requestBody"]["content"]["application/json"]["schema"];

function checkEnums(where: string, props: Record<string, Schema>, enums: Record<string, readonly string[]>): void {
  for (const [name, prop] of Object.entries(props)) {
    const values = prop["enum"] as unknown[] | undefined;
    if (!values) continue; // a plain string in the document: nothing to compare
    const known = enums[name];
    assert.ok(known, `${where}.${name}: the API gives values ${values.join(", ")}, the client a plain string`);
    assert.deepEqual(new Set(values.filter((v) => v !== null)), new Set(known), `${where}.${name}: enum values differ`);
  }
}

function checkObject(
  where: string, schema: Schema, fields: readonly string[], required: readonly string[], enums: Record<string, readonly string[]>,
): void {
  const props = properties(schema);
  assert.deepEqual(Object.keys(props).filter((k) => !fields.includes(k)), [], `${where}: the API has fields the client lacks`);
  assert.deepEqual(fields.filter((k) => !(k in props)), [], `${where}: the client has fields the API lacks`);
  const documented = new Set((resolve(schema)["required"] as string[] | undefined) ?? []);
  for (const name of required) assert.ok(documented.has(name), `${where}.${name}: the client needs it, the API may omit it`);
  checkEnums(where, props, enums);
}

test("the action object", () => {
  const action = answer("/v1/actions/{id}", "get");
  checkObject("action", action, ACTION_FIELDS, ACTION_REQUIRED, { status: STATUSES, tier: TIERS, review: REVIEW_STATES });
  const props = properties(action);
  checkObject("decision", props["decisions"]?.["items"], DECISION_FIELDS, DECISION_REQUIRED, { verdict: VERDICTS });
  checkObject("outcome", props["outcome"] as Schema, OUTCOME_FIELDS, OUTCOME_REQUIRED, { status: OUTCOME_STATUSES });
});

test("statuses and tiers the document names are all known", () => {
  const props = properties(answer("/v1/actions/{id}", "get"));
  for (const [name, values] of [["status", STATUSES], ["tier", TIERS]] as const) {
    const prop = props[name] as Schema;
    if (prop["enum"] || !prop["description"]) continue; // enums are compared above
    for (const value of values) assert.ok((prop["description"] as string).includes(`\`${value}\``), `${name} ${value}`);
  }
});

test("the bodies the client sends", () => {
  const submit = properties(body("/v1/actions", "post"));
  assert.deepEqual(new Set(Object.keys(submit)), new Set(SUBMIT_FIELDS), "submit body");
  assert.deepEqual(new Set(Object.keys(properties(submit["hints"] as Schema))), new Set(HINTS), "hints");
  const decision = properties(body("/v1/actions/{id}/decisions", "post"));
  assert.deepEqual(new Set(Object.keys(decision)), new Set(DECISION_BODY_FIELDS), "decision body");
  checkEnums("decision body", decision, { verdict: VERDICTS });
  const outcome = properties(body("/v1/actions/{id}/outcome", "post"));
  assert.deepEqual(new Set(Object.keys(outcome)), new Set(OUTCOME_BODY_FIELDS), "outcome body");
  checkEnums("outcome body", outcome, { status: OUTCOME_STATUSES });
});

test("the error shape and the paths the client calls", () => {
  const refused = operation("/v1/actions", "post")["responses"]["422"]["content"]["application/json"]["schema"];
  assert.deepEqual(Object.keys(properties(properties(refused)["error"] as Schema)).sort(), ["code", "message"]);
  for (const [path, method] of [
    ["/v1/actions", "post"], ["/v1/actions", "get"], ["/v1/actions/{id}", "get"], ["/v1/actions/{id}/events", "get"],
    ["/v1/actions/{id}/cancel", "post"], ["/v1/actions/{id}/outcome", "post"], ["/v1/actions/{id}/decisions", "post"],
  ]) {
    assert.ok(document["paths"][path as string]?.[method as string], `${method} ${path}`);
  }
  const parameters = operation("/v1/actions/{id}", "get")["parameters"] as Schema[];
  assert.ok(parameters.some((p) => p["name"] === "wait"));
});
