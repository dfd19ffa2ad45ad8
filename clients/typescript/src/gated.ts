/**
 * `gated`: a function that runs only once Countersign allows its action, with the approved
 * arguments (a reviewer's after a `modify`), and reports its outcome. Otherwise it rejects with
 * `Rejected`, `Expired`, `Denied` or `Cancelled`, carrying the reason.
 */

import { Countersign } from "./client.js";
import { AlreadyExecuted, CountersignError, InvalidInput, notAllowed } from "./errors.js";
import { type Hints, type JsonObject, mayRun } from "./models.js";

export interface GatedOptions<A extends JsonObject> {
  /** The action name, e.g. `refund.create`. */
  action: string;
  /** The client to ask; default: one built from `COUNTERSIGN_URL`/`COUNTERSIGN_TOKEN` at the first call. */
  gate?: Countersign;
  reasoning?: string | ((args: A) => string);
  context?: JsonObject | ((args: A) => JsonObject);
  confidence?: number | ((args: A) => number);
  hints?: Hints;
  /**
   * Names the call, e.g. `(a) => \`refund/${a.order}\``: an agent restarted mid-wait finds the
   * same action, and a call whose outcome is recorded rejects with `AlreadyExecuted` instead
   * of running twice.
   */
  idempotencyKey?: (args: A) => string;
  /** Seconds to wait for a decision; default: as long as the SLA takes. */
  timeout?: number;
  /** Report `succeeded`, or `failed` with the error, after running (default true). */
  reportOutcome?: boolean;
}

const computed = <A, T>(value: T | ((args: A) => T) | undefined, args: A): T | undefined =>
  typeof value === "function" ? (value as (args: A) => T)(args) : value;

/**
 * Wraps `fn` (one object of JSON arguments in, anything out) so that it runs only with
 * Countersign's approval: `const refund = gated({ action: "refund.create" }, async ({ order, amount }) => ...)`.
 */
export function gated<A extends JsonObject, R>(
  options: GatedOptions<A>,
  fn: (args: A) => R | Promise<R>,
): (args: A) => Promise<R> {
  if (!options || typeof options.action !== "string") throw new InvalidInput("gated needs { action: string }");
  if (typeof fn !== "function") throw new InvalidInput(`gated needs a function, not ${typeof fn}`);
  let gate = options.gate;
  return async (args: A): Promise<R> => {
    gate ??= new Countersign();
    const request: Parameters<Countersign["request"]>[2] = {};
    const reasoning = computed(options.reasoning, args);
    const context = computed(options.context, args);
    const confidence = computed(options.confidence, args);
    if (reasoning !== undefined) request.reasoning = reasoning;
    if (context !== undefined) request.context = context;
    if (confidence !== undefined) request.confidence = confidence;
    if (options.hints !== undefined) request.hints = options.hints;
    if (options.idempotencyKey) request.idempotencyKey = options.idempotencyKey(args);
    if (options.timeout !== undefined) request.timeout = options.timeout;
    const decision = await gate.request(options.action, args, request);
    if (!mayRun(decision)) throw notAllowed(decision);
    if (decision.outcome) throw new AlreadyExecuted(decision);
    const report = options.reportOutcome ?? true;
    let result: R;
    try {
      result = await fn(decision.args as A);
    } catch (error) {
      if (report) await bestEffort(gate.reportOutcome(decision.id, "failed", failure(error)));
      throw error;
    }
    if (report) await bestEffort(gate.reportOutcome(decision.id, "succeeded"));
    return result;
  };
}

function failure(error: unknown): JsonObject {
  return error instanceof Error ? { error: error.name, message: error.message } : { error: String(error) };
}

/** The function has run: failing the call now would invite a retry that runs it again. */
async function bestEffort(report: Promise<unknown>): Promise<void> {
  try {
    await report;
  } catch (error) {
    if (!(error instanceof CountersignError)) throw error;
    console.warn(`countersign: could not report an outcome: ${error.message}`);
  }
}
