"""The installed distribution's version, read only when asked (importlib.metadata is slow to import)."""

from __future__ import annotations


def package_version() -> str:
    """The installed distribution's version, or ``0+unknown`` when run from a bare source tree."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("mcp-orchestration")
    except PackageNotFoundError:
        return "0+unknown"
