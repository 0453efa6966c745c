from __future__ import annotations

import copy
import json
from collections.abc import Callable
from importlib.resources import files
from pathlib import PurePath, PurePosixPath, PureWindowsPath
from typing import Any

import pytest

from mcp_orchestration.config.clients import ClientSpec, get_client, load_clients, parse_clients
from mcp_orchestration.config.model import McpConfig
from mcp_orchestration.config.validation import validate_config
from mcp_orchestration.core.errors import InvalidIdError, LimitError, NotFoundError, UsageError, ValidationError

POSIX_HOME = PurePosixPath("/home/ada")
WINDOWS_HOME = PureWindowsPath("C:\\Users\\ada")
APPDATA = "C:\\Users\\ada\\AppData\\Roaming"
STDIO = {"command": "npx", "args": ["-y", "@modelcontextprotocol/server-memory"], "env": {"A": "${env:A}"}}
REMOTE = {"url": "https://mcp.example.com/mcp", "headers": {"Authorization": "Bearer ${env:TOKEN}"}}


def _render(spec: ClientSpec, servers: dict[str, Any]) -> dict[str, Any]:
    """``spec``'s file content for neutral ``servers``, through the typed config model as deploy renders it."""
    return spec.render(McpConfig.from_payload({"mcpServers": servers}))


def _bundled_document() -> dict[str, Any]:
    document: dict[str, Any] = json.loads((files("mcp_orchestration") / "data" / "clients.json").read_bytes())
    return document


def _parse_changed(change: Callable[[dict[str, Any]], None]) -> None:
    """Parse the bundled registry after ``change`` edits its first client (claude-desktop)."""
    document = _bundled_document()
    change(document["clients"][0])
    parse_clients(json.dumps(document).encode(), "test registry")


def _home_for(platform: str) -> PurePath:
    return WINDOWS_HOME if platform == "windows" else POSIX_HOME


def test_the_bundled_registry_has_the_four_desktop_clients() -> None:
    clients = load_clients()
    assert set(clients) >= {"claude-desktop", "cursor", "vscode", "windsurf"}
    assert all(isinstance(client, ClientSpec) and client.docs.startswith("https://") for client in clients.values())


def test_the_registry_is_loaded_once_and_cannot_be_changed() -> None:
    assert load_clients() is load_clients()
    with pytest.raises(TypeError):
        load_clients()["evil"] = get_client("cursor")  # type: ignore[index]


def test_get_client_returns_the_spec_for_a_known_id() -> None:
    client = get_client("claude-desktop")
    assert client.name == "Claude Desktop"
    assert client.config_key == "mcpServers"
    assert client.transports == ("stdio",)


def test_get_client_reports_an_unknown_id_as_not_found_with_the_known_ids() -> None:
    with pytest.raises(NotFoundError) as caught:
        get_client("emacs")
    assert caught.value.code == "not_found"
    assert "cursor" in caught.value.hint


@pytest.mark.parametrize("bad", ["../cursor", "Cursor", "", None, 7, "a" * 65])
def test_get_client_refuses_a_malformed_id_before_looking_it_up(bad: object) -> None:
    with pytest.raises(InvalidIdError):
        get_client(bad)


@pytest.mark.parametrize(
    ("client_id", "platform", "expected"),
    [
        ("claude-desktop", "macos", "/home/ada/Library/Application Support/Claude/claude_desktop_config.json"),
        ("claude-desktop", "linux", "/home/ada/.config/Claude/claude_desktop_config.json"),
        ("claude-desktop", "windows", APPDATA + "\\Claude\\claude_desktop_config.json"),
        ("cursor", "macos", "/home/ada/.cursor/mcp.json"),
        ("cursor", "linux", "/home/ada/.cursor/mcp.json"),
        ("cursor", "windows", "C:\\Users\\ada\\.cursor\\mcp.json"),
        ("vscode", "macos", "/home/ada/Library/Application Support/Code/User/mcp.json"),
        ("vscode", "linux", "/home/ada/.config/Code/User/mcp.json"),
        ("vscode", "windows", APPDATA + "\\Code\\User\\mcp.json"),
        ("windsurf", "macos", "/home/ada/.codeium/windsurf/mcp_config.json"),
        ("windsurf", "linux", "/home/ada/.codeium/windsurf/mcp_config.json"),
        ("windsurf", "windows", "C:\\Users\\ada\\.codeium\\windsurf\\mcp_config.json"),
    ],
)
def test_config_path_expands_home_and_appdata_for_each_platform(client_id: str, platform: str, expected: str) -> None:
    path = get_client(client_id).config_path(platform, {"APPDATA": APPDATA}, _home_for(platform))
    assert str(path) == expected
    assert isinstance(path, PureWindowsPath if platform == "windows" else PurePosixPath)


