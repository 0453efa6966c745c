"""The typed config model: payloads become typed servers and back, unchanged; bad shapes are refused."""

from __future__ import annotations

from typing import Any

import pytest

from mcp_orchestration.config.model import NEUTRAL_FIELDS, HttpServer, McpConfig, StdioServer, server_entry
from mcp_orchestration.config.validation import parse_config
from mcp_orchestration.core.errors import LimitError, ValidationError

PAYLOAD: dict[str, Any] = {
    "mcpServers": {
        "memory": {"command": "npx", "args": ["-y", "@modelcontextprotocol/server-memory"], "env": {"A": "${env:A}"}},
        "minimal": {"command": "uvx"},
        "remote": {"url": "https://mcp.example.com/mcp", "headers": {"Authorization": "Bearer ${env:TOKEN}"}},
    },
    "theme": {"dark": True},
}


def test_a_payload_becomes_typed_servers() -> None:
    config = McpConfig.from_payload(PAYLOAD)
    assert config.servers["memory"] == StdioServer(
        "npx", ("-y", "@modelcontextprotocol/server-memory"), {"A": "${env:A}"}
    )
    assert config.servers["minimal"] == StdioServer("uvx")
    assert isinstance(config.servers["remote"], HttpServer)
    assert config.extra == {"theme": {"dark": True}}


def test_a_payload_round_trips_unchanged_with_absent_fields_left_absent() -> None:
    config = McpConfig.from_payload(PAYLOAD)
    assert {name: server_entry(server) for name, server in config.servers.items()} == PAYLOAD["mcpServers"]
    assert config.extra == {key: value for key, value in PAYLOAD.items() if key != "mcpServers"}


def test_the_typed_config_does_not_alias_the_payload() -> None:
    payload: dict[str, Any] = {"mcpServers": {"s": {"command": "npx", "args": ["a"], "env": {"A": "1"}}}}
    config = McpConfig.from_payload(payload)
    payload["mcpServers"]["s"]["args"].append("--evil")
    payload["mcpServers"]["s"]["env"]["B"] = "2"
    assert server_entry(config.servers["s"]) == {"command": "npx", "args": ["a"], "env": {"A": "1"}}


def test_each_transports_fields_are_the_models_fields() -> None:
    assert NEUTRAL_FIELDS == {"stdio": ("command", "args", "env"), "http": ("url", "headers")}


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        ([], "must be a JSON object"),
        ({"mcpServers": []}, "not an object of servers"),
        ({"mcpServers": {"../x": {"command": "npx"}}}, "server names are"),
        ({"mcpServers": {"s": {"command": "npx", "url": "https://x.test"}}}, "exactly one of"),
        ({"mcpServers": {"s": {"url": "https://x.test", "env": {}}}}, "cannot carry"),
    ],
)
def test_a_payload_without_the_neutral_shape_is_refused(payload: object, message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        McpConfig.from_payload(payload)


def test_parse_config_applies_every_publishing_rule() -> None:
    assert parse_config(PAYLOAD) == McpConfig.from_payload(PAYLOAD)
    with pytest.raises(ValidationError) as caught:
        parse_config(
            {"mcpServers": {"s": {"command": "npx", "env": {"T": "ghp_" + "a1B2c3D4e5F6g7H8i9J0k1L2m3N4o5P6q7R8"}}}}
        )
    assert caught.value.code == "validation"
    with pytest.raises(LimitError):
        parse_config({"mcpServers": {f"s{n}": {"command": "npx"} for n in range(101)}})
