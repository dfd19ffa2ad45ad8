"""Every way a request can end, through `Countersign.request` and `@gated`, sync and async,
against the real server."""

from __future__ import annotations

import asyncio
import threading
import uuid
from typing import Any

import pytest

from countersign import (
    AsyncCountersign,
    Countersign,
    Denied,
    Expired,
    Rejected,
    Status,
    Tier,
    gated,
)

from conftest import Server, in_thread, pending


def test_allowed_runs_at_once(gate: Countersign) -> None:
    decision = gate.request("customer.get", {"id": "c_9"})
    assert decision.status is Status.ALLOWED
    assert decision.tier is Tier.AUTO
    assert decision.may_run
    assert decision.rule == "lookups"


def test_denied_never_runs(gate: Countersign) -> None:
    ran = []

    @gated(action="db.drop", gate=gate)
    def drop(table: str) -> None:
        ran.append(table)

    with pytest.raises(Denied) as refused:
        drop("customers")
    assert ran == []
    assert refused.value.action.status is Status.DENIED
    assert refused.value.reason
    assert gate.request("db.drop", {"table": "x"}).status is Status.DENIED


@pytest.mark.parametrize("wait_mode", ["poll", "sse"])
def test_approved_runs_with_the_arguments(
    server: Server, reviewer: Countersign, name: str, wait_mode: str
) -> None:
    calls: list[tuple[str, int]] = []
    gate = server.agent(wait_mode=wait_mode)

    @gated(action=name, gate=gate, reasoning="charged twice")
    def refund(order: str, amount: int = 10) -> str:
        calls.append((order, amount))
        return "refunded"

    result = in_thread(refund, "A-1", 2500)
    [waiting] = pending(reviewer, name)
    assert waiting.args == {"order": "A-1", "amount": 2500}
    assert waiting.reasoning == "charged twice"
    reviewer.approve(waiting.id, reason="duplicate confirmed")
    assert result.result(timeout=30) == "refunded"
    assert calls == [("A-1", 2500)]
    done = reviewer.get(waiting.id)
    assert done.status is Status.APPROVED
    assert done.outcome is not None
    assert done.outcome.status.value == "succeeded"


def test_modified_runs_with_the_reviewers_arguments(
    gate: Countersign, reviewer: Countersign, name: str
) -> None:
    calls: list[tuple[str, int]] = []

    @gated(action=name, gate=gate)
    def refund(order: str, amount: int) -> None:
        calls.append((order, amount))

    result = in_thread(refund, "A-1", 2500)
    [waiting] = pending(reviewer, name)
    reviewer.modify(waiting.id, {"order": "A-1", "amount": 100}, reason="partial refund")
    result.result(timeout=30)
    assert calls == [("A-1", 100)]
    done = gate.get(waiting.id)
    assert done.modified
    assert done.original_args == {"order": "A-1", "amount": 2500}


@pytest.mark.parametrize("wait_mode", ["poll", "sse"])
def test_rejected_carries_the_reviewers_reason(
    server: Server, reviewer: Countersign, name: str, wait_mode: str
) -> None:
    ran = []

    @gated(action=name, gate=server.agent(wait_mode=wait_mode))
    def refund(order: str) -> None:
        ran.append(order)

    result = in_thread(refund, "A-1")
    [waiting] = pending(reviewer, name)
    reviewer.reject(waiting.id, reason="customer already refunded by bank")
    with pytest.raises(Rejected) as refused:
        result.result(timeout=30)
    assert ran == []
    assert refused.value.reason == "customer already refunded by bank"
    assert refused.value.reviewer == "rita"
    assert "customer already refunded by bank" in str(refused.value)


