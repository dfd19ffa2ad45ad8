"""The OpenAI Agents SDK behind Countersign: a tool's `needs_approval` asks Countersign.

    approvals = CountersignApprovals(AsyncCountersign())
    agent = Agent(..., tools=[approvals.tool(refund, action="refund.create")])
    result = await approvals.run(agent, "Refund order A-1")

`needs_approval` files the call with Countersign (keyed by the model's call id, so a repeat
finds the same action): an action the policy allows runs at once; anything else interrupts
the run the SDK's way. `run` (or `resolve` on a result you got yourself) waits for each
interruption's decision and resumes the run: approved calls run with the approved arguments
(a reviewer's, after a `modify`), refused ones return the refusal to the model as the tool's
result — "rejected by rita: amount too high", "expired: no one decided in time" — so the
model can tell the user why. Interruptions of tools that are not Countersign's are left in
the result for the caller.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
from collections.abc import Callable, Mapping
from typing import Any

from agents import Agent, FunctionTool, RunContextWrapper, Runner, RunResult
from agents.tool_context import ToolContext

from .._async_client import AsyncCountersign
from .._errors import CountersignError
from .._models import Action, Status
from . import refusal_message

KEY_PREFIX = "openai-agents/"


class CountersignApprovals:
    """Puts Agents SDK tools behind Countersign; one per agent process.

    `timeout`: how long `run`/`resolve` wait for a decision (`None`: as long as the SLA
    takes; then `WaitTimeout`). `reasoning` and `context` are sent with every request; each
    may be a function of the tool's name and arguments.
    """

    def __init__(
        self,
        gate: AsyncCountersign | None = None,
        *,
        timeout: float | None = None,
        reasoning: str | Callable[[str, dict[str, Any]], str] | None = None,
        context: Mapping[str, Any] | None = None,
    ) -> None:
        self.gate = gate if gate is not None else AsyncCountersign()
        self.timeout = timeout
        self.reasoning = reasoning
        self.context = context
        self._actions: dict[str, str] = {}  # tool name -> Countersign action name
        self._decisions: dict[str, Action] = {}  # call id -> the latest word on it

    def tool(self, tool: FunctionTool, *, action: str | None = None) -> FunctionTool:
        """`tool` with `needs_approval` answered by Countersign under `action` (default: the
        tool's name), and run only with the arguments Countersign approved."""
        if not isinstance(tool, FunctionTool):
            raise CountersignError(f"expected an agents FunctionTool, got {type(tool).__name__}")
        action_name = action or tool.name
        self._actions[tool.name] = action_name
        original = tool.on_invoke_tool

        async def needs_approval(
            _context: RunContextWrapper[Any], params: dict[str, Any], call_id: str
        ) -> bool:
            decision = await self.gate.submit(
                action_name,
                params,
                idempotency_key=KEY_PREFIX + call_id,
                **self._extra(tool.name, params),
            )
            self._decisions[call_id] = decision
            return decision.status is not Status.ALLOWED

        async def invoke(context: ToolContext[Any], arguments: str) -> Any:
            call_id = context.tool_call_id
            decision = self._decisions.get(call_id)
            if decision is None or not decision.status.is_final:
                # Not seen by this process (a resumed run after a restart): ask again; the
                # idempotency key finds the same action.
                params = json.loads(arguments or "{}")
                decision = await self.gate.request(
                    action_name,
                    params,
                    idempotency_key=KEY_PREFIX + call_id,
                    timeout=self.timeout,
                    **self._extra(tool.name, params),
                )
            if not decision.may_run:
                return refusal_message(decision)
            result = await original(context, json.dumps(decision.args))
            # Best effort: the tool ran, and its result must reach the model.
            with contextlib.suppress(CountersignError):
                await self.gate.report_outcome(decision.id, "succeeded")
            return result

        return dataclasses.replace(tool, needs_approval=needs_approval, on_invoke_tool=invoke)

    async def run(self, agent: Agent[Any], input: Any, **runner: Any) -> RunResult:
        """`Runner.run`, then `resolve`: the result once every Countersign approval is decided."""
        result = await Runner.run(agent, input, **runner)
        return await self.resolve(agent, result, **runner)

    async def resolve(self, agent: Agent[Any], result: RunResult, **runner: Any) -> RunResult:
        """Waits for Countersign's decision on each of `result`'s interruptions that are its
        own, approves or rejects them (with the reason), and resumes the run, until none is
        left."""
        while True:
            ours = [i for i in result.interruptions if i.name in self._actions]
            if not ours:
                return result
            state = result.to_state()
            for item in ours:
                call_id = item.call_id or ""
                params = json.loads(item.arguments or "{}")
                name = item.name or ""
                decision = await self.gate.request(
                    self._actions[name],
                    params,
                    idempotency_key=KEY_PREFIX + call_id,
                    timeout=self.timeout,
                    **self._extra(name, params),
                )
                self._decisions[call_id] = decision
                if decision.may_run:
                    state.approve(item)
                else:
                    state.reject(item, rejection_message=refusal_message(decision))
            result = await Runner.run(agent, state, **runner)

    def _extra(self, tool: str, params: dict[str, Any]) -> dict[str, Any]:
        reasoning = self.reasoning(tool, params) if callable(self.reasoning) else self.reasoning
        return {"reasoning": reasoning, "context": self.context}
