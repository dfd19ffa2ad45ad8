"""Bad input and bad circumstances give a clear, typed error: wrong types before anything is
sent, the API's error codes as classes, an unreachable server as `ConnectionFailed`."""

from __future__ import annotations

import asyncio
import inspect
import uuid
from typing import Any

import pytest

import countersign
from countersign import (
    ArgumentsMismatch,
    AsyncCountersign,
    BadRequest,
    ConfigurationError,
    Conflict,
    ConnectionFailed,
    Countersign,
    CountersignError,
    Forbidden,
    IdempotencyMismatch,
    InvalidInput,
    NotFound,
    Unauthorized,
    WaitTimeout,
    gated,
)

from conftest import Server, free_port, in_thread, pending


def test_no_token_is_a_configuration_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("COUNTERSIGN_TOKEN", raising=False)
    with pytest.raises(ConfigurationError, match="COUNTERSIGN_TOKEN"):
        Countersign("http://127.0.0.1:7878")
    with pytest.raises(ConfigurationError, match="http"):
        Countersign("ftp://example", "t")


def test_the_environment_configures_the_default_client(
    monkeypatch: pytest.MonkeyPatch, server: Server
) -> None:
    monkeypatch.setenv("COUNTERSIGN_URL", server.url)
    monkeypatch.setenv("COUNTERSIGN_TOKEN", server.agent_token)
    with Countersign() as gate:
        assert gate.config.url == server.url
        assert gate.request("customer.get").may_run

    @gated(action="customer.get")
    def lookup(customer: str) -> str:
        return customer

    assert lookup("c_1") == "c_1"


BAD_INPUT: list[tuple[str, dict[str, Any], str]] = [
    ("action", {"action": 42}, "action must be a string"),
    ("action name", {"action": "refund create"}, "letters, digits"),
    ("args type", {"args": ["not", "a", "mapping"]}, "args must be a mapping"),
    ("args JSON", {"args": {"when": object()}}, "JSON-serializable"),
    ("confidence range", {"confidence": 1.5}, "from 0 to 1"),
    ("confidence type", {"confidence": "high"}, "from 0 to 1"),
    ("hint name", {"hints": {"dangerous": True}}, "unknown hint"),
    ("hint value", {"hints": {"destructive": "yes"}}, "true or false"),
    ("reasoning", {"reasoning": 7}, "reasoning must be a string"),
    ("key", {"idempotency_key": "é"}, "printable ASCII"),
    ("timeout", {"timeout": -1}, "timeout must be"),
]


@pytest.mark.parametrize(("case", "change", "message"), BAD_INPUT, ids=[c[0] for c in BAD_INPUT])
def test_bad_input_is_refused_before_sending(
    gate: Countersign, case: str, change: dict[str, Any], message: str
) -> None:
    call: dict[str, Any] = {"action": "refund.create", "args": {"amount": 1}} | change
    with pytest.raises(InvalidInput, match=message) as refused:
        gate.request(**call)
    # Code that catches the built-in kinds still does.
    assert isinstance(refused.value, TypeError)
    assert isinstance(refused.value, ValueError)


def test_api_errors_are_typed_by_their_code(server: Server, name: str) -> None:
    with Countersign(server.url, "not-a-token") as stranger:
        with pytest.raises(Unauthorized) as unauthorized:
            stranger.request("customer.get")
        assert unauthorized.value.status_code == 401
        assert unauthorized.value.code == "unauthorized"

    with server.agent() as agent, server.reviewer() as reviewer:
        with pytest.raises(NotFound):
            agent.get("no-such-action")
        key = f"key-{uuid.uuid4()}"
        agent.submit(name, {"amount": 1}, idempotency_key=key)
        with pytest.raises(IdempotencyMismatch) as mismatch:
            agent.submit(name, {"amount": 2}, idempotency_key=key)
        assert isinstance(mismatch.value, BadRequest)
        assert mismatch.value.code == "idempotency_mismatch"

        submitted = agent.submit(name, {"amount": 3})
        with pytest.raises(Forbidden):
            agent.approve(submitted.id)  # an agent token does not decide
        reviewer.reject(submitted.id, reason="no")
        with pytest.raises(Conflict) as conflict:
            reviewer.approve(submitted.id)
        assert conflict.value.code == "not_pending"


def test_an_unreachable_server_is_connection_failed() -> None:
    with (
        Countersign(f"http://127.0.0.1:{free_port()}", "t", retry_for=0.3) as gate,
        pytest.raises(ConnectionFailed, match=r"127\.0\.0\.1"),
    ):
        gate.request("customer.get")

    async def asynchronous() -> None:
        async with AsyncCountersign(f"http://127.0.0.1:{free_port()}", "t", retry_for=0.3) as a:
            with pytest.raises(ConnectionFailed):
                await a.request("customer.get")

    asyncio.run(asynchronous())


def test_a_wait_that_outlasts_the_callers_timeout(gate: Countersign, name: str) -> None:
    with pytest.raises(WaitTimeout) as timed_out:
        gate.request(name, {"n": 1}, timeout=1)
    assert timed_out.value.action.status.value == "pending"
    gate.cancel(timed_out.value.action.id)


def test_a_modify_the_function_cannot_take_is_not_run(
    gate: Countersign, reviewer: Countersign, name: str
) -> None:
    ran = []

    @gated(action=name, gate=gate)
    def refund(amount: int) -> None:
        ran.append(amount)

    result = in_thread(refund, 10)
    [waiting] = pending(reviewer, name)
    reviewer.modify(waiting.id, {"amount": 5, "currency": "EUR"})
    with pytest.raises(ArgumentsMismatch, match="currency"):
        result.result(timeout=30)
    assert ran == []


def test_decorator_misuse_is_reported_at_once() -> None:
    with pytest.raises(InvalidInput):
        gated(action=7)  # type: ignore[arg-type]

    with pytest.raises(InvalidInput, match="exclude"):

        @gated(action="x.y", exclude=["nope"])
        def f(a: int) -> None: ...

    @gated(action="x.y", gate=Countersign("http://127.0.0.1:1", "t"))
    def g(a: int) -> None: ...

    with pytest.raises(InvalidInput, match="missing"):
        g()  # type: ignore[call-arg]


def test_every_error_is_a_countersign_error() -> None:
    for value in vars(countersign).values():
        if inspect.isclass(value) and issubclass(value, Exception):
            assert issubclass(value, CountersignError), value


def test_the_async_client_mirrors_the_sync_one() -> None:
    def surface(cls: type) -> dict[str, inspect.Signature]:
        return {
            name: inspect.signature(member)
            for name, member in vars(cls).items()
            if callable(member) and not name.startswith("_") and name not in ("close", "aclose")
        }

    sync, asynchronous = surface(Countersign), surface(AsyncCountersign)
    assert sync.keys() == asynchronous.keys()
    for name, signature in sync.items():
        other = asynchronous[name]
        assert list(signature.parameters) == list(other.parameters), name
        assert inspect.iscoroutinefunction(getattr(AsyncCountersign, name)), name
