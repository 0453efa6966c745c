"""Checks a config payload before it is published: shape, limits, names, transport and secrets.

Validation never raises on bad input: it returns every problem it finds, each
with a stable code and a JSON-pointer path, so a tool can show them all at once.
Collections beyond their limit are checked only up to it. Messages are built
from paths, counts and rule labels; a path segment that looks like a secret is
shown as ``***``. No message ever contains a value.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping
from dataclasses import dataclass
from itertools import islice
from typing import Any, Literal, TypeGuard
from urllib.parse import urlsplit

from mcp_orchestration.config.launchers import package_ref, unpinned_reason
from mcp_orchestration.config.model import NEUTRAL_FIELDS, SERVERS_KEY, HttpServer, McpConfig, StdioServer
from mcp_orchestration.core.errors import LimitError, ValidationError
from mcp_orchestration.security.ids import SERVER_NAME_RULE, is_server_name
from mcp_orchestration.security.secret_rules import MASK, find_secret, secret_arguments

MAX_SERVERS = 100
MAX_ARGS = 64
MAX_ENV = 64
MAX_HEADERS = 64
MAX_STRING_BYTES = 4096
MAX_EXTRA_KEYS = 16
MAX_EXTRA_ITEMS = 256
MAX_EXTRA_DEPTH = 16
MAX_PROBLEMS = 100
SHOWN_PROBLEMS = 10

ProblemCode = Literal["shape", "limit", "name", "url", "secret", "unpinned"]

_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,127}")
_HEADER_NAME = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]{1,128}")
_LOCAL_FIELDS = NEUTRAL_FIELDS[StdioServer.transport]
_REMOTE_FIELDS = NEUTRAL_FIELDS[HttpServer.transport]
_SHOWN_SEGMENT = 64
_HOW_TO_REFERENCE = (
    "Reference secrets instead of embedding them: write a placeholder such as "
    "${env:GITHUB_PERSONAL_ACCESS_TOKEN} and provide the value through the client's environment or a Docker secret."
)


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a config, at one place in it."""

    code: ProblemCode
    path: str
    message: str


@dataclass(frozen=True)
class ValidationReport:
    """Every problem found (the first ``MAX_PROBLEMS``) and how many more were left out; and the warnings of a
    valid config (a launcher without an exact release), which the store's policy may make refusals."""

    problems: tuple[Problem, ...]
    omitted: int = 0
    warnings: tuple[Problem, ...] = ()

    @property
    def ok(self) -> bool:
        return not self.problems


def validate_config(payload: Mapping[str, Any]) -> ValidationReport:
    """Check ``payload`` against the neutral config shape; never raises for any JSON value."""
    checker = _Checker()
    checker.config(payload)
    if checker.problems:
        return ValidationReport(tuple(checker.problems), checker.omitted)
    return ValidationReport((), 0, unpinned_launches(McpConfig.from_payload(payload)))


def unpinned_launches(config: McpConfig) -> tuple[Problem, ...]:
    """A warning for each server a launcher starts without an exact release: clients may each run another."""
    found = []
    for name, server in config.servers.items():
        ref = package_ref(server) if isinstance(server, StdioServer) else None
        if ref is None or (ref.pinned and ref.problem is None):
            continue
        path = _child(f"/{SERVERS_KEY}", name)
        where = path if ref.arg_index is None else f"{path}/args/{ref.arg_index}"
        found.append(Problem("unpinned", where, unpinned_reason(ref)))
    return tuple(found)


def require_valid(payload: Mapping[str, Any]) -> None:
    """Raise unless ``payload`` is valid: ``LimitError`` if a limit was exceeded, else ``ValidationError``.

    A limit takes precedence because past a limit the check is partial.
    """
    report = validate_config(payload)
    if report.ok:
        return
    total = len(report.problems) + report.omitted
    lines = [f"- {p.path or '(top level)'}: {p.message}" for p in report.problems[:SHOWN_PROBLEMS]]
    if total > SHOWN_PROBLEMS:
        lines.append(f"- and {total - SHOWN_PROBLEMS} more.")
    noun = "problem" if total == 1 else "problems"
    message = "\n".join([f"The config has {total} {noun}:", *lines])
    hint = _HOW_TO_REFERENCE if any(p.code == "secret" for p in report.problems) else None
    if any(p.code == "limit" for p in report.problems):
        raise LimitError(message, hint)
    raise ValidationError(message, hint)


def parse_config(payload: Mapping[str, Any]) -> McpConfig:
    """The typed config of a payload that passes every publishing rule (:func:`require_valid`)."""
    require_valid(payload)
    return McpConfig.from_payload(payload)


def _child(path: str, key: object) -> str:
    """``path`` extended by ``key`` as an RFC 6901 segment: escaped, shortened, masked if secret-looking."""
    text = key if isinstance(key, str) else repr(key)
    if isinstance(key, str) and find_secret(key) is not None:
        text = MASK
    elif len(text) > _SHOWN_SEGMENT or not (text.isascii() and text.isprintable()):
        text = ascii(text[:_SHOWN_SEGMENT])[1:-1] + ("..." if len(text) > _SHOWN_SEGMENT else "")
    return f"{path}/{text.replace('~', '~0').replace('/', '~1')}"


