#!/usr/bin/env bash
# Every check CI runs, from a clean clone: formatting, lints, docs, all tests, and a fuzz run
# of the HTTP API. It installs what the tests need: SQLite is compiled into the binary;
# schemathesis comes from PyPI into target/fuzz-venv (scripts/fuzz-api.sh); the MCP proxy's
# tests run against third-party MCP servers and clients from npm and PyPI, installed once
# into target/mcp-deps (scripts/mcp-deps.sh, which also lints our TypeScript and Python test
# clients). CI calls exactly this script (see .ci/run).
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TERM_COLOR=never

# npm and PyPI installs wait on the network, not the CPU: they run beside the lints.
mkdir -p target
echo "== MCP test software (npm, PyPI), in the background"
./scripts/mcp-deps.sh > target/mcp-deps.log 2>&1 &
DEPS_PID=$!
echo "== formatting"
cargo fmt --all -- --check
echo "== lints"
cargo clippy --workspace --all-targets --locked -- -D warnings
echo "== docs"
RUSTDOCFLAGS="-D warnings" cargo doc --workspace --no-deps --locked --quiet
echo "== tests"
if ! wait "$DEPS_PID"; then
    cat target/mcp-deps.log
    echo "installing or linting the MCP test software failed" >&2
    exit 1
fi
cat target/mcp-deps.log
# The MCP suite (tests/mcp in the countersign crate) mostly waits on Node and Python child
# processes: its binary runs beside the CLI's tests. The library crates' tests run first, on
# their own: some hold a virtual clock against a live SLA worker and are sensitive to load.
cargo test --workspace --locked --no-run --quiet
cargo test --workspace --locked --exclude countersign
# The test binary's path, from cargo's build messages (the `countersign` binary is listed too).
MCP_TESTS=$(cargo test -p countersign --test mcp --locked --no-run --message-format=json 2>/dev/null \
    | grep '"kind":\["test"\],"crate_types":\["bin"\],"name":"mcp"' \
    | sed -n 's/.*"executable":"\([^"]*\)".*/\1/p' | tail -n1)
if [ ! -x "$MCP_TESTS" ]; then
    echo "cannot find the MCP test binary" >&2
    exit 1
fi
"$MCP_TESTS" > target/mcp-tests.log 2>&1 &
MCP_PID=$!
cargo test -p countersign --locked --bins --test cli
echo "== MCP proxy tests (real MCP servers and clients)"
if ! wait "$MCP_PID"; then
    cat target/mcp-tests.log
    exit 1
fi
grep -v '^Secure MCP\|^Client does not support' target/mcp-tests.log
echo "== API fuzzing (schemathesis against the OpenAPI document)"
./scripts/fuzz-api.sh target/debug/countersign
