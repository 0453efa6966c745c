"""The MCP clients this product writes configs for, read from ``data/clients.json``.

Each client keeps its servers under one top-level key of one JSON file whose
place depends on the platform, and spells a server entry its own way. Keeping
those facts as data means a new client or a moved file is a data change that a
strict loader checks, not new code. Sources, checked for the data file:

- Claude Desktop: https://modelcontextprotocol.io/quickstart/user (macOS and
  Windows paths, ``mcpServers``, stdio only). Anthropic ships no Linux build;
  the Linux path is the one community builds use. It expands no placeholder:
  an ``env`` value reaches the server as written.
  Installed from the Microsoft Store (MSIX), Windows redirects its
  ``%APPDATA%`` to ``%LOCALAPPDATA%\\Packages\\Claude_<publisher hash>\\
  LocalCache\\Roaming``, so the file lives there instead
  (``windows_store_package`` in the data; see :meth:`ClientSpec.config_path`).
- Cursor: https://cursor.com/docs/mcp (``~/.cursor/mcp.json``, ``mcpServers``,
  ``command`` or ``url`` with ``headers``; expands ``${env:NAME}``).
- VS Code: https://code.visualstudio.com/docs/copilot/reference/mcp-configuration
  (user ``mcp.json``, ``servers``, ``"type": "stdio"`` or ``"http"``; expands
  ``${env:NAME}`` and ``${input:ID}``).
- Windsurf: https://docs.windsurf.com/windsurf/cascade/mcp
  (``~/.codeium/windsurf/mcp_config.json``, ``mcpServers``, remote ``serverUrl``;
  expands ``${env:NAME}``).

The product's own, neutral server entry is the config model's
(:mod:`mcp_orchestration.config.model`); :meth:`ClientSpec.render` turns a
:class:`~mcp_orchestration.config.model.McpConfig` into a client's shape.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from functools import cache
from importlib.resources import files
from pathlib import PurePath, PurePosixPath, PureWindowsPath
from types import MappingProxyType
from typing import Any

from mcp_orchestration.config.model import NEUTRAL_FIELDS, McpConfig, server_entry
from mcp_orchestration.config.strict import check_object, check_text, index_by_id, parse_document
from mcp_orchestration.core.errors import InvalidIdError, NotFoundError, UsageError, ValidationError
from mcp_orchestration.security.ids import check_name_id, shown

PLATFORMS = ("linux", "macos", "windows")
PLACEHOLDER_KINDS = ("env", "input")  # ${env:NAME}: an environment variable; ${input:ID}: asked by VS Code
MAX_CLIENTS = 64

_FIELD_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_]{0,63}")
_PATH_TEMPLATE = re.compile(r"(~|%[A-Z_][A-Z0-9_]{0,63}%)(/[^/\\]+)+")
_URL = re.compile(r"https://[^\s]+")


@dataclass(frozen=True)
class EntryFormat:
    """How a client writes one transport's neutral entry: renamed fields and added constants."""

    rename: Mapping[str, str]
    constants: Mapping[str, str]

    def apply(self, fields: Mapping[str, Any]) -> dict[str, Any]:
        entry: dict[str, Any] = dict(self.constants)
        for name, value in fields.items():
            entry[self.rename.get(name, name)] = value
        return entry


