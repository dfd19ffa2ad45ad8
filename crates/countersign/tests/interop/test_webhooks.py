"""Webhooks and callbacks verified by an independent Standard Webhooks implementation
(`standardwebhooks` from PyPI), which also refuses a replay with an old timestamp; and a
server killed with deliveries pending delivers them after restart."""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest
from standardwebhooks import Webhook, WebhookVerificationError

from conftest import CALLBACK_SECRET, WEBHOOK_SECRET, Receiver, Server, free_port, webhook_target


def verify(request: object, secret: str) -> dict[str, object]:
    payload: dict[str, object] = Webhook(secret).verify(request.body, request.headers)  # type: ignore[attr-defined]
    return payload


def test_webhooks_verify_with_standardwebhooks_and_replays_are_refused(
    make_server: Callable[[str], Server], receiver: Callable[..., Receiver]
) -> None:
    hook = receiver()
    server = make_server(
        'public_url = "https://countersign.example.com"\n'
        + webhook_target("leads", f"{hook.url}/hook", 'groups = ["support-leads"]')
    )
    action = server.submit({"action": "refund.create", "args": {"amount": 2500}})
    got = hook.until("the pending webhook", lambda r: len(r) >= 1)[0]
    payload = verify(got, WEBHOOK_SECRET)
    assert payload["type"] == "action.pending"
    data = payload["data"]
    assert isinstance(data, dict)
    assert data["action"]["id"] == action["id"]
    assert data["url"] == f"https://countersign.example.com/actions/{action['id']}"
    assert got.headers["webhook-id"] == f"msg_{action['id']}_1"

    # A tampered body, another secret, or the same message replayed later are refused.
    with pytest.raises(WebhookVerificationError):
        Webhook(WEBHOOK_SECRET).verify(got.body + b" ", got.headers)
    with pytest.raises(WebhookVerificationError):
        Webhook("whsec_" + "QUJD" * 8).verify(got.body, got.headers)
    replayed = {**got.headers, "webhook-timestamp": str(int(time.time()) - 3600)}
    with pytest.raises(WebhookVerificationError):
        Webhook(WEBHOOK_SECRET).verify(got.body, replayed)


def test_callbacks_verify_and_say_expired_not_rejected(
    make_server: Callable[[str], Server], receiver: Callable[..., Receiver]
) -> None:
    agent = receiver()
    server = make_server(f'callback_allow = ["{agent.url}/cb/*"]\ncallback_secret_env = "CALLBACK_SECRET"\n')
    action = server.submit({"action": "quick.check", "callback_url": f"{agent.url}/cb/1"})
    got = agent.until("the callback", lambda r: len(r) >= 1)[0]
    payload = verify(got, CALLBACK_SECRET)
    assert payload["type"] == "action.expired"
    data = payload["data"]
    assert isinstance(data, dict)
    assert data["action"]["id"] == action["id"]
    assert data["action"]["status"] == "expired"
    assert data["status_detail"] == "expired: no reviewer answered within 1s"
    assert "reject" not in got.body.decode()

    refused = server.call(
        "POST",
        "/v1/actions",
        server.tokens["support-bot"],
        {"action": "email.send", "callback_url": "http://169.254.169.254/latest/meta-data/"},
    )
    assert refused.status_code == 422
    assert refused.json()["error"]["code"] == "callback_not_allowed"


def test_deliveries_pending_at_a_kill_9_are_delivered_after_restart(
    make_server: Callable[[str], Server], receiver: Callable[..., Receiver]
) -> None:
    port = free_port()  # nothing listens there yet: every try fails, the rows stay pending
    server = make_server(
        webhook_target(
            "down",
            f"http://127.0.0.1:{port}/hook",
            'retry_backoff = "100ms"\nretry_backoff_max = "200ms"\nmax_attempts = 100',
        )
    )
    ids = {f"msg_{server.submit({'action': 'email.send', 'args': {'n': n}})['id']}_1" for n in range(3)}
    server.kill()
    hook = receiver(port=port)
    server.start()
    got = hook.until(
        "every event after the restart",
        lambda r: {x.headers["webhook-id"] for x in r} >= ids,
    )
    delivered = {r.headers["webhook-id"] for r in got}
    assert delivered == ids
    for request in got:
        verify(request, WEBHOOK_SECRET)
