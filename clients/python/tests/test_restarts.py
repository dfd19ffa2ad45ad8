"""Restarts on either side: a waiting call outlives a server restart, and an agent restarted
mid-wait finds its action again by idempotency key and runs it exactly once."""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import httpx
import pytest

from countersign import Status

from conftest import Server, eventually, in_thread, pending


def open_waits(server: Server) -> float:
    for line in httpx.get(f"{server.url}/metrics", timeout=5).text.splitlines():
        if line.startswith("countersign_open_waits"):
            return float(line.split()[-1])
    return 0.0


@pytest.mark.parametrize("wait_mode", ["poll", "sse"])
def test_a_waiting_call_resumes_after_the_server_restarts(
    private_server: Server, name: str, wait_mode: str
) -> None:
    agent = private_server.agent(wait_mode=wait_mode)
    submitted = agent.submit(name, {"order": "A-1"})
    result = in_thread(agent.wait, submitted.id)
    eventually(lambda: open_waits(private_server) >= 1, "the wait to reach the server")

    # A crash, not a polite stop: the wait's connection is cut mid-request, and the client
    # spends the downtime reconnecting.
    private_server.stop(signal.SIGKILL)
    assert not result.done()
    private_server.start()
    with private_server.reviewer() as reviewer:
        reviewer.approve(submitted.id, reason="after the restart")
    decision = result.result(timeout=60)
    assert decision.status is Status.APPROVED
    assert decision.id == submitted.id


AGENT = textwrap.dedent(
    """
    import sys
    from countersign import AlreadyExecuted, Countersign, gated

    url, token, action, ledger = sys.argv[1:]

    @gated(
        action=action,
        gate=Countersign(url, token),
        idempotency_key=lambda args: f"refund/{args['order']}",
    )
    def refund(order: str, amount: int) -> None:
        with open(ledger, "a") as file:
            file.write(f"{order} {amount}\\n")

    try:
        refund("A-1", 2500)
        print("ran")
    except AlreadyExecuted:
        print("already ran")
    """
)


def test_an_agent_restarted_mid_wait_resumes_the_same_action_and_runs_it_once(
    server: Server, name: str, tmp_path: Path
) -> None:
    script = tmp_path / "agent.py"
    script.write_text(AGENT)
    ledger = tmp_path / "ledger.txt"
    command = [sys.executable, str(script), server.url, server.agent_token, name, str(ledger)]

    first = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
    with server.reviewer() as reviewer:
        [waiting] = pending(reviewer, name)
        first.kill()  # the agent dies while it waits
        first.wait()
        reviewer.approve(waiting.id)

        second = subprocess.run(command, capture_output=True, text=True, timeout=60, check=True)
        assert second.stdout.strip() == "ran"
        third = subprocess.run(command, capture_output=True, text=True, timeout=60, check=True)
        assert third.stdout.strip() == "already ran"

        assert ledger.read_text() == "A-1 2500\n"
        [approved] = reviewer.queue(status="approved", action=name)
        assert approved.id == waiting.id
        assert approved.outcome is not None
