#!/usr/bin/env python3
"""Writes what is not MCP on stdout; the first argument says what.

- ``lines``: lines of text, forever;
- ``endless``: one line that never ends (no newline, ever);
- ``blank``: lines of spaces, forever (each is skipped, but all of them count towards the bytes read);
- ``chatty``: valid JSON-RPC pings, forever, never reading the answers;
- ``refuse``: answers every request with a JSON-RPC error whose message quotes ``$REFUSAL_SECRET``,
  so no handshake can succeed;
- ``invalid``: completes the 2025-11-25 handshake, then answers ``tools/list`` with what is not a listing;
- ``ancient``: answers the handshake with a protocol version no client speaks.
"""

from __future__ import annotations

import json
import os
import sys
from typing import Any

INITIALIZED = {
    "protocolVersion": "2025-11-25",
    "capabilities": {"tools": {}},
    "serverInfo": {"name": "invalid", "version": "0"},
}


def lines() -> None:
    while True:
        sys.stdout.write("this is not JSON-RPC\n")
        sys.stdout.flush()


def endless() -> None:
    chunk = b"x" * (1 << 16)
    while True:
        os.write(1, chunk)


def blank() -> None:
    chunk = (b" " * 4095 + b"\n") * 16
    while True:
        os.write(1, chunk)


def chatty() -> None:
    for number in range(1 << 62):
        sys.stdout.write(json.dumps({"jsonrpc": "2.0", "id": number, "method": "ping"}) + "\n")


def answer(reply: Any) -> None:
    """Answer each request on stdin with ``reply(method)``: a result, or an error (a dict with ``code``)."""
    for line in sys.stdin:
        request = json.loads(line)
        if "id" not in request:
            continue
        outcome = reply(request["method"])
        key = "error" if "code" in outcome else "result"
        sys.stdout.write(json.dumps({"jsonrpc": "2.0", "id": request["id"], key: outcome}) + "\n")
        sys.stdout.flush()


def refuse(_method: str) -> dict[str, Any]:
    return {"code": -32600, "message": f"refused: bad credentials {os.environ.get('REFUSAL_SECRET', '')}"}


def invalid(method: str) -> dict[str, Any]:
    if method == "initialize":
        return INITIALIZED
    if method == "tools/list":
        return {"tools": "not a list of tools"}
    return {"code": -32601, "message": "Method not found"}


def ancient(method: str) -> dict[str, Any]:
    if method == "initialize":
        return {**INITIALIZED, "protocolVersion": "1999-01-01"}
    return {"code": -32601, "message": "Method not found"}


if __name__ == "__main__":
    mode = sys.argv[1]
    replies = {"refuse": refuse, "invalid": invalid, "ancient": ancient}
    if mode in replies:
        answer(replies[mode])
    else:
        {"lines": lines, "endless": endless, "blank": blank, "chatty": chatty}[mode]()
