"""Countersign's Python client: ask before an agent acts, and wait for a person's decision.

    from countersign import Countersign, gated

    @gated(action="refund.create", idempotency_key=lambda a: f"refund/{a['order']}")
    def refund(order: str, amount: int) -> None: ...

`Countersign` / `AsyncCountersign` talk to the server (`request`, `wait`, `report_outcome`,
`decide`...); `@gated` runs a function only when its action is allowed or approved, with the
approved arguments. Adapters for LangGraph and the OpenAI Agents SDK are in
`countersign.adapters`.
"""

from ._async_client import AsyncCountersign
from ._client import Countersign, WaitMode
from ._errors import (
    AlreadyExecuted,
    ApiError,
    ArgumentsMismatch,
    BadRequest,
    Cancelled,
    ConfigurationError,
    Conflict,
    ConnectionFailed,
    CountersignError,
    Denied,
    Expired,
    Forbidden,
    IdempotencyMismatch,
    InvalidInput,
    NotAllowed,
    NotFound,
    ProtocolError,
    Rejected,
    ServerError,
    TooManyWaits,
    Unauthorized,
    Unavailable,
    WaitTimeout,
    not_allowed,
)
from ._gated import gated
from ._models import Action, Decision, Outcome, OutcomeStatus, ReviewState, Status, Tier, Verdict

__version__ = "0.1.0"

__all__ = [
    "Action",
    "AlreadyExecuted",
    "ApiError",
    "ArgumentsMismatch",
    "AsyncCountersign",
    "BadRequest",
    "Cancelled",
    "ConfigurationError",
    "Conflict",
    "ConnectionFailed",
    "Countersign",
    "CountersignError",
    "Decision",
    "Denied",
    "Expired",
    "Forbidden",
    "IdempotencyMismatch",
    "InvalidInput",
    "NotAllowed",
    "NotFound",
    "Outcome",
    "OutcomeStatus",
    "ProtocolError",
    "Rejected",
    "ReviewState",
    "ServerError",
    "Status",
    "Tier",
    "TooManyWaits",
    "Unauthorized",
    "Unavailable",
    "Verdict",
    "WaitMode",
    "WaitTimeout",
    "gated",
    "not_allowed",
]
