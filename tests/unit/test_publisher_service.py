"""The publisher as a service, read without an engine: compose's `http` profile and the swarm stack.

Both run what the CLI accepts (`serve --http` with one way in, the token from a secret
file), check their health over HTTP with the CLI (the image has no curl), and hold no
secret in their environment; the stack keeps exactly one replica, updated stop-first.
The container tests (`tests/container/test_compose.py`, `test_swarm_stack.py`) run them.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

from mcp_orchestration import cli

ROOT = Path(__file__).resolve().parents[2]
STACK_FILE = ROOT / "deploy" / "swarm" / "publisher.stack.yml"
COMPOSE_FILE = ROOT / "compose.secrets.yml"
NONROOT = "65532"
_VARIABLE = re.compile(r"\$\{(\w+):-([^}]*)\}")


def with_defaults(value: Any) -> Any:
    """The file as deployed with no variable set: each ``${NAME:-default}`` is its default."""
    if isinstance(value, str):
        return _VARIABLE.sub(lambda match: match.group(2), value)
    if isinstance(value, list):
        return [with_defaults(item) for item in value]
    if isinstance(value, dict):
        return {key: with_defaults(item) for key, item in value.items()}
    return value


def load(path: Path) -> dict[str, Any]:
    data: dict[str, Any] = with_defaults(yaml.safe_load(path.read_text()))
    return data


def check_serve_command(service: dict[str, Any]) -> None:
    """`serve --http` on every address of the container, with the static token from its secret file."""
    args = cli.build_parser().parse_args([str(word) for word in service["command"]])
    assert (args.http, args.resource) == ("0.0.0.0:8080", "http://127.0.0.1:8080/mcp")
    assert args.token_file == Path("/run/secrets/http_token")
    assert not (args.issuer or args.no_auth)
    assert service["healthcheck"]["test"] == [
        "CMD", "/venv/bin/mcp-orchestration", "healthcheck", "--http", "http://127.0.0.1:8080/healthz",
    ]  # fmt: skip
    health = cli.build_parser().parse_args(service["healthcheck"]["test"][2:])
    assert health.http == "http://127.0.0.1:8080/healthz"
    assert "environment" not in service


def test_the_stack_runs_one_hardened_replica_updated_stop_first() -> None:
    stack = load(STACK_FILE)
    publisher = stack["services"]["publisher"]
    check_serve_command(publisher)
    assert publisher["user"] == f"{NONROOT}:{NONROOT}"
    assert (publisher["read_only"], publisher["cap_drop"], publisher["init"]) == (True, ["ALL"], True)
    deploy = publisher["deploy"]
    assert (deploy["mode"], deploy["replicas"]) == ("replicated", 1)
    assert deploy["placement"]["constraints"] == ["node.labels.mcp-orchestration.store == true"]
    assert deploy["update_config"]["order"] == "stop-first" and deploy["update_config"]["parallelism"] == 1
    assert deploy["rollback_config"]["order"] == "stop-first"
    assert deploy["restart_policy"]["condition"] == "any"
    assert deploy["resources"]["limits"]["memory"] and deploy["resources"]["limits"]["cpus"]
    assert publisher["ports"] == [{"target": "8080", "published": "8080", "protocol": "tcp", "mode": "host"}]
    assert {volume["target"]: volume["type"] for volume in publisher["volumes"]} == {
        "/var/lib/mcp-orchestration": "volume",
        "/tmp": "tmpfs",
    }
    for secret in publisher["secrets"]:
        assert (secret["uid"], secret["gid"], secret["mode"]) == (NONROOT, NONROOT, 0o400), secret
    assert {secret["source"]: secret["target"] for secret in publisher["secrets"]} == {
        "signing_key": "signing_key",
        "http_token": "http_token",
    }
    # Versioned, external secrets: a rotation adds signing_key_v2, it never edits one in place.
    assert stack["secrets"] == {
        "signing_key": {"external": True, "name": "signing_key_v1"},
        "http_token": {"external": True, "name": "http_token_v1"},
    }
    assert stack["volumes"]["store"]["name"] == "mcp-orchestration-data"
    assert "security_opt" not in publisher  # swarm ignores it on Docker 20.10: no promise the stack cannot keep


def test_the_compose_publisher_publishes_one_port_on_loopback_with_its_token_as_a_file_secret() -> None:
    compose = load(COMPOSE_FILE)
    publisher = compose["services"]["publisher"]
    check_serve_command(publisher)
    assert publisher["profiles"] == ["http"]
    assert publisher["ports"] == ["127.0.0.1:8080:8080"]
    assert publisher["networks"] == ["http"] and "network_mode" not in publisher
    assert compose["networks"]["http"] == {"driver": "bridge"}
    assert publisher["secrets"] == ["signing_key", "http_token"]
    assert compose["secrets"]["http_token"] == {"file": "./secrets/http_token"}
    # The stdio services' hardening, from the same anchor.
    assert (publisher["read_only"], publisher["cap_drop"], publisher["init"]) == (True, ["ALL"], True)
    assert publisher["security_opt"] == ["no-new-privileges:true"] and publisher["user"] == f"{NONROOT}:{NONROOT}"
    assert compose["services"]["mcp-orchestration"]["network_mode"] == "none"
