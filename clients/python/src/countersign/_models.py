"""The action object and its parts, as the API sends them (SPEC §3), parsed once into typed values.

Every field the server documents is a field here: `tests/test_openapi_drift.py` compares these
dataclasses with the server's `/v1/openapi.json`, so the client cannot silently fall behind the
API. Unknown fields are kept in `raw` rather than dropped.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any


class Status(str, enum.Enum):
    """Where an action stands. Only `allowed` and `approved` may run."""

    ALLOWED = "allowed"
    DENIED = "denied"
    PENDING = "pending"
    APPROVED = "approved"
    REJECTED = "rejected"
    EXPIRED = "expired"
    CANCELLED = "cancelled"

    @property
    def is_final(self) -> bool:
        return self is not Status.PENDING

    @property
    def may_run(self) -> bool:
        return self in (Status.ALLOWED, Status.APPROVED)


class Tier(str, enum.Enum):
    AUTO = "auto"
    LOGGED = "logged"
    APPROVE = "approve"
    CONFIRM = "confirm"
    DENY = "deny"


class Verdict(str, enum.Enum):
    APPROVE = "approve"
    REJECT = "reject"
    MODIFY = "modify"


class ReviewState(str, enum.Enum):
    """A sampled action's post-hoc review: waiting (`open`), or the reviewer's verdict."""

    OPEN = "open"
    OK = "ok"
    FLAG = "flag"


class OutcomeStatus(str, enum.Enum):
    SUCCEEDED = "succeeded"
    FAILED = "failed"


@dataclass(frozen=True, slots=True)
class Decision:
    """One reviewer's verdict on an action."""

    reviewer: str
    verdict: Verdict
    at: str
    reason: str | None = None
    args: dict[str, Any] | None = None

    @classmethod
    def from_json(cls, value: dict[str, Any]) -> Decision:
        return cls(
            reviewer=value["reviewer"],
            verdict=Verdict(value["verdict"]),
            at=value["at"],
            reason=value.get("reason"),
            args=value.get("args"),
        )


@dataclass(frozen=True, slots=True)
class Outcome:
    """What the agent reported after running the action."""

    status: OutcomeStatus
    at: str
    detail: Any = None

    @classmethod
    def from_json(cls, value: dict[str, Any]) -> Outcome:
        return cls(
            status=OutcomeStatus(value["status"]), at=value["at"], detail=value.get("detail")
        )


@dataclass(frozen=True, slots=True)
class Action:
    """The action object: every answer about an action.

    Run the action only when `may_run`, and then with `args` (a reviewer's arguments after a
    `modify`; the agent's own are in `original_args`).
    """

    id: str
    action: str
    agent: str
    status: Status
    tier: Tier
    reason: str
    args: dict[str, Any]
    approvals_required: int
    decisions: tuple[Decision, ...]
    created_at: str
    context: dict[str, Any]
    approvers: tuple[str, ...]
    admins_only: bool
    policy_hash: str
    rule: str | None = None
    original_args: dict[str, Any] | None = None
    deadline: str | None = None
    decided_at: str | None = None
    confidence: float | None = None
    reasoning: str | None = None
    review: ReviewState | None = None
    outcome: Outcome | None = None
    grant: str | None = None
    """The grant that let the action run without asking, if one did."""
    raw: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def from_json(cls, value: dict[str, Any]) -> Action:
        outcome = value.get("outcome")
        return cls(
            id=value["id"],
            action=value["action"],
            agent=value["agent"],
            status=Status(value["status"]),
            tier=Tier(value["tier"]),
            reason=value["reason"],
            args=value["args"],
            approvals_required=value["approvals_required"],
            decisions=tuple(Decision.from_json(d) for d in value["decisions"]),
            created_at=value["created_at"],
            context=value["context"],
            approvers=tuple(value["approvers"]),
            admins_only=value["admins_only"],
            policy_hash=value["policy_hash"],
            rule=value.get("rule"),
            original_args=value.get("original_args"),
            deadline=value.get("deadline"),
            decided_at=value.get("decided_at"),
            confidence=value.get("confidence"),
            reasoning=value.get("reasoning"),
            review=ReviewState(value["review"]) if value.get("review") is not None else None,
            outcome=Outcome.from_json(outcome) if outcome is not None else None,
            grant=value.get("grant"),
            raw=value,
        )

    @property
    def may_run(self) -> bool:
        """`allowed` or `approved`: the agent may run the action, with `args`."""
        return self.status.may_run

    @property
    def modified(self) -> bool:
        """A reviewer replaced the agent's arguments."""
        return self.original_args is not None

    @property
    def decision_reason(self) -> str | None:
        """Why it ended the way it did, in the words that matter to the agent.

        A rejection: the rejecting reviewer's `reason`. An approval: the last reviewer's
        reason, if any. An expiry, a denial, an allowance: the server's `reason` (no person
        decided, and this never pretends one did).
        """
        if self.status in (Status.REJECTED, Status.APPROVED):
            wanted = Verdict.REJECT if self.status is Status.REJECTED else None
            for decision in reversed(self.decisions):
                if wanted is None or decision.verdict is wanted:
                    if decision.reason:
                        return decision.reason
                    break
        return self.reason or None

    @property
    def rejected_by(self) -> str | None:
        """The reviewer whose verdict rejected the action (only for `rejected`)."""
        if self.status is not Status.REJECTED:
            return None
        for decision in reversed(self.decisions):
            if decision.verdict is Verdict.REJECT:
                return decision.reviewer
        return None
