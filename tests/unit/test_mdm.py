"""MDM export: Claude Desktop's ``managedMcpServers`` as a .mobileconfig and a .reg file, parsed back."""

from __future__ import annotations

import io
import json
import plistlib
import re
import sys
from pathlib import Path
from typing import Any

import pytest

from mcp_orchestration import cli
from mcp_orchestration.app.mdm import export_managed
from mcp_orchestration.app.operations import App
from mcp_orchestration.app.settings import load_settings
from mcp_orchestration.config.mdm import (
    MANAGED_KEY,
    PREFERENCE_DOMAIN,
    REGISTRY_KEY,
    Provenance,
    managed_mcp_servers,
    render_mobileconfig,
    render_reg,
)
from mcp_orchestration.core.errors import ExitCode, UsageError, ValidationError
from tests.conftest import Run

# Names and values a careless renderer breaks: quotes, backslashes, a .reg comment and section
# lookalike, XML markup, non-ASCII (BMP and astral), a newline and a tab inside an argument.
HOSTILE = {
    "mcpServers": {
        'quo"te\\srv': {
            "command": 'C:\\Program Files\\Tools\\"srv".exe',
            "args": ["--root", "C:\\data\\", 'say "hi"', "line1\nline2\ttab", "]; [HKEY_X]", "<b>&amp;</b>"],
            "env": {"GREETING": "héllo wörld ✓ 😀", "PATH_HINT": "\\\\server\\share"},
        },
        "plain": {"command": "uvx", "args": ["mcp-server-time"]},
    }
}
# Publishing allows only plain server names; the values stay hostile.
STORED = {"mcpServers": {f"srv-{i}": entry for i, entry in enumerate(HOSTILE["mcpServers"].values())}}
PROVENANCE = Provenance(
    client="claude-desktop",
    profile="default",
    artifact="sha256:" + "ab" * 32,
    index_version=7,
    root_fingerprint="SHA256:" + "r" * 43,
    keyid="k" * 43,
)


def parse_reg(data: bytes) -> dict[str, dict[str, str]]:
    """A small .reg reader: BOM + UTF-16 LE, header, ``;`` comments, ``[key]`` sections, ``"name"="value"``."""
    assert data.startswith(b"\xff\xfe"), "regedit's own format starts with a UTF-16 LE byte-order mark"
    text = data[2:].decode("utf-16-le")
    lines = text.split("\r\n")
    assert lines[0] == "Windows Registry Editor Version 5.00"
    sections: dict[str, dict[str, str]] = {}
    current: dict[str, str] | None = None
    value_line = re.compile(r'"((?:[^"\\]|\\.)*)"="((?:[^"\\]|\\.)*)"')
    for line in lines[1:]:
        if not line or line.startswith(";"):
            continue
        if line.startswith("[") and line.endswith("]"):
            current = sections.setdefault(line[1:-1], {})
            continue
        match = value_line.fullmatch(line)
        assert match is not None and current is not None, f"not a .reg line: {line!r}"
        current[_unescape(match[1])] = _unescape(match[2])
    return sections


def _unescape(text: str) -> str:
    return re.sub(r"\\(.)", r"\1", text)


def _servers() -> dict[str, Any]:
    servers: dict[str, Any] = HOSTILE["mcpServers"]
    return servers


def test_managed_value_is_a_json_array_of_named_entries_in_profile_order() -> None:
    value = json.loads(managed_mcp_servers(_servers()))
    assert [entry["name"] for entry in value] == list(_servers())
    for entry in value:
        name = entry.pop("name")
        assert entry == _servers()[name]


def test_managed_value_is_ascii_on_one_line() -> None:
    value = managed_mcp_servers(_servers())
    assert value.isascii() and "\n" not in value and "\r" not in value


def test_a_field_called_name_is_refused_rather_than_overwritten() -> None:
    with pytest.raises(ValidationError, match="'name'"):
        managed_mcp_servers({"srv": {"command": "x", "name": "other"}})


def test_mobileconfig_is_a_configuration_profile_for_claude_desktops_domain() -> None:
    profile = plistlib.loads(render_mobileconfig(_servers(), PROVENANCE))
    assert profile["PayloadType"] == "Configuration"
    assert profile["PayloadVersion"] == 1
    (settings,) = profile["PayloadContent"]
    assert settings["PayloadType"] == PREFERENCE_DOMAIN == "com.anthropic.claudefordesktop"
    assert isinstance(settings[MANAGED_KEY], str), "Claude Desktop reads JSON-valued keys as strings"
    assert json.loads(settings[MANAGED_KEY]) == json.loads(managed_mcp_servers(_servers()))
    for field in ("claude-desktop/default", PROVENANCE.artifact, "index version 7", PROVENANCE.root_fingerprint):
        assert field in profile["PayloadDescription"]
    assert f"SHA256:{PROVENANCE.keyid}" in profile["PayloadDescription"]
    uuids = {profile["PayloadUUID"], settings["PayloadUUID"]}
    assert len(uuids) == 2 and all(re.fullmatch(r"[0-9A-F-]{36}", u) for u in uuids)


def test_mobileconfig_is_byte_identical_for_the_same_index_and_keeps_its_uuids_across_versions() -> None:
    first = render_mobileconfig(_servers(), PROVENANCE)
    assert render_mobileconfig(_servers(), PROVENANCE) == first
    newer = Provenance(**{**PROVENANCE.__dict__, "index_version": 8, "artifact": "sha256:" + "cd" * 32})
    old, new = plistlib.loads(first), plistlib.loads(render_mobileconfig(_servers(), newer))
    assert new["PayloadUUID"] == old["PayloadUUID"] and new["PayloadIdentifier"] == old["PayloadIdentifier"]
    other = Provenance(**{**PROVENANCE.__dict__, "profile": "other"})
    assert plistlib.loads(render_mobileconfig(_servers(), other))["PayloadUUID"] != old["PayloadUUID"]


