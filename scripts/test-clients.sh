#!/usr/bin/env bash
# The client libraries (clients/python, clients/typescript) and their examples: lints, type
# checks and both test suites, against the real server. Called by scripts/test.sh in two steps
# so that the installs overlap the Rust build and the suites overlap the API fuzzing:
#   ./scripts/test-clients.sh install            # once: target/clients-venv, node_modules
#   ./scripts/test-clients.sh run [BINARY]       # default BINARY: target/debug/countersign
# Dependencies come from PyPI and npm at pinned versions and are reinstalled only when the
# pins change (a stamp file beside them).
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=target/clients-venv
PYTHON_PINS="httpx==0.28.1 pytest==9.2.0 ruff==0.17.5 mypy==2.4.1 langgraph==1.2.22 langgraph-checkpoint-sqlite==3.1.2 openai-agents==0.24.0 hatchling==1.29.0 editables==0.5"
TS=clients/typescript

install() {
    if [ "$(cat "$VENV/.pins" 2>/dev/null)" != "$PYTHON_PINS" ]; then
        echo "   installing the Python client's test dependencies into $VENV"
        rm -rf "$VENV"
        python3 -m venv "$VENV"
        # shellcheck disable=SC2086 # the pins are words
        "$VENV/bin/pip" install --quiet --disable-pip-version-check $PYTHON_PINS
        echo "$PYTHON_PINS" > "$VENV/.pins"
    fi
    # The package itself, editable (no build isolation: hatchling is pinned above).
    "$VENV/bin/pip" install --quiet --disable-pip-version-check --no-deps --no-build-isolation -e clients/python
    if ! cmp -s "$TS/package-lock.json" "$TS/node_modules/.package-lock.stamp"; then
        echo "   installing the TypeScript client's dev dependencies into $TS/node_modules"
        (cd "$TS" && npm ci --no-audit --no-fund --loglevel=error)
        cp "$TS/package-lock.json" "$TS/node_modules/.package-lock.stamp"
    fi
    # The example depends on the client by path: npm links it, nothing is downloaded.
    (cd examples/typescript && npm install --no-audit --no-fund --loglevel=error --offline)
}

python_suite() {
    cd clients/python
    ../../"$VENV"/bin/ruff format --check . ../../examples/python
    ../../"$VENV"/bin/ruff check . && ../../"$VENV"/bin/ruff check --config pyproject.toml ../../examples/python
    ../../"$VENV"/bin/mypy
    COUNTERSIGN_BIN="$BIN" ../../"$VENV"/bin/pytest -q -p no:cacheprovider
}

typescript_suite() {
    cd "$TS"
    npx tsc -p tsconfig.json                       # the published build: dist/
    npx tsc -p tsconfig.test.json                  # sources and tests, type-checked and built
    node_modules/.bin/tsc -p ../../examples/typescript
    COUNTERSIGN_BIN="$BIN" node --test build/test/*.test.js
}

run() {
    BIN=$(realpath "${1:-target/debug/countersign}")
    export BIN
    local logs
    logs=$(mktemp -d)
    # Both suites at once: they spend their time waiting on servers of their own.
    (python_suite > "$logs/python.log" 2>&1) &
    local python=$!
    (typescript_suite > "$logs/typescript.log" 2>&1) &
    local typescript=$!
    local failed=0
    wait "$python" || failed=1
    echo "-- clients/python (ruff, mypy --strict, pytest)"
    cat "$logs/python.log"
    wait "$typescript" || failed=1
    echo "-- clients/typescript (tsc strict, node --test)"
    cat "$logs/typescript.log"
    rm -rf "$logs"
    return "$failed"
}

case "${1:-}" in
    install) install ;;
    run) shift; run "$@" ;;
    *) install; run "${2:-}" ;;
esac
