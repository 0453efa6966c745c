"""How the tests read a tool error: the text a model sees, and the same error as data in ``_meta``."""

from __future__ import annotations

from typing import Any

from mcp_orchestration.server.app import ERROR_META_KEY


def tool_error(result: Any) -> dict[str, str]:
    """The ``{code, message, hint}`` of an error result (an SDK ``CallToolResult``).

    An error carries no structured content: clients check that against the
    tool's output schema, error or not.
    """
    assert result.is_error, result
    assert result.structured_content is None, result.structured_content
    assert result.meta is not None and ERROR_META_KEY in result.meta, result
    error = result.meta[ERROR_META_KEY]
    assert set(error) == {"code", "message", "hint"}, error
    return dict(error)


def wire_error(result: dict[str, Any]) -> dict[str, str]:
    """The same for a result as JSON on the wire (as the Inspector prints it)."""
    assert result["isError"] is True, result
    assert "structuredContent" not in result, result
    return dict(result["_meta"][ERROR_META_KEY])