@pytest.mark.parametrize("environ", [{}, {"APPDATA": ""}])
def test_config_path_names_a_missing_appdata_variable(environ: dict[str, str]) -> None:
    with pytest.raises(ValidationError) as caught:
        get_client("claude-desktop").config_path("windows", environ, WINDOWS_HOME)
    assert "APPDATA is not set" in caught.value.message
    assert "APPDATA" in caught.value.hint


def test_config_path_refuses_a_relative_appdata() -> None:
    with pytest.raises(ValidationError, match="APPDATA"):
        get_client("vscode").config_path("windows", {"APPDATA": "AppData\\Roaming"}, WINDOWS_HOME)


@pytest.mark.parametrize(("platform", "home"), [("linux", PurePosixPath("ada")), ("windows", POSIX_HOME)])
def test_config_path_refuses_a_home_that_is_not_absolute_on_the_platform(platform: str, home: PurePath) -> None:
    with pytest.raises(ValidationError, match="home directory"):
        get_client("cursor").config_path(platform, {}, home)


def test_config_path_refuses_an_unknown_platform() -> None:
    with pytest.raises(ValidationError, match="Unknown platform"):
        get_client("cursor").config_path("darwin", {}, POSIX_HOME)


LOCALAPPDATA = "C:\\Users\\ada\\AppData\\Local"
STORE_ENV = {"APPDATA": APPDATA, "LOCALAPPDATA": LOCALAPPDATA}


def _packages(*names: str) -> Callable[[PurePath], list[str]]:
    """A directory lister that knows only ``%LOCALAPPDATA%\\Packages``, holding ``names``."""

    def list_dir(directory: PurePath) -> list[str]:
        return list(names) if directory == PureWindowsPath(LOCALAPPDATA, "Packages") else []

    return list_dir


def test_windows_store_install_of_claude_desktop_keeps_its_config_in_the_package() -> None:
    lister = _packages("Microsoft.WindowsTerminal_8wekyb3d8bbwe", "Claude_pzs8sxrjxfjjc")
    path = get_client("claude-desktop").config_path("windows", STORE_ENV, WINDOWS_HOME, list_dir=lister)
    expected = (
        LOCALAPPDATA + "\\Packages\\Claude_pzs8sxrjxfjjc\\LocalCache\\Roaming\\Claude\\claude_desktop_config.json"
    )
    assert path == PureWindowsPath(expected) and isinstance(path, PureWindowsPath)


@pytest.mark.parametrize("names", [(), ("ClaudeHelper_1",), ("Claude_",), ("Other_Claude_x",)])
def test_without_a_store_package_the_windows_path_is_the_classic_one(names: tuple[str, ...]) -> None:
    path = get_client("claude-desktop").config_path("windows", STORE_ENV, WINDOWS_HOME, list_dir=_packages(*names))
    assert path == PureWindowsPath(APPDATA, "Claude", "claude_desktop_config.json")


def test_several_store_packages_are_an_error_naming_them() -> None:
    lister = _packages("Claude_aaaa", "claude_bbbb")
    with pytest.raises(UsageError) as caught:
        get_client("claude-desktop").config_path("windows", STORE_ENV, WINDOWS_HOME, list_dir=lister)
    assert "Claude_aaaa" in caught.value.message and "claude_bbbb" in caught.value.message
    assert "--config-path" in caught.value.hint


def test_the_store_lookup_touches_only_windows_and_clients_with_a_package() -> None:
    def refuse(directory: PurePath) -> list[str]:
        raise AssertionError(f"probed {directory}")

    get_client("vscode").config_path("windows", STORE_ENV, WINDOWS_HOME, list_dir=refuse)
    get_client("claude-desktop").config_path("macos", STORE_ENV, POSIX_HOME, list_dir=refuse)
    without_local = get_client("claude-desktop").config_path("windows", {"APPDATA": APPDATA}, WINDOWS_HOME, refuse)
    assert without_local == PureWindowsPath(APPDATA, "Claude", "claude_desktop_config.json")


