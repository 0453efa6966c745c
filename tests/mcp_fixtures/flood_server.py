#!/usr/bin/env python3
"""Floods stderr: ``flood_server.py answer MEGABYTES`` writes that much, then serves one tool;
``flood_server.py hang MEGABYTES`` writes it, then never answers.

A client that does not read stderr as it goes leaves the server blocked on
a full pipe; one that keeps all of it grows without bound.
"""

from __future__ import annotations

import sys
import time
from typing import Any

import anyio
import mcp_types as types
from mcp.server.lowlevel import Server
from mcp.server.stdio import stdio_server

LINE = b"flood: the same log line again, to fill a pipe and then a disk " + b"." * 60 + b"\n"
TOOL = types.Tool(name="still_here", description="Answers after the flood.", input_schema={"type": "object"})


def flood(megabytes: int) -> None:
    for _ in range((megabytes << 20) // len(LINE)):
        sys.stderr.buffer.write(LINE)
    sys.stderr.buffer.write(b"flood: done\n")
    sys.stderr.flush()


async def list_tools(_ctx: Any, _params: types.PaginatedRequestParams | None) -> types.ListToolsResult:
    return types.ListToolsResult(tools=[TOOL])


async def serve() -> None:
    server = Server("flood", version="1", on_list_tools=list_tools)
    async with stdio_server() as (read_stream, write_stream):
        await server.run(read_stream, write_stream, server.create_initialization_options())


def main() -> None:
    mode, megabytes = sys.argv[1], int(sys.argv[2])
    flood(megabytes)
    if mode == "hang":
        time.sleep(3600)
    anyio.run(serve)


if __name__ == "__main__":
    main()
