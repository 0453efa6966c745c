"""The principal the current operation runs for, set by an entry point that authenticates its callers.

The HTTP server sets it around each tool call from the caller's access
token; the stdio server and the command line leave it unset (their caller is
whoever runs the process). A publish signs it into the profile's new entry
(``published_by``) and every telemetry event names it (``by``). A context
variable, so it follows the call into the worker thread that runs it and
never leaks into another request.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from contextvars import ContextVar

from mcp_orchestration.security.principal import Principal

_CURRENT: ContextVar[Principal | None] = ContextVar("mcp_orchestration_principal", default=None)


@contextlib.contextmanager
def acting_for(principal: Principal | None) -> Iterator[None]:
    """Run the block on behalf of ``principal`` (None: the process's own operator)."""
    token = _CURRENT.set(principal)
    try:
        yield
    finally:
        _CURRENT.reset(token)


def current_principal() -> Principal | None:
    return _CURRENT.get()
