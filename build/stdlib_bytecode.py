"""Compile bytecode for the standard-library modules the server imports, for a distroless runtime.

Debian's Python packages ship no stdlib bytecode (their maintainer scripts make
it), and a distroless image never runs those scripts, so without this every
start compiles each stdlib module it imports, in memory, on a read-only root.

Run in the image's builder stage with the venv's interpreter, which is the same
Debian build the runtime uses. It drives a real in-memory MCP session over a
scratch store (every read tool, a draft, a publish, a healthcheck), so the
modules that serving imports lazily are loaded too, then writes a
``checked-hash`` ``.pyc`` for each loaded stdlib module under ``DEST``,
mirroring its path. Python checks a checked-hash file against the source's
hash on import and ignores it when they differ, so bytecode from another
package version can never run stale code.

Usage: python stdlib_bytecode.py DEST
"""

from __future__ import annotations

import importlib.util
import os
import py_compile
import sys
import sysconfig
import tempfile
from pathlib import Path

import anyio


async def _exercise_server(home: Path) -> None:
    """One session through the server's whole surface, over a scratch store with a key."""
    from mcp import Client

    from mcp_orchestration import cli
    from mcp_orchestration.app.operations import App, healthcheck
    from mcp_orchestration.app.settings import load_settings
    from mcp_orchestration.server.app import build_server
    from mcp_orchestration.server.tools import ConfigTools

    key = home / "signing_key"
    for argv in (["keys", "generate", "--out", str(key)], ["--key-file", str(key), "init"]):
        if cli.main(["--home", str(home), *argv]) != 0:
            raise SystemExit(f"stdlib_bytecode: `mcp-orchestration {argv[0]}` failed")
    app = App(load_settings(home=home, key_file=key))
    where = {"client": "claude-desktop", "profile": "default"}
    async with Client(build_server(ConfigTools(app))) as client:
        await client.list_tools()
        await client.call_tool("add_server_to_config", {**where, "server_id": "time"})
        for tool in ("view_draft_config", "diff_config", "validate_config", "publish_config"):
            if (await client.call_tool(tool, where)).is_error:
                raise SystemExit(f"stdlib_bytecode: {tool} failed")
        for tool in ("get_config", "get_config_history", "verify_config", "export_config"):
            await client.call_tool(tool, where)
        for tool in ("list_clients", "list_profiles", "list_available_servers", "get_trust_info"):
            await client.call_tool(tool, {})
        await client.call_tool("describe_server", {"server_id": "filesystem"})
        await client.call_tool("get_config", {"client": "../x", "profile": "default"})  # an error path
        await client.read_resource("mcp-orchestration://capabilities")
    healthcheck(app)


def _stdlib_sources() -> list[Path]:
    """The source files of every loaded module that lives in the standard library (not site-packages).

    Paths are taken as imported, links not followed: Debian's ``sitecustomize.py``
    is a link into ``/etc``, and Python looks for its bytecode beside the link.
    """
    stdlib = Path(sysconfig.get_paths()["stdlib"])
    sources = set()
    for module in list(sys.modules.values()):
        origin = getattr(getattr(module, "__spec__", None), "origin", None)
        if not origin or not origin.endswith(".py"):
            continue
        path = Path(os.path.abspath(origin))
        if path.is_relative_to(stdlib) and "site-packages" not in path.parts:
            sources.add(path)
    return sorted(sources)


def main(dest: Path) -> int:
    with tempfile.TemporaryDirectory() as scratch:
        os.environ.pop("MCP_ORCHESTRATION_HOME", None)
        anyio.run(_exercise_server, Path(scratch))
    sources = _stdlib_sources()
    for source in sources:
        cached = importlib.util.cache_from_source(str(source))
        py_compile.compile(
            str(source),
            cfile=str(dest / cached.lstrip("/")),
            doraise=True,
            invalidation_mode=py_compile.PycInvalidationMode.CHECKED_HASH,
        )
    print(f"stdlib bytecode: {len(sources)} modules under {dest}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1])))
