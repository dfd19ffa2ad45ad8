#!/usr/bin/env bash
# Fuzzes the running HTTP API from its own OpenAPI document with schemathesis (from PyPI):
# no request may get a 5xx, every status code and response body must be the documented one.
# Called by scripts/test.sh after the Rust tests; runs on its own too:
#   ./scripts/fuzz-api.sh [path/to/countersign]   (default: target/debug/countersign)
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${1:-target/debug/countersign}
SCHEMATHESIS_VERSION=4.32.5
VENV=target/fuzz-venv
SECONDS_BUDGET=${FUZZ_SECONDS:-60}

if [ ! -x "$VENV/bin/schemathesis" ]; then
    echo "   installing schemathesis $SCHEMATHESIS_VERSION into $VENV"
    python3 -m venv "$VENV"
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
max_wait_seconds = 2

# The Slack endpoint must refuse every unsigned request with 401, never a 5xx.
[slack]
signing_secret = "fuzz-signing-secret"
TOML
ADMIN=$("$BIN" token create --role admin --name fuzz-admin --db "sqlite://$WORK/countersign.db")
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

# The admin token may do everything, revoking itself included: that operation is left out
# so that the run keeps a working token (the API tests cover it).
"$VENV/bin/schemathesis" run "http://$ADDRESS/v1/openapi.json" \
    -H "Authorization: Bearer $ADMIN" \
    --exclude-operation-id revoke_token \
    --checks not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance \
    --phases fuzzing,stateful \
    --max-time "$SECONDS_BUDGET" \
    --request-timeout 20 \
    --seed 20261125 \
    --workers 2 \
    --no-color
