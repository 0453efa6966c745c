"""Claude Desktop's managed (MDM) configuration: a profile's servers as ``managedMcpServers``.

Pure functions: the servers as ``deploy`` would write them, and where they
came from, in; the bytes of an Apple configuration profile or a Windows
registry file out. Nothing here reads a file or the store.

What Anthropic documents, and where (read June 2026):

- https://claude.com/docs/third-party/claude-desktop/configuration: Claude
  Desktop reads managed keys from the preference domain
  ``com.anthropic.claudefordesktop`` (``/Library/Managed Preferences/<user>/
  com.anthropic.claudefordesktop.plist``) on macOS and from
  ``HKLM\\SOFTWARE\\Policies\\Claude`` (machine) or ``HKCU\\...`` (user) on
  Windows; "All values are stored as strings in the OS preference store, even
  booleans and arrays"; an ``object[] (JSON)`` is "a JSON array of objects,
  as a string", with ``managedMcpServers`` as the example.
- https://claude.com/docs/third-party/claude-desktop/extensions: the
  ``managedMcpServers`` key deploys "MCP servers (remote HTTP/SSE or local
  stdio command) to every device"; users cannot remove them. Its example is a
  JSON array of objects, each with a ``name`` and the server's fields.
- https://claude.com/docs/third-party/claude-desktop/mdm: the app's own
  exporter writes ``.mobileconfig`` and ``.reg`` files of these keys.

These pages describe Claude Desktop on third-party inference ("3P"); the MDM
page says a managed configuration puts the app in that mode. Whether the key
alone changes the mode of a first-party install is not stated: test a profile
on one machine before a fleet gets it.

Assumed, for want of an authoritative statement (the schema anchor of the
configuration page could not be read): a stdio entry is the server's
``command``, ``args`` and ``env`` exactly as ``claude_desktop_config.json``
spells them, beside ``name``, with no ``transport`` field (Anthropic's example
entries have none; one public profile exported by the app carries
``"transport": "stdio"``). The registry file targets HKLM, the machine policy
that a user cannot write; the profile's scope is ``User``, matching the
documented per-user managed-preferences path.
"""

from __future__ import annotations

import json
import plistlib
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from mcp_orchestration.core.errors import ValidationError

PREFERENCE_DOMAIN = "com.anthropic.claudefordesktop"
REGISTRY_KEY = "HKEY_LOCAL_MACHINE\\SOFTWARE\\Policies\\Claude"
MANAGED_KEY = "managedMcpServers"
# The namespace of every PayloadUUID: the same profile identity gives the same UUIDs, on any machine.
_UUID_NAMESPACE = uuid.uuid5(uuid.NAMESPACE_DNS, "mcp-orchestration.mdm")
_REG_HEADER = "Windows Registry Editor Version 5.00"


@dataclass(frozen=True)
class Provenance:
    """The signed index a managed profile was rendered from: enough to find and re-verify it."""

    client: str
    profile: str
    artifact: str
    index_version: int
    root_fingerprint: str
    keyid: str

    def describe(self) -> str:
        """One line naming the source; it holds ids and fingerprints only, never a value of the config."""
        return (
            f"mcp-orchestration {self.client}/{self.profile}: artifact {self.artifact}, "
            f"index version {self.index_version}, root {self.root_fingerprint}, signed by SHA256:{self.keyid}"
        )


def managed_mcp_servers(servers: Mapping[str, Mapping[str, Any]]) -> str:
    """The ``managedMcpServers`` value: a JSON array, as a string, of each entry with its ``name`` first.

    ASCII-only JSON: every character outside ASCII, and every control
    character, is a ``\\u`` escape, so the string is safe in a plist and on one
    ``.reg`` line and parses back to exactly the same text.
    """
    listed = []
    for name, entry in servers.items():
        if "name" in entry:
            raise ValidationError(f"Server {name!r} has a field called 'name', which managedMcpServers uses itself.")
        listed.append({"name": name, **entry})
    return json.dumps(listed, ensure_ascii=True, separators=(",", ":"))


def render_mobileconfig(servers: Mapping[str, Mapping[str, Any]], provenance: Provenance) -> bytes:
    """An Apple configuration profile (XML plist) setting ``managedMcpServers`` in Claude Desktop's domain.

    Its identifiers and UUIDs derive from the client and profile only, so a new
    version replaces the installed one, and the same index renders the same bytes.
    """
    identity = f"com.mcp-orchestration.{provenance.client}.{provenance.profile}"
    settings = {
        "PayloadType": PREFERENCE_DOMAIN,
        "PayloadIdentifier": f"{identity}.{PREFERENCE_DOMAIN}",
        "PayloadUUID": _payload_uuid(f"{identity}/{PREFERENCE_DOMAIN}"),
        "PayloadVersion": 1,
        "PayloadDisplayName": "Claude Desktop managed MCP servers",
        MANAGED_KEY: managed_mcp_servers(servers),
    }
    profile = {
        "PayloadType": "Configuration",
        "PayloadIdentifier": identity,
        "PayloadUUID": _payload_uuid(identity),
        "PayloadVersion": 1,
        "PayloadScope": "User",
        "PayloadDisplayName": f"MCP servers: {provenance.client}/{provenance.profile}",
        "PayloadDescription": provenance.describe(),
        "PayloadContent": [settings],
    }
    return plistlib.dumps(profile, fmt=plistlib.FMT_XML, sort_keys=True)


def render_reg(servers: Mapping[str, Mapping[str, Any]], provenance: Provenance) -> bytes:
    """A ``.reg`` file setting ``managedMcpServers`` as a REG_SZ under Claude's machine policy key.

    UTF-16 LE with a byte-order mark and CRLF lines, as regedit writes the
    ``Version 5.00`` format; the value is the JSON with ``\\`` and ``"``
    escaped, and the source is a ``;`` comment line.
    """
    lines = [
        _REG_HEADER,
        "",
        f"; {_one_line(provenance.describe())}",
        f"[{REGISTRY_KEY}]",
        f'"{MANAGED_KEY}"="{reg_escape(managed_mcp_servers(servers))}"',
        "",
    ]
    return b"\xff\xfe" + "\r\n".join(lines).encode("utf-16-le")


def reg_escape(value: str) -> str:
    """A string as the inside of a ``.reg`` ``"..."`` value: backslashes and double quotes escaped."""
    if "\r" in value or "\n" in value:
        raise ValidationError("A .reg string value cannot hold a line break.")
    return value.replace("\\", "\\\\").replace('"', '\\"')


def _one_line(text: str) -> str:
    return " ".join(text.split())


def _payload_uuid(name: str) -> str:
    return str(uuid.uuid5(_UUID_NAMESPACE, name)).upper()