@pytest.mark.parametrize("wait_mode", ["poll", "sse"])
def test_expired_is_never_reported_as_rejected(server: Server, wait_mode: str) -> None:
    ran = []

    # `slow.*` has a 2 s SLA and `on_timeout = "reject"`: nobody decides, the SLA ends it.
    @gated(action="slow.refund", gate=server.agent(wait_mode=wait_mode))
    def refund(order: str) -> None:
        ran.append(order)

    with pytest.raises(Expired) as refused:
        refund("A-1")
    assert not isinstance(refused.value, Rejected)
    assert ran == []
    assert refused.value.action.status is Status.EXPIRED
    assert refused.value.action.decisions == ()
    assert "expired" in str(refused.value)


def test_request_returns_the_final_decision_without_raising(
    gate: Countersign, reviewer: Countersign, name: str
) -> None:
    result = in_thread(lambda: gate.request(name, {"n": 1}))
    [waiting] = pending(reviewer, name)
    reviewer.reject(waiting.id, reason="no")
    decision = result.result(timeout=30)
    assert decision.status is Status.REJECTED
    assert not decision.may_run
    assert decision.decision_reason == "no"


def test_cancel_withdraws(gate: Countersign, name: str) -> None:
    submitted = gate.submit(name, {"n": 1})
    assert submitted.status is Status.PENDING
    assert gate.cancel(submitted.id).status is Status.CANCELLED
    assert gate.wait(submitted.id, timeout=5).status is Status.CANCELLED


def test_a_failing_function_reports_a_failed_outcome(
    gate: Countersign, reviewer: Countersign
) -> None:
    account = f"acc-{uuid.uuid4().hex[:8]}"

    @gated(action="ledger.get", gate=gate)
    def lookup(account: str) -> None:
        raise RuntimeError("ledger offline")

    with pytest.raises(RuntimeError, match="ledger offline"):
        lookup(account)
    [done] = [
        a
        for a in reviewer.queue(status="allowed", action="ledger.get")
        if a.args == {"account": account}
    ]
    assert done.outcome is not None
    assert done.outcome.status.value == "failed"
    assert done.outcome.detail == {"error": "RuntimeError", "message": "ledger offline"}


def test_async_client_and_decorator(server: Server, name: str) -> None:
    async def scenario() -> None:
        async with AsyncCountersign(server.url, server.agent_token) as agent:
            allowed = await agent.request("customer.get", {"id": "c_1"})
            assert allowed.status is Status.ALLOWED
            calls: list[int] = []

            @gated(action=name, gate=agent)
            async def refund(amount: int) -> int:
                calls.append(amount)
                return amount * 2

            task = asyncio.create_task(refund(300))
            [waiting] = await asyncio.to_thread(pending, server.reviewer(), name)
            await asyncio.to_thread(server.reviewer().modify, waiting.id, {"amount": 30})
            assert await task == 60
            assert calls == [30]

            # SSE from asyncio, and a rejection raised from an async function.
            sse = AsyncCountersign(server.url, server.agent_token, wait_mode="sse")

            @gated(action=name, gate=sse)
            async def refund_again(amount: int) -> None:
                calls.append(amount)

            task2 = asyncio.create_task(refund_again(5))
            [second] = await asyncio.to_thread(pending, server.reviewer(), name)
            await asyncio.to_thread(server.reviewer().reject, second.id, reason="enough")
            with pytest.raises(Rejected, match="enough"):
                await task2
            assert calls == [30]
            await sse.aclose()

    asyncio.run(scenario())


def test_a_sync_gate_serves_an_async_function(server: Server, gate: Countersign) -> None:
    @gated(action="invoice.get", gate=gate)
    async def lookup(invoice: str) -> str:
        return invoice.upper()

    assert asyncio.run(lookup("inv-1")) == "INV-1"
    # A second event loop gets a client of its own (connections belong to their loop).
    assert asyncio.run(lookup("inv-2")) == "INV-2"


def test_excluded_parameters_pass_through(gate: Countersign) -> None:
    seen: list[Any] = []
    lock = threading.Lock()

    @gated(action="order.get", gate=gate, exclude=["lock"])
    def lookup(order: str, lock: Any) -> None:
        seen.append((order, lock))

    lookup("A-1", lock)
    assert seen == [("A-1", lock)]
