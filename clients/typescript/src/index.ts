/**
 * Countersign's TypeScript client: ask before an agent acts, and wait for a person's decision.
 *
 * ```ts
 * import { gated } from "countersign";
 * const refund = gated({ action: "refund.create" }, async ({ order, amount }) => payments.refund(order, amount));
 * ```
 */

export { Countersign, DEFAULT_URL, parseAction, submitBody } from "./client.js";
export type { CountersignOptions, RequestOptions, SubmitOptions, WaitMode, WaitOptions } from "./client.js";
export * from "./errors.js";
export { gated } from "./gated.js";
export type { GatedOptions } from "./gated.js";
export * from "./models.js";
export { refusalMessage } from "./refusal.js";
