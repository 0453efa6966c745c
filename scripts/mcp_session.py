"""Drive one MCP server over stdio through the publishing flow, as Claude Desktop would, and print each step.

Usage: python scripts/mcp_session.py COMMAND [ARG...]   (the command that starts the server on stdio)
"""

from __future__ import annotations

import json
import sys
from typing import Any

import anyio
from mcp import ClientSession, StdioServerParameters
from mcp.client.stdio import stdio_client

WHERE = {"client": "claude-desktop", "profile": "default"}
FLOW: list[tuple[str, dict[str, Any]]] = [
    ("list_clients", {}),
    ("add_server_to_config", {**WHERE, "server_id": "filesystem", "parameters": {"paths": ["/data"]}}),
    ("add_server_to_config", {**WHERE, "server_id": "github"}),
    ("validate_config", WHERE),
    ("publish_config", {**WHERE, "changelog": "filesystem and github servers"}),
    ("get_config", WHERE),
    ("verify_config", WHERE),
    ("get_config_history", WHERE),
    ("export_config", WHERE),
]


def _brief(data: dict[str, Any]) -> str:
    text = json.dumps(data, sort_keys=True)
    return text if len(text) <= 300 else text[:297] + "..."


async def main(command: str, args: list[str]) -> int:
    async with (
        stdio_client(StdioServerParameters(command=command, args=args)) as (read, write),
        ClientSession(read, write) as session,
    ):
        info = await session.initialize()
        tools = await session.list_tools()
        print(f"connected to {info.server_info.name} {info.server_info.version}: {len(tools.tools)} tools")
        for tool, arguments in FLOW:
            result = await session.call_tool(tool, arguments)
            print(f"\n> {tool} {json.dumps(arguments)}")
            if result.is_error:
                print("ERROR", result.content[0].text)  # type: ignore[union-attr]
                return 1
            print(_brief(result.structured_content or {}))
    return 0


if __name__ == "__main__":
    sys.exit(anyio.run(main, sys.argv[1], sys.argv[2:]))
