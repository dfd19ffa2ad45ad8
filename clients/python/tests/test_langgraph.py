"""The LangGraph adapter inside a real `StateGraph` with LangGraph's SQLite checkpointer: the
graph stops at the approval, durably, and resumes with Countersign's decision — modified
arguments included — even from a new process's graph on the same checkpoint file."""

from __future__ import annotations

import sqlite3
import uuid
from pathlib import Path
from typing import Any, TypedDict

import pytest
from langchain_core.messages import AIMessage
from langchain_core.runnables import RunnableConfig
from langchain_core.tools import tool
from langgraph.checkpoint.sqlite import SqliteSaver
from langgraph.graph import END, START, StateGraph
from langgraph.prebuilt import ToolNode

from countersign import Countersign
from countersign.adapters import refusal_message
from countersign.adapters.langgraph import approval, gated_tool, pending_actions, resume

from conftest import Server, pending


class RefundState(TypedDict, total=False):
    order: str
    amount: int
    result: str


def build(gate: Countersign, action: str, checkpoints: Path, ledger: list[Any]) -> Any:
    def refund_step(state: RefundState) -> RefundState:
        decision = approval(action, {"order": state["order"], "amount": state["amount"]}, gate=gate)
        if not decision.may_run:
            return {"result": refusal_message(decision)}
        ledger.append(decision.args)
        return {"result": f"refunded {decision.args['amount']}"}

    graph = StateGraph(RefundState)
    graph.add_node("refund", refund_step)
    graph.add_edge(START, "refund")
    graph.add_edge("refund", END)
    connection = sqlite3.connect(checkpoints, check_same_thread=False)
    return graph.compile(checkpointer=SqliteSaver(connection))


@pytest.fixture
def checkpoints(tmp_path: Path) -> Path:
    return tmp_path / "checkpoints.sqlite"


@pytest.mark.parametrize("how", ["approve", "modify", "reject"])
def test_the_graph_waits_and_resumes_with_the_decision(
    server: Server, reviewer: Countersign, gate: Countersign, name: str, checkpoints: Path, how: str
) -> None:
    ledger: list[Any] = []
    config: RunnableConfig = {"configurable": {"thread_id": f"t-{uuid.uuid4()}"}}
    first = build(gate, name, checkpoints, ledger)
    stopped = first.invoke({"order": "A-1", "amount": 2500}, config)
    assert "__interrupt__" in stopped
    assert ledger == []
    [action_id] = pending_actions(first, config).values()

    [waiting] = pending(reviewer, name)
    assert waiting.id == action_id
    if how == "approve":
        reviewer.approve(waiting.id)
    elif how == "modify":
        reviewer.modify(waiting.id, {"order": "A-1", "amount": 100})
    else:
        reviewer.reject(waiting.id, reason="over the limit")

    # Another process's graph: same checkpoint file, new objects.
    second = build(gate, name, checkpoints, ledger)
    final = resume(second, config, gate=gate)
    if how == "reject":
        assert ledger == []
        assert "over the limit" in final["result"]
        assert "rejected" in final["result"]
    else:
        amount = 100 if how == "modify" else 2500
        assert ledger == [{"order": "A-1", "amount": amount}]
        assert final["result"] == f"refunded {amount}"
    # Resumed once, nothing pending any more; the action was filed once.
    assert pending_actions(second, config) == {}
    assert resume(second, config, gate=gate) is None


def test_an_allowed_action_never_interrupts(gate: Countersign, checkpoints: Path) -> None:
    ledger: list[Any] = []
    graph = build(gate, "refund.get", checkpoints, ledger)
    config: RunnableConfig = {"configurable": {"thread_id": f"t-{uuid.uuid4()}"}}
    final = graph.invoke({"order": "A-1", "amount": 5}, config)
    assert final["result"] == "refunded 5"
    assert ledger == [{"order": "A-1", "amount": 5}]


def test_a_gated_tool_in_a_tool_node(
    reviewer: Countersign, gate: Countersign, name: str, checkpoints: Path
) -> None:
    refunds: list[tuple[str, int]] = []

    @tool
    def refund(order: str, amount: int) -> str:
        """Refund an order."""
        refunds.append((order, amount))
        return f"refunded {amount}"

    class Messages(TypedDict):
        messages: list[Any]

    node = ToolNode([gated_tool(refund, action=name, gate=gate)])
    graph = StateGraph(Messages)
    graph.add_node("tools", node)
    graph.add_edge(START, "tools")
    graph.add_edge("tools", END)
    compiled = graph.compile(
        checkpointer=SqliteSaver(sqlite3.connect(checkpoints, check_same_thread=False))
    )
    call = {"name": "refund", "args": {"order": "A-2", "amount": 900}, "id": "call-1"}
    config: RunnableConfig = {"configurable": {"thread_id": f"t-{uuid.uuid4()}"}}
    stopped = compiled.invoke(Messages(messages=[AIMessage("", tool_calls=[call])]), config)
    assert "__interrupt__" in stopped
    [waiting] = pending(reviewer, name)
    reviewer.reject(waiting.id, reason="needs a manager")
    final = resume(compiled, config, gate=gate)
    assert refunds == []
    assert "needs a manager" in final["messages"][-1].content
