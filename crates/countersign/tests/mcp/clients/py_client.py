"""A scripted MCP client on the official Python SDK (mcp 2.3.0), driven by the Rust tests.

One JSON step a line on stdin, one JSON line per answer or event on stdout. argv[1] is the
transport: {"command": [...], "env": {...}} or {"url": "..."}, with "era": "legacy" | "modern". The legacy era opens
with `initialize` (protocol 2025-11-25); the modern era with `server/discover` (2026-07-28,
no handshake: every request carries its version in `_meta`). Steps run concurrently.
"""

import asyncio
import json
import os
import sys
import threading
from typing import Any

from mcp import ClientSession, StdioServerParameters, types
from mcp.client.stdio import stdio_client
from mcp.client.streamable_http import streamable_http_client


def emit(value: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(value) + "\n")
    sys.stdout.flush()


async def run(session: ClientSession, step: dict[str, Any]) -> None:
    step_id = step["id"]
    try:
        if step["op"] == "list":
            listed = await session.list_tools()
            emit({"id": step_id, "tools": [tool.name for tool in listed.tools]})
            return

        async def on_progress(
            progress: float, total: float | None, message: str | None
        ) -> None:
            emit(
                {
                    "id": step_id,
                    "event": "progress",
                    "progress": progress,
                    "message": message,
                }
            )

        result = await session.call_tool(
            step["tool"],
            step.get("args", {}),
            read_timeout_seconds=step.get("timeoutSeconds"),
            progress_callback=on_progress if step.get("progress") else None,
        )
        emit(
            {
                "id": step_id,
                "result": result.model_dump(
                    mode="json", by_alias=True, exclude_none=True
                ),
            }
        )
    except Exception as error:  # noqa: BLE001 - every failure is reported to the test
        emit(
            {
                "id": step_id,
                "error": str(error),
                "code": getattr(getattr(error, "error", None), "code", None),
            }
        )


def read_steps(
    loop: asyncio.AbstractEventLoop, queue: "asyncio.Queue[dict[str, Any] | None]"
) -> None:
    for line in sys.stdin:
        if line.strip():
            loop.call_soon_threadsafe(queue.put_nowait, json.loads(line))
    loop.call_soon_threadsafe(queue.put_nowait, None)


def elicitation_callback(decision: str | None):
    """Answers every form with `decision` (as a person at the client would), or none."""
    if decision is None:
        return None

    async def answer(context: Any, params: Any) -> types.ElicitResult:
        emit({"id": "elicitation", "event": "form", "message": params.message})
        return types.ElicitResult(
            action="accept",
            content={"decision": decision, "reason": "checked in the client"},
        )

    return answer


async def main() -> None:
    spec = json.loads(sys.argv[1])
    if "url" in spec:
        transport = streamable_http_client(spec["url"])
    else:
        command, *args = spec["command"]
        env = {**os.environ, **spec.get("env", {})}
        transport = stdio_client(
            StdioServerParameters(command=command, args=args, env=env)
        )
    async with (
        transport as streams,
        ClientSession(
            streams[0],
            streams[1],
            elicitation_callback=elicitation_callback(spec.get("elicit")),
        ) as session,
    ):
        if spec.get("era") == "modern":
            discovered = await session.discover()
            emit(
                {
                    "id": "connected",
                    "era": "modern",
                    "versions": discovered.model_dump(mode="json"),
                }
            )
        else:
            initialized = await session.initialize()
            emit(
                {
                    "id": "connected",
                    "era": "legacy",
                    "version": initialized.protocol_version,
                }
            )
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[dict[str, Any] | None] = asyncio.Queue()
        threading.Thread(target=read_steps, args=(loop, queue), daemon=True).start()
        tasks = set()
        while (step := await queue.get()) is not None:
            task = asyncio.create_task(run(session, step))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
        for task in list(tasks):
            task.cancel()


if __name__ == "__main__":
    asyncio.run(main())
