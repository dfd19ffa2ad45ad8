#!/usr/bin/env bash
# Every check CI runs, from a clean clone: formatting, lints, docs, all tests, and a fuzz run
# of the HTTP API. It installs what the tests need: SQLite is compiled into the binary;
# schemathesis comes from PyPI into target/fuzz-venv-3.X (scripts/fuzz-api.sh, which wants a
# Python >= 3.12 for every phase and says loudly when it has to skip one); the client
# libraries' dependencies from PyPI and npm into target/clients-venv and
# clients/typescript/node_modules (scripts/test-clients.sh); Debian's Chromium (apt) and the
# browser tests' npm packages (target/ui-tests-node) in scripts/ui-tests.sh, which runs the web
# UI's browser tests beside the Rust tests; the MCP proxy's tests run against third-party MCP
# servers and clients from npm and PyPI, installed once into target/mcp-deps
# (scripts/mcp-deps.sh, which also lints our TypeScript and Python test clients); and a
# throw-away PostgreSQL cluster (Debian's postgresql, installed by apt when missing) under
# target/pg for the PostgreSQL backend's tests, stopped at the end (scripts/pg-cluster.sh).
# CI calls exactly this script (see .ci/run).
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TERM_COLOR=never

# npm and PyPI installs wait on the network, not the CPU: they run beside the lints and the
# build. The client libraries' suites overlap the fuzzing.
mkdir -p target
./scripts/test-clients.sh install > target/clients-install.log 2>&1 &
CLIENTS_INSTALL=$!
echo "== MCP test software (npm, PyPI), in the background"
./scripts/mcp-deps.sh > target/mcp-deps.log 2>&1 &
DEPS_PID=$!

# The PostgreSQL tests (the conformance story on PostgreSQL, several instances on one
# database) run inside `cargo test` below against this cluster.
echo "== PostgreSQL: a throw-away cluster under target/pg"
COUNTERSIGN_TEST_POSTGRES=$(./scripts/pg-cluster.sh start target/pg)
export COUNTERSIGN_TEST_POSTGRES
trap './scripts/pg-cluster.sh stop target/pg' EXIT

echo "== formatting"
cargo fmt --all -- --check
echo "== lints"
cargo clippy --workspace --all-targets --locked -- -D warnings
echo "== docs"
RUSTDOCFLAGS="-D warnings" cargo doc --workspace --no-deps --locked --quiet
echo "== tests"
# The browser tests drive the real binary: built first, then run beside the Rust tests (they
# share the machine's cores; no test asserts on timing). Their output comes after.
cargo build -p countersign --locked --quiet
cargo test --workspace --locked --no-run --quiet
./scripts/ui-tests.sh target/debug/countersign > target/ui-tests.log 2>&1 &
browser_tests=$!
# The library crates' tests first, on their own: some hold a virtual clock against a live
# SLA worker and are sensitive to load.
cargo test --workspace --locked --exclude countersign
if ! wait "$DEPS_PID"; then
    cat target/mcp-deps.log
    echo "installing or linting the MCP test software failed" >&2
    exit 1
fi
cat target/mcp-deps.log
# The MCP suite (tests/mcp in the countersign crate) mostly waits on Node and Python child
# processes: its binary runs beside the CLI's tests.
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
echo "== browser tests (started after the build)"
if wait "$browser_tests"; then
    cat target/ui-tests.log
else
    cat target/ui-tests.log
    echo "the browser tests failed (output above)"
    exit 1
fi
echo "== client libraries: installing (started at the beginning)"
if ! wait "$CLIENTS_INSTALL"; then
    cat target/clients-install.log
    exit 1
fi
./scripts/test-clients.sh run target/debug/countersign > target/clients-test.log 2>&1 &
CLIENTS=$!
echo "== API fuzzing (schemathesis against the OpenAPI document)"
./scripts/fuzz-api.sh target/debug/countersign
echo "== client libraries (Python and TypeScript: lints, types, tests against the real server)"
CLIENTS_STATUS=0
wait "$CLIENTS" || CLIENTS_STATUS=$?
cat target/clients-test.log
exit "$CLIENTS_STATUS"
