"""The app's typed views of config facts are, key for key and in order, the JSON the config layer renders.

The MCP tools send the views; the config layer keeps its own renderings
(``to_dict``, ``describe``). While both exist they must give the same JSON, so
moving the tools onto the views changed nothing on the wire.
"""

from __future__ import annotations

import json
from typing import Any

from mcp_orchestration.app.views import diff_view, server_description, validation_view
from mcp_orchestration.config import catalog
from mcp_orchestration.config.diff import diff_configs
from mcp_orchestration.config.validation import validate_config

TOKEN = "gh" + "p_" + "Zx9Qm2Lr7Tk4Wp8Vn3Bs6Hd1Yc5Fg0JtAe12"
OLD: dict[str, Any] = {
    "$schema": "s",
    "mcpServers": {
        "fs": {"command": "npx", "args": ["-y", "server-filesystem", "/data"]},
        "gh": {"command": "docker", "env": {"TOKEN": TOKEN, "KEEP": "x"}, "headers": {"A": "1"}},
        "gone": {"command": "old"},
    },
}
NEW: dict[str, Any] = {
    "extra": 1,
    "mcpServers": {
        "fs": {"command": "uvx", "args": ["server-filesystem"], "url": "https://example.invalid", "cwd": "/"},
        "gh": {"command": "docker", "env": {"TOKEN": "${env:TOKEN}", "NEW": "y"}, "headers": {}},
        "added": {"command": "new"},
    },
}


def same_json(left: object, right: object) -> bool:
    return json.dumps(left) == json.dumps(right)  # key order included


def test_diff_view_is_the_diff_as_rendered() -> None:
    for old, new in ((OLD, NEW), (None, NEW), (NEW, NEW)):
        diff = diff_configs(old, new)
        assert same_json(diff_view(diff), diff.to_dict())


def test_validation_view_is_the_report_as_rendered() -> None:
    configs: tuple[dict[str, Any], ...] = (OLD, NEW, {"mcpServers": []})
    for config in configs:
        report = validate_config(config)
        assert same_json(validation_view("c", "p", report), {"client": "c", "profile": "p", **report.to_dict()})


def test_server_description_is_the_catalog_entry_as_described() -> None:
    for server in catalog.load_catalog(None).values():
        assert same_json(server_description(server), server.describe())
