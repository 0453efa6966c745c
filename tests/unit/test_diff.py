"""Config diffs: structured changes and a unified text, neither ever showing a secret value."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mcp_orchestration.app.views import diff_view
from mcp_orchestration.config.diff import ConfigDiff, NamesChange, ServerChange, ValueChange, diff_configs
from mcp_orchestration.security.secret_rules import MASK

TOKEN_A = "gh" + "p_" + "Zx9Qm2Lr7Tk4Wp8Vn3Bs6Hd1Yc5Fg0JtAe12"
TOKEN_B = "gh" + "p_" + "Qm2Lr7Tk4Wp8Vn3Bs6Hd1Yc5Fg0JtAeZx934"

FS = {"command": "npx", "args": ["-y", "@modelcontextprotocol/server-filesystem", "/data"]}
GITHUB: dict[str, Any] = {
    "command": "docker",
    "args": ["run", "-i", "--rm", "-e", "GITHUB_PERSONAL_ACCESS_TOKEN", "ghcr.io/github/github-mcp-server"],
    "env": {"GITHUB_PERSONAL_ACCESS_TOKEN": TOKEN_A, "GITHUB_TOOLSETS": "repos"},
}


def config(**servers: Any) -> dict[str, Any]:
    return {"mcpServers": servers}


def shown(diff: ConfigDiff) -> str:
    return json.dumps(diff_view(diff))


def test_identical_configs_have_no_changes_whatever_the_key_order() -> None:
    old = config(fs=FS, github=GITHUB)
    new = {"mcpServers": {"github": dict(reversed(list(GITHUB.items()))), "fs": FS}}
    diff = diff_configs(old, new)
    assert not diff.changed
    assert (diff.added, diff.removed, diff.modified, diff.unified) == ((), (), (), "")
    assert diff.top_level == NamesChange()


def test_a_first_config_adds_every_server_and_key() -> None:
    diff = diff_configs(None, {**config(github=GITHUB, fs=FS), "$schema": "s"})
    assert diff.changed
    assert diff.added == ("fs", "github")
    assert diff.top_level.added == ("$schema",)
    lines = diff.unified.splitlines()
    assert lines[:2] == ["--- old", "+++ new"]
    assert all(line.startswith(("+", "@@")) for line in lines[2:])


def test_a_first_empty_config_is_still_a_change() -> None:
    assert diff_configs(None, config()).changed


def test_servers_added_and_removed_are_listed_in_order() -> None:
    diff = diff_configs(config(a=FS, b=FS, c=FS), config(c=FS, d=FS, e=FS, b=FS))
    assert (diff.added, diff.removed, diff.modified) == (("d", "e"), ("a",), ())
    assert diff.changed


def test_a_changed_command_and_args_show_old_and_new() -> None:
    new = {"command": "uvx", "args": ["mcp-server-filesystem", "/data"]}
    (change,) = diff_configs(config(fs=FS), config(fs=new)).modified
    assert change.name == "fs"
    assert change.command == ValueChange("npx", "uvx")
    assert change.args == ValueChange(FS["args"], new["args"])
    assert (change.env, change.url, change.headers, change.other_fields) == (None, None, None, None)


def test_env_changes_name_variables_but_never_show_values() -> None:
    new = {**GITHUB, "env": {"GITHUB_PERSONAL_ACCESS_TOKEN": TOKEN_B, "GITHUB_HOST": "ghe.example.com"}}
    diff = diff_configs(config(github=GITHUB), config(github=new))
    (change,) = diff.modified
    assert change.env == NamesChange(
        added=("GITHUB_HOST",), removed=("GITHUB_TOOLSETS",), changed=("GITHUB_PERSONAL_ACCESS_TOKEN",)
    )
    assert change.command is None and change.args is None
    text = shown(diff)
    for value in (TOKEN_A, TOKEN_B, "ghe.example.com", "repos"):
        assert value not in text
    assert MASK in diff.unified


def test_a_rotated_secret_is_a_change_even_though_both_sides_mask_alike() -> None:
    new = {**GITHUB, "env": {**GITHUB["env"], "GITHUB_PERSONAL_ACCESS_TOKEN": TOKEN_B}}
    diff = diff_configs(config(github=GITHUB), config(github=new))
    assert diff.changed
    assert diff.modified[0].env == NamesChange(changed=("GITHUB_PERSONAL_ACCESS_TOKEN",))
    assert diff.unified == ""


def test_header_changes_name_headers_only() -> None:
    old = {"url": "https://mcp.example.com", "headers": {"Authorization": "Bearer " + TOKEN_A}}
    new = {"url": "https://mcp.example.com/v2", "headers": {"Authorization": "Bearer ${env:T}", "X-Team": "core"}}
    diff = diff_configs(config(api=old), config(api=new))
    (change,) = diff.modified
    assert change.url == ValueChange("https://mcp.example.com", "https://mcp.example.com/v2")
    assert change.headers == NamesChange(added=("X-Team",), changed=("Authorization",))
    assert TOKEN_A not in shown(diff)
    assert "core" not in shown(diff)
    assert "Bearer ${env:T}" in diff.unified


def test_secret_arguments_and_urls_are_masked_in_changes() -> None:
    old = {"command": "npx", "args": ["--token", TOKEN_A]}
    new = {"url": "https://user:" + TOKEN_B + "@mcp.example.com"}
    diff = diff_configs(config(x=old), config(x=new))
    (change,) = diff.modified
    assert change.command == ValueChange("npx", None)
    assert change.args == ValueChange(["--token", MASK], None)
    assert change.url == ValueChange(None, MASK)
    assert TOKEN_A not in shown(diff) and TOKEN_B not in shown(diff)


def test_fields_outside_the_shape_are_named_without_values() -> None:
    old = {"command": "npx", "cwd": "/a", "disabled": False}
    new = {"command": "npx", "cwd": "/b", "timeout": 30}
    (change,) = diff_configs(config(x=old), config(x=new)).modified
    assert change.other_fields == NamesChange(added=("timeout",), removed=("disabled",), changed=("cwd",))


def test_a_server_that_is_not_an_object_is_named_only() -> None:
    (change,) = diff_configs(config(x="npx"), config(x=FS)).modified
    assert change == ServerChange("x")


def test_malformed_server_maps_count_as_empty() -> None:
    diff = diff_configs({"mcpServers": ["x"]}, config(fs=FS))
    assert diff.added == ("fs",)
    assert diff.changed


def test_json_types_are_compared_as_json() -> None:
    old = {**config(), "retries": 1, "flag": True}
    new = {**config(), "retries": True, "flag": True}
    diff = diff_configs(old, new)
    assert diff.changed
    assert diff.top_level == NamesChange(changed=("retries",))


def test_a_non_dict_mapping_is_compared_by_content() -> None:
    from types import MappingProxyType

    diff = diff_configs(MappingProxyType(config(fs=FS)), MappingProxyType(config(fs=FS)))
    assert not diff.changed


def test_values_json_cannot_carry_are_refused() -> None:
    with pytest.raises(TypeError):
        diff_configs(config(), {**config(), "x": {1, 2}})


def test_the_unified_diff_is_of_sorted_pretty_masked_json() -> None:
    old = config(github=GITHUB)
    new = config(github={"env": GITHUB["env"], "command": "podman", "args": GITHUB["args"]})
    diff = diff_configs(old, new)
    assert '-      "command": "docker",' in diff.unified.splitlines()
    assert '+      "command": "podman",' in diff.unified.splitlines()
    assert f'"GITHUB_PERSONAL_ACCESS_TOKEN": "{MASK}"' in diff.unified
    assert diff.unified.index('"command"') < diff.unified.index('"env"')


def test_to_dict_has_fixed_keys_and_is_json() -> None:
    diff = diff_configs(config(fs=FS), config(fs={**FS, "command": "uvx"}, git={"command": "uvx"}))
    data = json.loads(shown(diff))
    assert set(data) == {"changed", "added", "removed", "modified", "top_level", "unified"}
    assert data["modified"] == [
        {
            "name": "fs",
            "command": {"old": "npx", "new": "uvx"},
            "args": None,
            "url": None,
            "env": None,
            "headers": None,
            "other_fields": None,
        }
    ]
    assert data["top_level"] == {"added": [], "removed": [], "changed": []}


def test_diffs_are_frozen() -> None:
    diff = diff_configs(None, config())
    with pytest.raises(AttributeError):
        diff.changed = False  # type: ignore[misc]


_NAMES = st.sampled_from(["A", "B", "TOKEN", "HOST"])
_SECRET_VALUES = st.text("abcdefXYZ0123456789", min_size=6, max_size=12).map(lambda s: "SECRETVALUE" + s)
_SERVERS = st.dictionaries(
    st.sampled_from(["a", "b", "c"]),
    st.fixed_dictionaries(
        {"command": st.sampled_from(["npx", "uvx"])},
        optional={"env": st.dictionaries(_NAMES, _SECRET_VALUES, max_size=3)},
    )
    | st.fixed_dictionaries(
        {"url": st.sampled_from(["https://a.example", "http://localhost:1"])},
        optional={"headers": st.dictionaries(_NAMES, _SECRET_VALUES, max_size=3)},
    ),
    max_size=3,
)


@settings(max_examples=300, deadline=None)
@given(old=_SERVERS, new=_SERVERS)
def test_a_diff_never_shows_env_or_header_values_and_detects_every_change(
    old: dict[str, Any], new: dict[str, Any]
) -> None:
    diff = diff_configs(config(**old), config(**new))
    assert "SECRETVALUE" not in shown(diff)
    assert diff.changed == (old != new)
    assert bool(diff.added or diff.removed or diff.modified) == (old != new)
    assert not diff_configs(config(**new), config(**new)).changed
