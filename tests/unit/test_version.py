"""core/version.py: the version the product reports is the installed distribution's."""

from __future__ import annotations

import importlib.metadata

import pytest

from mcp_orchestration.core.version import package_version


def test_the_version_is_the_installed_distributions() -> None:
    assert package_version() == importlib.metadata.version("mcp-orchestration")


def test_a_bare_source_tree_reports_an_unknown_version(monkeypatch: pytest.MonkeyPatch) -> None:
    def not_installed(name: str) -> str:
        raise importlib.metadata.PackageNotFoundError(name)

    monkeypatch.setattr(importlib.metadata, "version", not_installed)
    assert package_version() == "0+unknown"
