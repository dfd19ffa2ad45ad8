"""`@gated`: one decorator that puts a function behind Countersign.

The function's arguments (by name, from its signature) become the action's `args`; the
function runs only when the action is allowed or approved, and then with the arguments the
decision carries (a reviewer's, after a `modify`), and its outcome is reported. Otherwise it
raises `Rejected`, `Expired`, `Denied` or `Cancelled`, carrying the reason.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import logging
import weakref
from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import Any, ParamSpec, TypeVar, cast

from ._async_client import AsyncCountersign
from ._client import Countersign
from ._errors import AlreadyExecuted, ArgumentsMismatch, CountersignError, InvalidInput, not_allowed
from ._models import Action

P = ParamSpec("P")
R = TypeVar("R")

ArgsMapping = dict[str, Any]
Computed = Callable[[ArgsMapping], Any]

logger = logging.getLogger("countersign")

_KIND = inspect.Parameter


def gated(
    action: str,
    *,
    gate: Countersign | AsyncCountersign | None = None,
    reasoning: str | Callable[[ArgsMapping], str] | None = None,
    context: Mapping[str, Any] | Callable[[ArgsMapping], Mapping[str, Any]] | None = None,
    confidence: float | Callable[[ArgsMapping], float] | None = None,
    hints: Mapping[str, bool] | None = None,
    idempotency_key: Callable[[ArgsMapping], str] | None = None,
    exclude: Iterable[str] = (),
    timeout: float | None = None,
    report_outcome: bool = True,
) -> Callable[[Callable[P, R]], Callable[P, R]]:
    """Runs the decorated function (sync or async) only once Countersign allows `action`.

    - `gate`: the client to ask (default: one built from `COUNTERSIGN_URL` and
      `COUNTERSIGN_TOKEN` at the first call).
    - `reasoning`, `context`, `confidence`: sent with the request; each may be a function of
      the call's arguments.
    - `idempotency_key`: a function of the arguments naming this call, e.g.
      `lambda a: f"refund/{a['order']}"`. With it, an agent restarted mid-wait finds the same
      action again instead of filing another, and a call whose outcome is already recorded
      raises `AlreadyExecuted` rather than running twice.
    - `exclude`: parameters that are not part of the action (clients, callbacks); they are
      passed through as given. `self` and `cls` are always excluded.
    - `timeout`: seconds to wait for a decision (`None`: as long as the SLA takes); then
      `WaitTimeout`.
    - `report_outcome`: report `succeeded`, or `failed` with the exception, after running.
    """
    if not isinstance(action, str):
        raise InvalidInput(f"action must be a string, not {type(action).__name__}")
    excluded = set(exclude) | {"self", "cls"}
    gates = _Gates(gate)

    def request_options(args: ArgsMapping) -> dict[str, Any]:
        return {
            "reasoning": _computed(reasoning, args),
            "context": _computed(context, args),
            "confidence": _computed(confidence, args),
            "hints": hints,
            "idempotency_key": idempotency_key(args) if idempotency_key is not None else None,
            "timeout": timeout,
        }

    def decorate(fn: Callable[P, R]) -> Callable[P, R]:
        signature = inspect.signature(fn)
        unknown = excluded - set(signature.parameters) - {"self", "cls"}
        if unknown:
            raise InvalidInput(f"exclude names no parameter of {fn.__qualname__}: {unknown}")

        if inspect.iscoroutinefunction(fn):

            async def run_async(*call_args: Any, **call_kwargs: Any) -> Any:
                bound, args = _bind(fn, signature, excluded, call_args, call_kwargs)
                client = gates.asynchronous()
                decision = await client.request(action, args, **request_options(args))
                positional, keywords = _approved_call(fn, signature, excluded, bound, decision)
                try:
                    result = await cast(Callable[..., Awaitable[Any]], fn)(*positional, **keywords)
                except BaseException as error:
                    if report_outcome:
                        await _report_async(client, decision, "failed", _failure(error))
                    raise
                if report_outcome:
                    await _report_async(client, decision, "succeeded", None)
                return result

            return cast(Callable[P, R], functools.wraps(fn)(run_async))

        def run(*call_args: Any, **call_kwargs: Any) -> Any:
            bound, args = _bind(fn, signature, excluded, call_args, call_kwargs)
            client = gates.sync()
            decision = client.request(action, args, **request_options(args))
            positional, keywords = _approved_call(fn, signature, excluded, bound, decision)
            try:
                result = fn(*positional, **keywords)
            except BaseException as error:
                if report_outcome:
                    _report(client, decision, "failed", _failure(error))
                raise
            if report_outcome:
                _report(client, decision, "succeeded", None)
            return result

        return cast(Callable[P, R], functools.wraps(fn)(run))

    return decorate


def _computed(value: Any, args: ArgsMapping) -> Any:
    return value(args) if callable(value) else value


class _Gates:
    """The client a decorated function asks: the one given, or one built at the first call
    (from the given one's settings when it is of the other kind, else from the environment)."""

    def __init__(self, given: Countersign | AsyncCountersign | None) -> None:
        if given is not None and not isinstance(given, (Countersign, AsyncCountersign)):
            raise InvalidInput(f"gate must be a Countersign client, not {type(given).__name__}")
        self.given = given
        self._sync: Countersign | None = given if isinstance(given, Countersign) else None
        # Built here, an async client is one per event loop: its pooled connections belong to
        # the loop that opened them (a second `asyncio.run` must not reuse them).
        self._async: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, AsyncCountersign] = (
            weakref.WeakKeyDictionary()
        )

    def _settings(self) -> dict[str, Any]:
        if self.given is None:
            return {}
        config = self.given.config
        return {
            "url": config.url,
            "token": config.token,
            "connect_timeout": config.connect_timeout,
            "retry_for": config.retry_for,
            "wait_mode": self.given.wait_mode,
        }

    def sync(self) -> Countersign:
        if self._sync is None:
            self._sync = Countersign(**self._settings())
        return self._sync

    def asynchronous(self) -> AsyncCountersign:
        if isinstance(self.given, AsyncCountersign):
            return self.given
        loop = asyncio.get_running_loop()
        client = self._async.get(loop)
        if client is None:
            client = self._async[loop] = AsyncCountersign(**self._settings())
        return client


