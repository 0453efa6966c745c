"""A plain SDK server over streamable HTTP: the conformance harness's reference point.

``python -m tests.conformance.sdk_server --port PORT`` serves ``MCPServer``
(mcp SDK) with one tool at ``http://127.0.0.1:PORT/mcp`` under uvicorn, with
the SDK's defaults (DNS-rebinding protection is on for a loopback host). It
stands in for ``mcp-orchestration serve --http`` until that exists, and
shows which conformance scenarios fail for an SDK server that registers
nothing more than one tool (``baseline-sdk.yml``).
"""

from __future__ import annotations

import argparse

import uvicorn
from mcp.server.mcpserver import MCPServer

HOST = "127.0.0.1"

server = MCPServer("conformance-sdk-server")


@server.tool()
def echo(text: str) -> str:
    """Return the text it is given."""
    return text


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args(argv)
    uvicorn.run(server.streamable_http_app(host=HOST), host=HOST, port=args.port, log_level="warning")


if __name__ == "__main__":
    main()
