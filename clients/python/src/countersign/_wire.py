"""What the sync and async clients share: configuration, input checks, request bodies,
answer parsing, the retry schedule and the Server-Sent Events parser. No IO here, so the two
clients differ only in how they send.
"""

from __future__ import annotations

import json
import math
import os
import random
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlsplit

import httpx

from ._errors import ConfigurationError, InvalidInput, ProtocolError, api_error
from ._models import Action, OutcomeStatus, Verdict

DEFAULT_URL = "http://127.0.0.1:7878"
USER_AGENT = "countersign-python/0.1.0"

# The server caps a long-poll at its `max_wait_seconds` (default 300) and answers early then;
# asking for more than that costs nothing.
LONG_POLL_SECONDS = 300

_ACTION_NAME = re.compile(r"^[A-Za-z0-9._:/-]{1,200}$")
_IDEMPOTENCY_KEY = re.compile(r"^[\x20-\x7e]{1,255}$")
_HINTS = ("read_only", "destructive", "idempotent", "open_world")


@dataclass(frozen=True, slots=True)
class Config:
    """A client's settings: where the server is, who is asking, how long to try."""

    url: str
    token: str
    connect_timeout: float
    retry_for: float

    @classmethod
    def build(
        cls,
        url: str | None,
        token: str | None,
        connect_timeout: float,
        retry_for: float,
    ) -> Config:
        url = url if url is not None else os.environ.get("COUNTERSIGN_URL") or DEFAULT_URL
        token = token if token is not None else os.environ.get("COUNTERSIGN_TOKEN")
        if not isinstance(url, str):
            raise InvalidInput(f"url must be a string, not {type(url).__name__}")
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ConfigurationError(
                f"url must be an http:// or https:// address, e.g. {DEFAULT_URL}; got {url!r}"
            )
        if token is None or token == "":
            raise ConfigurationError(
                "no token: pass token=... or set COUNTERSIGN_TOKEN "
                "(create one with `countersign token create --role agent --name NAME`)"
            )
        if not isinstance(token, str):
            raise InvalidInput(f"token must be a string, not {type(token).__name__}")
        for name, value in (("connect_timeout", connect_timeout), ("retry_for", retry_for)):
            if not isinstance(value, (int, float)) or isinstance(value, bool) or value < 0:
                raise InvalidInput(f"{name} must be a number of seconds >= 0, got {value!r}")
        return cls(url.rstrip("/"), token, float(connect_timeout), float(retry_for))

    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}", "User-Agent": USER_AGENT}

    def timeout(self) -> httpx.Timeout:
        # No read timeout of our own on the whole: long-polls and streams are bounded by the
        # wait asked for, and each request below sets the read timeout it needs.
        return httpx.Timeout(connect=self.connect_timeout, read=30.0, write=30.0, pool=30.0)


def action_path(action_id: str, suffix: str = "") -> str:
    if not isinstance(action_id, str) or not action_id:
        raise InvalidInput(f"an action id must be a non-empty string, got {action_id!r}")
    return f"/v1/actions/{quote(action_id, safe='')}{suffix}"


def _json_object(name: str, value: Any) -> dict[str, Any]:
    if not isinstance(value, Mapping):
        raise InvalidInput(f"{name} must be a mapping (a JSON object), not {type(value).__name__}")
    try:
        # Round-trips through JSON so that what is checked is what is sent.
        decoded: dict[str, Any] = json.loads(json.dumps(dict(value), allow_nan=False))
    except (TypeError, ValueError) as error:
        raise InvalidInput(f"{name} must be JSON-serializable: {error}") from None
    return decoded


