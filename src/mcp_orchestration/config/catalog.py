"""A catalog of well-known MCP servers, bundled as ``data/catalog.json`` and extensible by operators.

An entry says how to launch a server (command and an argument template with
named parameters) and which environment variables it reads. Instantiating an
entry checks the parameters and returns the product's neutral stdio entry, in
which every environment variable is a ``${env:NAME}`` placeholder: the client
fills it in from its own environment, so no secret is ever stored here.

Argument templates are a list whose items are strings or groups (lists) of
strings. ``{name}`` inside a string is replaced by a string or path parameter;
an item that is exactly ``{name}`` for a list parameter becomes one argument
per element. An item or group that mentions an optional parameter the caller
left out is dropped whole, so ``["--repository", "{repository}"]`` disappears
together when no repository is given.

Parameter values can come from a model calling a tool, so they are bounded and
may not start with ``-`` (an injected option) or contain ``${`` (a client-side
interpolation that could copy a secret into an argument).
"""

from __future__ import annotations

import re
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from functools import cache
from importlib.resources import files
from pathlib import Path, PurePosixPath, PureWindowsPath
from types import MappingProxyType
from typing import Any

from mcp_orchestration.config.payload import MAX_PAYLOAD_BYTES
from mcp_orchestration.config.strict import (
    check_flag,
    check_list,
    check_names,
    check_object,
    check_text,
    index_by_id,
    parse_document,
)
from mcp_orchestration.core.errors import InvalidIdError, LimitError, NotFoundError, ValidationError, unreadable_file
from mcp_orchestration.core.fsutil import read_named_file
from mcp_orchestration.security.ids import check_name_id, shown

KINDS = ("string", "path", "list")
ITEM_KINDS = ("string", "path")
TRANSPORTS = ("stdio",)
MAX_SERVERS = 500
MAX_ARGS = 64
MAX_PARAMETERS = 16
MAX_ENV = 32
MAX_VALUE_CHARS = 4096
MAX_LIST_ITEMS = 64

_PARAMETER_NAME = re.compile(r"[a-z][a-z0-9_]{0,31}")
_ENV_NAME = re.compile(r"[A-Z_][A-Z0-9_]{0,127}")
_PLACEHOLDER = re.compile(r"\{([a-z][a-z0-9_]{0,31})\}")
_URL = re.compile(r"https://[^\s]+")
_SERVER_FIELDS = (
    "id",
    "name",
    "description",
    "transport",
    "command",
    "args",
    "parameters",
    "required_env",
    "optional_env",
    "homepage",
)


def env_placeholder(name: str) -> str:
    """The reference a client resolves from its own environment, e.g. ``${env:GITHUB_TOKEN}``."""
    return "${env:" + name + "}"


@dataclass(frozen=True)
class Parameter:
    """A named value an entry's argument template needs."""

    name: str
    description: str
    required: bool
    kind: str
    items: str | None = None  # the kind of each element of a ``list`` parameter

    def check(self, value: object, server_id: str) -> str | tuple[str, ...]:
        """Return ``value`` checked against this parameter's kind and bounds."""
        what = f"Parameter {self.name!r} of server {server_id!r}"
        if self.kind != "list":
            return _check_value(value, self.kind, what)
        if not isinstance(value, list | tuple):
            raise ValidationError(f"{what} must be a list of {self.items} values.")
        if len(value) > MAX_LIST_ITEMS:
            raise LimitError(f"{what} has {len(value)} items; the limit is {MAX_LIST_ITEMS}.")
        return tuple(_check_value(item, self.items or "string", f"{what} item") for item in value)


def _check_value(value: object, kind: str, what: str) -> str:
    if not isinstance(value, str):
        raise ValidationError(f"{what} must be a {kind}, not {type(value).__name__}.")
    checked = check_text(value, what, MAX_VALUE_CHARS)
    if checked.startswith("-"):
        raise ValidationError(f"{what} may not start with '-': a server would read it as an option.")
    if "${" in checked:
        raise ValidationError(f"{what} may not contain '${{': clients would expand it from their environment.")
    if kind == "path" and not (PurePosixPath(checked).is_absolute() or PureWindowsPath(checked).is_absolute()):
        raise ValidationError(f"{what} must be an absolute path such as /srv/data or C:\\data.")
    return checked


