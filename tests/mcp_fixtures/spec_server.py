#!/usr/bin/env python3
"""An MCP stdio server that serves exactly what a JSON spec file describes.

``spec_server.py SPEC.json [--legacy] [--banner N] [--introspect]``

The spec is read at each start, so a test can change it between two probes
(a "rug pull"). Its keys: ``name`` and ``version`` (the server's identity),
``instructions`` (what it tells the assistant at the handshake), ``tools``,
``prompts`` and ``resource_templates`` (lists of whole MCP definitions, as
JSON); a kind that is absent is not served at all, so its capability is not
declared. ``page_size`` splits every listing into pages, and ``errors`` maps a kind to
the JSON-RPC error (``code``, ``message``) its listing answers instead.

``--legacy`` serves the 2025-11-25 handshake only (the SDK's default serves
both generations, and the client's first request picks one); ``--banner N``
prints N lines of text on stdout before serving, as some servers do;
``--introspect`` adds a tool named ``introspection`` whose description is
the process: its id, its directory, its environment's names and its open
descriptors.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

import anyio
import mcp_types as types
from mcp.server.lowlevel import Server
from mcp.server.runner import serve_loop
from mcp.server.stdio import stdio_server
from mcp.shared.exceptions import MCPError
from pydantic import BaseModel

Item = TypeVar("Item", bound=BaseModel)


def page(
    items: list[Item], params: types.PaginatedRequestParams | None, size: int | None
) -> tuple[list[Item], str | None]:
    """The page a cursor asks for (a cursor is the offset of its first item), and the next page's cursor."""
    start = int(params.cursor) if params is not None and params.cursor else 0
    end = len(items) if size is None else start + size
    return items[start:end], str(end) if end < len(items) else None


def introspection() -> dict[str, Any]:
    """A tool describing this process: its id, directory, environment's names and open descriptors."""
    described = {
        "pid": os.getpid(),
        "cwd": os.getcwd(),
        "environment": sorted(os.environ),
        "open_fds": sorted(int(fd) for fd in os.listdir("/proc/self/fd")),
    }
    return {"name": "introspection", "description": json.dumps(described), "inputSchema": {"type": "object"}}


# Each kind: its handler's keyword, its definition model, and how a page of them is answered.
KINDS: dict[str, tuple[str, type[BaseModel], Callable[[list[Any], str | None], BaseModel]]] = {
    "tools": (
        "on_list_tools",
        types.Tool,
        lambda items, cursor: types.ListToolsResult(tools=items, next_cursor=cursor),
    ),
    "prompts": (
        "on_list_prompts",
        types.Prompt,
        lambda items, cursor: types.ListPromptsResult(prompts=items, next_cursor=cursor),
    ),
    "resource_templates": (
        "on_list_resource_templates",
        types.ResourceTemplate,
        lambda items, cursor: types.ListResourceTemplatesResult(resource_templates=items, next_cursor=cursor),
    ),
}


def lister(
    definitions: list[BaseModel], answer: Callable[[list[Any], str | None], BaseModel], spec: dict[str, Any], kind: str
) -> Callable[..., Awaitable[BaseModel]]:
    """A list handler: the spec's ``errors`` may name a JSON-RPC error (code and message) it answers instead."""
    error = spec.get("errors", {}).get(kind)

    async def handle(_ctx: Any, params: types.PaginatedRequestParams | None) -> BaseModel:
        if error is not None:
            raise MCPError(error["code"], error["message"])
        return answer(*page(definitions, params, spec.get("page_size")))

    return handle


async def no_resources(_ctx: Any, _params: types.PaginatedRequestParams | None) -> types.ListResourcesResult:
    return types.ListResourcesResult(resources=[])


def build(spec: dict[str, Any], extra_tools: list[dict[str, Any]]) -> Server[Any]:
    """A low-level server with one list handler per kind the spec names."""
    listed = {**spec, "tools": [*spec.get("tools", []), *extra_tools]} if extra_tools else spec
    handlers: dict[str, Any] = {}
    for kind, (keyword, model, answer) in KINDS.items():
        if kind in listed:
            definitions = [model.model_validate(definition) for definition in listed[kind]]
            handlers[keyword] = lister(definitions, answer, spec, kind)
    if "resource_templates" in listed:
        handlers["on_list_resources"] = no_resources  # the handler that makes the server declare resources
    return Server(spec["name"], version=spec.get("version", ""), instructions=spec.get("instructions"), **handlers)


async def serve(server: Server[Any], legacy: bool) -> None:
    async with stdio_server() as (read_stream, write_stream):
        if not legacy:
            await server.run(read_stream, write_stream, server.create_initialization_options())
            return
        async with server.lifespan(server) as state:
            await serve_loop(
                server,
                read_stream,
                write_stream,
                lifespan_state=state,
                init_options=server.create_initialization_options(),
            )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("spec", type=Path)
    parser.add_argument("--legacy", action="store_true")
    parser.add_argument("--banner", type=int, default=0)
    parser.add_argument("--introspect", action="store_true")
    options = parser.parse_args()
    extra_tools = [introspection()] if options.introspect else []
    server = build(json.loads(options.spec.read_text()), extra_tools)
    for number in range(options.banner):
        sys.stdout.write(f"spec_server banner line {number + 1}: starting\n")
    sys.stdout.flush()
    anyio.run(serve, server, options.legacy)


if __name__ == "__main__":
    main()
