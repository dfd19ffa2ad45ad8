"""Benchmarks of the Python client (BENCHMARKS.md, "Client libraries"):

1. The human-in-the-loop round trip with no human delay — submit, held, decided by a
   reviewer, the agent's call returns — through Countersign (HTTP, SQLite WAL +
   synchronous=FULL on the server) next to LangGraph's `interrupt()` / `Command(resume=...)`
   with its SQLite checkpointer (WAL, synchronous=FULL, `durability="sync"`), in the same run.
2. The client's overhead over raw HTTP calls (httpx, same connection pool, same requests).

    target/clients-venv/bin/python clients/python/bench/roundtrip.py [--rounds N] [--calls N]

Starts its own `countersign serve` (COUNTERSIGN_BIN, default target/debug/countersign) on a
temporary database in a temporary directory; the LangGraph checkpoint file sits beside it.
"""

from __future__ import annotations

import argparse
import json
import platform
import queue
import sqlite3
import statistics
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypedDict

import httpx
from langgraph.checkpoint.sqlite import SqliteSaver
from langgraph.graph import END, START, StateGraph
from langgraph.types import Command, interrupt

from countersign import Countersign

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from conftest import Server  # the tests' server fixture, reused


def summary(samples: list[float]) -> str:
    ordered = sorted(samples)
    p50 = statistics.median(ordered) * 1000
    p90 = ordered[int(len(ordered) * 0.9)] * 1000
    return f"p50 {p50:.3f} ms, p90 {p90:.3f} ms (n={len(ordered)})"


def countersign_round_trip(server: Server, rounds: int) -> list[float]:
    agent, reviewer = server.agent(), server.reviewer()
    ids: queue.Queue[str] = queue.Queue()

    def review() -> None:
        while (action_id := ids.get()) != "":
            reviewer.approve(action_id)

    thread = threading.Thread(target=review)
    thread.start()
    samples = []
    for _ in range(rounds):
        start = time.perf_counter()
        submitted = agent.submit("bench.refund", {"order": "A-1", "amount": 2500})
        ids.put(submitted.id)  # the reviewer decides as soon as the action is held
        decided = agent.wait(submitted.id)
        samples.append(time.perf_counter() - start)
        assert decided.status.value == "approved"
    ids.put("")
    thread.join()
    return samples


def countersign_sequential(server: Server, rounds: int) -> list[float]:
    """The same steps in one thread, in the order LangGraph's run takes them: held (durable),
    decided (durable), the agent's wait answered."""
    agent, reviewer = server.agent(), server.reviewer()
    samples = []
    for _ in range(rounds):
        start = time.perf_counter()
        submitted = agent.submit("bench.refund", {"order": "A-1", "amount": 2500})
        reviewer.approve(submitted.id)
        decided = agent.wait(submitted.id)
        samples.append(time.perf_counter() - start)
        assert decided.status.value == "approved"
    return samples


class State(TypedDict, total=False):
    order: str
    amount: int
    approved: bool


def approve_step(state: State) -> State:
    return {"approved": bool(interrupt({"action": "refund", "args": dict(state)}))}


def langgraph_round_trip(checkpoints: Path, rounds: int) -> list[float]:
    # As LangGraph's docs open it (`SqliteSaver.from_conn_string` does the same): the saver
    # commits once per checkpoint and once per batch of writes.
    connection = sqlite3.connect(checkpoints, check_same_thread=False)
    saver = SqliteSaver(connection)
    saver.setup()
    connection.execute("PRAGMA journal_mode=WAL")
    connection.execute("PRAGMA synchronous=FULL")
    assert connection.execute("PRAGMA synchronous").fetchone()[0] == 2
    graph = StateGraph(State)
    graph.add_node("approve", approve_step)
    graph.add_edge(START, "approve")
    graph.add_edge("approve", END)
    compiled = graph.compile(checkpointer=saver)
    samples = []
    for _ in range(rounds):
        config: Any = {"configurable": {"thread_id": str(uuid.uuid4())}}
        start = time.perf_counter()
        stopped = compiled.invoke({"order": "A-1", "amount": 2500}, config, durability="sync")
        assert "__interrupt__" in stopped
        done = compiled.invoke(Command(resume=True), config, durability="sync")
        samples.append(time.perf_counter() - start)
        assert done["approved"] is True
    return samples


def sqlite_commit(path: Path, rounds: int) -> list[float]:
    """The disk's baseline in the same run: one small SQLite commit (WAL, synchronous=FULL),
    in process: what each durable step of either side costs at least."""
    connection = sqlite3.connect(path, isolation_level=None)
    connection.execute("PRAGMA journal_mode=WAL")
    connection.execute("PRAGMA synchronous=FULL")
    connection.execute("CREATE TABLE IF NOT EXISTS t (v BLOB)")
    samples = []
    for _ in range(rounds):
        start = time.perf_counter()
        connection.execute("INSERT INTO t VALUES (?)", (b"x" * 200,))
        samples.append(time.perf_counter() - start)
    connection.close()
    return samples


