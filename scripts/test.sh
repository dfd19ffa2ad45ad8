#!/usr/bin/env bash
# Every check CI runs, from a clean clone: formatting, lints, docs, and all tests.
# It installs what the tests need first (nothing beyond the Rust toolchain yet: SQLite is
# compiled into the binary). CI calls exactly this script (see .ci/run).
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
