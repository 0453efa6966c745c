"""Config validation, the secret rules and masking.

Fake credentials are assembled at run time so that no token-shaped literal sits
in the repository for a secret scanner to trip on.
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mcp_orchestration.app.views import validation_view
from mcp_orchestration.config.masking import mask_secrets
from mcp_orchestration.config.validation import (
    MAX_ARGS,
    MAX_ENV,
    MAX_EXTRA_DEPTH,
    MAX_EXTRA_ITEMS,
    MAX_EXTRA_KEYS,
    MAX_HEADERS,
    MAX_PROBLEMS,
    MAX_SERVERS,
    MAX_STRING_BYTES,
    SHOWN_PROBLEMS,
    ValidationReport,
    require_valid,
    validate_config,
)
from mcp_orchestration.core.errors import LimitError, ValidationError
from mcp_orchestration.security.secret_rules import MASK, find_secret, is_reference, secret_arguments

_BODY = "Zx9Qm2Lr7Tk4Wp8Vn3Bs6Hd1Yc5Fg0JtAe"


def body(length: int, alphabet: str = _BODY) -> str:
    return (alphabet * (length // len(alphabet) + 1))[:length]


GITHUB_TOKEN = "gh" + "p_" + body(36)
FAKE_TOKENS = {
    "a GitHub token": [GITHUB_TOKEN, "gh" + "s_" + body(36), "github" + "_pat_" + body(22) + "_" + body(59)],
    "a GitLab token": ["gl" + "pat-" + body(20)],
    "a Slack token": ["xo" + "xb-123456789012-" + body(24), "xo" + "xp-" + body(30)],
    "an Anthropic API key": ["sk" + "-ant-api03-" + body(40)],
    "an OpenAI API key": ["sk" + "-proj-" + body(48), "sk" + "-" + body(48)],
    "an AWS access key id": ["AK" + "IAQ7ZB4M2XK9WT5RLP", "AS" + "IAQ7ZB4M2XK9WT5RLP"],
    "a Google API key": ["AI" + "za" + body(35)],
    "a Stripe secret key": ["sk" + "_live_" + body(24), "rk" + "_live_" + body(24)],
    "an npm token": ["np" + "m_" + body(36)],
    "a Hugging Face token": ["h" + "f_" + body(34, "AbCdEfGhIjKlMnOpQrStUvWxYz")],
    "a JSON Web Token": ["ey" + "JhbGciOiJIUzI1NiJ9.ey" + "JzdWIiOiIxMjM0NTY3ODkwIn0." + body(43)],
    "a bearer token": ["Bearer " + body(32)],
    "HTTP Basic credentials": ["Basic " + body(24)],
    "a private key": ["-----BEGIN " + "OPENSSH PRIVATE KEY-----\n" + body(70) + "\n-----END OPENSSH PRIVATE KEY-----"],
    "a password in a URL": ["postgresql://admin:" + "hunter2" + "@db.internal:5432/app"],
    "a high-entropy string (a likely key or token)": [
        body(24),
        "023e105f4ecef8ad9ca31a8372d0c353",
        "a1b2c3d4e5f6g7h8i9j0k1l2m3n4",
        body(40, "Zx9/Qm2+Lr7Tk4Wp8Vn3Bs6Hd1Yc5Fg0Jt"),
    ],
}
ALL_FAKE_TOKENS = [(label, token) for label, tokens in FAKE_TOKENS.items() for token in tokens]

ORDINARY_VALUES = [
    "npx",
    "-y",
    "@modelcontextprotocol/server-filesystem",
    "@modelcontextprotocol/server-sequential-thinking",
    "@upstash/context7-mcp@latest",
    "@playwright/mcp@0.0.29",
    "mcp-server-git",
    "mcp_server_time.server:main",
    "ghcr.io/github/github-mcp-server",
    "mcr.microsoft.com/playwright/mcp:v1.52.0",
    "us-central1-docker.pkg.dev/my-gcp-project-123456/mcp-images/github-server",
    "registry.gitlab.com/my-group/my-subgroup/mcp-server-postgres:1.4.2-alpine3.19",
    "ghcr.io/acme/server@sha256:4b825dc642cb6eb9a060e54bf8d69288fbee4904a1b2c3d4e5f6a7b8c9d0e1f2",
    "git+https://github.com/oraios/serena@4b825dc642cb6eb9a060e54bf8d69288fbee4904",
    "/Users/alice/Library/Application Support/Claude/claude_desktop_config.json",
    "C:\\Users\\Alice\\AppData\\Roaming\\Claude\\claude_desktop_config.json",
    "/home/alice/projects/MyProject2024/src/components",
    "/Users/Alice/Projects2024/MyServer/build/index.js",
    "/Users/JohnSmith/Dropbox/Work/ClientProjects/AcmeCorp2023/Deliverables",
    "/Users/alice/.nvm/versions/node/v20.11.1/bin/node",
    "https://api.githubcopilot.com/mcp/",
    "https://mcp.example.com/v1/sse?workspace=team-platform",
    "https://login.microsoftonline.com/common/oauth2/v2.0/authorize",
    "mongodb://localhost:27017/?directConnection=true&serverSelectionTimeoutMS=2000",
    "postgresql://localhost:5432/analytics_production",
    "postgresql://reader@localhost/analytics",
    "123e4567-e89b-12d3-a456-426614174000",
    "123E4567-E89B-12D3-A456-426614174000",
    "claude-3-5-sonnet-20241022",
    "--local-timezone=America/Los_Angeles",
    "--allowed-origins=https://example.com,https://app.example.org",
    "--memory-file-path=/data/knowledge-graph.jsonl",
    "--max-tokens=4096",
    "--password-file=/run/secrets/db_password",
    "GITHUB_TOOLSETS=repos,issues,pull_requests,actions",
    "K8S_CLUSTER_NAME=prod-eu-west-1-cluster-a",
    "THIS_IS_AN_UPPERCASE_ENV_VALUE_2024",
    "SomeVeryLongCamelCaseIdentifierName",
    "ReadOnlyAccessToProductionDatabaseReplica01",
    "arn:aws:iam::123456789012:role/MyApplicationRole2024",
    "ProjectPhoenixRelease20240115",
    "backup20240115archive",
    "2024-01-15T10:30:00Z",
    "en_US.UTF-8",
    "Bearer authentication is required",
    "desk-video-tools-server-for-teams",
    "task-runner-sk-video-processing-toolkit",
    "",
]


def local(**fields: Any) -> dict[str, Any]:
    return {"mcpServers": {"github": {"command": "npx", **fields}}}


def remote(**fields: Any) -> dict[str, Any]:
    return {"mcpServers": {"api": {"url": "https://mcp.example.com/mcp", **fields}}}


def codes(payload: Any) -> list[tuple[str, str]]:
    return [(p.code, p.path) for p in validate_config(payload).problems]


# Valid configs


@pytest.mark.parametrize(
    "payload",
    [
        {"mcpServers": {}},
        {"mcpServers": {"fs": {"command": "npx", "args": ["-y", "@modelcontextprotocol/server-filesystem", "/data"]}}},
        local(args=["run", "-i", "--rm", "-e", "GITHUB_PERSONAL_ACCESS_TOKEN", "ghcr.io/github/github-mcp-server"]),
        local(env={"GITHUB_PERSONAL_ACCESS_TOKEN": "${env:GITHUB_PERSONAL_ACCESS_TOKEN}", "LOG_LEVEL": "debug"}),
        local(env={"TOKEN": "${GITHUB_TOKEN}", "KEY": "${input:api-key}", "EMPTY": ""}),
        local(args=["--token", "${env:API_TOKEN}", "--api-key=${input:key}"]),
        remote(headers={"Authorization": "Bearer ${env:API_TOKEN}", "X-Team": "platform"}),
        {"mcpServers": {"dev": {"url": "http://localhost:8080/mcp"}}},
        {"mcpServers": {"dev": {"url": "http://127.0.0.1:8080/mcp"}}},
        {"mcpServers": {"dev": {"url": "http://[::1]:8080/mcp"}}},
        {"mcpServers": {"a.b_c-9": {"command": "uvx", "args": ["mcp-server-time"]}}, "$schema": "https://x.dev/s"},
        {"mcpServers": {}, "settings": {"theme": "dark", "retries": [1, 2, 3], "nested": {"ok": True, "n": None}}},
    ],
)
def test_well_formed_configs_have_no_problems(payload: dict[str, Any]) -> None:
    report = validate_config(payload)
    assert report.problems == ()
    assert report.ok
    require_valid(payload)


# Shape


@pytest.mark.parametrize("payload", [[], None, "config", 3, [{"mcpServers": {}}]])
def test_a_payload_that_is_not_an_object_is_a_shape_problem(payload: Any) -> None:
    assert codes(payload) == [("shape", "")]


@pytest.mark.parametrize(
    ("payload", "expected"),
    [
        ({}, [("shape", "/mcpServers")]),
        ({"mcpServers": []}, [("shape", "/mcpServers")]),
        ({"mcpServers": {"x": "npx"}}, [("shape", "/mcpServers/x")]),
        ({"mcpServers": {"x": {}}}, [("shape", "/mcpServers/x")]),
        ({"mcpServers": {"x": {"command": "npx", "url": "https://a.example"}}}, [("shape", "/mcpServers/x")]),
        (local(cwd="/tmp"), [("shape", "/mcpServers/github/cwd")]),
        (local(headers={}), [("shape", "/mcpServers/github/headers")]),
        (remote(args=[]), [("shape", "/mcpServers/api/args")]),
        ({"mcpServers": {"x": {"type": "stdio"}}}, [("shape", "/mcpServers/x"), ("shape", "/mcpServers/x/type")]),
        (local(command=["npx"]), [("shape", "/mcpServers/github/command")]),
        (local(command=""), [("shape", "/mcpServers/github/command")]),
        (local(command="   "), [("shape", "/mcpServers/github/command")]),
        (local(command="np\x00x"), [("shape", "/mcpServers/github/command")]),
        (local(args="-y pkg"), [("shape", "/mcpServers/github/args")]),
        (local(args=["-y", 3]), [("shape", "/mcpServers/github/args/1")]),
        (local(args=["a\x00b"]), [("shape", "/mcpServers/github/args/0")]),
        (local(env=["A=b"]), [("shape", "/mcpServers/github/env")]),
        (local(env={"PORT": 8080}), [("shape", "/mcpServers/github/env/PORT")]),
        (local(env={"A": None}), [("shape", "/mcpServers/github/env/A")]),
        (remote(headers={"X-Team": "a\r\nInjected: 1"}), [("shape", "/mcpServers/api/headers/X-Team")]),
        (remote(url=None), [("shape", "/mcpServers/api/url")]),
        (local(args=["\ud800"]), [("shape", "/mcpServers/github/args/0")]),
    ],
)
def test_shape_problems_are_reported_at_their_path(payload: Any, expected: list[tuple[str, str]]) -> None:
    assert codes(payload) == expected


def test_keys_that_are_not_strings_are_shape_problems() -> None:
    payload = {"mcpServers": {1: {"command": "npx"}, "x": {"command": "npx", "env": {2: "v"}}}, "k": {3: "v"}}
    assert codes(payload) == [("shape", "/mcpServers/1"), ("shape", "/mcpServers/x/env/2"), ("shape", "/k/3")]


def test_a_server_with_both_transports_gets_both_sets_of_fields_checked() -> None:
    payload = {"mcpServers": {"x": {"command": "", "url": "ftp://a"}}}
    assert codes(payload) == [
        ("shape", "/mcpServers/x"),
        ("shape", "/mcpServers/x/command"),
        ("url", "/mcpServers/x/url"),
    ]


def test_unknown_fields_name_the_fields_the_transport_allows() -> None:
    (local_problem,) = validate_config(local(disabled=True)).problems
    (remote_problem,) = validate_config(remote(env={})).problems
    assert "local server" in local_problem.message and "command, args, env" in local_problem.message
    assert "remote server" in remote_problem.message and "url, headers" in remote_problem.message


# Names


@pytest.mark.parametrize("name", ["", "-x", ".x", "_x", "a/b", "a b", "caf\u00e9", "x" * 65, "a\x00"])
def test_server_names_outside_the_pattern_are_name_problems(name: str) -> None:
    assert [code for code, _ in codes({"mcpServers": {name: {"command": "npx"}}})] == ["name"]


@pytest.mark.parametrize("name", ["github", "GitHub", "a", "x" * 64, "team.prod_2-b", "9lives"])
def test_server_names_inside_the_pattern_pass(name: str) -> None:
    assert codes({"mcpServers": {name: {"command": "npx"}}}) == []


@pytest.mark.parametrize("name", ["1ABC", "A-B", "A B", "A=B", "", "Ä", "X" * 129])
def test_env_names_must_be_portable_variable_names(name: str) -> None:
    assert [code for code, _ in codes(local(env={name: "v"}))] == ["name"]


@pytest.mark.parametrize("name", ["X Team", "X:Team", "", "X\nTeam", "Ä"])
def test_header_names_must_be_http_tokens(name: str) -> None:
    assert [code for code, _ in codes(remote(headers={name: "v"}))] == ["name"]


def test_paths_escape_slash_and_tilde_as_json_pointer_segments() -> None:
    paths = [path for _, path in codes(local(env={"A/B~C": "v"}))]
    assert paths == ["/mcpServers/github/env/A~1B~0C"]


def test_paths_shorten_long_keys_and_escape_control_characters() -> None:
    (problem,) = validate_config({"mcpServers": {"\x1b[31m" + "y" * 500: {"command": "npx"}}}).problems
    assert "\x1b" not in problem.path
    assert "y" * 100 not in problem.path
    assert problem.path.endswith("...")


def test_a_key_that_looks_like_a_secret_is_reported_and_masked_in_the_path() -> None:
    problems = validate_config(local(env={GITHUB_TOKEN: "v"})).problems
    assert [(p.code, p.path) for p in problems] == [("secret", "/mcpServers/github/env/***")]
    assert GITHUB_TOKEN not in json.dumps([dataclasses.asdict(p) for p in problems])


# URLs


@pytest.mark.parametrize(
    "url",
    [
        "http://example.com/mcp",
        "http://10.0.0.5/mcp",
        "http://localhost.evil.example/mcp",
        "ftp://example.com/mcp",
        "ws://localhost/mcp",
        "file:///etc/passwd",
        "https://",
        "example.com/mcp",
        "https://exa mple.com",
        "https://example.com:99999/mcp",
        "https://[::1/mcp",
        "https://example.com/\x07",
    ],
)
def test_urls_must_be_https_or_http_to_localhost(url: str) -> None:
    assert codes(remote(url=url)) == [("url", "/mcpServers/api/url")]


@pytest.mark.parametrize("url", ["https://mcp.example.com", "HTTPS://MCP.EXAMPLE.COM/x", "http://127.0.0.2:3000"])
def test_https_and_local_http_urls_pass(url: str) -> None:
    assert codes(remote(url=url)) == []


# Limits


@pytest.mark.parametrize(
    ("payload", "path"),
    [
        ({"mcpServers": {f"s{i}": {"command": "npx"} for i in range(MAX_SERVERS + 1)}}, "/mcpServers"),
        (local(args=["a"] * (MAX_ARGS + 1)), "/mcpServers/github/args"),
        (local(env={f"V{i}": "v" for i in range(MAX_ENV + 1)}), "/mcpServers/github/env"),
        (remote(headers={f"X-{i}": "v" for i in range(MAX_HEADERS + 1)}), "/mcpServers/api/headers"),
        (local(command="x" * (MAX_STRING_BYTES + 1)), "/mcpServers/github/command"),
        (local(args=["\u00e9" * (MAX_STRING_BYTES // 2 + 1)]), "/mcpServers/github/args/0"),
        ({"mcpServers": {}, **{f"k{i}": 1 for i in range(MAX_EXTRA_KEYS + 1)}}, ""),
        ({"mcpServers": {}, "extra": list(range(MAX_EXTRA_ITEMS + 1))}, "/extra"),
    ],
)
def test_limits_are_limit_problems_and_raise_limit_errors(payload: dict[str, Any], path: str) -> None:
    assert codes(payload) == [("limit", path)]
    with pytest.raises(LimitError) as caught:
        require_valid(payload)
    assert caught.value.code == "limit"


def test_strings_at_the_limit_pass() -> None:
    assert codes(local(args=["x" * MAX_STRING_BYTES])) == []


def test_extra_values_nested_too_deeply_are_a_limit_problem() -> None:
    deep: Any = "leaf"
    for _ in range(MAX_EXTRA_DEPTH + 5):
        deep = [deep]
    problems = codes({"mcpServers": {}, "extra": deep})
    assert [code for code, _ in problems] == ["limit"]
    assert problems[0][1] == "/extra" + "/0" * MAX_EXTRA_DEPTH


def test_entries_past_a_limit_are_not_checked() -> None:
    args = ["ok"] * MAX_ARGS + [GITHUB_TOKEN]
    assert codes(local(args=args)) == [("limit", "/mcpServers/github/args")]


def test_a_report_keeps_the_first_problems_and_counts_the_rest() -> None:
    servers = {f"s{i}": {"command": "", "args": [1, 2]} for i in range(MAX_SERVERS)}
    report = validate_config({"mcpServers": servers})
    assert len(report.problems) == MAX_PROBLEMS
    assert report.omitted == 3 * MAX_SERVERS - MAX_PROBLEMS
    assert not report.ok


# Secrets


@pytest.mark.parametrize(("label", "token"), ALL_FAKE_TOKENS)
def test_each_secret_rule_flags_its_tokens(label: str, token: str) -> None:
    assert find_secret(token) == label


@pytest.mark.parametrize(("label", "token"), ALL_FAKE_TOKENS)
def test_secrets_are_refused_in_env_headers_args_command_and_url(label: str, token: str) -> None:
    for payload, path in [
        (local(env={"API": token}), "/mcpServers/github/env/API"),
        (remote(headers={"X-Custom": token}), "/mcpServers/api/headers/X-Custom"),
        (local(args=["--x", token]), "/mcpServers/github/args/1"),
        (local(command=token), "/mcpServers/github/command"),
        ({"mcpServers": {}, "meta": {"notes": [token]}}, "/meta/notes/0"),
    ]:
        problems = [p for p in validate_config(payload).problems if p.code == "secret"]  # a PEM is also multi-line
        assert [p.path for p in problems] == [path], label
        assert label in problems[0].message


def test_tokens_embedded_in_arguments_are_found() -> None:
    for arg in [f"--token={GITHUB_TOKEN}", f"GITHUB_TOKEN={GITHUB_TOKEN}", f"https://x:{GITHUB_TOKEN}@github.com/"]:
        assert codes(local(args=[arg])) == [("secret", "/mcpServers/github/args/0")]


def test_a_secret_url_is_refused_even_when_its_transport_is_fine() -> None:
    url = "https://user:" + body(12) + "@mcp.example.com/mcp"
    assert codes(remote(url=url)) == [("secret", "/mcpServers/api/url")]


@pytest.mark.parametrize("value", ORDINARY_VALUES)
def test_ordinary_values_are_not_secrets(value: str) -> None:
    assert find_secret(value) is None
    assert codes(local(args=[value], env={"SETTING": value})) == []


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("DB_PASSWORD", "hunter2hunter2"),
        ("GITHUB_PAT", "not-so-random-value"),
        ("ApiKey", "changeme-please"),
        ("client.secret", "my client secret"),
        ("Authorization", "Token somethingliteral"),
        ("X-Api-Key", "literal-key-value"),
        ("Cookie", "session=abcdefgh"),
    ],
)
def test_a_literal_under_a_credential_name_is_a_secret(name: str, value: str) -> None:
    assert find_secret(value, name) == "a credential (its name marks it as one)"


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("DB_PASSWORD", "short"),
        ("DB_PASSWORD", "${env:DB_PASSWORD}"),
        ("Authorization", "Bearer ${input:token}"),
        ("PRIVATE_KEY", "/run/secrets/private_key"),
        ("SSH_KEY", "~/.ssh/id_ed25519"),
        ("MAX_TOKENS", "100000000"),
        ("PASSWORD_FILE", "/run/secrets/db_password_file"),
        ("TOKEN_URL", "https://auth.example.com/oauth/token"),
        ("CLOUDFLARE_ACCOUNT_ID", "023e105f4ecef8ad9ca31a8372d0c353"),
        ("NOTION_DATABASE_ID", "a1b2c3d4e5f6a7b8c9d0e1f2a3b4c5d6"),
    ],
)
def test_references_short_literals_paths_and_identifiers_are_not_secrets(name: str, value: str) -> None:
    assert find_secret(value, name) is None


def test_a_flag_names_the_argument_after_it() -> None:
    args = ["--api-key", "literal-key-value", "--verbose", "--password", "--token", "${env:T}", "--name", "plain-value"]
    assert secret_arguments(args) == {1: "a credential (its name marks it as one)"}
    assert codes(local(args=args)) == [("secret", "/mcpServers/github/args/1")]


def test_a_prefix_only_counts_at_the_start_of_a_token() -> None:
    assert find_secret("mask-" + body(30).lower()) is None
    assert find_secret("xghp_" + body(36)) is not None  # still random, caught by entropy instead
    assert find_secret("xghp_" + body(36)) != "a GitHub token"


@pytest.mark.parametrize(
    "value",
    ["${env:GITHUB_TOKEN}", "${GITHUB_TOKEN}", "${input:github-token}", "Bearer ${env:T}", "${env:U}:${env:P}"],
)
def test_placeholders_are_references(value: str) -> None:
    assert is_reference(value)
    assert find_secret(value, "TOKEN") is None


@pytest.mark.parametrize("value", ["", "plain", "${env:T}-suffix", "${env:1BAD}", "$env:T", "${env:T", "Bearer x"])
def test_other_values_are_not_references(value: str) -> None:
    assert not is_reference(value)


def test_a_placeholder_does_not_hide_a_secret_next_to_it() -> None:
    assert find_secret("${env:X} " + GITHUB_TOKEN) == "a GitHub token"


def test_the_secret_message_explains_how_to_reference_the_value_and_never_echoes_it() -> None:
    (env_problem,) = validate_config(local(env={"GITHUB_PERSONAL_ACCESS_TOKEN": GITHUB_TOKEN})).problems
    assert "${env:GITHUB_PERSONAL_ACCESS_TOKEN}" in env_problem.message
    assert "Docker secret" in env_problem.message
    (arg_problem,) = validate_config(local(args=[GITHUB_TOKEN])).problems
    assert "${env:GITHUB_TOKEN}" in arg_problem.message
    for problem in (env_problem, arg_problem):
        assert GITHUB_TOKEN not in problem.message
        assert GITHUB_TOKEN[4:20] not in problem.message


# require_valid


def test_require_valid_lists_problems_with_paths_and_explains_secrets() -> None:
    payload = local(env={"GITHUB_PERSONAL_ACCESS_TOKEN": GITHUB_TOKEN}, args=[3])
    with pytest.raises(ValidationError) as caught:
        require_valid(payload)
    error = caught.value
    assert not isinstance(error, LimitError)
    assert error.code == "validation"
    assert error.message.startswith("The config has 2 problems:")
    assert "/mcpServers/github/args/0" in error.message
    assert "/mcpServers/github/env/GITHUB_PERSONAL_ACCESS_TOKEN" in error.message
    assert "${env:GITHUB_PERSONAL_ACCESS_TOKEN}" in error.hint
    assert GITHUB_TOKEN not in error.diagnostics()
    assert GITHUB_TOKEN not in json.dumps(error.to_dict())


def test_require_valid_shows_a_bounded_number_of_problems() -> None:
    payload = local(args=list(range(MAX_ARGS)))
    with pytest.raises(ValidationError) as caught:
        require_valid(payload)
    lines = caught.value.message.splitlines()
    assert lines[0] == f"The config has {MAX_ARGS} problems:"
    assert len(lines) == 1 + SHOWN_PROBLEMS + 1
    assert lines[-1] == f"- and {MAX_ARGS - SHOWN_PROBLEMS} more."
    assert caught.value.hint == ""


def test_require_valid_names_a_top_level_problem_and_uses_the_singular() -> None:
    with pytest.raises(ValidationError) as caught:
        require_valid([])  # type: ignore[arg-type]
    assert caught.value.message.splitlines() == [
        "The config has 1 problem:",
        '- (top level): The config must be a JSON object such as {"mcpServers": {...}}.',
    ]


def test_a_limit_wins_over_other_problems_because_the_check_was_partial() -> None:
    payload = local(args=["a"] * (MAX_ARGS + 1), env={"T": GITHUB_TOKEN})
    with pytest.raises(LimitError) as caught:
        require_valid(payload)
    assert "${env:" in caught.value.hint


def test_reports_and_problems_are_frozen_and_serialisable() -> None:
    report = validate_config(local(args=[1]))
    assert validation_view("c", "p", report) == {
        "client": "c",
        "profile": "p",
        "ok": False,
        "problems": [{"code": "shape", "path": "/mcpServers/github/args/0", "message": "Each arg must be a string."}],
        "omitted": 0,
        "warnings": [],
    }
    with pytest.raises(AttributeError):
        report.problems[0].code = "name"  # type: ignore[misc]
    assert ValidationReport(()).ok


# mask_secrets


def test_masking_hides_every_literal_env_and_header_value_but_keeps_references() -> None:
    payload = {
        "mcpServers": {
            "gh": {
                "command": "npx",
                "args": ["-y", "@modelcontextprotocol/server-github"],
                "env": {"A": "plain", "B": "${env:B}", "C": "", "D": 5, "E": GITHUB_TOKEN},
            },
            "api": {"url": "https://mcp.example.com", "headers": {"Authorization": "Bearer ${env:T}", "X-Team": "p"}},
        }
    }
    masked = mask_secrets(payload)
    assert masked["mcpServers"]["gh"]["env"] == {"A": MASK, "B": "${env:B}", "C": "", "D": MASK, "E": MASK}
    assert masked["mcpServers"]["gh"]["args"] == ["-y", "@modelcontextprotocol/server-github"]
    assert masked["mcpServers"]["api"]["headers"] == {"Authorization": "Bearer ${env:T}", "X-Team": MASK}
    assert masked["mcpServers"]["api"]["url"] == "https://mcp.example.com"


def test_masking_hides_flagged_arguments_commands_urls_and_extra_values() -> None:
    password_url = "https://u:" + body(12) + "@h.example"
    payload = {
        "mcpServers": {
            "gh": {"command": GITHUB_TOKEN, "args": ["--token", "literal-token-value", f"--key={GITHUB_TOKEN}", "ok"]},
            "api": {"url": password_url},
        },
        "notes": {"apiToken": "literal-token-value", "list": [GITHUB_TOKEN, 1, None, True]},
    }
    masked = mask_secrets(payload)
    assert masked["mcpServers"]["gh"] == {"command": MASK, "args": ["--token", MASK, MASK, "ok"]}
    assert masked["mcpServers"]["api"] == {"url": MASK}
    assert masked["notes"] == {"apiToken": MASK, "list": [MASK, 1, None, True]}


def test_masking_copies_and_never_modifies_its_input() -> None:
    payload = local(env={"T": GITHUB_TOKEN}, args=[GITHUB_TOKEN])
    before = json.dumps(payload)
    masked = mask_secrets(payload)
    assert json.dumps(payload) == before
    masked["mcpServers"]["github"]["args"].append("x")
    assert payload["mcpServers"]["github"]["args"] == [GITHUB_TOKEN]


def test_masking_tolerates_malformed_configs() -> None:
    payloads: list[dict[str, Any]] = [
        {"mcpServers": []},
        {"mcpServers": {"x": 1}},
        {"mcpServers": {"x": {"env": [GITHUB_TOKEN]}}},
    ]
    for payload in payloads:
        assert GITHUB_TOKEN not in json.dumps(mask_secrets(payload))


def test_masking_replaces_absurdly_deep_values_whole() -> None:
    deep: Any = GITHUB_TOKEN
    for _ in range(500):
        deep = {"k": deep}
    assert GITHUB_TOKEN not in json.dumps(mask_secrets({"deep": deep}))


# Properties

_SAFE_INT = st.integers(min_value=-(2**53) + 1, max_value=2**53 - 1)
_TEXT = st.text(st.characters(codec="utf-8"), max_size=30)
_JSON = st.recursive(
    st.none() | st.booleans() | _SAFE_INT | st.floats(allow_nan=False, allow_infinity=False) | _TEXT,
    lambda children: st.lists(children, max_size=5) | st.dictionaries(_TEXT, children, max_size=5),
    max_leaves=30,
)
_SECRETISH = st.one_of(
    st.sampled_from([token for _, token in ALL_FAKE_TOKENS]),
    st.sampled_from(ORDINARY_VALUES),
    st.sampled_from(["${env:A}", "Bearer ${env:A}", "--token", "--api-key", "-e", "A=b"]),
    st.builds(lambda a, b: a + b, st.sampled_from(["--token=", "Bearer ", "X=", "", "x "]), _TEXT),
    st.text(st.sampled_from("abcXYZ0129+/_-=:. $"), min_size=15, max_size=60),
    _TEXT,
)
_NAME = st.sampled_from(["TOKEN", "API_KEY", "X-Api-Key", "Authorization", "LOG_LEVEL", "HOME", "USER_ID"])
_SERVER = st.fixed_dictionaries(
    {"command": _SECRETISH},
    optional={"args": st.lists(_SECRETISH, max_size=6), "env": st.dictionaries(_NAME, _SECRETISH, max_size=4)},
) | st.fixed_dictionaries({"url": _SECRETISH}, optional={"headers": st.dictionaries(_NAME, _SECRETISH, max_size=4)})
_CONFIGS = st.fixed_dictionaries(
    {"mcpServers": st.dictionaries(st.sampled_from(["a", "b", "github"]), _SERVER, max_size=3)},
    optional={"notes": st.dictionaries(_NAME, _SECRETISH | st.lists(_SECRETISH, max_size=3), max_size=3)},
)


@settings(max_examples=500, deadline=None)
@given(payload=_JSON | st.dictionaries(_TEXT, _JSON, max_size=5) | _CONFIGS)
def test_validation_answers_any_json_with_a_report(payload: Any) -> None:
    report = validate_config(payload)
    assert isinstance(report, ValidationReport)
    assert report.ok == (report.problems == ())
    json.dumps(validation_view("c", "p", report))


@settings(max_examples=500, deadline=None)
@given(payload=_CONFIGS)
def test_a_masked_config_has_no_secret_problems(payload: dict[str, Any]) -> None:
    masked = mask_secrets(payload)
    assert [p for p in validate_config(masked).problems if p.code == "secret"] == []


@settings(max_examples=500, deadline=None)
@given(payload=st.dictionaries(_TEXT, _JSON, max_size=5) | _CONFIGS)
def test_masking_leaves_no_string_that_a_secret_rule_flags(payload: dict[str, Any]) -> None:
    masked = mask_secrets(payload)
    _assert_unflagged(masked, None)
    servers = masked.get("mcpServers")
    for server in servers.values() if isinstance(servers, dict) else ():
        if isinstance(server, dict) and isinstance(server.get("args"), list):
            assert secret_arguments(server["args"]) == {}


def _assert_unflagged(value: Any, name: str | None) -> None:
    """Each string judged the way validation judges it: under the key that holds it."""
    if isinstance(value, str):
        assert find_secret(value, name) is None
    elif isinstance(value, dict):
        for key, item in value.items():
            _assert_unflagged(item, key)
    elif isinstance(value, list):
        for item in value:
            _assert_unflagged(item, None)
