"""A small MCP server on the official Python SDK's MCPServer (mcp 2.3.0), served over
Streamable HTTP on 127.0.0.1 at the port given as argv[1]. The SDK speaks both protocol
eras on one endpoint (2025-11-25 sessions, 2026-07-28 stateless requests): the upstream for
the proxy's HTTP tests in both eras.
"""

import sys

from mcp.server.mcpserver import MCPServer

server = MCPServer("py-http")


@server.tool()
def add(a: int, b: int) -> str:
    """Adds two integers."""
    return f"{a} + {b} = {a + b}"


@server.tool()
def shout(text: str) -> str:
    """Upper-cases a text."""
    return text.upper()


if __name__ == "__main__":
    server.run(transport="streamable-http", host="127.0.0.1", port=int(sys.argv[1]))