def test_reg_sets_one_string_under_claudes_machine_policy_key_and_round_trips_hostile_values() -> None:
    data = render_reg(_servers(), PROVENANCE)
    sections = parse_reg(data)
    assert list(sections) == [REGISTRY_KEY] == ["HKEY_LOCAL_MACHINE\\SOFTWARE\\Policies\\Claude"]
    value = sections[REGISTRY_KEY][MANAGED_KEY]
    assert value == managed_mcp_servers(_servers())
    assert {e.pop("name"): e for e in json.loads(value)} == _servers()


def test_reg_records_the_source_in_a_comment_line() -> None:
    text = render_reg(_servers(), PROVENANCE)[2:].decode("utf-16-le")
    comments = [line for line in text.split("\r\n") if line.startswith(";")]
    assert len(comments) == 1
    assert PROVENANCE.artifact in comments[0] and PROVENANCE.root_fingerprint in comments[0]


# --- the operation and the command, on a real signed store ---


def _publish(run: Run, key_file: Path, payload: dict[str, Any], client: str = "claude-desktop") -> None:
    source = key_file.with_name("profile.json")
    source.write_text(json.dumps(payload))
    argv = ("publish", "--client", client, "--profile", "default", "--file", str(source), "--key-file", str(key_file))
    result = run(*argv)
    assert result.status == 0, result.stderr


@pytest.fixture
def published(run: Run, initialised: Path, key_file: Path) -> Path:
    _publish(run, key_file, STORED)
    return key_file


def _export(monkeypatch: pytest.MonkeyPatch, *argv: str) -> tuple[int, bytes]:
    """The command's exit status and the raw bytes it wrote to stdout (a .reg file is not UTF-8)."""
    out = io.BytesIO()
    with monkeypatch.context() as patch:
        patch.setattr(sys, "stdout", io.TextIOWrapper(out, encoding="utf-8"))
        status = cli.main(["export", "--client", "claude-desktop", "--profile", "default", *argv])
        sys.stdout.flush()
        return int(status), out.getvalue()


def _deployed(run: Run, tmp_path: Path) -> dict[str, Any]:
    target = tmp_path / "claude_desktop_config.json"
    argv = ("deploy", "--client", "claude-desktop", "--profile", "default", "--config-path", str(target))
    assert run(*argv).status == 0
    servers: dict[str, Any] = json.loads(target.read_text())["mcpServers"]
    return servers


def test_exported_files_hold_exactly_what_deploy_writes(
    published: Path, run: Run, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    status, mobileconfig = _export(monkeypatch, "--format", "mobileconfig")
    assert status == 0
    status, reg = _export(monkeypatch, "--format", "reg")
    assert status == 0
    deployed = _deployed(run, tmp_path)
    from_plist = plistlib.loads(mobileconfig)["PayloadContent"][0][MANAGED_KEY]
    from_reg = parse_reg(reg)[REGISTRY_KEY][MANAGED_KEY]
    for value in (from_plist, from_reg):
        assert {entry.pop("name"): entry for entry in json.loads(value)} == deployed == STORED["mcpServers"]


def test_export_records_the_verified_index_it_read(published: Path, run: Run, monkeypatch: pytest.MonkeyPatch) -> None:
    _, mobileconfig = _export(monkeypatch, "--format", "mobileconfig")
    description = plistlib.loads(mobileconfig)["PayloadDescription"]
    root = run("keys", "fingerprint", "--key-file", str(published), "--json").json()["fingerprint"]
    assert root in description and "index version 2" in description  # init, then a publish
    app = App(load_settings())
    entry, _ = app.index.get_artifact("claude-desktop", "default")
    assert entry.artifact in description
    assert export_managed(app, "claude-desktop", "default", "mobileconfig") == mobileconfig


def test_json_stays_the_default_format(published: Path, run: Run) -> None:
    result = run("export", "--client", "claude-desktop", "--profile", "default")
    assert result.status == 0
    assert set(json.loads(result.stdout)["mcpServers"]) == set(STORED["mcpServers"])


def test_placeholders_are_refused_as_deploy_refuses_them_unless_resolved(
    run: Run, initialised: Path, key_file: Path
) -> None:
    _publish(run, key_file, {"mcpServers": {"gh": {"command": "gh-mcp", "env": {"T": "${env:GH_HOST}"}}}})
    app = App(load_settings())
    with pytest.raises(ValidationError, match="does not expand"):
        export_managed(app, "claude-desktop", "default", "reg")
    data = export_managed(app, "claude-desktop", "default", "reg", resolve_env=True, environ={"GH_HOST": "ghe.corp"})
    (entry,) = json.loads(parse_reg(data)[REGISTRY_KEY][MANAGED_KEY])
    assert entry["env"] == {"T": "ghe.corp"}


def test_clients_without_a_documented_managed_configuration_are_refused(
    run: Run, initialised: Path, key_file: Path
) -> None:
    _publish(run, key_file, {"mcpServers": {"t": {"command": "uvx"}}}, client="cursor")
    with pytest.raises(UsageError, match="no documented managed"):
        export_managed(App(load_settings()), "cursor", "default", "mobileconfig")
    result = run("export", "--client", "cursor", "--profile", "default", "--format", "reg")
    assert result.status == ExitCode.USAGE
