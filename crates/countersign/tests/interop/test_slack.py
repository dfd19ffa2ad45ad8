"""Slack interactions signed with `slack_sdk`'s own signature code, against the real binary
and a fake Slack (Web API and response URLs) on loopback."""

from __future__ import annotations

import json
import time
import urllib.parse
from collections.abc import Callable
from typing import Any

import httpx
from slack_sdk.signature import SignatureVerifier

from conftest import SLACK_SIGNING_SECRET, Receiver, Server


def post(
    server: Server, payload: dict[str, Any], age: int = 0, secret: str = SLACK_SIGNING_SECRET
) -> httpx.Response:
    body = "payload=" + urllib.parse.quote(json.dumps(payload))
    timestamp = str(int(time.time()) - age)
    signature = SignatureVerifier(secret).generate_signature(timestamp=timestamp, body=body)
    return httpx.post(
        f"{server.url}/v1/integrations/slack/interactions",
        content=body,
        headers={
            "content-type": "application/x-www-form-urlencoded",
            "x-slack-request-timestamp": timestamp,
            "x-slack-signature": signature,
        },
        timeout=60,
    )


def click(fake: Receiver, user: str, action_id: str, n: int) -> dict[str, Any]:
    return {
        "type": "block_actions",
        "team": {"id": "T0TEAM"},
        "user": {"id": user},
        "trigger_id": f"trigger-{n}",
        "response_url": f"{fake.url}/response/{n}",
        "actions": [{"action_id": "countersign_approve", "value": action_id}],
    }


def answer(fake: Receiver, n: int) -> dict[str, Any]:
    path = f"/response/{n}"
    got = fake.until(path, lambda r: any(x.path == path for x in r))
    result: dict[str, Any] = next(x for x in got if x.path == path).json()
    return result


def test_slack_signed_clicks(make_server: Callable[[str], Server], receiver: Callable[..., Receiver]) -> None:
    fake = receiver()
    server = make_server(
        f'[slack]\nsigning_secret_env = "SLACK_SIGNING_SECRET"\napi_base_url = "{fake.url}/api"\n'
    )
    server.cli("user", "link", "rita", "--slack", "U0RITA", "--db", server.db)
    server.cli("user", "link", "sally", "--slack", "U0SALLY", "--db", server.db)
    action = server.submit({"action": "refund.create", "args": {"amount": 2500}})
    lead = server.tokens["rita"]

    # A stale timestamp, validly signed, is refused; so is another secret's signature.
    assert post(server, click(fake, "U0RITA", action["id"], 1), age=6 * 60).status_code == 401
    assert post(server, click(fake, "U0RITA", action["id"], 1), secret="not the secret").status_code == 401

    # Unlinked, and linked but outside the approver group: refused, only to them.
    for n, user in ((2, "U0NOBODY"), (3, "U0SALLY")):
        assert post(server, click(fake, user, action["id"], n)).status_code == 200
        refusal = answer(fake, n)
        assert refusal["response_type"] == "ephemeral"
        assert "nothing was changed" in refusal["text"]
    assert server.call("GET", f"/v1/actions/{action['id']}", lead).json()["status"] == "pending"

    # Linked and in the group: decided, and the original message shows the outcome.
    assert post(server, click(fake, "U0RITA", action["id"], 4)).status_code == 200
    outcome = answer(fake, 4)
    assert outcome["replace_original"] is True
    assert "approved by rita" in outcome["text"]
    shown = server.call("GET", f"/v1/actions/{action['id']}", lead).json()
    assert shown["status"] == "approved"
    assert shown["decisions"][0]["reviewer"] == "rita"
