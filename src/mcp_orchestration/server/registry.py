"""The one table of MCP tools. Adding a tool: its use case in the app layer (returning a type of
:mod:`~mcp_orchestration.app.results`), a :class:`~mcp_orchestration.server.tools.ConfigTools` method that passes
the MCP arguments to it, and a row here.

Each row names the method (whose name, parameters and result type are the
tool's name and input and output schemas), its description and the OAuth
scope it needs over HTTP (a scope other than read means it writes); the server
registers every row the same way. Descriptions are fixed
text (a snapshot test guards them: a description that changes silently is how
tool poisoning starts).
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from mcp_types import ToolAnnotations

from mcp_orchestration.server.scopes import Scope
from mcp_orchestration.server.tools import ConfigTools


@dataclass(frozen=True)
class ToolSpec:
    """One MCP tool: the :class:`ConfigTools` method that serves it, what a model reads about it, and its scope.

    A writing tool needs the signing key: the app layer refuses it with the
    key's error (``key_unavailable``, ``key_retired``...) in a process that
    cannot sign; :attr:`writes` tells clients so up front (``readOnlyHint``).
    """

    handler: Callable[..., Mapping[str, Any]]
    description: str
    scope: Scope = Scope.READ

    @property
    def writes(self) -> bool:
        return self.scope is not Scope.READ

    @property
    def name(self) -> str:
        return self.handler.__name__

    @property
    def signature(self) -> inspect.Signature:
        """The tool's arguments and result type: the method's, without ``self``."""
        method = inspect.signature(self.handler, eval_str=True)
        return method.replace(parameters=list(method.parameters.values())[1:])

    @property
    def annotations(self) -> ToolAnnotations:
        """Hints for clients: which tools only read, and that none reaches outside the store."""
        return ToolAnnotations(read_only_hint=not self.writes, open_world_hint=False)


TOOLS: tuple[ToolSpec, ...] = (
    ToolSpec(
        ConfigTools.list_clients,
        "List the MCP clients (Claude Desktop, Cursor, VS Code, Windsurf) this server manages configs for.",
    ),
    ToolSpec(ConfigTools.list_profiles, "List published config profiles and drafts, optionally for one client."),
    ToolSpec(
        ConfigTools.get_config,
        "Get the published config of a client profile (or a past artifact of it), verified against its signature "
        "and hash, with the tools its tool lock approved (each tool's pin, by name). Environment and header values "
        "are masked.",
    ),
    ToolSpec(
        ConfigTools.diff_config,
        "Show how a profile's draft differs from its published config. Values of env vars are masked.",
    ),
    ToolSpec(
        ConfigTools.list_available_servers,
        "List the well-known MCP servers in the catalog that can be added to a config.",
    ),
    ToolSpec(
        ConfigTools.describe_server,
        "Describe one catalog server: command, parameters and the environment variable names it needs.",
    ),
    ToolSpec(
        ConfigTools.add_server_to_config,
        "Add a catalog server to a profile's draft. Required secrets become ${env:NAME} placeholders; "
        "secret values are never accepted.",
        scope=Scope.DRAFT,
    ),
    ToolSpec(
        ConfigTools.remove_server_from_config,
        "Remove a server, by its name in the config, from a profile's draft.",
        scope=Scope.DRAFT,
    ),
    ToolSpec(
        ConfigTools.view_draft_config,
        "Show a profile's draft (masked) and its difference from the published config.",
    ),
    ToolSpec(ConfigTools.clear_draft_config, "Discard a profile's draft.", scope=Scope.DRAFT),
    ToolSpec(
        ConfigTools.validate_config,
        "Validate a profile's draft: shape, limits, and secrets that must be placeholders instead.",
    ),
    ToolSpec(
        ConfigTools.publish_config,
        "Validate, sign and publish a profile's draft as a new index version. Needs the server's signing key.",
        scope=Scope.PUBLISH,
    ),
    ToolSpec(
        ConfigTools.get_config_history,
        "List every published version of a profile, newest first, with artifact ids and changelogs.",
    ),
    ToolSpec(
        ConfigTools.verify_config,
        "Verify a profile's published config: the key history, the signed index chain, and the artifact's hash.",
    ),
    ToolSpec(
        ConfigTools.get_trust_info,
        "Show the signing key fingerprints, the public key history, the current index version and the store's "
        "signed policy.",
    ),
    ToolSpec(
        ConfigTools.export_config,
        "Export a profile's published config in the client's own file format, with its artifact id and index version.",
    ),
)