@pytest.mark.parametrize(
    ("client_id", "expected"),
    [
        ("claude-desktop", {"mcpServers": {"memory": STDIO}}),
        ("cursor", {"mcpServers": {"memory": STDIO}}),
        ("vscode", {"servers": {"memory": {"type": "stdio", **STDIO}}}),
        ("windsurf", {"mcpServers": {"memory": STDIO}}),
    ],
)
def test_render_writes_stdio_entries_in_each_clients_shape(client_id: str, expected: dict[str, Any]) -> None:
    assert _render(get_client(client_id), {"memory": STDIO}) == expected


@pytest.mark.parametrize(
    ("client_id", "expected"),
    [
        ("cursor", {"mcpServers": {"remote": REMOTE}}),
        ("vscode", {"servers": {"remote": {"type": "http", **REMOTE}}}),
        ("windsurf", {"mcpServers": {"remote": {"serverUrl": REMOTE["url"], "headers": REMOTE["headers"]}}}),
    ],
)
def test_render_writes_remote_entries_in_each_clients_shape(client_id: str, expected: dict[str, Any]) -> None:
    assert _render(get_client(client_id), {"remote": REMOTE}) == expected


def test_render_keeps_minimal_entries_minimal() -> None:
    assert _render(get_client("vscode"), {"t": {"command": "uvx"}}) == {
        "servers": {"t": {"type": "stdio", "command": "uvx"}}
    }
    assert _render(get_client("windsurf"), {"r": {"url": "https://x.test/mcp"}}) == {
        "mcpServers": {"r": {"serverUrl": "https://x.test/mcp"}}
    }
    assert _render(get_client("cursor"), {}) == {"mcpServers": {}}


def test_render_refuses_a_transport_the_client_does_not_support() -> None:
    with pytest.raises(ValidationError) as caught:
        _render(get_client("claude-desktop"), {"remote": REMOTE})
    assert "supports stdio, not http" in caught.value.message
    assert caught.value.hint


def test_render_returns_copies_that_do_not_alias_the_input() -> None:
    entry = copy.deepcopy(STDIO)
    rendered = _render(get_client("cursor"), {"memory": entry})
    rendered["mcpServers"]["memory"]["args"].append("--evil")
    rendered["mcpServers"]["memory"]["env"]["B"] = "x"
    assert entry == STDIO


