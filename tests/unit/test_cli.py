from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest

from mcp_orchestration.core.errors import ExitCode
from tests.conftest import PASSPHRASE, SAMPLE_CONFIG, Result, Run

PUBLISH = ("publish", "--client", "claude-desktop", "--profile", "default")


def test_version_is_available_everywhere(run: Run) -> None:
    for argv in (["--version"], ["keys", "rotate", "--version"], ["verify", "--version"]):
        with pytest.raises(SystemExit) as done:
            run(*argv)
        assert done.value.code == 0


def test_init_prints_the_root_fingerprint_and_honours_expect_key(run: Run, key_file: Path) -> None:
    fingerprint = run("keys", "fingerprint", "--key-file", str(key_file)).stdout.strip()
    wrong = "SHA256:" + "0" * 64
    refused = run("init", "--key-file", str(key_file), "--expect-key", wrong)
    assert refused.status == ExitCode.KEY
    assert "key_untrusted" in refused.stderr
    assert not (Path(os.environ["MCP_ORCHESTRATION_HOME"]) / "storage" / "keys").exists()
    done = run("init", "--key-file", str(key_file), "--expect-key", fingerprint)
    assert done.status == 0
    assert fingerprint in done.stdout
    again = run("init", "--key-file", str(key_file), "--json")
    assert json.loads(again.stdout)["created"] is False


def test_publish_get_history_verify_and_export(run: Run, initialised: Path, key_file: Path, config_file: Path) -> None:
    published = run(*PUBLISH, "--file", str(config_file), "--key-file", str(key_file), "--changelog", "first", "--json")
    assert published.status == 0, published.stderr
    artifact = json.loads(published.stdout)["artifact"]
    got = run("get", "--client", "claude-desktop", "--profile", "default", "--json")
    assert json.loads(got.stdout)["config"] == SAMPLE_CONFIG
    assert json.loads(run("get", "--client", "claude-desktop", "--profile", "default").stdout) == SAMPLE_CONFIG
    history = run("history", "--client", "claude-desktop", "--profile", "default")
    assert artifact in history.stdout and "first" in history.stdout
    verified = run("verify", "--deep", "--json")
    assert json.loads(verified.stdout)["index_version"] == 2
    envelope = json.loads(run("index", "export").stdout)
    assert envelope["payloadType"] == "application/vnd.mcp-orchestration.index+json"
    assert "BEGIN PUBLIC KEY" in run("keys", "export-public").stdout


def test_publish_reads_stdin(run: Run, initialised: Path, key_file: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import io
    import sys

    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(json.dumps(SAMPLE_CONFIG).encode())))
    assert run(*PUBLISH, "--file", "-", "--key-file", str(key_file)).status == 0


@pytest.mark.parametrize(
    ("content", "code"),
    [
        (b"{not json", "validation"),
        (b"[1, 2]", "validation"),
        (b'{"a": 1, "a": 2}', "validation"),
        (b'{"a": NaN}', "validation"),
        (b'{"a": "' + b"x" * 300_000 + b'"}', "limit"),
        (b'{"a": 1' + b"0" * 5000 + b"}", "validation"),
        (b'{"a": 123456789012345678901234567890}', "validation"),
        (b'{"a": "\\ud800"}', "validation"),
    ],
)
def test_bad_payloads_are_usage_errors_and_store_nothing(
    run: Run, initialised: Path, key_file: Path, tmp_path: Path, content: bytes, code: str
) -> None:
    path = tmp_path / "bad.json"
    path.write_bytes(content)
    result = run(*PUBLISH, "--file", str(path), "--key-file", str(key_file), "--json")
    assert result.status == ExitCode.USAGE
    assert json.loads(result.stderr)["error"]["code"] == code
    assert "123456789012345678901234567890" not in result.stderr
    assert json.loads(run("verify", "--json").stdout)["index_version"] == 1


@pytest.mark.parametrize("bad", ["../etc", "/abs", "a\x00b", "Claude", "caf\u00e9"])
def test_invalid_ids_are_refused_before_touching_the_store(
    run: Run, initialised: Path, key_file: Path, config_file: Path, bad: str
) -> None:
    result = run("publish", "--client", bad, "--profile", "p", "--file", str(config_file), "--key-file", str(key_file))
    assert result.status == ExitCode.USAGE
    assert result.stderr.startswith("error [invalid_id]")
    assert run("get", "--client", "c", "--profile", bad).status == ExitCode.USAGE


def test_errors_are_one_paragraph_without_traceback(run: Run, initialised: Path) -> None:
    result = run("get", "--client", "cursor", "--profile", "default")
    assert result.status == ExitCode.NOT_FOUND
    assert "Traceback" not in result.stderr
    assert result.stderr.startswith("error [not_found]")
    assert result.stdout == ""


def test_debug_shows_a_traceback_on_stderr(run: Run, initialised: Path) -> None:
    result = run("get", "--client", "cursor", "--profile", "default", "--debug")
    assert result.status == ExitCode.NOT_FOUND
    assert "Traceback" in result.stderr


