/**
 * The action object and its parts as the API sends them (SPEC §3). Field lists are kept next to
 * the types and held equal to them by the compiler, so that `test/openapi-drift.test.ts` can
 * compare what this client knows with the server's `/v1/openapi.json`.
 */

export const STATUSES = ["allowed", "denied", "pending", "approved", "rejected", "expired", "cancelled"] as const;
export type Status = (typeof STATUSES)[number];

export const TIERS = ["auto", "logged", "approve", "confirm", "deny"] as const;
export type Tier = (typeof TIERS)[number];

export const VERDICTS = ["approve", "reject", "modify"] as const;
export type Verdict = (typeof VERDICTS)[number];

export const OUTCOME_STATUSES = ["succeeded", "failed"] as const;
export type OutcomeStatus = (typeof OUTCOME_STATUSES)[number];

/** A sampled action's post-hoc review: waiting (`open`), or the reviewer's verdict. */
export const REVIEW_STATES = ["open", "ok", "flag"] as const;
export type ReviewState = (typeof REVIEW_STATES)[number];

export const HINTS = ["read_only", "destructive", "idempotent", "open_world"] as const;
export type Hints = Partial<Record<(typeof HINTS)[number], boolean>>;

export type JsonObject = { [key: string]: unknown };

/** One reviewer's verdict. */
export interface Decision {
  reviewer: string;
  verdict: Verdict;
  at: string;
  reason?: string | null;
  args?: JsonObject | null;
}

/** What the agent reported after running the action. */
export interface Outcome {
  status: OutcomeStatus;
  at: string;
  detail?: unknown;
}

/**
 * The action object. Run the action only when {@link mayRun} says so, and then with `args`
 * (a reviewer's after a `modify`; the agent's own are in `original_args`).
 */
export interface Action {
  id: string;
  action: string;
  agent: string;
  status: Status;
  tier: Tier;
  reason: string;
  args: JsonObject;
  approvals_required: number;
  decisions: Decision[];
  created_at: string;
  context: JsonObject;
  approvers: string[];
  admins_only: boolean;
  policy_hash: string;
  rule?: string | null;
  original_args?: JsonObject | null;
  deadline?: string | null;
  decided_at?: string | null;
  confidence?: number | null;
  reasoning?: string | null;
  review?: ReviewState | null;
  outcome?: Outcome | null;
  /** The grant that let the action run without asking, if one did. */
  grant?: string | null;
}

/** Every key of `T`, listed: the compiler refuses a list that misses or invents one. */
type KeyList<T> = readonly (keyof T)[];
type Exhaustive<T, L extends KeyList<T>> = [Exclude<keyof T, L[number]>] extends [never] ? L : never;
function keys<T>() {
  return <const L extends KeyList<T>>(list: Exhaustive<T, L>): L => list;
}

export const ACTION_FIELDS = keys<Action>()([
  "id", "action", "agent", "status", "tier", "reason", "args", "approvals_required", "decisions",
  "created_at", "context", "approvers", "admins_only", "policy_hash", "rule", "original_args",
  "deadline", "decided_at", "confidence", "reasoning", "review", "outcome", "grant",
]);
/** The fields the client relies on being present (the rest may be absent or null). */
export const ACTION_REQUIRED = [
  "id", "action", "agent", "status", "tier", "reason", "args", "approvals_required", "decisions",
  "created_at", "context", "approvers", "admins_only", "policy_hash",
] as const satisfies KeyList<Action>;
export const DECISION_FIELDS = keys<Decision>()(["reviewer", "verdict", "at", "reason", "args"]);
export const DECISION_REQUIRED = ["reviewer", "verdict", "at"] as const satisfies KeyList<Decision>;
export const OUTCOME_FIELDS = keys<Outcome>()(["status", "at", "detail"]);
export const OUTCOME_REQUIRED = ["status", "at"] as const satisfies KeyList<Outcome>;

/** What `POST /v1/actions` takes. */
export interface SubmitBody {
  action: string;
  args?: JsonObject;
  reasoning?: string;
  context?: JsonObject;
  confidence?: number;
  hints?: Hints;
  idempotency_key?: string;
}
export const SUBMIT_FIELDS = keys<SubmitBody>()([
  "action", "args", "reasoning", "context", "confidence", "hints", "idempotency_key",
]);

export interface DecisionBody {
  verdict: Verdict;
  args?: JsonObject;
  reason?: string;
  confirm?: string;
}
export const DECISION_BODY_FIELDS = keys<DecisionBody>()(["verdict", "args", "reason", "confirm"]);

export interface OutcomeBody {
  status: OutcomeStatus;
  detail?: unknown;
}
export const OUTCOME_BODY_FIELDS = keys<OutcomeBody>()(["status", "detail"]);

export function isFinal(status: Status): boolean {
  return status !== "pending";
}

/** `allowed` or `approved`: the agent may run the action, with its `args`. */
export function mayRun(action: Action): boolean {
  return action.status === "allowed" || action.status === "approved";
}

/** The reviewer whose verdict rejected the action (only for `rejected`). */
export function rejectedBy(action: Action): string | undefined {
  if (action.status !== "rejected") return undefined;
  return [...action.decisions].reverse().find((d) => d.verdict === "reject")?.reviewer;
}

/**
 * Why it ended the way it did: a rejection's reviewer reason; an approval's last reason, if
 * any; otherwise the server's reason (an expiry had no decision, and this never pretends one).
 */
export function decisionReason(action: Action): string | undefined {
  if (action.status === "rejected" || action.status === "approved") {
    const decisions = [...action.decisions].reverse();
    const deciding = action.status === "rejected" ? decisions.find((d) => d.verdict === "reject") : decisions[0];
    if (deciding?.reason) return deciding.reason;
  }
  return action.reason || undefined;
}
