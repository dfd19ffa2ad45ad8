/**
 * Every error the client throws, under `CountersignError`: the caller's own mistakes before
 * anything is sent (`InvalidInput`), the API's answers (`ApiError` subclasses, chosen by the
 * stable error `code`, then the HTTP status), and the decisions that forbid running an action
 * (`NotAllowed`: `Rejected`, `Expired`, `Denied`, `Cancelled`). An expiry is never a
 * `Rejected`: no person decided it.
 */

import { type Action, decisionReason, rejectedBy } from "./models.js";

export class CountersignError extends Error {
  override name = "CountersignError";
}

/** A value given to the client is of the wrong type or out of range; nothing was sent. */
export class InvalidInput extends CountersignError {
  override name = "InvalidInput";
}

/** The client cannot be built: no token, or a URL that is not http(s). */
export class ConfigurationError extends CountersignError {
  override name = "ConfigurationError";
}

/** The server could not be reached within the time allowed. */
export class ConnectionFailed extends CountersignError {
  override name = "ConnectionFailed";
}

/** The server answered something that is not the API's shape. */
export class ProtocolError extends CountersignError {
  override name = "ProtocolError";
}

/** Still `pending` when the caller's own `timeout` ended; the action goes on waiting. */
export class WaitTimeout extends CountersignError {
  override name = "WaitTimeout";
  constructor(readonly action: Action) {
    super(`action ${action.id} (${action.action}) is still pending`);
  }
}

/** An error answer from the API: `{"error": {"code", "message"}}`. */
export class ApiError extends CountersignError {
  override name = "ApiError";
  readonly retryable: boolean = false;
  constructor(
    readonly status: number,
    readonly code: string,
    override readonly message: string,
    readonly body?: unknown,
  ) {
    super(`${code}: ${message} (HTTP ${status})`);
  }
}
/** 400, 413, 415, 422: malformed or invalid. */
export class BadRequest extends ApiError { override name = "BadRequest"; }
/** 422 `idempotency_mismatch`: the key was used before with another request. */
export class IdempotencyMismatch extends BadRequest { override name = "IdempotencyMismatch"; }
/** 401: no valid token. */
export class Unauthorized extends ApiError { override name = "Unauthorized"; }
/** 403: this token may not do that. */
export class Forbidden extends ApiError { override name = "Forbidden"; }
/** 404: no such action (or not one this token may read). */
export class NotFound extends ApiError { override name = "NotFound"; }
/** 409: the action's state does not allow it (e.g. no longer pending). */
export class Conflict extends ApiError { override name = "Conflict"; }
/** 429 `too_many_waits`: retryable. */
export class TooManyWaits extends ApiError { override name = "TooManyWaits"; override readonly retryable = true; }
/** 503: retryable. */
export class Unavailable extends ApiError { override name = "Unavailable"; override readonly retryable = true; }
/** Any other 5xx. */
export class ServerError extends ApiError { override name = "ServerError"; override readonly retryable = true; }

type ApiErrorClass = new (status: number, code: string, message: string, body?: unknown) => ApiError;

const BY_CODE: Record<string, ApiErrorClass> = {
  idempotency_mismatch: IdempotencyMismatch,
  too_many_waits: TooManyWaits,
  unavailable: Unavailable,
  too_many_connections: Unavailable,
};
const BY_STATUS: Record<number, ApiErrorClass> = {
  400: BadRequest, 401: Unauthorized, 403: Forbidden, 404: NotFound, 409: Conflict,
  413: BadRequest, 415: BadRequest, 422: BadRequest, 429: TooManyWaits, 503: Unavailable,
};

/** The typed error for an error answer: by its code first, then its status. */
export function apiError(status: number, body: unknown): ApiError {
  let code = "http_error";
  let message = `the server answered HTTP ${status}`;
  const detail = (body as { error?: { code?: unknown; message?: unknown } } | null)?.error;
  if (detail && typeof detail === "object") {
    if (typeof detail.code === "string") code = detail.code;
    if (typeof detail.message === "string") message = detail.message;
  }
  const cls = BY_CODE[code] ?? BY_STATUS[status] ?? (status >= 500 ? ServerError : ApiError);
  return new cls(status, code, message, body);
}

/** The action may not run; `action` is its final state and `reason` says why. */
export class NotAllowed extends CountersignError {
  override name = "NotAllowed";
  readonly reason: string | undefined;
  constructor(readonly action: Action, message?: string) {
    const reason = decisionReason(action);
    super(message ?? `${action.action} was ${action.status}: ${reason}`);
    this.reason = reason;
  }
}
/** A reviewer rejected the action: `reason` is theirs, `reviewer` who they are. */
export class Rejected extends NotAllowed {
  override name = "Rejected";
  readonly reviewer: string | undefined;
  constructor(action: Action) {
    const reviewer = rejectedBy(action);
    const who = reviewer ? ` by ${reviewer}` : "";
    super(action, `${action.action} was rejected${who}: ${decisionReason(action) ?? "no reason given"}`);
    this.reviewer = reviewer;
  }
}
/** Nobody decided before the review deadline. Not a rejection. */
export class Expired extends NotAllowed {
  override name = "Expired";
  constructor(action: Action) {
    super(action, `${action.action} expired without a decision: ${decisionReason(action)}`);
  }
}
/** The policy denies the action; no person was asked. */
export class Denied extends NotAllowed { override name = "Denied"; }
/** The agent withdrew the action before anyone decided. */
export class Cancelled extends NotAllowed { override name = "Cancelled"; }

/** Already approved and run (its outcome is recorded): `gated` does not run it twice. */
export class AlreadyExecuted extends CountersignError {
  override name = "AlreadyExecuted";
  constructor(readonly action: Action) {
    super(`${action.action} (${action.id}) already ran: outcome ${action.outcome?.status}`);
  }
}

/** The error for a final action that may not run. */
export function notAllowed(action: Action): NotAllowed {
  switch (action.status) {
    case "rejected": return new Rejected(action);
    case "expired": return new Expired(action);
    case "denied": return new Denied(action);
    case "cancelled": return new Cancelled(action);
    default: throw new InvalidInput(`action ${action.id} is ${action.status}, not a refusal`);
  }
}