def overhead(
    base_url: str, token: str, calls: int, transport: httpx.BaseTransport | None = None
) -> dict[str, tuple[list[float], list[float]]]:
    """Each call through the client next to the same request made with httpx directly, on
    clients alike (same transport, one connection pool each), the order swapped every
    iteration so that neither always goes first."""
    gate = Countersign(base_url, token, transport=transport)
    raw = httpx.Client(
        base_url=base_url, headers={"Authorization": f"Bearer {token}"}, transport=transport
    )
    action_id = gate.submit("bench.refund", {"n": 1}).id
    body = {"action": "customer.get", "args": {"id": "c_9"}}

    def raw_get() -> None:
        response = raw.get(f"/v1/actions/{action_id}")
        response.raise_for_status()
        response.json()

    def raw_submit() -> None:
        response = raw.post("/v1/actions", json=body)
        response.raise_for_status()
        response.json()

    pairs = {
        "get": (lambda: gate.get(action_id), raw_get),
        "submit": (lambda: gate.submit("customer.get", {"id": "c_9"}), raw_submit),
    }
    results: dict[str, tuple[list[float], list[float]]] = {name: ([], []) for name in pairs}
    for index in range(calls):
        for name, (through_client, direct) in pairs.items():
            order: list[tuple[int, Callable[[], object]]] = [(0, through_client), (1, direct)]
            if index % 2:
                order.reverse()
            for slot, call in order:
                start = time.perf_counter()
                call()
                results[name][slot].append(time.perf_counter() - start)
    return results


def in_process_transport() -> httpx.BaseTransport:
    """The server's answers, canned: what is left is the client's own work."""
    action: dict[str, Any] = {
        "id": "a1",
        "action": "refund.create",
        "agent": "support-bot",
        "status": "allowed",
        "tier": "auto",
        "rule": "lookups",
        "reason": "rule lookups",
        "args": {"id": "c_9"},
        "original_args": None,
        "approvals_required": 0,
        "decisions": [],
        "deadline": None,
        "created_at": "2026-11-30T12:00:00Z",
        "decided_at": None,
        "context": {},
        "approvers": [],
        "admins_only": False,
        "policy_hash": "0" * 64,
        "confidence": None,
        "reasoning": None,
        "review": None,
        "outcome": None,
    }
    content = json.dumps(action).encode()
    return httpx.MockTransport(
        lambda _request: httpx.Response(
            200, content=content, headers={"content-type": "application/json"}
        )
    )


def report_overhead(label: str, results: dict[str, tuple[list[float], list[float]]]) -> None:
    for name, (client, direct) in results.items():
        extra = (statistics.median(client) - statistics.median(direct)) * 1000
        print(
            f"{label} {name}: client {summary(client)}; raw httpx {summary(direct)}; "
            f"overhead p50 {extra:.3f} ms"
        )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=300)
    parser.add_argument("--calls", type=int, default=2000)
    options = parser.parse_args()
    print(f"machine: {platform.machine()}, python {platform.python_version()}")
    with tempfile.TemporaryDirectory() as directory:
        server = Server.create(Path(directory))
        server.start()
        try:
            # Warm-up: connections, caches, the SQLite files.
            countersign_round_trip(server, 20)
            langgraph_round_trip(Path(directory) / "warm.sqlite", 20)
            ours: list[float] = []
            sequential: list[float] = []
            theirs: list[float] = []
            commits: list[float] = []
            # Interleaved in blocks so that all see the same noise.
            block = options.rounds // 5
            for _ in range(5):
                ours += countersign_round_trip(server, block)
                sequential += countersign_sequential(server, block)
                theirs += langgraph_round_trip(Path(directory) / "lg.sqlite", block)
                commits += sqlite_commit(Path(directory) / "baseline.sqlite", block)
            print(f"HITL round trip, Countersign, reviewer concurrent: {summary(ours)}")
            print(f"HITL round trip, Countersign, one thread:          {summary(sequential)}")
            print(f"HITL round trip, LangGraph interrupt/resume:       {summary(theirs)}")
            print(f"baseline: one SQLite commit (WAL, FULL):           {summary(commits)}")
            for label, samples in (("concurrent", ours), ("one thread", sequential)):
                ratio = statistics.median(samples) / statistics.median(theirs)
                print(f"Countersign ({label}) / LangGraph, p50: {ratio:.2f}")
            token = server.agent_token
            report_overhead("loopback", overhead(server.url, token, options.calls))
            canned = overhead("http://canned", token, options.calls * 5, in_process_transport())
            report_overhead("in-process", canned)
        finally:
            server.stop()


if __name__ == "__main__":
    main()
