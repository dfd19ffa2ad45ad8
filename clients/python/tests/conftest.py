"""The real server for the tests: `countersign serve` on a free loopback port with a temporary
SQLite file and a test policy, tokens made with `countersign token create --db`."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from countersign import Action, Countersign

ROOT = Path(__file__).resolve().parents[3]
BINARY = Path(os.environ.get("COUNTERSIGN_BIN", ROOT / "target" / "debug" / "countersign"))

# `slow.*` expires two seconds after submission (the expiry tests); `*.get` runs at once;
# `db.drop` never runs; everything else waits for a person.
POLICY = """
version = 1

[defaults]
tier = "approve"
sla = "30m"
on_timeout = "reject"

[[rules]]
name = "lookups"
actions = ["*.get"]
tier = "auto"

[[rules]]
name = "never"
actions = ["db.drop"]
tier = "deny"

[[rules]]
name = "quick expiry"
actions = ["slow.*"]
tier = "approve"
sla = "2s"
on_timeout = "reject"
"""


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@dataclass
class Server:
    """One `countersign serve` process; `restart` keeps its port and database."""

    directory: Path
    port: int
    agent_token: str
    reviewer_token: str
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @classmethod
    def create(cls, directory: Path) -> Server:
        if not BINARY.exists():
            pytest.fail(f"{BINARY} not found: run `cargo build -p countersign` first")
        (directory / "policy.toml").write_text(POLICY)
        port = free_port()
        db = f"sqlite://{directory / 'countersign.db'}"
        (directory / "countersign.toml").write_text(
            f'listen = "127.0.0.1:{port}"\n'
            f'database = "{db}"\n'
            f'policy = "{directory / "policy.toml"}"\n'
            f'checkpoint_key = "{directory / "checkpoint.key"}"\n'
        )

        def token(*args: str) -> str:
            return subprocess.run(
                [str(BINARY), "token", "create", *args, "--db", db],
                check=True,
                capture_output=True,
                text=True,
            ).stdout.strip()

        agent = token("--role", "agent", "--name", "support-bot", "--owner", "olivia")
        reviewer = token("--role", "reviewer", "--name", "rita", "--groups", "support-leads")
        return cls(directory, port, agent, reviewer)

    def start(self) -> None:
        log = (self.directory / "serve.log").open("ab")
        self.process = subprocess.Popen(
            [str(BINARY), "serve", "--config", str(self.directory / "countersign.toml")],
            stdout=log,
            stderr=log,
        )
        give_up = time.monotonic() + 30
        while time.monotonic() < give_up:
            if self.process.poll() is not None:
                pytest.fail(f"the server exited: {(self.directory / 'serve.log').read_text()}")
            try:
                if httpx.get(f"{self.url}/healthz", timeout=1).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.05)  # polling for readiness, bounded by give_up above
        pytest.fail("the server did not answer /healthz within 30 s")

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(sig)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None

    def agent(self, **options: object) -> Countersign:
        return Countersign(self.url, self.agent_token, **options)  # type: ignore[arg-type]

    def reviewer(self) -> Countersign:
        return Countersign(self.url, self.reviewer_token)


def start_server(directory: Path) -> Iterator[Server]:
    server = Server.create(directory)
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    yield from start_server(tmp_path_factory.mktemp("countersign"))


@pytest.fixture
def private_server(tmp_path: Path) -> Iterator[Server]:
    """A server of the test's own, for tests that stop and restart it."""
    yield from start_server(tmp_path)


@pytest.fixture
def gate(server: Server) -> Iterator[Countersign]:
    with server.agent() as client:
        yield client


@pytest.fixture
def reviewer(server: Server) -> Iterator[Countersign]:
    with server.reviewer() as client:
        yield client


@pytest.fixture
def name() -> str:
    """An action name no other test uses (the default tier: a person decides)."""
    return f"test.{uuid.uuid4().hex[:12]}"


def pending(reviewer: Countersign, action: str, count: int = 1) -> list[Action]:
    """The reviewer's view of `count` pending actions named `action`, once they are queued.

    Polls the queue (it has no wait of its own), each try bounded, 20 s at most."""
    give_up = time.monotonic() + 20
    while True:
        found = reviewer.queue(action=action)
        if len(found) >= count:
            return found
        if time.monotonic() > give_up:
            pytest.fail(f"{action} did not reach the queue")
        time.sleep(0.02)  # a queue poll interval, not a wait for an outcome


def eventually(check: Callable[[], bool], what: str) -> None:
    give_up = time.monotonic() + 20
    while not check():
        if time.monotonic() > give_up:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.02)  # a poll interval, bounded by give_up


def in_thread(call: Any, *args: Any) -> Future[Any]:
    """Runs `call` on its own thread (an agent waiting while the test reviews)."""
    pool = ThreadPoolExecutor(max_workers=1)
    future = pool.submit(call, *args)
    pool.shutdown(wait=False)
    return future
