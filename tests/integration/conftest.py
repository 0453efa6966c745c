"""Integration fixtures: no child process a test spawned outlives it; a served store's environment."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.crash_driver import kill_leftovers


@pytest.fixture(autouse=True)
def _no_child_outlives_its_test() -> Iterator[None]:
    yield
    kill_leftovers()


@pytest.fixture
def server_env(initialised: Path, key_file: Path) -> dict[str, str]:
    """The environment of a server process (``serve --http``): the store ``initialised`` made, and its signing key."""
    return dict(os.environ, MCP_ORCHESTRATION_SIGNING_KEY_FILE=str(key_file))
