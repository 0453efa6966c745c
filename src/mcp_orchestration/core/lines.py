"""Splitting a byte stream into lines without ever holding more than a bounded part of one.

Both ends of a stdio wire read newline-delimited JSON from a peer they do not
trust: ``serve`` reads its client's requests, and the tool lock's probe reads a
server's answers. Reading a line at a time with no bound lets the peer grow
memory without end by never sending the newline.
"""

from __future__ import annotations

TOO_LONG = None  # what the splitter yields for a line over the limit (its bytes are gone)


class LineSplitter:
    """Bytes in, lines out (without their ``\\n``); a line over ``limit`` comes out as :data:`TOO_LONG`.

    At most ``limit`` bytes of a line are ever buffered: once a line passes
    the limit its bytes are dropped as they arrive until its newline is seen.
    """

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._buffer = bytearray()
        self._discarding = False

    @property
    def overflowing(self) -> bool:
        """Whether the line under way is already past the limit (a reader that gives up need not wait for its end)."""
        return self._discarding

    def feed(self, data: bytes) -> list[bytes | None]:
        """The lines ``data`` completes, in order."""
        lines: list[bytes | None] = []
        start = 0
        while (end := data.find(b"\n", start)) >= 0:
            lines.append(self._complete(data, start, end))
            start = end + 1
        self._keep(data, start)
        return lines

    def finish(self) -> list[bytes | None]:
        """The last line, if the input ended without a newline."""
        lines: list[bytes | None] = []
        if self._discarding:
            lines.append(TOO_LONG)
        elif self._buffer:
            lines.append(bytes(self._buffer))
        self._buffer.clear()
        self._discarding = False
        return lines

    def _complete(self, data: bytes, start: int, end: int) -> bytes | None:
        if self._discarding or len(self._buffer) + end - start > self.limit:
            self._buffer.clear()
            self._discarding = False
            return TOO_LONG
        if not self._buffer:
            return data[start:end]
        self._buffer += data[start:end]
        line = bytes(self._buffer)
        self._buffer.clear()
        return line

    def _keep(self, data: bytes, start: int) -> None:
        if self._discarding:
            return
        if len(self._buffer) + len(data) - start > self.limit:
            self._buffer.clear()
            self._discarding = True
        else:
            self._buffer += data[start:]
