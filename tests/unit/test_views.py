"""The app's typed views of config facts: the JSON the MCP tools send, key for key and in order."""

from __future__ import annotations

import json
from typing import Any

from mcp_orchestration.app.views import diff_view, server_description, validation_view
from mcp_orchestration.config import catalog
from mcp_orchestration.config.diff import diff_configs
from mcp_orchestration.config.validation import validate_config

TOKEN = "gh" + "p_" + "Zx9Qm2Lr7Tk4Wp8Vn3Bs6Hd1Yc5Fg0JtAe12"


def same_json(left: object, right: object) -> bool:
    return json.dumps(left) == json.dumps(right)  # key order included


def test_diff_view_shows_changes_with_values_masked_and_names_only_for_env() -> None:
    old: dict[str, Any] = {
        "mcpServers": {"gh": {"command": "docker", "env": {"TOKEN": TOKEN}}, "gone": {"command": "x"}}
    }
    new: dict[str, Any] = {"mcpServers": {"gh": {"command": "podman", "env": {"TOKEN": "${env:TOKEN}"}}}, "extra": 1}
    view = diff_view(diff_configs(old, new))
    assert TOKEN not in json.dumps(view)
    assert same_json(
        {key: value for key, value in view.items() if key != "unified"},
        {
            "changed": True,
            "added": [],
            "removed": ["gone"],
            "modified": [
                {
                    "name": "gh",
                    "command": {"old": "docker", "new": "podman"},
                    "args": None,
                    "url": None,
                    "env": {"added": [], "removed": [], "changed": ["TOKEN"]},
                    "headers": None,
                    "other_fields": None,
                }
            ],
            "top_level": {"added": ["extra"], "removed": [], "changed": []},
        },
    )


def test_validation_view_lists_problems_without_values() -> None:
    view = validation_view("c", "p", validate_config({"mcpServers": {"s": {"command": "x", "env": {"T": TOKEN}}}}))
    assert TOKEN not in json.dumps(view)
    assert [key for key in view] == ["client", "profile", "ok", "problems", "omitted", "warnings"]
    assert view["ok"] is False
    assert [(p["code"], p["path"]) for p in view["problems"]] == [("secret", "/mcpServers/s/env/T")]


def test_server_description_names_what_an_entry_needs_never_values() -> None:
    for server in catalog.load_catalog(None).values():
        view = server_description(server)
        assert list(view) == [
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
        ]
        assert view["required_env"] == list(server.required_env)
        assert [p["name"] for p in view["parameters"]] == list(server.parameters)
