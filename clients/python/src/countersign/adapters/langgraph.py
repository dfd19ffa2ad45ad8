"""LangGraph behind Countersign: `approval()` where a node would call `interrupt()`.

    def refund_step(state: State) -> dict:
        decision = approval("refund.create", {"order": state["order"], "amount": state["amount"]})
        if not decision.may_run:
            return {"result": refusal_message(decision)}
        return {"result": refund(**decision.args)}      # the reviewer's arguments after a modify

    graph.invoke(inputs, config)          # stops at the approval, durably (any checkpointer)
    resume(graph, config)                 # waits for Countersign's decision, resumes the graph

`approval` files the action with Countersign (keyed by the thread, the task and the
arguments, so that the node running again finds the same action) and returns at once when the
policy allows or denies it; otherwise it interrupts the graph with the pending action as the
interrupt's value. `resume` waits for the decisions of the graph's pending Countersign
interrupts and resumes it with `Command(resume=...)`; the node runs again, and `approval` then
returns the decision — read from the server, never taken from the resume value, so nothing but
a reviewer's decision can let the action through. `gated_tool` does the same for a LangChain
tool in a `ToolNode`: refusals become the tool's result, with the reason.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
from collections.abc import Mapping
from typing import Any

from langchain_core.tools import BaseTool, StructuredTool
from langgraph.config import get_config
from langgraph.types import Command, interrupt

from .._client import Countersign
from .._errors import CountersignError
from .._models import Action
from . import refusal_message

INTERRUPT_KEY = "countersign_action"

_default: list[Countersign] = []


def _gate(gate: Countersign | None) -> Countersign:
    if gate is not None:
        return gate
    if not _default:
        _default.append(Countersign())
    return _default[0]


def _idempotency_key(action: str, args: Mapping[str, Any]) -> str:
    configurable = get_config().get("configurable", {})
    thread = str(configurable.get("thread_id", ""))
    namespace = str(configurable.get("checkpoint_ns", ""))
    digest = hashlib.sha256(
        json.dumps([thread, namespace, action, args], sort_keys=True).encode()
    ).hexdigest()
    return f"langgraph/{digest[:40]}"


def approval(
    action: str,
    args: Mapping[str, Any] | None = None,
    *,
    gate: Countersign | None = None,
    reasoning: str | None = None,
    context: Mapping[str, Any] | None = None,
    confidence: float | None = None,
    idempotency_key: str | None = None,
) -> Action:
    """Inside a node: Countersign's final decision on `action` with `args`.

    Interrupts the graph while a person decides (see `resume`). Pass an `idempotency_key`
    of your own when the node may call it twice with the same action and arguments for two
    different purposes; `reasoning` and `context` must be the same each time the node runs
    (they are part of the request the key names).
    """
    client = _gate(gate)
    arguments = dict(args or {})
    key = idempotency_key or _idempotency_key(action, arguments)
    current, replayed = client._submit(
        action,
        arguments,
        reasoning=reasoning,
        context=dict(context) if context is not None else None,
        confidence=confidence,
        idempotency_key=key,
    )
    if replayed:
        current = client.get(current.id)  # a replay answers as the first submission did
    if current.status.is_final:
        return current
    interrupt({INTERRUPT_KEY: current.raw})
    # Resumed: what decides is the server's word on the action, not the resume value.
    decided = client.get(current.id)
    if not decided.status.is_final:
        decided = client.wait(current.id)
    return decided


def pending_actions(graph: Any, config: Mapping[str, Any]) -> dict[str, str]:
    """The graph's pending Countersign interrupts: interrupt id -> action id."""
    state = graph.get_state(config)
    found: dict[str, str] = {}
    for item in state.interrupts:
        value = item.value
        if isinstance(value, Mapping) and INTERRUPT_KEY in value:
            found[item.id] = value[INTERRUPT_KEY]["id"]
    return found


def resume(
    graph: Any,
    config: Mapping[str, Any],
    *,
    gate: Countersign | None = None,
    timeout: float | None = None,
) -> Any:
    """Waits for Countersign's decision on each pending Countersign interrupt of the graph
    thread `config` names, then resumes the graph and returns what `invoke` returns. With no
    such interrupt pending, returns `None` without running anything."""
    client = _gate(gate)
    waiting = pending_actions(graph, config)
    if not waiting:
        return None
    decisions = {
        interrupt_id: client.wait(action_id, timeout=timeout).raw
        for interrupt_id, action_id in waiting.items()
    }
    return graph.invoke(Command(resume=decisions), config)


def gated_tool(
    tool: BaseTool,
    *,
    action: str | None = None,
    gate: Countersign | None = None,
    report_outcome: bool = True,
) -> BaseTool:
    """`tool` run only with Countersign's approval (under `action`, default the tool's name),
    with the approved arguments; a refusal is the tool's result, with the reason. Use it in a
    `ToolNode` (or any node): it interrupts the graph like `approval`."""
    name = action or tool.name

    def run(**kwargs: Any) -> Any:
        decision = approval(name, kwargs, gate=gate)
        if not decision.may_run:
            return refusal_message(decision)
        result = tool.invoke(decision.args)
        if report_outcome:
            # Best effort: the tool ran, and its result must reach the graph.
            with contextlib.suppress(CountersignError):
                _gate(gate).report_outcome(decision.id, "succeeded")
        return result

    return StructuredTool.from_function(
        func=run,
        name=tool.name,
        description=tool.description,
        args_schema=tool.args_schema,
    )
