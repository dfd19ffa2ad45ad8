"""The client against the server's own `/v1/openapi.json`: every property and enum value the
document gives for the objects the client reads and the bodies it sends must be one the
client knows, and the other way round. A field added to, removed from or renamed in the API
fails here until the client learns it.

The schemas are found from the operations (the `show` answer, the `submit` body...), not by
name, and enums are read wherever the document puts them (inline, `$ref`, `oneOf`), so the
check follows the document as it changes.
"""

from __future__ import annotations

import dataclasses
import enum
import inspect
from typing import Any

import httpx
import pytest

from countersign import _wire
from countersign._models import (
    Action,
    Decision,
    Outcome,
    OutcomeStatus,
    ReviewState,
    Status,
    Tier,
    Verdict,
)

from conftest import Server


@pytest.fixture(scope="module")
def document(server: Server) -> dict[str, Any]:
    answer = httpx.get(f"{server.url}/v1/openapi.json", timeout=10)
    answer.raise_for_status()
    body: dict[str, Any] = answer.json()
    return body


def resolve(document: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    """`schema` with `$ref`s followed and a nullable `oneOf`/`anyOf` reduced to its object."""
    while True:
        if "$ref" in schema:
            node: Any = document
            for part in schema["$ref"].removeprefix("#/").split("/"):
                node = node[part]
            schema = node
            continue
        for combinator in ("oneOf", "anyOf", "allOf"):
            options = [o for o in schema.get(combinator, []) if o.get("type") != "null"]
            if len(options) == 1:
                schema = options[0]
                break
        else:
            return schema


def properties(document: dict[str, Any], schema: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The properties of an object schema; for a choice of object shapes (`oneOf` a verdict),
    the properties of every shape, an enum's values gathered across them."""
    resolved = resolve(document, schema)
    shapes = resolved.get("oneOf") or resolved.get("anyOf") or [resolved]
    merged: dict[str, dict[str, Any]] = {}
    for shape in shapes:
        for name, value in resolve(document, shape).get("properties", {}).items():
            prop = resolve(document, value)
            earlier = merged.get(name)
            if earlier is not None and "enum" in earlier and "enum" in prop:
                values = list(dict.fromkeys([*earlier["enum"], *prop["enum"]]))
                merged[name] = {**prop, "enum": values}
            elif earlier is None:
                merged[name] = prop
    return merged


def operation(document: dict[str, Any], path: str, method: str) -> dict[str, Any]:
    found: dict[str, Any] = document["paths"][path][method]
    return found


def response_schema(document: dict[str, Any], path: str, method: str) -> dict[str, Any]:
    ok = operation(document, path, method)["responses"]["200"]
    schema: dict[str, Any] = ok["content"]["application/json"]["schema"]
    return schema


def request_schema(document: dict[str, Any], path: str, method: str) -> dict[str, Any]:
    body = operation(document, path, method)["requestBody"]
    schema: dict[str, Any] = body["content"]["application/json"]["schema"]
    return schema


def fields(cls: type) -> dict[str, dataclasses.Field[Any]]:
    return {f.name: f for f in dataclasses.fields(cls) if f.name != "raw"}


def check_object(
    document: dict[str, Any],
    where: str,
    schema: dict[str, Any],
    cls: type,
    enums: dict[str, type[enum.Enum]],
) -> None:
    """A read object: same property names; the client's required fields are required by the
    document; every enum the document gives is the client's enum, value for value."""
    props = properties(document, schema)
    known = fields(cls)
    assert set(props) - set(known) == set(), f"{where}: the API has fields the client lacks"
    assert set(known) - set(props) == set(), f"{where}: the client has fields the API lacks"
    required = set(resolve(document, schema).get("required", []))
    for name, field in known.items():
        has_default = (
            field.default is not dataclasses.MISSING
            or field.default_factory is not dataclasses.MISSING
        )
        if not has_default:
            assert name in required, f"{where}.{name}: the client needs it, the API may omit it"
    check_enums(where, props, enums)


def check_enums(
    where: str, props: dict[str, dict[str, Any]], enums: dict[str, type[enum.Enum]]
) -> None:
    for name, prop in props.items():
        values = prop.get("enum")
        if values is None:
            continue  # a plain string in the document: nothing to compare
        values = {v for v in values if v is not None}
        assert name in enums, f"{where}.{name}: the API gives values {values}, the client a str"
        assert values == {m.value for m in enums[name]}, f"{where}.{name}: enum values differ"


def test_the_action_object(document: dict[str, Any]) -> None:
    action = response_schema(document, "/v1/actions/{id}", "get")
    check_object(
        document, "action", action, Action, {"status": Status, "tier": Tier, "review": ReviewState}
    )
    props = properties(document, action)
    check_object(document, "decision", props["decisions"]["items"], Decision, {"verdict": Verdict})
    check_object(document, "outcome", props["outcome"], Outcome, {"status": OutcomeStatus})


def test_the_status_and_tier_the_document_names(document: dict[str, Any]) -> None:
    # Before the document carries enums, it names the values in the description: those
    # must still all be known.
    props = properties(document, response_schema(document, "/v1/actions/{id}", "get"))
    for name, cls in (("status", Status), ("tier", Tier)):
        described = props[name].get("description", "")
        for member in cls:
            if "enum" not in props[name] and described:
                assert f"`{member.value}`" in described, f"{name} {member.value} not documented"


def body_keys(builder: Any) -> set[str]:
    return {
        p.name
        for p in inspect.signature(builder).parameters.values()
        if p.kind is not inspect.Parameter.VAR_KEYWORD
    }


def test_the_bodies_the_client_sends(document: dict[str, Any]) -> None:
    submit = request_schema(document, "/v1/actions", "post")
    props = properties(document, submit)
    assert set(props) == body_keys(_wire.submit_body), "submit body"
    assert set(properties(document, props["hints"])) == set(_wire._HINTS), "hints"
    assert set(resolve(document, submit).get("required", [])) <= {"action"}

    decision = request_schema(document, "/v1/actions/{id}/decisions", "post")
    decision_props = properties(document, decision)
    assert set(decision_props) == body_keys(_wire.decision_body), "decision body"
    check_enums("decision body", decision_props, {"verdict": Verdict})

    outcome = request_schema(document, "/v1/actions/{id}/outcome", "post")
    outcome_props = properties(document, outcome)
    assert set(outcome_props) == {"status", "detail"}, "outcome body"
    check_enums("outcome body", outcome_props, {"status": OutcomeStatus})


def test_the_error_shape(document: dict[str, Any]) -> None:
    refused = operation(document, "/v1/actions", "post")["responses"]["422"]
    error = properties(document, refused["content"]["application/json"]["schema"])["error"]
    assert set(properties(document, error)) == {"code", "message"}


def test_the_paths_the_client_calls(document: dict[str, Any]) -> None:
    for path, method in [
        ("/v1/actions", "post"),
        ("/v1/actions", "get"),
        ("/v1/actions/{id}", "get"),
        ("/v1/actions/{id}/events", "get"),
        ("/v1/actions/{id}/cancel", "post"),
        ("/v1/actions/{id}/outcome", "post"),
        ("/v1/actions/{id}/decisions", "post"),
    ]:
        assert method in document["paths"].get(path, {}), f"{method} {path}"
    wait = [p for p in operation(document, "/v1/actions/{id}", "get")["parameters"]]
    assert "wait" in {p["name"] for p in wait}
