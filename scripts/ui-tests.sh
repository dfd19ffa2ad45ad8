#!/usr/bin/env bash
# The reviewer web UI's browser tests: installs Debian's Chromium (apt, when missing) and the
# npm packages (playwright-core, @axe-core/playwright, eslint; `npm ci` from the lock file
# into target/ui-tests-node, reused while the lock file is unchanged), lints the tests and
# the UI's script, then runs the tests against the countersign binary given (default
# target/debug/countersign). Screenshots land in target/ui-artifacts.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN="${1:-target/debug/countersign}"

if ! command -v chromium >/dev/null 2>&1; then
    echo "installing Debian's chromium"
    apt_get() { if [ "$(id -u)" = 0 ]; then apt-get "$@"; else sudo apt-get "$@"; fi; }
    apt_get update -qq
    DEBIAN_FRONTEND=noninteractive apt_get install -y -qq chromium >/dev/null
fi

deps=target/ui-tests-node
stamp="$deps/.lock-$(sha256sum ui-tests/package-lock.json | cut -c1-16)"
if [ ! -f "$stamp" ]; then
    rm -rf "$deps"
    mkdir -p "$deps"
    cp ui-tests/package.json ui-tests/package-lock.json "$deps/"
    npm ci --prefix "$deps" --no-audit --no-fund --loglevel=error
    touch "$stamp"
fi
# The tests resolve their packages through ui-tests/node_modules.
if [ ! -L ui-tests/node_modules ]; then
    rm -rf ui-tests/node_modules
    ln -s "../$deps/node_modules" ui-tests/node_modules
fi

echo "== lint (browser tests and the UI's script)"
node ui-tests/node_modules/eslint/bin/eslint.js --config ui-tests/eslint.config.js \
    ui-tests crates/countersign-server/static
echo "== browser tests (headless Chromium)"
cd ui-tests
COUNTERSIGN_BIN="$(cd .. && realpath "$BIN")" node --test --test-concurrency=1 tests/
