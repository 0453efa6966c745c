"""Integration fixtures: no child process a test spawned outlives it."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.integration.crash_driver import kill_leftovers


@pytest.fixture(autouse=True)
def _no_child_outlives_its_test() -> Iterator[None]:
    yield
    kill_leftovers()