def _placeholder_name(server: object) -> str:
    """An env variable name to suggest for a server's credential, e.g. ``GITHUB_TOKEN``."""
    if not is_server_name(server) or find_secret(server) is not None:
        return "API_TOKEN"
    stem = re.sub(r"[^A-Z0-9]+", "_", server.upper()).strip("_")
    return f"{stem}_TOKEN" if stem and not stem[0].isdigit() else "API_TOKEN"


class _Checker:
    """Collects problems while walking one payload."""

    def __init__(self) -> None:
        self.problems: list[Problem] = []
        self.omitted = 0

    def add(self, code: ProblemCode, path: str, message: str) -> None:
        if len(self.problems) < MAX_PROBLEMS:
            self.problems.append(Problem(code, path, message))
        else:
            self.omitted += 1

    def config(self, payload: object) -> None:
        if not isinstance(payload, Mapping):
            self.add("shape", "", 'The config must be a JSON object such as {"mcpServers": {...}}.')
            return
        if SERVERS_KEY not in payload:
            self.add("shape", f"/{SERVERS_KEY}", "The config needs an mcpServers object (it may be empty).")
        else:
            self.servers(payload[SERVERS_KEY], f"/{SERVERS_KEY}")
        extra = [key for key in payload if key != SERVERS_KEY]
        if len(extra) > MAX_EXTRA_KEYS:
            self.add(
                "limit", "", f"The config has {len(extra)} keys besides mcpServers; the limit is {MAX_EXTRA_KEYS}."
            )
        for key in extra[:MAX_EXTRA_KEYS]:
            path = _child("", key)
            if self.key(key, path) and self.string(key, path, "The key"):
                self.free_value(payload[key], path, key, 1)

    def servers(self, servers: object, path: str) -> None:
        if not isinstance(servers, Mapping):
            self.add("shape", path, "mcpServers must be an object that maps server names to servers.")
            return
        if len(servers) > MAX_SERVERS:
            self.add("limit", path, f"There are {len(servers)} servers; the limit is {MAX_SERVERS}.")
        for name, server in islice(servers.items(), MAX_SERVERS):
            server_path = _child(path, name)
            if not self.key(name, server_path):
                continue
            if not is_server_name(name):
                self.add("name", server_path, f"Server names must be {SERVER_NAME_RULE}.")
            self.server(server, server_path, name)

    def server(self, server: object, path: str, name: str) -> None:
        if not isinstance(server, Mapping):
            self.add("shape", path, "A server must be an object with a command (local) or a url (remote).")
            return
        local, remote = "command" in server, "url" in server
        if local and remote:
            self.add("shape", path, "A server has either a command (local) or a url (remote), not both.")
        elif not local and not remote:
            self.add("shape", path, "A server needs a command (local server) or a url (remote server).")
        if local != remote:
            known, kind = (_LOCAL_FIELDS, "a local server") if local else (_REMOTE_FIELDS, "a remote server")
        else:
            known, kind = _LOCAL_FIELDS + _REMOTE_FIELDS, "a server"
        for field in server:
            if field not in known:
                self.add(
                    "shape", _child(path, field), f"This is not a field of {kind}; its fields are {', '.join(known)}."
                )
        suggestion = _placeholder_name(name)
        if local:
            self.command(server["command"], f"{path}/command", suggestion)
        if "args" in server:
            self.args(server["args"], f"{path}/args", suggestion)
        if "env" in server:
            self.named_strings(server["env"], f"{path}/env", "env", suggestion)
        if remote:
            self.url(server["url"], f"{path}/url", suggestion)
        if "headers" in server:
            self.named_strings(server["headers"], f"{path}/headers", "headers", suggestion)

    def command(self, command: object, path: str, suggestion: str) -> None:
        if not self.string(command, path, "The command"):
            return
        if not command.strip():
            self.add("shape", path, "The command must be a non-empty string: the program the client starts.")
        self.secret(command, None, path, suggestion)

    def args(self, args: object, path: str, suggestion: str) -> None:
        if not isinstance(args, list | tuple):
            self.add("shape", path, "args must be a list of strings.")
            return
        if len(args) > MAX_ARGS:
            self.add("limit", path, f"There are {len(args)} args; the limit is {MAX_ARGS}.")
        checked = args[:MAX_ARGS]
        strings = [self.string(arg, f"{path}/{index}", "Each arg") for index, arg in enumerate(checked)]
        flagged = secret_arguments([arg if ok else None for arg, ok in zip(checked, strings, strict=True)])
        for index, label in flagged.items():
            self.add("secret", f"{path}/{index}", _secret_message(label, suggestion))

    def named_strings(self, values: object, path: str, field: Literal["env", "headers"], suggestion: str) -> None:
        if not isinstance(values, Mapping):
            self.add("shape", path, f"{field} must be an object that maps names to strings.")
            return
        limit = MAX_ENV if field == "env" else MAX_HEADERS
        if len(values) > limit:
            self.add("limit", path, f"There are {len(values)} {field} entries; the limit is {limit}.")
        for name, value in islice(values.items(), limit):
            value_path = _child(path, name)
            if not self.key(name, value_path):
                continue
            if field == "env" and not _ENV_NAME.fullmatch(name):
                self.add(
                    "name",
                    value_path,
                    "Environment variable names must be 1-128 characters of A-Z, a-z, 0-9 or '_', "
                    "not starting with a digit.",
                )
            if field == "headers" and not _HEADER_NAME.fullmatch(name):
                self.add(
                    "name",
                    value_path,
                    "Header names must be 1-128 characters of letters, digits and !#$%&'*+.^_`|~-.",
                )
            if not self.string(value, value_path, "The value"):
                continue
            if field == "headers" and ("\r" in value or "\n" in value):
                self.add("shape", value_path, "A header value must not contain a line break.")
            own_name = field == "env" and _ENV_NAME.fullmatch(name) and find_secret(name) is None
            self.secret(value, name, value_path, name if own_name else suggestion)

    def url(self, url: object, path: str, suggestion: str) -> None:
        if not self.string(url, path, "The url"):
            return
        problem = _url_problem(url)
        if problem is not None:
            self.add("url", path, problem)
        self.secret(url, None, path, suggestion)

    def free_value(self, value: object, path: str, name: str | None, depth: int) -> None:
        """Any JSON value under an extra top-level key: bounded, and free of secrets."""
        if depth > MAX_EXTRA_DEPTH:
            self.add("limit", path, f"This value is nested more than {MAX_EXTRA_DEPTH} levels deep.")
        elif isinstance(value, str):
            if self.string(value, path, "The value"):
                self.secret(value, name, path, "API_TOKEN")
        elif isinstance(value, Mapping | list | tuple):
            if len(value) > MAX_EXTRA_ITEMS:
                self.add("limit", path, f"This value has {len(value)} entries; the limit is {MAX_EXTRA_ITEMS}.")
            if isinstance(value, Mapping):
                for key, item in islice(value.items(), MAX_EXTRA_ITEMS):
                    item_path = _child(path, key)
                    if self.key(key, item_path) and self.string(key, item_path, "The key"):
                        self.free_value(item, item_path, key, depth + 1)
            else:
                for index, item in enumerate(value[:MAX_EXTRA_ITEMS]):
                    self.free_value(item, f"{path}/{index}", None, depth + 1)

    def key(self, key: object, path: str) -> TypeGuard[str]:
        """An object key must be a string, and not a secret: keys are shown in every output."""
        if not isinstance(key, str):
            self.add("shape", path, "Object keys must be strings.")
            return False
        label = find_secret(key)
        if label is not None:
            self.add(
                "secret",
                path,
                f"This name looks like {label}, and names are shown in every output. Rename it and "
                "reference the secret through a ${env:NAME} placeholder in a value.",
            )
        return True

    def string(self, value: object, path: str, what: str) -> TypeGuard[str]:
        """Report a non-string, an oversized string or a NUL; True if ``value`` is a usable string."""
        if not isinstance(value, str):
            self.add("shape", path, f"{what} must be a string.")
            return False
        try:
            size = len(value.encode("utf-8"))
        except UnicodeEncodeError:
            self.add("shape", path, f"{what} contains an unpaired surrogate, which UTF-8 cannot carry.")
            return False
        if size > MAX_STRING_BYTES:
            self.add("limit", path, f"{what} is {size} bytes; the limit is {MAX_STRING_BYTES}.")
            return False
        if "\x00" in value:
            self.add("shape", path, f"{what} contains a NUL character.")
            return False
        return True

    def secret(self, value: str, name: str | None, path: str, suggestion: str) -> None:
        label = find_secret(value, name)
        if label is not None:
            self.add("secret", path, _secret_message(label, suggestion))


def _secret_message(label: str, suggestion: str) -> str:
    return (
        f"This looks like {label}; a published config must not contain credentials. "
        f"Reference it instead: use the placeholder ${{env:{suggestion}}} and provide the value "
        "through the client's environment or a Docker secret."
    )


def _url_problem(url: str) -> str | None:
    """Why ``url`` is not an https URL (or an http URL to this machine), or None."""
    if any(char.isspace() or not char.isprintable() for char in url):
        return "The url must not contain spaces or control characters."
    try:
        parts = urlsplit(url)
        host, _ = parts.hostname, parts.port  # .port raises ValueError for a malformed port
    except ValueError:
        return "The url is not a valid URL."
    scheme = parts.scheme.lower()
    if not host or scheme not in {"https", "http"}:
        return "The url must be an https:// URL with a host (or http:// to localhost)."
    if scheme == "http" and not is_loopback(host):
        return "Plain http is allowed only to localhost; use an https:// URL for a remote server."
    return None


def is_loopback(host: str) -> bool:
    """Whether ``host`` names this machine: ``localhost`` or a loopback address."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