def _bind(
    fn: Callable[..., Any],
    signature: inspect.Signature,
    excluded: set[str],
    call_args: tuple[Any, ...],
    call_kwargs: dict[str, Any],
) -> tuple[inspect.BoundArguments, ArgsMapping]:
    """The call's arguments, and the action's `args` made of them."""
    try:
        bound = signature.bind(*call_args, **call_kwargs)
    except TypeError as error:
        raise InvalidInput(f"{fn.__qualname__}(): {error}") from None
    bound.apply_defaults()
    args: ArgsMapping = {}
    for name, value in bound.arguments.items():
        if name in excluded:
            continue
        kind = signature.parameters[name].kind
        if kind is _KIND.VAR_KEYWORD:
            args.update(value)
        elif kind is _KIND.VAR_POSITIONAL:
            args[name] = list(value)
        else:
            args[name] = value
    return bound, args


def _approved_call(
    fn: Callable[..., Any],
    signature: inspect.Signature,
    excluded: set[str],
    bound: inspect.BoundArguments,
    decision: Action,
) -> tuple[list[Any], dict[str, Any]]:
    """The positional and keyword arguments to run `fn` with: the decision's `args` for the
    gated parameters, the call's own for the excluded ones. Raises the refusal when the
    decision does not allow running, `AlreadyExecuted` when it already ran."""
    if not decision.may_run:
        raise not_allowed(decision)
    if decision.outcome is not None:
        raise AlreadyExecuted(decision)
    remaining = dict(decision.args)
    has_var_positional = any(p.kind is _KIND.VAR_POSITIONAL for p in signature.parameters.values())
    positional: list[Any] = []
    keywords: dict[str, Any] = {}
    for name, parameter in signature.parameters.items():
        kind = parameter.kind
        if name in excluded:
            value = bound.arguments.get(name, parameter.default)
        elif kind is _KIND.VAR_KEYWORD:
            continue
        elif name in remaining:
            value = remaining.pop(name)
        elif kind is _KIND.VAR_POSITIONAL:
            continue
        elif parameter.default is not _KIND.empty:
            value = parameter.default
        else:
            raise ArgumentsMismatch(
                f"{decision.action} was approved without {name!r}, which "
                f"{fn.__qualname__}() requires"
            )
        if kind is _KIND.VAR_POSITIONAL:
            if not isinstance(value, (list, tuple)):
                raise ArgumentsMismatch(f"{name!r} must be a list, got {value!r}")
            positional.extend(value)
        elif kind is _KIND.VAR_KEYWORD:
            keywords.update(value)
        elif kind is _KIND.POSITIONAL_ONLY or (
            has_var_positional and kind is _KIND.POSITIONAL_OR_KEYWORD
        ):
            positional.append(value)
        else:
            keywords[name] = value
    if remaining:
        if not any(p.kind is _KIND.VAR_KEYWORD for p in signature.parameters.values()):
            raise ArgumentsMismatch(
                f"{decision.action} was approved with {sorted(remaining)}, which "
                f"{fn.__qualname__}() does not take"
            )
        keywords.update(remaining)
    return positional, keywords


def _failure(error: BaseException) -> dict[str, str]:
    return {"error": type(error).__name__, "message": str(error)}


def _report(client: Countersign, decision: Action, status: Any, detail: Any) -> None:
    # Best effort: the function has run, and failing the call now would invite a retry that
    # runs it again. The server keeps the approval; the missing outcome is visible there.
    try:
        client.report_outcome(decision.id, status, detail)
    except CountersignError as error:
        logger.warning("could not report the outcome of %s: %s", decision.id, error)


async def _report_async(
    client: AsyncCountersign, decision: Action, status: Any, detail: Any
) -> None:
    try:
        await client.report_outcome(decision.id, status, detail)
    except CountersignError as error:
        logger.warning("could not report the outcome of %s: %s", decision.id, error)
