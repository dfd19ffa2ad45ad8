"""The command line: `deliveries list|retry`, `user link`, and `show` saying why."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable

from conftest import Receiver, Request, Server, webhook_target


def test_deliveries_list_and_retry(
    make_server: Callable[[str], Server], receiver: Callable[..., Receiver]
) -> None:
    down = {"up": False}

    def answer(_: Request) -> tuple[int, bytes]:
        return (200, b"{}") if down["up"] else (500, b"{}")

    hook = receiver(answer=answer)
    server = make_server(
        webhook_target("flaky", f"{hook.url}/hook", 'max_attempts = 2\nretry_backoff = "50ms"')
    )
    action = server.submit({"action": "email.send"})
    ada = server.tokens["ada"]
    items: list[dict[str, object]] = []
    for _ in range(600):
        listed = server.cli("deliveries", "list", "--status", "failed", "--json", "--token", ada)
        items = json.loads(listed.stdout)["items"]
        if items:
            break
        threading.Event().wait(0.1)  # tries are recorded, not announced: look again shortly
    assert items[0]["action_id"] == action["id"]
    assert items[0]["last_error"] == "the receiver answered HTTP 500 (try 2 of 2)"
    table = server.cli("deliveries", "list", "--token", ada).stdout
    assert "flaky" in table and "failed" in table

    down["up"] = True
    retried = server.cli("deliveries", "retry", str(items[0]["id"]), "--token", ada)
    assert "pending again" in retried.stdout
    hook.until("the retried delivery", lambda r: len(r) >= 3)

    # Bad input: a precise message and exit 1.
    again = server.cli("deliveries", "retry", str(items[0]["id"]), "--token", ada, check=False)
    assert again.returncode == 1 and "not failed" in again.stderr
    reviewer = server.cli("deliveries", "list", "--token", server.tokens["rita"], check=False)
    assert reviewer.returncode == 1 and "admin" in reviewer.stderr


def test_user_link_refuses_what_is_not_a_person(make_server: Callable[[str], Server]) -> None:
    server = make_server("")
    ok = server.cli("user", "link", "rita", "--slack", "U0RITA", "--db", server.db, "--json")
    assert json.loads(ok.stdout)["name"] == "rita"
    for args, message in (
        (("support-bot", "--slack", "U0BOT"), "agent"),
        (("rita", "--slack", "rita"), "Slack user id"),
        (("system", "--slack", "U0SYS"), "reserved"),
    ):
        done = server.cli("user", "link", *args, "--db", server.db, check=False)
        assert done.returncode == 1 and message in done.stderr, done.stderr
    links = server.cli("user", "links", "--db", server.db).stdout
    assert "U0RITA" in links and "rita" in links
    server.cli("user", "unlink", "--slack", "U0RITA", "--db", server.db)
    gone = server.cli("user", "unlink", "--slack", "U0RITA", "--db", server.db, check=False)
    assert gone.returncode == 1 and "not linked" in gone.stderr


def test_show_says_expired_not_rejected(make_server: Callable[[str], Server]) -> None:
    server = make_server("")
    action = server.submit({"action": "quick.thing"})
    waited = server.cli("show", action["id"], "--wait", "30", "--token", server.tokens["rita"], check=False)
    assert waited.returncode == 2
    assert "expired: no reviewer answered within 1s" in waited.stdout
    assert "reject" not in waited.stdout