@dataclass(frozen=True)
class ArgItem:
    """One item of an argument template: its parts and the parameters they mention."""

    parts: tuple[str, ...]
    mentions: frozenset[str]


@dataclass(frozen=True)
class CatalogServer:
    """A well-known MCP server and how to launch it."""

    id: str
    name: str
    description: str
    transport: str
    command: str
    args: tuple[ArgItem, ...]
    parameters: Mapping[str, Parameter]
    required_env: tuple[str, ...]
    optional_env: tuple[str, ...]
    homepage: str

    def instantiate(self, parameters: Mapping[str, Any], with_env: Collection[str] = ()) -> dict[str, Any]:
        """The neutral entry ``{"command", "args", "env"}`` for these parameter values.

        ``env`` holds a placeholder for every required variable and for each
        optional one named in ``with_env``; never a value.
        """
        values = self._checked_values(parameters)
        if isinstance(with_env, str):
            raise ValidationError(f"Name the optional variables of server {self.id!r} as a list, not one string.")
        for name in with_env:
            if name not in self.optional_env:
                raise ValidationError(
                    f"Server {self.id!r} has no optional environment variable {shown(name)}.",
                    hint=f"Optional variables: {', '.join(self.optional_env) or 'none'}.",
                )
        args: list[str] = []
        for item in self.args:
            if not item.mentions <= values.keys():
                continue
            for part in item.parts:
                whole = _PLACEHOLDER.fullmatch(part)
                value = values[whole[1]] if whole else None
                if isinstance(value, tuple):
                    args.extend(value)
                else:
                    args.append(_PLACEHOLDER.sub(lambda match: str(values[match[1]]), part))
        env = {name: env_placeholder(name) for name in (*self.required_env, *sorted(set(with_env)))}
        return {"command": self.command, "args": args, "env": env}

    def _checked_values(self, parameters: Mapping[str, Any]) -> dict[str, str | tuple[str, ...]]:
        for name in parameters:
            if name not in self.parameters:
                raise ValidationError(
                    f"Server {self.id!r} has no parameter {shown(name)}.",
                    hint=f"Its parameters: {', '.join(self.parameters) or 'none'}.",
                )
        values: dict[str, str | tuple[str, ...]] = {}
        for name, parameter in self.parameters.items():
            raw = parameters.get(name)
            value = None if raw is None else parameter.check(raw, self.id)
            if value is None or value == ():
                if parameter.required:
                    raise ValidationError(
                        f"Server {self.id!r} needs the parameter {name!r}: {parameter.description}",
                    )
                continue
            values[name] = value
        return values


def _parameter(raw: object, what: str) -> Parameter:
    body = check_object(raw, what, ("name", "description", "required", "kind"), ("items",))
    name = check_text(body["name"], f"{what} 'name'", 32, _PARAMETER_NAME)
    kind = _choice(body["kind"], KINDS, f"{what} 'kind'")
    if "items" in body and kind != "list":
        raise ValidationError(f"{what} has 'items' but is not a list.")
    return Parameter(
        name=name,
        description=check_text(body["description"], f"{what} 'description'", 300),
        required=check_flag(body["required"], f"{what} 'required'"),
        kind=kind,
        items=_choice(body.get("items", "string"), ITEM_KINDS, f"{what} 'items'") if kind == "list" else None,
    )


def _choice(raw: object, allowed: tuple[str, ...], what: str) -> str:
    if raw not in allowed:
        raise ValidationError(f"{what} must be one of {', '.join(allowed)}, not {shown(raw)}.")
    return str(raw)


def _arg_item(raw: object, parameters: Mapping[str, Parameter], what: str) -> ArgItem:
    parts = tuple(check_list(raw, what, MAX_ARGS)) if isinstance(raw, list) else (raw,)
    if not parts:
        raise ValidationError(f"{what} is an empty group.")
    mentions: set[str] = set()
    for part in parts:
        text = check_text(part, what, 1024)
        names = _PLACEHOLDER.findall(text)
        if "{" in _PLACEHOLDER.sub("", text) or "}" in _PLACEHOLDER.sub("", text):
            raise ValidationError(f"{what} has a stray brace in {shown(text)}; placeholders look like {{name}}.")
        for name in names:
            if name not in parameters:
                raise ValidationError(f"{what} mentions {{{name}}}, which is not a declared parameter.")
            if parameters[name].kind == "list" and text != "{" + name + "}":
                raise ValidationError(f"{what}: the list parameter {{{name}}} must stand alone as one item.")
        mentions.update(names)
    return ArgItem(parts=tuple(str(part) for part in parts), mentions=frozenset(mentions))