@dataclass(frozen=True)
class ClientSpec:
    """One MCP client: where its config file lives and how it spells server entries."""

    id: str
    name: str
    config_key: str
    paths: Mapping[str, str]
    formats: Mapping[str, EntryFormat]
    docs: str
    placeholders: frozenset[str] = frozenset()  # the ``${kind:NAME}`` kinds the client expands itself
    windows_store_package: str | None = None  # the MSIX package name, if a Store install moves %APPDATA%

    @property
    def transports(self) -> tuple[str, ...]:
        """The neutral transports this client can run, e.g. ``("stdio", "http")``."""
        return tuple(self.formats)

    def config_path(
        self,
        platform: str,
        environ: Mapping[str, str],
        home: PurePath,
        list_dir: Callable[[PurePath], Iterable[str]] | None = None,
    ) -> PurePath:
        """The client's config file on ``platform``, with ``~`` and ``%VAR%`` expanded.

        The path is a ``PureWindowsPath`` for Windows and a ``PurePosixPath``
        otherwise, so any platform's path can be computed (and tested) anywhere.
        ``list_dir`` (the entry names of a directory; none if it is missing) lets
        a Windows lookup find a Store (MSIX) install: when exactly one
        ``<package>_*`` directory is under ``%LOCALAPPDATA%\\Packages``, an
        ``%APPDATA%`` path is taken inside its ``LocalCache\\Roaming``; when
        several are, which one is meant cannot be known, so that is an error.
        Without ``list_dir`` nothing is probed.
        """
        template = self.paths.get(platform)
        if template is None:
            raise ValidationError(f"Unknown platform {shown(platform)}: use one of {', '.join(PLATFORMS)}.")
        flavour = PureWindowsPath if platform == "windows" else PurePosixPath
        anchor, *parts = template.split("/")
        if platform == "windows" and anchor == "%APPDATA%" and list_dir is not None:
            store = self._store_root(environ, list_dir)
            if store is not None:
                return store.joinpath(*parts)
        if anchor == "~":
            base, source = flavour(str(home)), "the home directory"
        else:
            variable = anchor.strip("%")
            value = environ.get(variable, "")
            if not value:
                raise ValidationError(
                    f"{variable} is not set, so {self.name}'s config file on {platform} cannot be located.",
                    hint=f"Set {variable}, or give the config file's path explicitly.",
                )
            base, source = flavour(value), variable
        if not base.is_absolute():
            raise ValidationError(f"{source} ({shown(str(base))}) is not an absolute {platform} path.")
        return base.joinpath(*parts)

    def _store_root(
        self, environ: Mapping[str, str], list_dir: Callable[[PurePath], Iterable[str]]
    ) -> PureWindowsPath | None:
        """What ``%APPDATA%`` is for a Store (MSIX) install of this client, if there is exactly one."""
        local = environ.get("LOCALAPPDATA", "")
        if self.windows_store_package is None or not local or not PureWindowsPath(local).is_absolute():
            return None
        packages = PureWindowsPath(local, "Packages")
        prefix = f"{self.windows_store_package}_".casefold()  # Windows names compare without case
        found = sorted(
            name for name in list_dir(packages) if name.casefold().startswith(prefix) and len(name) > len(prefix)
        )
        if not found:
            return None
        if len(found) > 1:
            raise UsageError(
                f"{self.name} has {len(found)} Store (MSIX) packages under {packages}: "
                f"{', '.join(shown(name) for name in found)}; which one it uses cannot be told.",
                hint="Pass --config-path naming the claude_desktop_config.json to write, or remove the stale package.",
            )
        return packages / found[0] / "LocalCache" / "Roaming"

    def render(self, config: McpConfig) -> dict[str, Any]:
        """The client's file content for ``config``'s servers, under its config key."""
        rendered: dict[str, Any] = {}
        for name, server in config.servers.items():
            entry_format = self.formats.get(server.transport)
            if entry_format is None:
                raise ValidationError(
                    f"{self.name} cannot run server {name!r}: it supports {', '.join(self.transports)}, "
                    f"not {server.transport}.",
                    hint="Use a local (stdio) server for this client, or deploy the profile to another client.",
                )
            rendered[name] = entry_format.apply(server_entry(server))
        return {self.config_key: rendered}


def _entry_format(raw: object, transport: str, what: str) -> EntryFormat:
    body = check_object(raw, what, (), ("rename", "constants"))
    rename = _name_map(body.get("rename", {}), f"{what} 'rename'")
    constants = _name_map(body.get("constants", {}), f"{what} 'constants'")
    for field_name in rename:
        if field_name not in NEUTRAL_FIELDS[transport]:
            raise ValidationError(f"{what} renames {shown(field_name)}, which is not a {transport} field.")
    written = [rename.get(field_name, field_name) for field_name in NEUTRAL_FIELDS[transport]]
    if len(set(written)) != len(written) or set(written) & set(constants):
        raise ValidationError(f"{what} writes two values to the same field.")
    return EntryFormat(rename=MappingProxyType(rename), constants=MappingProxyType(constants))


