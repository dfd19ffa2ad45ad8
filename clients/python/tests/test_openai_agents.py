"""The OpenAI Agents SDK adapter with a real `Agent` and `Runner`, the model scripted by the
SDK's own `agents.testing.ScriptedModel` (no network)."""

from __future__ import annotations

import asyncio
import json
import uuid
from typing import Any

import pytest
from agents import Agent, RunConfig, function_tool
from agents.testing import ScriptedModel, assistant_message, function_call

from countersign import AsyncCountersign, Status
from countersign.adapters.openai_agents import CountersignApprovals

from conftest import Server, pending

NO_TRACING = RunConfig(tracing_disabled=True)


def tool_outputs(model: ScriptedModel) -> list[str]:
    """The tool results the model was shown in its last call."""
    call = model.last_call
    assert call is not None
    items = call.input if isinstance(call.input, list) else []
    return [
        str(item["output"])
        for item in items
        if isinstance(item, dict) and item.get("type") == "function_call_output"
    ]


def refund_agent(
    server: Server, action: str, refunds: list[tuple[str, int]]
) -> tuple[Agent[Any], ScriptedModel, CountersignApprovals]:
    @function_tool
    def refund(order: str, amount: int) -> str:
        """Refund an order."""
        refunds.append((order, amount))
        return f"refunded {amount} on {order}"

    call_id = f"call_{uuid.uuid4().hex}"
    model = ScriptedModel(
        [
            [function_call("refund", {"order": "A-1", "amount": 2500}, call_id=call_id)],
            [assistant_message("done")],
        ]
    )
    approvals = CountersignApprovals(AsyncCountersign(server.url, server.agent_token))
    agent = Agent(name="support", model=model, tools=[approvals.tool(refund, action=action)])
    return agent, model, approvals


async def decide(server: Server, action: str, how: str) -> None:
    reviewer = server.reviewer()
    [waiting] = await asyncio.to_thread(pending, reviewer, action)
    if how == "modify":
        reviewer.modify(waiting.id, {"order": "A-1", "amount": 100}, reason="partial")
    elif how == "reject":
        reviewer.reject(waiting.id, reason="refunded by the bank already")
    else:
        reviewer.approve(waiting.id)


@pytest.mark.parametrize("how", ["approve", "modify"])
def test_an_approved_call_runs_with_the_approved_arguments(
    server: Server, name: str, how: str
) -> None:
    refunds: list[tuple[str, int]] = []
    agent, model, approvals = refund_agent(server, name, refunds)

    async def scenario() -> None:
        run = asyncio.create_task(approvals.run(agent, "refund A-1", run_config=NO_TRACING))
        await decide(server, name, how)
        result = await run
        assert result.final_output == "done"
        assert result.interruptions == []

    asyncio.run(scenario())
    amount = 100 if how == "modify" else 2500
    assert refunds == [("A-1", amount)]
    assert tool_outputs(model) == [f"refunded {amount} on A-1"]
    model.assert_complete()


def test_a_rejection_is_the_tools_result_with_the_reason(server: Server, name: str) -> None:
    refunds: list[tuple[str, int]] = []
    agent, model, approvals = refund_agent(server, name, refunds)

    async def scenario() -> None:
        run = asyncio.create_task(approvals.run(agent, "refund A-1", run_config=NO_TRACING))
        await decide(server, name, "reject")
        assert (await run).final_output == "done"

    asyncio.run(scenario())
    assert refunds == []
    [output] = tool_outputs(model)
    assert "rejected" in output
    assert "refunded by the bank already" in output
    assert "rita" in output


def test_an_expiry_is_told_as_an_expiry(server: Server) -> None:
    refunds: list[tuple[str, int]] = []
    # `slow.*` expires after 2 s with nobody deciding.
    agent, model, approvals = refund_agent(server, "slow.agent-refund", refunds)
    result = asyncio.run(approvals.run(agent, "refund A-1", run_config=NO_TRACING))
    assert result.final_output == "done"
    assert refunds == []
    [output] = tool_outputs(model)
    assert "expired" in output
    assert "rejected" not in output.replace("Nobody rejected", "")


def test_an_allowed_call_runs_without_interrupting(server: Server) -> None:
    lookups: list[str] = []

    @function_tool
    def lookup(customer: str) -> str:
        """Look a customer up."""
        lookups.append(customer)
        return json.dumps({"customer": customer, "tier": "gold"})

    model = ScriptedModel(
        [
            [function_call("lookup", {"customer": "c_9"}, call_id=f"call_{uuid.uuid4().hex}")],
            [assistant_message("gold")],
        ]
    )
    approvals = CountersignApprovals(AsyncCountersign(server.url, server.agent_token))
    agent = Agent(
        name="support", model=model, tools=[approvals.tool(lookup, action="customer.get")]
    )
    result = asyncio.run(approvals.run(agent, "who is c_9", run_config=NO_TRACING))
    assert result.final_output == "gold"
    assert lookups == ["c_9"]
    allowed = server.reviewer().queue(status="allowed", action="customer.get", limit=1000)
    assert any(a.args == {"customer": "c_9"} and a.status is Status.ALLOWED for a in allowed)
