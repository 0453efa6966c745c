"""``python -m mcp_orchestration``: the same command as ``mcp-orchestration``."""

from mcp_orchestration.cli import entry_point

entry_point()
