"""The real `countersign serve` binary and real receivers on loopback, for the notification
tests that need independent verifiers: PyPI's `standardwebhooks` checks webhook and callback
signatures, `slack_sdk` signs Slack interactions, `aiosmtpd` receives email.

Receivers record every request and wake waiting tests; nothing here sleeps for a fixed time
except where a comment says why.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest

ROOT = Path(__file__).resolve().parents[4]
BINARY = Path(os.environ.get("COUNTERSIGN_BIN", ROOT / "target" / "debug" / "countersign"))

WEBHOOK_SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
CALLBACK_SECRET = "whsec_Y2FsbGJhY2stc2VjcmV0LWJ5dGVzLTAxMjM0NTY3"
SLACK_SIGNING_SECRET = "8f742231b10e8888abcd99yyyzzz85a5"

# `quick.*` expires one second after submission; `refund.create` waits for support-leads;
# everything else for any reviewer.
POLICY = """
version = 1

[defaults]
tier = "approve"
sla = "30m"

[[rules]]
name = "lookups"
actions = ["*.get"]
tier = "auto"

[[rules]]
name = "large refunds"
actions = ["refund.create"]
tier = "approve"
approvers = ["support-leads"]

[[rules]]
name = "quick expiry"
actions = ["quick.*"]
tier = "approve"
sla = "1s"
"""

WAIT = 60.0  # seconds: a guard against a hung test, not a timing expectation


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@dataclass
class Request:
    path: str
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class Receiver:
    """An HTTP server on loopback that records requests; `answer` picks each status."""

    answer: Callable[[Request], tuple[int, bytes]] = lambda _: (200, b'{"ok": true}')
    port: int = 0
    requests: list[Request] = field(default_factory=list)
    changed: threading.Condition = field(default_factory=threading.Condition)
    server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> Receiver:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("content-length", "0"))
                request = Request(
                    self.path, {k.lower(): v for k, v in self.headers.items()}, self.rfile.read(length)
                )
                status, body = receiver.answer(request)
                with receiver.changed:
                    receiver.requests.append(request)
                    receiver.changed.notify_all()
                self.send_response(status)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()

    def until(self, what: str, done: Callable[[list[Request]], bool]) -> list[Request]:
        deadline = time.monotonic() + WAIT
        with self.changed:
            while not done(self.requests):
                left = deadline - time.monotonic()
                if left <= 0:
                    pytest.fail(f"{what}: not received; got {self.requests!r}")
                self.changed.wait(left)
            return list(self.requests)


@dataclass
class Server:
    """One `countersign serve` process on a database and config of its own."""

    directory: Path
    config: str
    process: subprocess.Popen[bytes] | None = None
    url: str = ""
    tokens: dict[str, str] = field(default_factory=dict)

    @property
    def db(self) -> str:
        return f"sqlite://{self.directory / 'countersign.db'}"

    def cli(
        self, *args: str, check: bool = True, stdin: str | None = None
    ) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(
            [str(BINARY), *args],
            capture_output=True,
            text=True,
            input=stdin,
            timeout=WAIT,
            env={**os.environ, "COUNTERSIGN_URL": self.url},
        )
        if check and done.returncode != 0:
            pytest.fail(f"countersign {' '.join(args)} exited {done.returncode}: {done.stderr}")
        return done

    def token(self, name: str, role: str, groups: str = "", owner: str = "") -> str:
        args = ["token", "create", "--role", role, "--name", name, "--db", self.db]
        if groups:
            args += ["--groups", groups]
        if owner:
            args += ["--owner", owner]
        self.tokens[name] = self.cli(*args).stdout.strip()
        return self.tokens[name]

    def start(self) -> Server:
        (self.directory / "policy.toml").write_text(POLICY)
        (self.directory / "countersign.toml").write_text(
            f'listen = "127.0.0.1:0"\n'
            f'database = "{self.db}"\n'
            f'policy = "policy.toml"\n'
            f'checkpoint_key = "{self.directory / "checkpoint.key"}"\n' + self.config
        )
        log = (self.directory / "serve.log").open("ab")
        self.process = subprocess.Popen(
            [str(BINARY), "serve", "--config", str(self.directory / "countersign.toml")],
            stdout=log,
            stderr=log,
            env={
                **os.environ,
                "RUST_LOG": "info",
                "CALLBACK_SECRET": CALLBACK_SECRET,
                "SLACK_SIGNING_SECRET": SLACK_SIGNING_SECRET,
            },
        )
        # The server logs its address once it listens (port 0 picks a free one).
        deadline = time.monotonic() + WAIT
        marker = "address="
        while time.monotonic() < deadline:
            text = (self.directory / "serve.log").read_text(errors="replace")
            found = [line for line in text.splitlines() if "countersign is serving" in line]
            if found:
                address = found[-1].split(marker, 1)[1].split()[0]
                self.url = f"http://{address}"
                return self
            if self.process.poll() is not None:
                pytest.fail(f"the server exited: {text}")
            time.sleep(0.05)  # the log is a file: look again shortly
        pytest.fail("the server did not start")

    def kill(self) -> None:
        """`kill -9`: no shutdown, nothing flushed that was not already durable."""
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=WAIT)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=WAIT)

    def call(self, method: str, path: str, token: str, body: Any = None) -> httpx.Response:
        return httpx.request(
            method,
            f"{self.url}{path}",
            headers={"authorization": f"Bearer {token}"},
            json=body,
            timeout=WAIT,
        )

    def submit(self, body: dict[str, Any]) -> dict[str, Any]:
        answer = self.call("POST", "/v1/actions", self.tokens["support-bot"], body)
        assert answer.status_code == 201, answer.text
        result: dict[str, Any] = answer.json()
        return result


@pytest.fixture
def make_server(tmp_path: Path) -> Iterator[Callable[[str], Server]]:
    started: list[Server] = []

    def make(config: str) -> Server:
        server = Server(tmp_path / f"server{len(started)}", config)
        server.directory.mkdir()
        server.token("support-bot", "agent", owner="olivia")
        server.token("rita", "reviewer", groups="support-leads")
        server.token("sally", "reviewer", groups="sales")
        server.token("ada", "admin")
        started.append(server)
        return server.start()

    yield make
    for server in started:
        server.stop()


@pytest.fixture
def receiver() -> Iterator[Callable[..., Receiver]]:
    started: list[Receiver] = []

    def make(**kwargs: Any) -> Receiver:
        started.append(Receiver(**kwargs).start())
        return started[-1]

    yield make
    for r in started:
        r.stop()


def webhook_target(name: str, url: str, extra: str = "") -> str:
    return (
        f'[[notify]]\nkind = "webhook"\nname = "{name}"\nurl = "{url}"\n'
        f'secret = "{WEBHOOK_SECRET}"\n{extra}\n'
    )
