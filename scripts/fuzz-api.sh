#!/usr/bin/env bash
# Fuzzes the running HTTP API from its own OpenAPI document with schemathesis (from PyPI),
# every check and every phase: no request may get a 5xx; every status code, header and body
# must be the documented one; what the document forbids must be refused and what it allows
# accepted; and the stateful phase follows the document's links from a submitted action to
# reading, deciding, cancelling, reviewing and reporting on it.
# Called by scripts/test.sh after the Rust tests; runs on its own too:
#   ./scripts/fuzz-api.sh [path/to/countersign [schemathesis options...]]
# (default: target/debug/countersign; options after it are passed on, and a later option
# wins: e.g. `--phases stateful --report har` to see where the stateful phase went).
# FUZZ_SECONDS (default 300) is the time budget of the whole run; FUZZ_PYTHON picks the
# Python that runs schemathesis.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${1:-target/debug/countersign}
SCHEMATHESIS_VERSION=4.32.5
SECONDS_BUDGET=${FUZZ_SECONDS:-300}
PHASES=examples,coverage,fuzzing,stateful

# schemathesis's coverage phase needs Python 3.12 or later: under 3.11.7 it crashes with
# `SystemError: AST constructor recursion depth mismatch`. Take the first Python >= 3.12
# among FUZZ_PYTHON, python3.12/3.13 on PATH and pyenv's versions; else 3.11 without that
# phase.
at_least() { "$1" -c "import sys; sys.exit(sys.version_info < ($2,))" 2>/dev/null; }
PYTHON=
candidates=("${FUZZ_PYTHON:-}" python3.12 python3.13 python3)
if command -v pyenv > /dev/null; then
    candidates+=("$(pyenv root)"/versions/3.1[2-9]*/bin/python3)
fi
candidates+=("$HOME"/.pyenv/versions/3.1[2-9]*/bin/python3)
for candidate in "${candidates[@]}"; do
    if [ -n "$candidate" ] && at_least "$candidate" 3,12; then
        PYTHON=$candidate
        break
    fi
done
if [ -z "$PYTHON" ]; then
    PYTHON=python3
    if ! at_least "$PYTHON" 3,10; then
        echo "schemathesis needs Python 3.10 or later; $PYTHON is older" >&2
        exit 1
    fi
    PHASES=examples,fuzzing,stateful
    {
        echo "!!!"
        echo "!!! WARNING: no Python 3.12 or later found ($("$PYTHON" --version 2>&1) instead):"
        echo "!!! schemathesis's COVERAGE PHASE IS SKIPPED (it crashes under 3.11)."
        echo "!!! This run checks less than CI's. Install Python 3.12+ or set FUZZ_PYTHON."
        echo "!!!"
    } >&2
fi
PY_VERSION=$("$PYTHON" -c 'import sys; print("%d.%d" % sys.version_info[:2])')
VENV=target/fuzz-venv-$PY_VERSION

if [ ! -x "$VENV/bin/schemathesis" ]; then
    echo "   installing schemathesis $SCHEMATHESIS_VERSION into $VENV (Python $PY_VERSION)"
    "$PYTHON" -m venv "$VENV"
    "$VENV/bin/pip" install --quiet --disable-pip-version-check "schemathesis==$SCHEMATHESIS_VERSION"
fi

WORK=$(mktemp -d)
SERVER_PID=
cleanup() {
    if [ -n "$SERVER_PID" ]; then kill "$SERVER_PID" 2>/dev/null || true; fi
    rm -rf "$WORK"
}
trap cleanup EXIT

# Long-polls are capped at 2 s so that a generated `?wait=300` does not outlast the client.
cat > "$WORK/countersign.toml" <<TOML
listen = "127.0.0.1:0"
database = "sqlite://$WORK/countersign.db"
checkpoint_key = "$WORK/checkpoint.key"
policy = "$WORK/policy.toml"
max_wait_seconds = 2

# The Slack endpoint must refuse every unsigned request with 401, never a 5xx.
[slack]
signing_secret = "fuzz-signing-secret"
TOML
# A policy under which generated requests reach every tier: reads pass, `*.drop` is denied,
# a write without arguments is `logged` and always sampled (so post-hoc reviews and outcomes
# have actions to act on), any other write waits for a reviewer (so decisions do).
cat > "$WORK/policy.toml" <<TOML
version = 1

[defaults]
tier = "approve"
sla = "1h"

[[rules]]
name = "reads"
actions = ["*.get", "*.list", "*.search", "*.read", "*.describe"]
tier = "auto"

[[rules]]
name = "forbidden"
actions = ["*.drop"]
tier = "deny"

[[rules]]
name = "writes without arguments"
actions = ["*"]
when = "size(args) == 0"
tier = "logged"
review_sample = 1.0
TOML
"$BIN" policy check "$WORK/policy.toml" > /dev/null
DB="sqlite://$WORK/countersign.db"
COUNTERSIGN_FUZZ_ADMIN=$("$BIN" token create --role admin --name fuzz-admin --db "$DB")
COUNTERSIGN_FUZZ_REVIEWER=$("$BIN" token create --role reviewer --name fuzz-reviewer --db "$DB")
export COUNTERSIGN_FUZZ_ADMIN COUNTERSIGN_FUZZ_REVIEWER
RUST_LOG=info "$BIN" serve --config "$WORK/countersign.toml" 2> "$WORK/serve.log" &
SERVER_PID=$!
# The server logs its address once it listens (port 0 picks a free one); wait up to 20 s.
ADDRESS=
for _ in $(seq 1 200); do
    ADDRESS=$(sed -n 's/.*address=\([0-9.:]*\).*/\1/p' "$WORK/serve.log" | head -n1)
    [ -n "$ADDRESS" ] && break
    sleep 0.1
done
if [ -z "$ADDRESS" ]; then
    cat "$WORK/serve.log"
    echo "the server did not start" >&2
    exit 1
fi

# The tokens are in scripts/schemathesis.toml. The admin token may do everything, revoking
# itself included: that operation is left out so that the run keeps a working token (the
# API tests cover it).
echo "   schemathesis $SCHEMATHESIS_VERSION on Python $PY_VERSION, phases $PHASES, ${SECONDS_BUDGET}s"
"$VENV/bin/schemathesis" --config-file scripts/schemathesis.toml \
    run "http://$ADDRESS/v1/openapi.json" \
    --exclude-operation-id revoke_token \
    --checks all \
    --phases "$PHASES" \
    --max-time "$SECONDS_BUDGET" \
    --request-timeout 20 \
    --seed 20261125 \
    --workers 2 \
    --no-color \
    "${@:2}"
