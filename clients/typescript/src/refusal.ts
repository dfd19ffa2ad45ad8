/** What a model is told when an action may not run (the adapters' tool result). */

import { type Action, decisionReason, rejectedBy } from "./models.js";

/** Who or what refused the action, and why; an expiry says that nobody decided. */
export function refusalMessage(decision: Action): string {
  const name = decision.action;
  const reason = decisionReason(decision);
  switch (decision.status) {
    case "rejected":
      return `Not done: ${rejectedBy(decision) ?? "a reviewer"} rejected ${name}: ${reason ?? "no reason given"}`;
    case "expired":
      return `Not done: ${name} expired: no reviewer decided before the deadline (${reason}). Nobody rejected it; it may be asked for again.`;
    case "denied":
      return `Not done: the policy denies ${name}: ${reason}`;
    case "cancelled":
      return `Not done: ${name} was withdrawn before anyone decided`;
    default:
      return `Not done: ${name} is ${decision.status}`;
  }
}
