"""uvicorn's HTTP/1.1 protocol with a deadline for request headers, which uvicorn itself does not have.

Without one, a connection that sends nothing, or half a request line a byte
at a time, is held open for good: a few hundred of them fill the connection
limit and every client (the health check too) is answered 503. Here a
connection must complete each request's headers within
:data:`HEADER_DEADLINE_SECONDS` of opening, or of its previous response; past
that it is closed. A body's own deadline is the app's (``BoundedBody``). A
proxy in front is still the better shield; this keeps the server from
depending on one.
"""

from __future__ import annotations

import asyncio

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol

HEADER_DEADLINE_SECONDS = 10.0


class DeadlineH11Protocol(H11Protocol):
    """H11Protocol that closes a connection whose request headers do not arrive in time."""

    _header_deadline: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm_header_deadline()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        self._arm_header_deadline()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm_header_deadline()
        super().connection_lost(exc)

    def _arm_header_deadline(self) -> None:
        self._disarm_header_deadline()
        if not self.transport.is_closing():
            self._header_deadline = self.loop.call_later(HEADER_DEADLINE_SECONDS, self._headers_overdue)

    def _disarm_header_deadline(self) -> None:
        if self._header_deadline is not None:
            self._header_deadline.cancel()
            self._header_deadline = None

    def _headers_overdue(self) -> None:
        """Close the connection if it is still waiting for a request's headers (h11 is IDLE until they are whole)."""
        self._header_deadline = None
        if self.conn.their_state is h11.IDLE and not self.transport.is_closing():
            self.transport.close()