def test_uninitialised_store_exit_code(run: Run) -> None:
    result = run("verify")
    assert result.status == ExitCode.NOT_FOUND
    assert "mcp-orchestration init" in result.stderr


def test_write_without_a_key_is_key_unavailable(run: Run, initialised: Path, config_file: Path) -> None:
    result = run(*PUBLISH, "--file", str(config_file))
    assert result.status == ExitCode.KEY
    assert "key_unavailable" in result.stderr


def test_plain_env_key_is_refused_with_the_file_form(run: Run, monkeypatch: pytest.MonkeyPatch, key_file: Path) -> None:
    monkeypatch.setenv("MCP_ORCHESTRATION_SIGNING_KEY", key_file.read_text())
    result = run("verify")
    assert result.status == ExitCode.KEY
    assert "MCP_ORCHESTRATION_SIGNING_KEY_FILE" in result.stderr
    assert key_file.read_text().splitlines()[1] not in result.stderr


@pytest.mark.parametrize("argv", [("keys", "generate", "--out", "new.pem"), ("serve",), ("keys", "list")])
def test_plain_env_key_stops_every_command(
    run: Run, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, argv: tuple[str, ...]
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MCP_ORCHESTRATION_SIGNING_KEY_PASSPHRASE", "correct horse battery staple")
    result = run(*argv)
    assert result.status == ExitCode.KEY
    assert "plain_secret_env" in result.stderr
    assert not (tmp_path / "new.pem").exists()


def test_deleted_object_in_the_chain_is_a_verification_failure(
    run: Run, initialised: Path, key_file: Path, config_file: Path
) -> None:
    from mcp_orchestration.store.repository import Repository

    run(*PUBLISH, "--file", str(config_file), "--key-file", str(key_file))
    index = Repository(initialised / "storage")
    previous = index.snapshot()[1].head.previous_head
    assert previous is not None
    index.objects.path_for(previous).unlink()
    for argv in (("verify",), ("verify", "--deep")):
        (initialised / "storage" / "index" / "verified").unlink(missing_ok=True)
        result = run(*argv, "--json")
        assert result.status == ExitCode.VERIFICATION
        assert json.loads(result.stderr)["error"]["code"] == "integrity"


def test_key_file_variable_is_a_key_source(run: Run, monkeypatch: pytest.MonkeyPatch, key_file: Path) -> None:
    monkeypatch.setenv("MCP_ORCHESTRATION_SIGNING_KEY_FILE", str(key_file))
    assert run("init").status == 0


def test_keyring_source_without_backend_is_a_clear_error(run: Run) -> None:
    result = run("init", "--key-source", "keyring")
    assert result.status == ExitCode.KEY
    assert "No OS keyring backend" in result.stderr
    assert "Traceback" not in result.stderr


def test_keys_generate_writes_0600_and_never_overwrites(run: Run, tmp_path: Path) -> None:
    out = tmp_path / "new.pem"
    first = run("keys", "generate", "--out", str(out))
    assert first.status == 0
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    content = out.read_bytes()
    again = run("keys", "generate", "--out", str(out))
    assert again.status == ExitCode.CONFLICT
    assert out.read_bytes() == content
    assert (
        first.stdout.split("Fingerprint: ")[1].strip()
        == run("keys", "fingerprint", "--key-file", str(out)).stdout.strip()
    )


def test_keys_generate_read_only_owner_and_encrypted(run: Run, tmp_path: Path) -> None:
    passphrase = tmp_path / "passphrase"
    passphrase.write_text(PASSPHRASE)
    out = tmp_path / "enc.pem"
    owner = ["--owner", "65532"] if os.geteuid() == 0 else []
    assert (
        run(
            "keys", "generate", "--out", str(out), "--mode", "0400", "--passphrase-file", str(passphrase), *owner
        ).status
        == 0
    )
    assert stat.S_IMODE(out.stat().st_mode) == 0o400
    if owner:
        assert out.stat().st_uid == 65532
    assert b"ENCRYPTED PRIVATE KEY" in out.read_bytes()
    missing = run("keys", "fingerprint", "--key-file", str(out))
    assert missing.status == ExitCode.KEY and "key_passphrase" in missing.stderr
    assert run("keys", "fingerprint", "--key-file", str(out), "--passphrase-file", str(passphrase)).status == 0


def test_rotation_and_revocation_from_the_command_line(
    run: Run, initialised: Path, key_file: Path, next_key_file: Path, config_file: Path
) -> None:
    old = run("keys", "fingerprint", "--key-file", str(key_file)).stdout.strip()
    new = run("keys", "fingerprint", "--key-file", str(next_key_file)).stdout.strip()
    rotated = run("keys", "rotate", "--key-file", str(key_file), "--new-key-file", str(next_key_file))
    assert rotated.status == 0 and old in rotated.stdout and new in rotated.stdout
    retired = run(*PUBLISH, "--file", str(config_file), "--key-file", str(key_file))
    assert retired.status == ExitCode.KEY and "key_retired" in retired.stderr
    assert run(*PUBLISH, "--file", str(config_file), "--key-file", str(next_key_file)).status == 0
    listed = json.loads(run("keys", "list", "--json").stdout)
    assert [(k["fingerprint"], k["status"]) for k in listed["keys"]] == [(old, "retired"), (new, "active")]
    assert run("keys", "revoke", old, "--key-file", str(next_key_file)).status == 0
    assert "revoked" in run("keys", "list").stdout
    assert run("verify", "--deep", "--expect-key", old).status == 0
    assert run("verify", "--expect-key", new).status == ExitCode.KEY


def test_tampered_store_exits_with_verification_status(
    run: Run, initialised: Path, key_file: Path, config_file: Path
) -> None:
    run(*PUBLISH, "--file", str(config_file), "--key-file", str(key_file))
    head = initialised / "storage" / "index" / "HEAD"
    data = bytearray(head.read_bytes())
    data[len(data) // 2] ^= 0x01
    head.write_bytes(bytes(data))
    result: Result = run("verify", "--json")
    assert result.status == ExitCode.VERIFICATION
    assert json.loads(result.stderr)["error"]["code"] in {"integrity", "signature"}


def test_serve_is_not_available_yet(run: Run) -> None:
    assert run("serve").status == ExitCode.FAILURE


def test_usage_errors_exit_2(run: Run) -> None:
    with pytest.raises(SystemExit) as done:
        run("publish", "--client", "x")
    assert done.value.code == ExitCode.USAGE


def test_healthcheck_is_quiet_when_healthy_and_fails_on_damage(run: Run, initialised: Path, key_file: Path) -> None:
    healthy = run("healthcheck", "--key-file", str(key_file))
    assert (healthy.status, healthy.stdout, healthy.stderr) == (0, "", "")
    assert run("healthcheck").status == 0  # no key configured: a read-only server is healthy
    head = initialised / "storage" / "index" / "HEAD"
    head.write_bytes(head.read_bytes().replace(b'"payload":"', b'"payload":"A'))
    damaged = run("healthcheck")
    assert damaged.status == ExitCode.FAILURE
    assert damaged.stderr.startswith("unhealthy [integrity]")


def test_healthcheck_on_an_uninitialised_store_says_how_to_fix_it(run: Run, home: Path) -> None:
    result = run("healthcheck")
    assert result.status == ExitCode.FAILURE
    assert result.stderr.startswith("unhealthy [not_initialized]")
    assert "mcp-orchestration init" in result.stderr


def test_healthcheck_refuses_a_key_the_store_does_not_trust(run: Run, initialised: Path, next_key_file: Path) -> None:
    result = run("healthcheck", "--key-file", str(next_key_file))
    assert result.status == ExitCode.FAILURE
    assert "key_untrusted" in result.stderr


def test_claude_config_mounts_no_key_by_default(run: Run, monkeypatch: pytest.MonkeyPatch, key_file: Path) -> None:
    monkeypatch.setenv("MCP_ORCHESTRATION_SIGNING_KEY_FILE", str(key_file))  # the host's key is not mounted either
    result = run("claude-config", "--image", "img:1")
    assert result.status == 0, result.stderr
    args = json.loads(result.stdout)["mcpServers"]["mcp-orchestration"]["args"]
    assert "/run/secrets" not in result.stdout and str(key_file) not in result.stdout
    assert "--read-only" in args and args[-1] == "img:1"
    assert [a for a in args if a.startswith("-v")] == ["-v"]  # the store volume only
    assert args[args.index("-v") + 1] == "mcp-orchestration-data:/var/lib/mcp-orchestration"


def test_claude_config_refuses_a_key_file_outside_single_machine_mode(run: Run, key_file: Path) -> None:
    result = run("claude-config", "--key-file", str(key_file))
    assert result.status == ExitCode.USAGE
    assert "--single-machine" in result.stderr and result.stdout == ""
    result = run("claude-config", "--single-machine")
    assert result.status == ExitCode.USAGE and "--key-file" in result.stderr


def test_claude_config_single_machine_mounts_the_key_read_only_and_never_passes_it_inline(
    run: Run, key_file: Path
) -> None:
    snippet = json.loads(
        run("claude-config", "--single-machine", "--key-file", str(key_file), "--image", "img:1").stdout
    )
    server = snippet["mcpServers"]["mcp-orchestration"]
    args = server["args"]
    assert server["command"] == "docker" and "env" not in server
    assert args[:4] == ["run", "-i", "--rm", "--init"] and "-t" not in args and "-it" not in args
    for flag in ("--read-only", "--cap-drop", "--security-opt", "--network"):
        assert flag in args
    assert f"{key_file.resolve()}:/run/secrets/signing_key:ro" in args
    assert args[-1] == "img:1"
    assert key_file.read_text().splitlines()[1] not in json.dumps(snippet)


def test_claude_config_passes_the_root_fingerprint_for_a_container_without_the_key(run: Run) -> None:
    root = "SHA256:" + "ab" * 32
    snippet = json.loads(run("claude-config", "--expect-key", root).stdout)
    args = snippet["mcpServers"]["mcp-orchestration"]["args"]
    assert args[args.index("-e") + 1] == f"MCP_ORCHESTRATION_EXPECT_KEY={root}"
    assert args[-1] == "mcp-orchestration:latest"
