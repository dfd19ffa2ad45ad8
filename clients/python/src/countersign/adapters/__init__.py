"""Framework adapters: `langgraph` (an approval step and a tool wrapper for LangGraph graphs)
and `openai_agents` (`needs_approval` for the OpenAI Agents SDK). Each is imported on its own
and needs its framework installed (`pip install countersign[langgraph]`, `[openai-agents]`).
"""

from __future__ import annotations

from .._models import Action, Status


def refusal_message(decision: Action) -> str:
    """What a model is told when an action may not run: who or what refused it, and why.

    An expiry says that no one decided (never that someone rejected it)."""
    name, reason = decision.action, decision.decision_reason
    match decision.status:
        case Status.REJECTED:
            who = decision.rejected_by or "a reviewer"
            return f"Not done: {who} rejected {name}: {reason or 'no reason given'}"
        case Status.EXPIRED:
            return (
                f"Not done: {name} expired: no reviewer decided before the deadline ({reason}). "
                "Nobody rejected it; it may be asked for again."
            )
        case Status.DENIED:
            return f"Not done: the policy denies {name}: {reason}"
        case Status.CANCELLED:
            return f"Not done: {name} was withdrawn before anyone decided"
        case _:
            return f"Not done: {name} is {decision.status.value}"