@pytest.mark.parametrize("name", ["../x", "a..b", "caf\u00e9", "x\x1b[31m", "\u202eabc", "-x", "a" * 65])
def test_render_refuses_a_malformed_server_name_as_validation_does(name: str) -> None:
    """Rendering (deploy, export) applies the one server-name rule, with validation's code."""
    with pytest.raises(ValidationError) as caught:
        _render(get_client("cursor"), {name: STDIO})
    assert caught.value.code == "validation"
    assert not validate_config({"mcpServers": {name: STDIO}}).ok


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ("npx", "must be an object"),
        ({}, "exactly one of"),
        ({"command": "npx", "url": "https://x.test"}, "exactly one of"),
        ({"command": "npx", "type": "stdio"}, "cannot carry"),
        ({"command": "npx", "headers": {}}, "cannot carry"),
        ({"url": "https://x.test", "env": {}}, "cannot carry"),
        ({"command": ""}, "'command' must be a non-empty string"),
        ({"command": ["npx"]}, "'command' must be a non-empty string"),
        ({"command": "npx", "args": "-y"}, "'args' must be a list of strings"),
        ({"command": "npx", "args": ["-y", 1]}, "'args' must be a list of strings"),
        ({"command": "npx", "env": ["A"]}, "'env' must be an object"),
        ({"command": "npx", "env": {"A": 1}}, "'env' must be an object"),
        ({"url": 5}, "'url' must be a non-empty string"),
        ({"url": "https://x.test", "headers": {"A": None}}, "'headers' must be an object"),
    ],
)
def test_render_refuses_malformed_neutral_entries(entry: object, message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        _render(get_client("cursor"), {"s": entry})


def test_parse_clients_accepts_the_bundled_document() -> None:
    parsed = parse_clients(json.dumps(_bundled_document()).encode(), "test registry")
    assert set(parsed) == set(load_clients())


@pytest.mark.parametrize(
    ("data", "error", "message"),
    [
        (b"[]", ValidationError, "must be a JSON object"),
        (b"{", ValidationError, "not valid JSON"),
        (b'{"clients": [], "clients": []}', ValidationError, "repeats the key"),
        (b'{"clients": [], "extra": 1}', ValidationError, "unknown field 'extra'"),
        (b"{}", ValidationError, "lacks the field 'clients'"),
        (b'{"clients": {}}', ValidationError, "must be a JSON array"),
        (b'{"clients": [1]}', ValidationError, "client 0 must be a JSON object"),
        (json.dumps({"clients": [{}] * 65}).encode(), LimitError, "the limit is 64"),
    ],
)
def test_parse_clients_refuses_malformed_documents(data: bytes, error: type[Exception], message: str) -> None:
    with pytest.raises(error, match=message):
        parse_clients(data, "test registry")


def test_parse_clients_refuses_a_client_defined_twice() -> None:
    document = _bundled_document()
    document["clients"].append(document["clients"][0])
    with pytest.raises(ValidationError, match="defines the client 'claude-desktop' twice"):
        parse_clients(json.dumps(document).encode(), "test registry")


def _set(key: str, value: object) -> Callable[[dict[str, Any]], None]:
    return lambda client: client.__setitem__(key, value)


def _path(platform: str, template: object) -> Callable[[dict[str, Any]], None]:
    return lambda client: client["paths"].__setitem__(platform, template)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (_set("id", "../claude"), "Invalid client id"),
        (_set("surprise", 1), "unknown field 'surprise'"),
        (lambda client: client.pop("docs"), "lacks the field 'docs'"),
        (_set("name", ""), "'name' must be a non-empty string"),
        (_set("name", "Claude\u202eDesktop"), "invisible character"),
        (_set("name", "Claude\nDesktop"), "control or invisible"),
        (_set("config_key", "mcp servers"), "'config_key' has an unexpected form"),
        (_set("docs", "http://insecure.test"), "'docs' has an unexpected form"),
        (_set("paths", {"linux": "~/x", "macos": "~/x"}), "lacks the field 'windows'"),
        (_set("paths", "~/x"), "'paths' must be a JSON object"),
        (_path("linux", "x/config.json"), "path for linux has an unexpected form"),
        (_path("linux", "~"), "path for linux has an unexpected form"),
        (_path("windows", "%appdata%/x.json"), "path for windows has an unexpected form"),
        (_path("windows", "%APPDATA%\\Claude\\x.json"), "path for windows has an unexpected form"),
        (_path("linux", "~//x.json"), "path for linux has an unexpected form"),
        (_path("linux", "~/../x.json"), "contains '.' or '..'"),
        (_path("macos", "~/./x.json"), "contains '.' or '..'"),
        (_set("transports", {}), "supports no transport"),
        (_set("transports", {"sse": {}}), "unknown field 'sse'"),
        (_set("transports", {"stdio": {"renames": {}}}), "unknown field 'renames'"),
        (_set("transports", {"stdio": {"rename": []}}), "'rename' must be a JSON object"),
        (_set("transports", {"stdio": {"rename": {"url": "serverUrl"}}}), "renames 'url', which is not a stdio"),
        (_set("transports", {"stdio": {"rename": {"args": "env"}}}), "two values to the same field"),
        (_set("transports", {"stdio": {"constants": {"command": "x"}}}), "two values to the same field"),
        (_set("transports", {"stdio": {"constants": {"type": "std io"}}}), "'constants' value has an unexpected"),
        (_set("transports", {"stdio": {"constants": {"type": 1}}}), "'constants' value must be a non-empty"),
    ],
)
def test_parse_clients_refuses_malformed_clients_naming_the_entry(
    change: Callable[[dict[str, Any]], None], message: str
) -> None:
    with pytest.raises(ValidationError, match=message) as caught:
        _parse_changed(change)
    assert caught.value.message.startswith("test registry")
    assert "client 0" in caught.value.message
