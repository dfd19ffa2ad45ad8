"""Email notifications received by an SMTP sink (`aiosmtpd`) the test starts: a plain-text
and an HTML part with the essentials and the link; and STARTTLS is required where
configured — a server that does not offer it gets nothing, in clear or otherwise."""

from __future__ import annotations

import email
import email.policy
import threading
from collections.abc import Callable, Iterator
from email.message import EmailMessage
from typing import Any

import pytest
from aiosmtpd.controller import Controller

from conftest import WAIT, Server, free_port


class Sink:
    def __init__(self) -> None:
        self.messages: list[EmailMessage] = []
        self.changed = threading.Condition()

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802 (aiosmtpd's name)
        message = email.message_from_bytes(envelope.content, policy=email.policy.default)
        with self.changed:
            self.messages.append(message)  # type: ignore[arg-type]
            self.changed.notify_all()
        return "250 OK"

    def until(self, count: int) -> list[EmailMessage]:
        with self.changed:
            if not self.changed.wait_for(lambda: len(self.messages) >= count, WAIT):
                pytest.fail(f"{count} messages not received; got {len(self.messages)}")
            return list(self.messages)


@pytest.fixture
def sink() -> Iterator[tuple[Sink, int]]:
    handler = Sink()
    port = free_port()
    controller = Controller(handler, hostname="127.0.0.1", port=port)
    controller.start()
    yield handler, port
    controller.stop()


def email_target(port: int, tls: str) -> str:
    return (
        '[[notify]]\nkind = "email"\n'
        f'smtp = "127.0.0.1:{port}"\ntls = "{tls}"\n'
        'from = "Countersign <countersign@example.com>"\nto = ["finance@example.com"]\n'
        'events = ["pending"]\nretry_backoff = "100ms"\nmax_attempts = 2\n'
    )


def test_email_has_plain_and_html_parts_with_the_link(
    make_server: Callable[[str], Server], sink: tuple[Sink, int]
) -> None:
    handler, port = sink
    server = make_server('public_url = "https://countersign.example.com"\n' + email_target(port, "none"))
    action = server.submit(
        {"action": "refund.create", "args": {"amount": 2500}, "reasoning": "<b>charged twice</b>"}
    )
    message = handler.until(1)[0]
    assert message["To"] == "finance@example.com"
    assert message["Subject"].startswith("[Countersign] refund.create by support-bot waits for")
    assert message["Message-ID"] == f"<msg_{action['id']}_1@countersign>"
    plain = message.get_body(("plain",))
    html = message.get_body(("html",))
    assert plain is not None and html is not None
    link = f"https://countersign.example.com/actions/{action['id']}"
    plain_text = plain.get_content()
    html_text = html.get_content()
    for text in (plain_text, html_text):
        assert link in text and "amount=2500" in text and "support-bot" in text
    # The agent's words are text in the HTML part, never markup.
    assert "<b>charged twice</b>" not in html_text
    assert "&lt;b&gt;charged twice&lt;/b&gt;" in html_text


def test_starttls_is_required_not_skipped(
    make_server: Callable[[str], Server], sink: tuple[Sink, int]
) -> None:
    handler, port = sink  # this sink offers no STARTTLS
    server = make_server(email_target(port, "starttls"))
    server.submit({"action": "email.send"})
    ada = server.tokens["ada"]
    failed: list[dict[str, Any]] = []
    for _ in range(600):
        failed = server.call("GET", "/v1/deliveries?status=failed", ada).json()["items"]
        if failed:
            break
        threading.Event().wait(0.1)  # tries are recorded, not announced: look again shortly
    assert failed, "the delivery failed for good"
    assert "tls" in failed[0]["last_error"].lower(), failed[0]
    assert handler.messages == []