def _name_map(raw: object, what: str) -> dict[str, str]:
    if not isinstance(raw, dict):
        raise ValidationError(f"{what} must be a JSON object.")
    return {
        check_text(key, f"{what} key", 64, _FIELD_NAME): check_text(value, f"{what} value", 64, _FIELD_NAME)
        for key, value in raw.items()
    }


def _client(raw: object, what: str) -> ClientSpec:
    body = check_object(
        raw,
        what,
        ("id", "name", "config_key", "paths", "transports", "docs"),
        ("placeholders", "windows_store_package"),
    )
    try:
        client_id = check_name_id(body["id"], "client")
    except InvalidIdError as exc:
        raise ValidationError(f"{what}: {exc.message}") from None
    what = f"{what} ({client_id})"
    paths_raw = check_object(body["paths"], f"{what} 'paths'", PLATFORMS)
    paths = {
        platform: check_text(paths_raw[platform], f"{what} path for {platform}", 512, _PATH_TEMPLATE)
        for platform in PLATFORMS
    }
    for platform, template in paths.items():
        if any(part in {".", ".."} for part in template.split("/")):
            raise ValidationError(f"{what} path for {platform} contains '.' or '..'.")
    transports_raw = check_object(body["transports"], f"{what} 'transports'", (), tuple(NEUTRAL_FIELDS))
    if not transports_raw:
        raise ValidationError(f"{what} supports no transport.")
    return ClientSpec(
        id=client_id,
        name=check_text(body["name"], f"{what} 'name'", 80),
        config_key=check_text(body["config_key"], f"{what} 'config_key'", 64, _FIELD_NAME),
        paths=MappingProxyType(paths),
        formats=MappingProxyType(
            {
                transport: _entry_format(raw_format, transport, f"{what} transport {transport!r}")
                for transport, raw_format in transports_raw.items()
            }
        ),
        docs=check_text(body["docs"], f"{what} 'docs'", 300, _URL),
        placeholders=_placeholder_kinds(body.get("placeholders", []), f"{what} 'placeholders'"),
        windows_store_package=(
            check_text(body["windows_store_package"], f"{what} 'windows_store_package'", 64, _FIELD_NAME)
            if "windows_store_package" in body
            else None
        ),
    )


def _placeholder_kinds(raw: object, what: str) -> frozenset[str]:
    if not isinstance(raw, list) or not all(kind in PLACEHOLDER_KINDS for kind in raw):
        raise ValidationError(f"{what} must be a list of placeholder kinds out of {', '.join(PLACEHOLDER_KINDS)}.")
    return frozenset(raw)


def parse_clients(data: bytes, source: str) -> Mapping[str, ClientSpec]:
    """Parse and strictly check a client registry document (the schema of ``data/clients.json``)."""
    document = check_object(parse_document(data, source), source, ("clients",))
    return index_by_id(document["clients"], source, "client", MAX_CLIENTS, _client)


@cache
def load_clients() -> Mapping[str, ClientSpec]:
    """The bundled client registry, checked once per process."""
    data = (files("mcp_orchestration") / "data" / "clients.json").read_bytes()
    return parse_clients(data, "the bundled client registry")


def get_client(client_id: object) -> ClientSpec:
    """The client with ``client_id``; an unknown id is a ``NotFoundError`` that lists the known ones."""
    checked = check_name_id(client_id, "client")
    clients = load_clients()
    if checked not in clients:
        raise NotFoundError(
            f"Unknown client {checked!r}.", hint=f"Use one of: {', '.join(sorted(clients))} (see list_clients)."
        )
    return clients[checked]