def _server(raw: object, what: str) -> CatalogServer:
    body = check_object(raw, what, _SERVER_FIELDS)
    try:
        server_id = check_name_id(body["id"], "server")
    except InvalidIdError as exc:
        raise ValidationError(f"{what}: {exc.message}") from None
    what = f"{what} ({server_id})"
    parameters: dict[str, Parameter] = {}
    for index, raw_parameter in enumerate(check_list(body["parameters"], f"{what} 'parameters'", MAX_PARAMETERS)):
        parameter = _parameter(raw_parameter, f"{what} parameter {index}")
        if parameter.name in parameters:
            raise ValidationError(f"{what} declares the parameter {parameter.name!r} twice.")
        parameters[parameter.name] = parameter
    args = tuple(
        _arg_item(item, parameters, f"{what} argument {index}")
        for index, item in enumerate(check_list(body["args"], f"{what} 'args'", MAX_ARGS))
    )
    unused = set(parameters).difference(*(item.mentions for item in args))
    if unused:
        raise ValidationError(f"{what} declares the parameter {sorted(unused)[0]!r} but no argument uses it.")
    required_env = check_names(body["required_env"], f"{what} 'required_env'", MAX_ENV, _ENV_NAME)
    optional_env = check_names(body["optional_env"], f"{what} 'optional_env'", MAX_ENV, _ENV_NAME)
    if set(required_env) & set(optional_env):
        raise ValidationError(f"{what} lists a variable as both required and optional.")
    return CatalogServer(
        id=server_id,
        name=check_text(body["name"], f"{what} 'name'", 80),
        description=check_text(body["description"], f"{what} 'description'", 500),
        transport=_choice(body["transport"], TRANSPORTS, f"{what} 'transport'"),
        command=check_text(body["command"], f"{what} 'command'", 1024),
        args=args,
        parameters=MappingProxyType(parameters),
        required_env=required_env,
        optional_env=optional_env,
        homepage=check_text(body["homepage"], f"{what} 'homepage'", 300, _URL),
    )


def parse_catalog(data: bytes, source: str) -> Mapping[str, CatalogServer]:
    """Parse and strictly check a catalog document (the schema of ``data/catalog.json``)."""
    document = check_object(parse_document(data, source), source, ("servers",))
    return index_by_id(document["servers"], source, "server", MAX_SERVERS, _server)


@cache
def _bundled_catalog() -> Mapping[str, CatalogServer]:
    data = (files("mcp_orchestration") / "data" / "catalog.json").read_bytes()
    return parse_catalog(data, "the bundled catalog")


def _label(path: Path) -> str:
    return f"The catalog file {str(path)!a}"


def _read_operator_file(path: Path) -> bytes:
    """The operator's catalog: a regular file (a link to one is followed, as a mounted config map is)."""
    try:
        return read_named_file(path, MAX_PAYLOAD_BYTES)
    except FileNotFoundError:
        raise NotFoundError(f"{_label(path)} does not exist.") from None
    except OSError as exc:
        hint = "Point MCP_ORCHESTRATION_CATALOG_FILE at a regular JSON file; a FIFO or a device is never read."
        raise unreadable_file(_label(path), exc, kind=ValidationError, hint=hint) from None


def load_catalog(extra_file: Path | None = None) -> Mapping[str, CatalogServer]:
    """The bundled catalog, with an operator's file merged over it (its entries add or replace by id)."""
    servers = dict(_bundled_catalog())
    if extra_file is not None:
        servers.update(parse_catalog(_read_operator_file(extra_file), _label(extra_file)))
    return MappingProxyType(servers)


def get_server(server_id: object, extra_file: Path | None = None) -> CatalogServer:
    """The catalog entry ``server_id``; an unknown id is a ``NotFoundError``."""
    checked = check_name_id(server_id, "server")
    catalog = load_catalog(extra_file)
    if checked not in catalog:
        raise NotFoundError(f"Unknown server {checked!r}.", hint="List the catalog with list_available_servers.")
    return catalog[checked]