def submit_body(
    action: Any,
    args: Any,
    *,
    reasoning: Any = None,
    context: Any = None,
    confidence: Any = None,
    hints: Any = None,
    idempotency_key: Any = None,
    callback_url: Any = None,
) -> dict[str, Any]:
    """The `POST /v1/actions` body, every field checked locally first."""
    if not isinstance(action, str):
        raise InvalidInput(f"action must be a string, not {type(action).__name__}")
    if not _ACTION_NAME.match(action):
        raise InvalidInput(
            f"action {action!r} must be 1 to 200 letters, digits or ._-:/ (e.g. refund.create)"
        )
    body: dict[str, Any] = {
        "action": action,
        "args": _json_object("args", {} if args is None else args),
    }
    if reasoning is not None:
        if not isinstance(reasoning, str):
            raise InvalidInput(f"reasoning must be a string, not {type(reasoning).__name__}")
        body["reasoning"] = reasoning
    if context is not None:
        body["context"] = _json_object("context", context)
    if confidence is not None:
        if (
            isinstance(confidence, bool)
            or not isinstance(confidence, (int, float))
            or not math.isfinite(confidence)
            or not 0 <= confidence <= 1
        ):
            raise InvalidInput(f"confidence must be a number from 0 to 1, got {confidence!r}")
        body["confidence"] = float(confidence)
    if hints is not None:
        if not isinstance(hints, Mapping):
            raise InvalidInput(f"hints must be a mapping, not {type(hints).__name__}")
        for key, value in hints.items():
            if key not in _HINTS:
                raise InvalidInput(f"unknown hint {key!r}; expected one of {', '.join(_HINTS)}")
            if not isinstance(value, bool):
                raise InvalidInput(f"hint {key!r} must be true or false, got {value!r}")
        body["hints"] = dict(hints)
    if idempotency_key is not None:
        if not isinstance(idempotency_key, str) or not _IDEMPOTENCY_KEY.match(idempotency_key):
            raise InvalidInput(
                "idempotency_key must be 1 to 255 printable ASCII characters, "
                f"got {idempotency_key!r}"
            )
        body["idempotency_key"] = idempotency_key
    if callback_url is not None:
        if not isinstance(callback_url, str) or not 1 <= len(callback_url) <= 2048:
            raise InvalidInput(
                f"callback_url must be a URL of 1 to 2048 characters, got {callback_url!r}"
            )
        body["callback_url"] = callback_url
    return body


def decision_body(
    verdict: Any, *, args: Any = None, reason: Any = None, confirm: Any = None
) -> dict[str, Any]:
    try:
        verdict = Verdict(verdict)
    except ValueError:
        raise InvalidInput(f"verdict must be approve, reject or modify, got {verdict!r}") from None
    body: dict[str, Any] = {"verdict": verdict.value}
    if args is not None:
        body["args"] = _json_object("args", args)
    for name, value in (("reason", reason), ("confirm", confirm)):
        if value is not None:
            if not isinstance(value, str):
                raise InvalidInput(f"{name} must be a string, not {type(value).__name__}")
            body[name] = value
    return body


def outcome_body(status: Any, detail: Any) -> dict[str, Any]:
    try:
        status = OutcomeStatus(status)
    except ValueError:
        raise InvalidInput(f"outcome status must be succeeded or failed, got {status!r}") from None
    body: dict[str, Any] = {"status": status.value}
    if detail is not None:
        try:
            json.dumps(detail, allow_nan=False)
        except (TypeError, ValueError) as error:
            raise InvalidInput(f"detail must be JSON-serializable: {error}") from None
        body["detail"] = detail
    return body


def check_wait(timeout: Any) -> float | None:
    if timeout is None:
        return None
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or timeout < 0:
        raise InvalidInput(f"timeout must be a number of seconds >= 0 or None, got {timeout!r}")
    return float(timeout)


def parse_json(response: httpx.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        raise ProtocolError(
            f"expected JSON from {response.request.url}, got HTTP {response.status_code} "
            f"{response.headers.get('content-type', 'without a content type')}"
        ) from None


def raise_for_error(response: httpx.Response) -> None:
    if response.status_code >= 400:
        try:
            body = response.json()
        except ValueError:
            body = None
        raise api_error(response.status_code, body)


def parse_action(value: Any) -> Action:
    try:
        return Action.from_json(value)
    except (KeyError, TypeError, ValueError) as error:
        raise ProtocolError(f"not an action object: {error!r}") from None


def backoff(attempt: int) -> float:
    """Seconds before retry `attempt` (0-based): 0.1 s doubling to 2 s, with jitter so that
    many agents cut off by one restart do not come back in step."""
    base: float = min(2.0, 0.1 * (2**attempt))
    return base * (0.5 + random.random() / 2)


class SseParser:
    """Incremental `text/event-stream` parser: feed lines, get `(event, data)` pairs."""

    def __init__(self) -> None:
        self._event = ""
        self._data: list[str] = []

    def feed(self, line: str) -> Iterator[tuple[str, str]]:
        if line == "":
            if self._data:
                yield (self._event or "message", "\n".join(self._data))
            self._event, self._data = "", []
            return
        if line.startswith(":"):
            return
        name, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if name == "event":
            self._event = value
        elif name == "data":
            self._data.append(value)


def event_data(data: str) -> Any:
    try:
        return json.loads(data)
    except ValueError:
        raise ProtocolError(f"an event's data is not JSON: {data[:80]!r}") from None
