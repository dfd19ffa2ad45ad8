"""The OpenAI Agents SDK's MCP client (openai-agents 0.24.0) calling a tool through the proxy.

No model is involved: the test calls `server.call_tool()` directly, as the agent loop would,
with the SDK's real defaults (a 5 s `client_session_timeout_seconds` unless the step says
otherwise). Same protocol as py_client.py: steps on stdin, answers on stdout.
"""

import asyncio
import json
import os
import sys
from typing import Any

from agents.mcp import MCPServerStdio


def emit(value: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(value) + "\n")
    sys.stdout.flush()


async def main() -> None:
    spec = json.loads(sys.argv[1])
    command, *args = spec["command"]
    params = {
        "command": command,
        "args": args,
        "env": {**os.environ, **spec.get("env", {})},
    }
    options: dict[str, Any] = {}
    if "timeoutSeconds" in spec:
        options["client_session_timeout_seconds"] = spec["timeoutSeconds"]
    async with MCPServerStdio(params=params, name="gated", **options) as server:
        emit({"id": "connected"})
        for line in sys.stdin:
            if not line.strip():
                continue
            step = json.loads(line)
            try:
                if step["op"] == "list":
                    tools = await server.list_tools()
                    emit({"id": step["id"], "tools": [tool.name for tool in tools]})
                    continue
                result = await server.call_tool(step["tool"], step.get("args", {}))
                dumped = result.model_dump(
                    mode="json", by_alias=True, exclude_none=True
                )
                emit({"id": step["id"], "result": dumped})
            except Exception as error:  # noqa: BLE001 - every failure is reported to the test
                emit({"id": step["id"], "error": f"{type(error).__name__}: {error}"})


if __name__ == "__main__":
    asyncio.run(main())
