"""Every error the client raises, one hierarchy under `CountersignError`.

Three families: the caller's own mistakes before anything is sent (`InvalidInput`), the
server's answers (`ApiError`, one subclass per kind, chosen from the API's stable error `code`
and then the HTTP status), and the decisions that forbid running an action (`NotAllowed`:
`Rejected`, `Expired`, `Denied`, `Cancelled`). An expiry is its own class and never a
`Rejected`: no person decided it, and an agent (or a metric) that reads "the reviewer said no"
into a timeout is wrong.
"""

from __future__ import annotations

from typing import Any

from ._models import Action, Status


class CountersignError(Exception):
    """The base of every error raised by this package."""


class InvalidInput(CountersignError, TypeError, ValueError):
    """A value given to the client is of the wrong type or out of range (nothing was sent).

    Also a `TypeError` and a `ValueError`, so code that catches either still does.
    """


class ConfigurationError(CountersignError):
    """The client cannot be built: no token, or a URL that is not http(s)."""


class ConnectionFailed(CountersignError):
    """The server could not be reached (refused, reset, timed out) within the time allowed."""


class ProtocolError(CountersignError):
    """The server answered something this client does not understand (not the API's shape)."""


class WaitTimeout(CountersignError):
    """The action was still `pending` when the caller's own `timeout` ended.

    The action goes on waiting on the server; `action` is its last known state, and a later
    `wait(action.id)` (or the same request with the same idempotency key) picks it up.
    """

    def __init__(self, action: Action) -> None:
        super().__init__(f"action {action.id} ({action.action}) is still pending")
        self.action = action


class ApiError(CountersignError):
    """An error answer from the API: `{"error": {"code", "message"}}` with a 4xx/5xx status."""

    retryable = False

    def __init__(self, status_code: int, code: str, message: str, body: Any = None) -> None:
        super().__init__(f"{code}: {message} (HTTP {status_code})")
        self.status_code = status_code
        self.code = code
        self.message = message
        self.body = body


class BadRequest(ApiError):
    """400, 413, 415, 422: the request was malformed or refused as invalid."""


class IdempotencyMismatch(BadRequest):
    """422 `idempotency_mismatch`: the key was used before with a different request."""


class Unauthorized(ApiError):
    """401: no valid token (missing, unknown or revoked)."""


class Forbidden(ApiError):
    """403: the token may not do this (wrong role, own agent, not an approver...)."""


class NotFound(ApiError):
    """404: no such action (or not one this token may read)."""


class Conflict(ApiError):
    """409: the action is not in a state that allows this (e.g. no longer pending)."""


class TooManyWaits(ApiError):
    """429 `too_many_waits`: the token has as many open waits as the server allows. Retryable."""

    retryable = True


class Unavailable(ApiError):
    """503: the server is at a limit or its storage cannot take writes just now. Retryable."""

    retryable = True


class ServerError(ApiError):
    """Any other 5xx."""

    retryable = True


_BY_CODE: dict[str, type[ApiError]] = {
    "idempotency_mismatch": IdempotencyMismatch,
    "too_many_waits": TooManyWaits,
    "unavailable": Unavailable,
    "too_many_connections": Unavailable,
}

_BY_STATUS: dict[int, type[ApiError]] = {
    400: BadRequest,
    401: Unauthorized,
    403: Forbidden,
    404: NotFound,
    409: Conflict,
    413: BadRequest,
    415: BadRequest,
    422: BadRequest,
    429: TooManyWaits,
    503: Unavailable,
}


def api_error(status_code: int, body: Any) -> ApiError:
    """The typed error for an error answer, from its code first, then its status."""
    code, message = "http_error", f"the server answered HTTP {status_code}"
    if isinstance(body, dict) and isinstance(body.get("error"), dict):
        detail = body["error"]
        code = str(detail.get("code", code))
        message = str(detail.get("message", message))
    cls = _BY_CODE.get(code) or _BY_STATUS.get(status_code)
    if cls is None:
        cls = ServerError if status_code >= 500 else ApiError
    return cls(status_code, code, message, body)


class NotAllowed(CountersignError):
    """The action may not run. `action` is the final action object; `reason` says why."""

    def __init__(self, action: Action) -> None:
        self.action = action
        self.reason = action.decision_reason
        super().__init__(self._describe())

    def _describe(self) -> str:
        return f"{self.action.action} was {self.action.status.value}: {self.reason}"


class Rejected(NotAllowed):
    """A reviewer rejected the action; `reason` is theirs, `reviewer` who they are."""

    def __init__(self, action: Action) -> None:
        self.reviewer = action.rejected_by
        super().__init__(action)

    def _describe(self) -> str:
        who = f" by {self.reviewer}" if self.reviewer else ""
        return f"{self.action.action} was rejected{who}: {self.reason or 'no reason given'}"


class Expired(NotAllowed):
    """No one decided before the review deadline: the SLA ended it. Not a rejection."""

    def _describe(self) -> str:
        return f"{self.action.action} expired without a decision: {self.reason}"


class Denied(NotAllowed):
    """The policy denies the action outright; no person was asked."""


class Cancelled(NotAllowed):
    """The agent withdrew the action before anyone decided."""


class ArgumentsMismatch(CountersignError):
    """The approved arguments do not fit the gated function (a reviewer's `modify` added an
    argument it does not take, or removed one it needs): it is not run with other ones."""


class AlreadyExecuted(CountersignError):
    """The action was approved and has already been run: its outcome is recorded.

    Raised by `@gated` when a resubmission with the same idempotency key (an agent restarted
    after running it) finds the outcome, so that the function never runs twice.
    """

    def __init__(self, action: Action) -> None:
        assert action.outcome is not None
        super().__init__(
            f"{action.action} ({action.id}) already ran: outcome {action.outcome.status.value}"
        )
        self.action = action
        self.outcome = action.outcome


def not_allowed(action: Action) -> NotAllowed:
    """The error for a final action that may not run."""
    match action.status:
        case Status.REJECTED:
            return Rejected(action)
        case Status.EXPIRED:
            return Expired(action)
        case Status.DENIED:
            return Denied(action)
        case Status.CANCELLED:
            return Cancelled(action)
        case _:
            raise ValueError(f"action {action.id} is {action.status.value}, not a refusal")
