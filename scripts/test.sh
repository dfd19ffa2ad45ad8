#!/usr/bin/env bash
# Every check CI runs, from a clean clone: formatting, lints, docs, all tests, and a fuzz run
# of the HTTP API. It installs what the tests need: SQLite is compiled into the binary;
# schemathesis comes from PyPI into target/fuzz-venv (scripts/fuzz-api.sh); the client
# libraries' dependencies from PyPI and npm into target/clients-venv and
# clients/typescript/node_modules (scripts/test-clients.sh); the notification interop tests'
# verifiers into target/notify-venv (scripts/test-notify.sh). CI calls exactly this script
# (see .ci/run).
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TERM_COLOR=never

# The client libraries' installs overlap the Rust build; their suites overlap the fuzzing.
mkdir -p target
./scripts/test-clients.sh install > target/clients-install.log 2>&1 &
CLIENTS_INSTALL=$!
./scripts/test-notify.sh install > target/notify-install.log 2>&1 &
NOTIFY_INSTALL=$!

echo "== formatting"
cargo fmt --all -- --check
echo "== lints"
cargo clippy --workspace --all-targets --locked -- -D warnings
echo "== docs"
RUSTDOCFLAGS="-D warnings" cargo doc --workspace --no-deps --locked --quiet
echo "== tests"
cargo test --workspace --locked
echo "== client libraries: installing (started at the beginning)"
if ! wait "$CLIENTS_INSTALL"; then
    cat target/clients-install.log
    exit 1
fi
./scripts/test-clients.sh run target/debug/countersign > target/clients-test.log 2>&1 &
CLIENTS=$!
if ! wait "$NOTIFY_INSTALL"; then
    cat target/notify-install.log
    exit 1
fi
./scripts/test-notify.sh run target/debug/countersign > target/notify-test.log 2>&1 &
NOTIFY=$!
echo "== API fuzzing (schemathesis against the OpenAPI document)"
./scripts/fuzz-api.sh target/debug/countersign
echo "== client libraries (Python and TypeScript: lints, types, tests against the real server)"
CLIENTS_STATUS=0
wait "$CLIENTS" || CLIENTS_STATUS=$?
cat target/clients-test.log
echo "== notifications interop (standardwebhooks, slack_sdk, aiosmtpd against the real binary)"
NOTIFY_STATUS=0
wait "$NOTIFY" || NOTIFY_STATUS=$?
cat target/notify-test.log
[ "$CLIENTS_STATUS" -eq 0 ] || exit "$CLIENTS_STATUS"
exit "$NOTIFY_STATUS"
