#!/usr/bin/env bash
# Every check CI runs, from a clean clone: formatting, lints, docs, all tests, and a fuzz run
# of the HTTP API. It installs what the tests need: SQLite is compiled into the binary;
# schemathesis comes from PyPI into target/fuzz-venv-3.X (scripts/fuzz-api.sh, which wants a
# Python >= 3.12 for every phase and says loudly when it has to skip one). CI calls exactly
# this script (see .ci/run).
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TERM_COLOR=never

echo "== formatting"
cargo fmt --all -- --check
echo "== lints"
cargo clippy --workspace --all-targets --locked -- -D warnings
echo "== docs"
RUSTDOCFLAGS="-D warnings" cargo doc --workspace --no-deps --locked --quiet
echo "== tests"
cargo test --workspace --locked
echo "== API fuzzing (schemathesis against the OpenAPI document)"
./scripts/fuzz-api.sh target/debug/countersign
