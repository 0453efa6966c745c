"""The OAuth scopes of the HTTP server: reading, editing drafts and publishing are granted apart.

Every request needs :attr:`Scope.READ` (connecting is reading: the handshake,
the listings, the resources, the prompt). A tool that writes needs its own
scope besides. :attr:`Scope.KEYS` is named so that an issuer can keep it out
of every other grant: key operations (init, rotate, revoke, refresh) are not
served over HTTP at all, whatever a token holds; they need the host and its
secret (SECURITY.md, "Keys").
"""

from __future__ import annotations

from enum import StrEnum


class Scope(StrEnum):
    READ = "mcp-orchestration:read"
    DRAFT = "mcp-orchestration:draft"
    PUBLISH = "mcp-orchestration:publish"
    KEYS = "mcp-orchestration:keys"


SERVED_SCOPES = (Scope.READ, Scope.DRAFT, Scope.PUBLISH)  # what a token may be granted for this server's tools
