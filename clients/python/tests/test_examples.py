"""`examples/python/support_agent.py` runs against the real server: its first refund is
approved with a smaller amount, its second rejected, and it tells the customer so."""

from __future__ import annotations

import os
import subprocess
import sys

from conftest import ROOT, Server, eventually, pending


def test_the_support_agent_example(server: Server) -> None:
    environment = os.environ | {
        "COUNTERSIGN_URL": server.url,
        "COUNTERSIGN_TOKEN": server.agent_token,
    }
    agent = subprocess.Popen(
        [sys.executable, str(ROOT / "examples" / "python" / "support_agent.py")],
        env=environment,
        stdout=subprocess.PIPE,
        text=True,
    )
    with server.reviewer() as reviewer:
        [first] = pending(reviewer, "refund.create")
        assert first.reasoning == "ticket T-1: I was charged twice for order A-1"
        reviewer.modify(first.id, first.args | {"amount": 2000}, reason="one charge only")

        def second_is_queued() -> bool:
            return any(a.id != first.id for a in reviewer.queue(action="refund.create"))

        eventually(second_is_queued, "the second refund")
        [second] = [a for a in reviewer.queue(action="refund.create") if a.id != first.id]
        reviewer.reject(second.id, reason="send a replacement instead")
    out, _ = agent.communicate(timeout=60)
    assert agent.returncode == 0
    assert out.splitlines() == [
        "T-1: refunded 2000 USD on A-1",
        "T-2: refund rejected by rita: send a replacement instead",
    ]
