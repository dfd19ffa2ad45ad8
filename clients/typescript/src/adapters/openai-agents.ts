/**
 * The OpenAI Agents SDK (`@openai/agents`) behind Countersign: a tool's `needsApproval` asks
 * Countersign.
 *
 * ```ts
 * const approvals = new CountersignApprovals(new Countersign());
 * const agent = new Agent({ ..., tools: [approvals.tool(refund, { action: "refund.create" })] });
 * const result = await approvals.run(agent, "Refund order A-1");
 * ```
 *
 * `needsApproval` files the call with Countersign (keyed by the model's call id): an action
 * the policy allows runs at once; anything else interrupts the run the SDK's way. `run` (or
 * `resolve` on a result you got yourself) waits for each interruption's decision and resumes:
 * approved calls run with the approved arguments (a reviewer's after a `modify`), refused ones
 * return the refusal to the model as the tool's result, with the reason. Interruptions of
 * other tools are left in the result for the caller.
 */

import { type Agent, type FunctionTool, type RunResult, run } from "@openai/agents-core";

import { Countersign, type RequestOptions } from "../client.js";
import { CountersignError } from "../errors.js";
import { type Action, type JsonObject, isFinal, mayRun } from "../models.js";
import { refusalMessage } from "../refusal.js";

const KEY_PREFIX = "openai-agents/";

export interface ApprovalsOptions {
  /** Seconds `run`/`resolve` wait for a decision; default: as long as the SLA takes. */
  timeout?: number;
  reasoning?: string | ((tool: string, args: JsonObject) => string);
  context?: JsonObject;
}

type AnyFunctionTool = FunctionTool<any, any, any>;
type RunOptions = Parameters<typeof run>[2];

export class CountersignApprovals {
  readonly gate: Countersign;
  readonly #options: ApprovalsOptions;
  readonly #actions = new Map<string, string>();
  readonly #decisions = new Map<string, Action>();

  constructor(gate: Countersign = new Countersign(), options: ApprovalsOptions = {}) {
    this.gate = gate;
    this.#options = options;
  }

  /** `tool` with `needsApproval` answered by Countersign under `action` (default: its name). */
  tool<T extends AnyFunctionTool>(tool: T, options: { action?: string } = {}): T {
    if (!tool || tool.type !== "function") throw new CountersignError("expected an agents function tool");
    const action = options.action ?? tool.name;
    this.#actions.set(tool.name, action);
    const original = tool.invoke.bind(tool);
    const gated: T = {
      ...tool,
      needsApproval: async (_context: unknown, input: unknown, callId?: string) => {
        const args = (input ?? {}) as JsonObject;
        const decision = await this.gate.submit(action, args, this.#request(tool.name, args, callId));
        if (callId) this.#decisions.set(callId, decision);
        return decision.status !== "allowed";
      },
      invoke: async (context: Parameters<T["invoke"]>[0], input: string, details?: Parameters<T["invoke"]>[2]) => {
        const callId = details?.toolCall?.callId;
        let decision = callId ? this.#decisions.get(callId) : undefined;
        if (!decision || !isFinal(decision.status)) {
          // Not seen by this process (a run resumed after a restart): the key finds the action.
          const args = JSON.parse(input || "{}") as JsonObject;
          decision = await this.gate.request(action, args, this.#request(tool.name, args, callId, true));
        }
        if (!mayRun(decision)) return refusalMessage(decision);
        const result = await original(context, JSON.stringify(decision.args), details);
        await this.gate.reportOutcome(decision.id, "succeeded").catch(() => undefined); // best effort
        return result;
      },
    };
    return gated;
  }

  /** `run`, then `resolve`: the result once every Countersign approval is decided. */
  async run(agent: Agent<any, any>, input: string, options?: RunOptions): Promise<RunResult<any, any>> {
    const result = (await run(agent, input, options)) as RunResult<any, any>;
    return this.resolve(agent, result, options);
  }

  /** Decides `result`'s Countersign interruptions from Countersign's answers and resumes, until none is left. */
  async resolve(agent: Agent<any, any>, result: RunResult<any, any>, options?: RunOptions): Promise<RunResult<any, any>> {
    for (;;) {
      const ours = result.interruptions.filter((item) => item.name !== undefined && this.#actions.has(item.name));
      if (ours.length === 0) return result;
      for (const item of ours) {
        const name = item.name as string;
        const callId = (item.rawItem as { callId?: string }).callId;
        const args = JSON.parse(item.arguments || "{}") as JsonObject;
        const decision = await this.gate.request(this.#actions.get(name) as string, args, this.#request(name, args, callId, true));
        if (callId) this.#decisions.set(callId, decision);
        if (mayRun(decision)) result.state.approve(item);
        else result.state.reject(item, { message: refusalMessage(decision) });
      }
      result = (await run(agent, result.state, options)) as RunResult<any, any>;
    }
  }

  #request(tool: string, args: JsonObject, callId: string | undefined, wait = false): RequestOptions {
    const request: RequestOptions = {};
    if (callId) request.idempotencyKey = KEY_PREFIX + callId;
    const { reasoning, context, timeout } = this.#options;
    const text = typeof reasoning === "function" ? reasoning(tool, args) : reasoning;
    if (text !== undefined) request.reasoning = text;
    if (context !== undefined) request.context = context;
    if (wait && timeout !== undefined) request.timeout = timeout;
    return request;
  }
}
