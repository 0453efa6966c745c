"""The baseline of the lock benchmark: start each stdio server with the SDK's own client, list what it exposes.

Imports nothing but the SDK, so that run as a script (``python sdk_listing.py
SPEC...``) it pays only what any SDK client pays; ``lock_bench.py`` also calls
:func:`list_servers` in-process. Each spec names a server the way a config
does: a JSON object with ``command`` and ``args``.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import anyio
from mcp import Client, StdioServerParameters


async def _every_page(listing: Callable[..., Awaitable[Any]], items: str) -> int:
    count, cursor = 0, None
    while True:
        page = await listing(cursor=cursor)
        count += len(getattr(page, items))
        cursor = page.next_cursor
        if cursor is None:
            return count


async def list_servers(servers: Sequence[StdioServerParameters]) -> int:
    """Start each server in turn (as ``lock`` does), list its tools, prompts and resource templates, stop it;
    the number of definitions listed."""
    total = 0
    for server in servers:
        async with Client(server) as client:
            total += await _every_page(client.list_tools, "tools")
            total += await _every_page(client.list_prompts, "prompts")
            total += await _every_page(client.list_resource_templates, "resource_templates")
    return total


def main(argv: Sequence[str]) -> int:
    servers = [StdioServerParameters(**json.loads(spec)) for spec in argv]
    print(anyio.run(list_servers, servers))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
