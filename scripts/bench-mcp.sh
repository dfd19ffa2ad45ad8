#!/usr/bin/env bash
# The MCP proxy's benchmarks (BENCHMARKS.md, "MCP gating proxy"): builds the release binary,
# installs the comparison proxy (PyPI mcp-proxy, into its own venv: it pins an older `mcp`
# than the tests use), and runs scripts/bench_mcp.py. BENCH_CALLS and BENCH_HELD tune it.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/mcp-deps.sh
cargo build --release -p countersign --locked
if [ ! -x target/mcp-deps/bench-venv/bin/mcp-proxy ]; then
    python3 -m venv target/mcp-deps/bench-venv
    target/mcp-deps/bench-venv/bin/pip install --quiet --disable-pip-version-check "mcp-proxy==0.13.0"
fi
exec target/mcp-deps/venv/bin/python scripts/bench_mcp.py
