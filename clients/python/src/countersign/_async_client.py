"""The asynchronous client: `_client.py` with `async`, method for method (keep them in step);
both build their requests and read their answers through `_wire.py`."""

from __future__ import annotations

import asyncio
import math
import time
from types import TracebackType
from typing import Any, Literal

import httpx

from . import _wire
from ._client import WaitMode
from ._errors import (
    ApiError,
    ConnectionFailed,
    InvalidInput,
    ProtocolError,
    WaitTimeout,
)
from ._models import Action


class AsyncCountersign:
    """A connection to a Countersign server, for asyncio code (see `Countersign`).

    `url` and `token` default to `COUNTERSIGN_URL` (else `http://127.0.0.1:7878`) and
    `COUNTERSIGN_TOKEN`. Requests that fail to reach the server, or that it answers with a
    retryable error (`503 unavailable`, `429 too_many_waits`), are retried with backoff for
    up to `retry_for` seconds of continuous failure, then raise `ConnectionFailed` (or the
    error). `wait_mode` picks how `wait` and `request` wait for a decision: `"poll"`
    (long-poll `GET /v1/actions/{id}?wait=`) or `"sse"` (the event stream).
    """

    def __init__(
        self,
        url: str | None = None,
        token: str | None = None,
        *,
        connect_timeout: float = 5.0,
        retry_for: float = 60.0,
        wait_mode: WaitMode = "poll",
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.config = _wire.Config.build(url, token, connect_timeout, retry_for)
        if wait_mode not in ("poll", "sse"):
            raise InvalidInput(f"wait_mode must be 'poll' or 'sse', got {wait_mode!r}")
        self.wait_mode: WaitMode = wait_mode
        self._http = httpx.AsyncClient(
            base_url=self.config.url,
            headers=self.config.headers(),
            timeout=self.config.timeout(),
            transport=transport,
        )

    # -- the agent's side --------------------------------------------------------------

    async def request(
        self,
        action: str,
        args: dict[str, Any] | None = None,
        *,
        reasoning: str | None = None,
        context: dict[str, Any] | None = None,
        confidence: float | None = None,
        hints: dict[str, bool] | None = None,
        idempotency_key: str | None = None,
        timeout: float | None = None,
    ) -> Action:
        """Asks to run `action` and returns the final decision.

        Returns at once when the policy allows or denies it, else waits for the reviewers
        (or the SLA) for up to `timeout` seconds (`None`: as long as it takes), then raises
        `WaitTimeout`. Check `may_run` on the answer and run with its `args`. With an
        `idempotency_key`, asking again after a restart finds the same action rather than
        filing a second one.
        """
        wait_for = _wire.check_wait(timeout)
        submitted, replayed = await self._submit(
            action,
            args,
            reasoning=reasoning,
            context=context,
            confidence=confidence,
            hints=hints,
            idempotency_key=idempotency_key,
        )
        if submitted.status.is_final:
            # A replay answers as the first submission did; what counts now is the current
            # state (an outcome recorded since, for one).
            return await self.get(submitted.id) if replayed else submitted
        return await self.wait(submitted.id, timeout=wait_for)

    async def submit(
        self,
        action: str,
        args: dict[str, Any] | None = None,
        *,
        reasoning: str | None = None,
        context: dict[str, Any] | None = None,
        confidence: float | None = None,
        hints: dict[str, bool] | None = None,
        idempotency_key: str | None = None,
        callback_url: str | None = None,
    ) -> Action:
        """Files the action and returns it as classified, without waiting. With a
        `callback_url` (allowed by the server's `callback_allow`), the server POSTs the final
        status there, signed per Standard Webhooks."""
        action_object, _ = await self._submit(
            action,
            args,
            reasoning=reasoning,
            context=context,
            confidence=confidence,
            hints=hints,
            idempotency_key=idempotency_key,
            callback_url=callback_url,
        )
        return action_object

    async def _submit(
        self,
        action: str,
        args: dict[str, Any] | None = None,
        *,
        reasoning: str | None = None,
        context: dict[str, Any] | None = None,
        confidence: float | None = None,
        hints: dict[str, bool] | None = None,
        idempotency_key: str | None = None,
        callback_url: str | None = None,
    ) -> tuple[Action, bool]:
        body = _wire.submit_body(
            action,
            args,
            reasoning=reasoning,
            context=context,
            confidence=confidence,
            hints=hints,
            idempotency_key=idempotency_key,
            callback_url=callback_url,
        )
        # Without a key a lost answer cannot be told from a lost request: resending could
        # file the action twice, so only a request that never left is retried.
        response = await self._send(
            "POST", "/v1/actions", json=body, resend=idempotency_key is not None
        )
        return _wire.parse_action(_wire.parse_json(response)), response.status_code == 200

    async def get(self, action_id: str) -> Action:
        """The action as it is now."""
        response = await self._send("GET", _wire.action_path(action_id))
        return _wire.parse_action(_wire.parse_json(response))

    async def wait(self, action_id: str, *, timeout: float | None = None) -> Action:
        """Waits until the action leaves `pending` and returns it; `WaitTimeout` after
        `timeout` seconds (`None`: no limit). Survives server restarts and dropped
        connections: it reconnects and carries on with the action's current state."""
        wait_for = _wire.check_wait(timeout)
        deadline = None if wait_for is None else time.monotonic() + wait_for
        if self.wait_mode == "sse":
            return await self._wait_sse(action_id, deadline)
        return await self._wait_poll(action_id, deadline)

    async def cancel(self, action_id: str) -> Action:
        """Withdraws a pending action."""
        response = await self._send("POST", _wire.action_path(action_id, "/cancel"), resend=True)
        return _wire.parse_action(_wire.parse_json(response))

    async def report_outcome(
        self,
        action_id: str,
        status: Literal["succeeded", "failed"],
        detail: Any = None,
    ) -> Action:
        """Records how running the action went (`succeeded` or `failed`, with any detail)."""
        body = _wire.outcome_body(status, detail)
        path = _wire.action_path(action_id, "/outcome")
        response = await self._send("POST", path, json=body, resend=True)
        return _wire.parse_action(_wire.parse_json(response))

    # -- the reviewer's side (a reviewer token) ----------------------------------------

    async def decide(
        self,
        action_id: str,
        verdict: Literal["approve", "reject", "modify"],
        *,
        args: dict[str, Any] | None = None,
        reason: str | None = None,
        confirm: str | None = None,
    ) -> Action:
        """Records a reviewer's verdict."""
        body = _wire.decision_body(verdict, args=args, reason=reason, confirm=confirm)
        path = _wire.action_path(action_id, "/decisions")
        # A decision whose answer was lost is not sent again: the retry would be refused
        # (409, or 403 already approved) and hide that the first one counted.
        response = await self._send("POST", path, json=body, resend=False)
        return _wire.parse_action(_wire.parse_json(response))

    async def approve(self, action_id: str, *, reason: str | None = None) -> Action:
        return await self.decide(action_id, "approve", reason=reason)

    async def reject(self, action_id: str, *, reason: str) -> Action:
        return await self.decide(action_id, "reject", reason=reason)

    async def modify(
        self, action_id: str, args: dict[str, Any], *, reason: str | None = None
    ) -> Action:
        return await self.decide(action_id, "modify", args=args, reason=reason)

    async def queue(
        self, *, status: str = "pending", action: str | None = None, limit: int = 50
    ) -> list[Action]:
        """The first page of the review queue (pending, oldest deadline first), or of the
        actions in another `status` (newest first). A reviewer's call."""
        params: dict[str, str | int] = {"status": status, "limit": limit}
        if action is not None:
            params["action"] = action
        body = _wire.parse_json(await self._send("GET", "/v1/actions", params=params))
        if not isinstance(body, dict) or not isinstance(body.get("items"), list):
            raise ProtocolError("expected an action page {items, next_cursor}")
        return [_wire.parse_action(item) for item in body["items"]]

    # -- plumbing ----------------------------------------------------------------------

    async def aclose(self) -> None:
        await self._http.aclose()

    async def __aenter__(self) -> AsyncCountersign:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def _send(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        params: dict[str, str | int] | None = None,
        resend: bool = True,
        read_timeout: float | None = None,
    ) -> httpx.Response:
        """One request, retried while the server cannot be reached or answers a retryable
        error, for up to `retry_for` seconds. `resend=False`: a request that may have
        reached the server is not sent again."""
        give_up = time.monotonic() + self.config.retry_for
        attempt = 0
        while True:
            try:
                timeout = None
                if read_timeout is not None:
                    timeout = httpx.Timeout(
                        connect=self.config.connect_timeout,
                        read=read_timeout,
                        write=30.0,
                        pool=30.0,
                    )
                response = await self._http.request(
                    method,
                    path,
                    json=json,
                    params=params,
                    timeout=timeout if timeout is not None else httpx.USE_CLIENT_DEFAULT,
                )
            except httpx.TransportError as error:
                never_sent = isinstance(error, (httpx.ConnectError, httpx.ConnectTimeout))
                if not (resend or never_sent) or time.monotonic() >= give_up:
                    raise ConnectionFailed(
                        f"{method} {self.config.url}{path}: {error or type(error).__name__}"
                    ) from error
            else:
                try:
                    _wire.raise_for_error(response)
                except ApiError as error:
                    if not error.retryable or time.monotonic() >= give_up:
                        raise
                else:
                    return response
            await asyncio.sleep(_wire.backoff(attempt))
            attempt += 1

    async def _wait_poll(self, action_id: str, deadline: float | None) -> Action:
        path = _wire.action_path(action_id)
        while True:
            remaining = _wire.LONG_POLL_SECONDS
            if deadline is not None:
                # Rounded up, so that a wait that ends pending ends past the deadline.
                left = math.ceil(max(0.0, deadline - time.monotonic()))
                remaining = min(remaining, left)
            response = await self._send(
                "GET", path, params={"wait": remaining}, read_timeout=remaining + 15.0
            )
            action = _wire.parse_action(_wire.parse_json(response))
            if action.status.is_final:
                return action
            if deadline is not None and time.monotonic() >= deadline:
                raise WaitTimeout(action)

    async def _wait_sse(self, action_id: str, deadline: float | None) -> Action:
        path = _wire.action_path(action_id, "/events")
        last: Action | None = None
        give_up = time.monotonic() + self.config.retry_for
        attempt = 0
        while True:
            if deadline is not None and time.monotonic() >= deadline:
                raise WaitTimeout(last if last is not None else await self.get(action_id))
            read = 45.0  # the server sends a comment every 15 s of silence
            if deadline is not None:
                read = max(0.1, min(read, deadline - time.monotonic()))
            timeout = httpx.Timeout(
                connect=self.config.connect_timeout, read=read, write=30.0, pool=30.0
            )
            try:
                async with self._http.stream("GET", path, timeout=timeout) as response:
                    if response.status_code >= 400:
                        await response.aread()
                        _wire.raise_for_error(response)
                    parser = _wire.SseParser()
                    async for line in response.aiter_lines():
                        for event, data in parser.feed(line):
                            if event != "status":
                                continue
                            last = _wire.parse_action(_wire.event_data(data))
                            attempt = 0
                            give_up = time.monotonic() + self.config.retry_for
                            if last.status.is_final:
                                return last
            except httpx.ReadTimeout:
                if deadline is not None and time.monotonic() >= deadline:
                    continue  # reported by the check at the top
            except httpx.TransportError as error:
                if time.monotonic() >= give_up:
                    raise ConnectionFailed(f"GET {self.config.url}{path}: {error}") from error
            except ApiError as error:
                if not error.retryable or time.monotonic() >= give_up:
                    raise
            # The stream ended before a final status (server restart, proxy, network):
            # reconnect; the first event of the new stream is the action as it is now.
            await asyncio.sleep(_wire.backoff(attempt))
            attempt += 1


__all__ = ["AsyncCountersign"]
