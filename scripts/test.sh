#!/usr/bin/env bash
# Every check CI runs, from a clean clone: formatting, lints, docs, all tests, and a fuzz run
# of the HTTP API. It installs what the tests need: SQLite is compiled into the binary;
# schemathesis comes from PyPI into target/fuzz-venv-3.X (scripts/fuzz-api.sh, which wants a
# Python >= 3.12 for every phase and says loudly when it has to skip one); the client
# libraries' dependencies from PyPI and npm into target/clients-venv and
# clients/typescript/node_modules (scripts/test-clients.sh); Debian's Chromium (apt) and the
# browser tests' npm packages (target/ui-tests-node) in scripts/ui-tests.sh, which runs the web
# UI's browser tests beside the Rust tests; and a throw-away PostgreSQL cluster (Debian's
# postgresql, installed by apt when missing) under target/pg for the PostgreSQL backend's
# tests, stopped at the end (scripts/pg-cluster.sh). CI calls exactly this script (see
# .ci/run).
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TERM_COLOR=never

# The client libraries' installs overlap the Rust build; their suites overlap the fuzzing.
mkdir -p target
./scripts/test-clients.sh install > target/clients-install.log 2>&1 &
CLIENTS_INSTALL=$!

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
# The browser tests drive the real binary: built first, then run beside the Rust tests (the
# two share the machine's cores; neither asserts on timing). Their output comes after.
cargo build -p countersign --locked --quiet
./scripts/ui-tests.sh target/debug/countersign > target/ui-tests.log 2>&1 &
browser_tests=$!
cargo test --workspace --locked
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
