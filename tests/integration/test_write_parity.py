"""One rule set, every write path: the same hostile input gets the same error code wherever it enters.

Each case of one hostile set -- credentials in every place a config can
carry them (the signing key's own encodings included), wrong shapes, hidden
characters in names and changelogs, non-ASCII and ``..`` names, oversize
input, bad ids -- is pushed through every way to publish: the command line
(``publish``, in text and ``--json``), the MCP tool ``publish_config`` (over
the SDK's in-memory client) and ``operations.publish_payload`` itself. Each
path must refuse it with the same code, publish nothing, and never show the
hostile value. Reads (``get``, ``history``, ``export``) must show one store the
same way on both interfaces, and ``deploy`` must apply the same name rule.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import secrets
import string
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio
import pytest
from cryptography.hazmat.primitives import serialization
from mcp import Client

from mcp_orchestration.app import operations
from mcp_orchestration.app.operations import App
from mcp_orchestration.app.settings import Settings
from mcp_orchestration.core.clock import utc_now
from mcp_orchestration.core.errors import OrchestrationError
from mcp_orchestration.server.app import ERROR_META_KEY, build_server
from mcp_orchestration.server.tools import ConfigTools
from mcp_orchestration.store.drafts import Draft, DraftStore
from mcp_orchestration.store.repository import ProfileUpdate, Repository
from mcp_orchestration.trust import keys
from mcp_orchestration.trust.key_sources import KeySpec
from tests.conftest import Result

CLIENT = "claude-desktop"
PROFILE = "default"
CLEAN = {"mcpServers": {"fs": {"command": "npx", "args": ["-y", "@modelcontextprotocol/server-filesystem", "/data"]}}}
HIDDEN_CHARS = ("\x1b", "\x00", "\x07", "\r", "\u202e", "\u200b", "\t")


def _token(prefix: str, length: int = 36, alphabet: str = string.ascii_letters + string.digits) -> str:
    """A credential-shaped string made at run time (never a real one)."""
    return prefix + "".join(secrets.choice(alphabet) for _ in range(length))


@dataclass(frozen=True)
class Key:
    """The store's signing key and its encodings, built here independently of the redactor."""

    file_bytes: bytes
    seed: bytes
    der: bytes
    pem_body: str

    @classmethod
    def generate(cls) -> Key:
        private = serialization.load_pem_private_key(keys.generate().serialize("pkcs8", None), None)
        plain = serialization.NoEncryption()
        pem = private.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, plain)
        return cls(
            file_bytes=pem,
            seed=private.private_bytes(serialization.Encoding.Raw, serialization.PrivateFormat.Raw, plain),
            der=private.private_bytes(serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, plain),
            pem_body="".join(line for line in pem.decode().splitlines() if not line.startswith("-----")),
        )

    def blob(self, offset: int, urlsafe: bool = False) -> str:
        """The seed inside random bytes, at a byte offset of ``offset`` modulo 3, base64-encoded as a whole."""
        encode = base64.urlsafe_b64encode if urlsafe else base64.b64encode
        return encode(os.urandom(3 + offset) + self.seed + os.urandom(4)).decode()

    def pieces(self) -> list[str]:
        """What must never be shown: the seed in hex and base64 and the PEM body's first 24 characters of seed."""
        b64 = base64.b64encode(self.seed).decode()
        return [self.seed.hex(), self.seed.hex().upper(), b64[:40], self.pem_body[24:56]]


@dataclass(frozen=True)
class Case:
    """One hostile write: what is published, the code every path must answer, and what must never show."""

    id: str
    code: str
    payload: Any = field(default_factory=lambda: CLEAN)
    changelog: str = ""
    client: str = CLIENT
    profile: str = PROFILE
    hidden: tuple[str, ...] = ()  # values that must appear in no output


def _server(**fields: Any) -> dict[str, Any]:
    return {"mcpServers": {"s": fields}}


def _named(name: str) -> dict[str, Any]:
    return {"mcpServers": {name: {"command": "npx"}}}


def hostile_cases(key: Key) -> list[Case]:
    """The one hostile set (built per run: tokens are random, the key is the store's)."""
    ghp, sk = _token("ghp_"), _token("sk-Ab1", 40)
    akia, xoxb = _token("AKIA", 16, string.ascii_uppercase + string.digits), _token("xoxb-", 30)
    other_pem = keys.generate().serialize("pkcs8", None).decode()
    seed_hex = key.seed.hex()
    credentials = [
        Case("env-github", "validation", _server(command="gh-mcp", env={"GITHUB_TOKEN": ghp}), hidden=(ghp,)),
        Case(
            "header-openai",
            "validation",
            _server(url="https://api.example.com/mcp", headers={"Authorization": f"Bearer {sk}"}),
            hidden=(sk,),
        ),
        Case("args-aws", "validation", _server(command="aws-mcp", args=["--key-id", akia]), hidden=(akia,)),
        Case("url-slack", "validation", _server(url=f"https://hooks.example.com/{xoxb}"), hidden=(xoxb,)),
        Case("extra-key-pem", "validation", {**CLEAN, "notes": {"key": other_pem}}, hidden=(other_pem[40:80],)),
        Case("env-own-seed-hex", "validation", _server(command="x", env={"SEED": seed_hex}), hidden=(seed_hex,)),
        Case("args-own-pem-body", "validation", _server(command="x", args=[key.pem_body]), hidden=(key.pem_body,)),
        *(
            Case(
                f"env-own-seed-base64-offset-{offset}",
                "validation",
                _server(command="x", env={"K": blob}),
                hidden=(blob,),
            )
            for offset in (0, 1, 2)
            for blob in (key.blob(offset),)
        ),
        Case("extra-own-seed-base64url", "validation", {**CLEAN, "x": key.blob(1, urlsafe=True)}),
    ]
    shapes = [
        Case("servers-a-list", "validation", {"mcpServers": [{"command": "npx"}]}),
        Case("server-a-string", "validation", {"mcpServers": {"s": "npx -y server"}}),
        Case("command-and-url", "validation", _server(command="npx", url="https://example.com/mcp")),
        Case("neither-command-nor-url", "validation", _server(args=["x"])),
    ]
    names = [
        Case("name-esc", "validation", _named("x\x1b[31m"), hidden=("\x1b",)),
        Case("name-osc", "validation", _named("\x1b]0;x\x07"), hidden=("\x1b", "\x07")),
        Case("name-crlf", "validation", _named("a\r\nb"), hidden=("\r",)),
        Case("name-rtl-override", "validation", _named("\u202eabc"), hidden=("\u202e",)),
        Case("name-nul", "validation", _named("a\x00b"), hidden=("\x00",)),
        Case("name-non-ascii", "validation", _named("caf\u00e9"), hidden=("caf\u00e9",)),
        Case("name-dot-dot", "validation", _named("a..b")),
        Case("name-a-token", "validation", _named(ghp), hidden=(ghp,)),
    ]
    changelogs = [
        Case("changelog-esc", "validation", changelog="ok\x1b[2J", hidden=("\x1b",)),
        Case("changelog-osc", "validation", changelog="\x1b]0;owned\x07", hidden=("\x1b", "\x07")),
        Case("changelog-crlf", "validation", changelog="fix\r\n     9  2020-01-01T00:00:00Z  fake", hidden=("\r",)),
        Case("changelog-rtl-override", "validation", changelog="fix \u202eexe.txt", hidden=("\u202e",)),
        Case("changelog-nul", "validation", changelog="fix\x00", hidden=("\x00",)),
        Case("changelog-tab", "validation", changelog="fix\tthis", hidden=("\t",)),
        Case("changelog-zero-width", "validation", changelog="fi\u200bx", hidden=("\u200b",)),
        Case("changelog-github", "validation", changelog=f"rotated {ghp}", hidden=(ghp,)),
        Case("changelog-own-seed-hex", "validation", changelog=f"digest {seed_hex}", hidden=(seed_hex,)),
        *(
            Case(f"changelog-own-seed-base64-offset-{offset}", "validation", changelog=blob, hidden=(blob,))
            for offset in (0, 1, 2)
            for blob in (key.blob(offset),)
        ),
        Case("changelog-own-pem-body", "validation", changelog=key.pem_body, hidden=(key.pem_body,)),
        Case("changelog-oversize", "limit", changelog="x" * (operations.MAX_CHANGELOG_CHARS + 1)),
    ]
    sizes = [
        Case(
            "payload-oversize",
            "limit",
            {"mcpServers": {f"s{n}": {"command": "x", "args": ["a" * 4000] * 64} for n in range(2)}},
        ),
        Case("string-oversize", "limit", _server(command="x", args=["a" * 5000])),
    ]
    ids = [
        Case("client-traversal", "invalid_id", client="../x"),
        Case("profile-traversal", "invalid_id", profile="A/.."),
        Case("client-a-token", "invalid_id", client=ghp, hidden=(ghp,)),
        Case("profile-a-token", "invalid_id", profile=f"p/{ghp}", hidden=(ghp,)),
        Case("client-unknown", "not_found", client="claude"),
    ]
    return credentials + shapes + names + changelogs + sizes + ids


# -- the store and its key -----------------------------------------------------------------------


@pytest.fixture(scope="module")
def key() -> Key:
    """One key per module: every key loaded is taught to the process-wide redactor (kept small)."""
    return Key.generate()


@pytest.fixture
def key_file(tmp_path: Path, key: Key) -> Path:
    path = tmp_path / "signing_key"
    path.write_bytes(key.file_bytes)
    path.chmod(0o600)
    return path


@pytest.fixture
def app(home: Path, key_file: Path) -> App:
    application = App(Settings(home=home, signing_key=KeySpec("file", key_file, None)))
    operations.init(application)
    return application


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def index_version(home: Path) -> int:
    return Repository(home / "storage").snapshot(fresh=True)[1].head.version


def write_draft(app: App, client: str, profile: str, payload: Any) -> None:
    """Put ``payload`` in the profile's draft: the one place this test creates drafts.

    The edit tools cannot express most hostile payloads (they refuse them on
    the way in), so the draft is written as stored state. An id the draft store
    refuses has no draft; ``publish_config`` must then refuse that id itself.
    """
    drafts = DraftStore(app.settings.storage_dir)
    with contextlib.suppress(OrchestrationError):
        drafts.save(Draft(client, profile, payload, None, utc_now()), app.signing_key)


# -- the three write paths -----------------------------------------------------------------------


@dataclass(frozen=True)
class Outcome:
    path: str
    code: str | None
    text: str  # every output of the path, to search for hostile values


def through_cli(run: Callable[..., Result], tmp_path: Path, key_file: Path, case: Case) -> list[Outcome]:
    source = tmp_path / "hostile.json"
    source.write_text(json.dumps(case.payload))
    argv = ["publish", "--client", case.client, "--profile", case.profile, "--file", str(source)]
    argv += ["--changelog", case.changelog, "--key-file", str(key_file)]
    outcomes = []
    for flags in ((), ("--json",)):
        result = run(*argv, *flags)
        if flags:
            code = json.loads(result.stderr)["error"]["code"] if result.stderr else None
        else:
            error = result.stderr if result.stderr.startswith("error [") else ""  # warnings are no outcome
            code = error.split("]", 1)[0].removeprefix("error [") if error else None
        outcomes.append(Outcome(f"cli {' '.join(flags) or 'text'}", code, result.stdout + result.stderr))
    return outcomes


async def through_mcp(app: App, case: Case) -> Outcome:
    write_draft(app, case.client, case.profile, case.payload)
    async with Client(build_server(ConfigTools(app))) as client:
        arguments = {"client": case.client, "profile": case.profile, "changelog": case.changelog}
        result = await client.call_tool("publish_config", arguments)
    meta = result.meta or {}
    code = meta.get(ERROR_META_KEY, {}).get("code") if result.is_error else None
    text = "".join(getattr(block, "text", "") for block in result.content) + json.dumps(meta, ensure_ascii=False)
    return Outcome("mcp publish_config", code, text)


def through_operations(app: App, case: Case) -> Outcome:
    try:
        operations.publish_payload(app, case.client, case.profile, case.payload, case.changelog)
    except OrchestrationError as error:
        return Outcome("operations.publish_payload", error.code, error.message + error.hint)
    return Outcome("operations.publish_payload", None, "")


@pytest.mark.anyio
async def test_every_write_path_refuses_the_hostile_set_alike(
    run: Callable[..., Result], app: App, home: Path, key_file: Path, key: Key, tmp_path: Path
) -> None:
    before = index_version(home)
    failures = []
    for case in hostile_cases(key):
        with anyio.fail_after(30):
            mcp = await through_mcp(app, case)
        outcomes = [*through_cli(run, tmp_path, key_file, case), mcp, through_operations(app, case)]
        for outcome in outcomes:
            if outcome.code != case.code:
                failures.append(f"{case.id}: {outcome.path} answered {outcome.code}, expected {case.code}")
            shown = [value for value in (*case.hidden, *key.pieces()) if value in outcome.text]
            if shown:
                failures.append(f"{case.id}: {outcome.path} showed {ascii(shown)[:120]}")
        if index_version(home) != before:
            failures.append(f"{case.id}: something was published")
            before = index_version(home)
    assert not failures, "\n".join(failures)


@pytest.mark.anyio
async def test_a_clean_publish_still_works_on_every_path(
    run: Callable[..., Result], app: App, home: Path, key_file: Path, tmp_path: Path
) -> None:
    """The gate is not a wall: the same clean config passes everywhere (as a changelog with non-ASCII letters)."""
    case = Case("clean", "", changelog="café: add the filesystem server")
    assert through_operations(app, case).code is None
    for outcome in through_cli(run, tmp_path, key_file, case):
        assert outcome.code is None, outcome
    assert (await through_mcp(app, Case("clean", "", profile="other", changelog=case.changelog))).code is None


# -- reads: one store, shown alike --------------------------------------------------------------


def legacy_publish(app: App, client: str, profile: str, payload: Any, changelog: str) -> str:
    """Sign ``payload`` in unchecked, through the store's low-level publish, as an earlier release could."""
    result = app.index.publish(app.signing_key, [ProfileUpdate(client, profile, payload, changelog)])
    return result.artifacts[f"{client}/{profile}"]


@pytest.mark.anyio
async def test_cli_and_mcp_show_a_legacy_store_alike(run: Callable[..., Result], app: App, key_file: Path) -> None:
    """A credential and a hostile changelog an earlier release signed in: masked and escaped on both interfaces."""
    ghp = _token("ghp_")
    payload = {
        "mcpServers": {
            "gh": {"command": "gh-mcp", "args": ["--token", ghp], "env": {"GITHUB_TOKEN": ghp, "HOME": "${env:HOME}"}}
        }
    }
    changelog = f"rotated {ghp}\r\n     7  fake line \x1b]0;owned\x07 \u202eexe"
    artifact = legacy_publish(app, CLIENT, PROFILE, payload, changelog)
    where = ("--client", CLIENT, "--profile", PROFILE, "--key-file", str(key_file))

    got, history, exported = (run(command, *where, "--json") for command in ("get", "history", "export"))
    history_text = run("history", *where)
    async with Client(build_server(ConfigTools(app))) as client:
        mcp = {
            tool: (await client.call_tool(tool, {"client": CLIENT, "profile": PROFILE})).structured_content
            for tool in ("get_config", "get_config_history", "export_config")
        }

    assert got.json() == mcp["get_config"]
    assert history.json() == mcp["get_config_history"]
    assert exported.json() == mcp["export_config"]
    config = mcp["get_config"]["config"]
    assert config["mcpServers"]["gh"]["env"] == {"GITHUB_TOKEN": "***", "HOME": "${env:HOME}"}
    assert config["mcpServers"]["gh"]["args"] == ["--token", "***"]
    shown = mcp["get_config"]["changelog"]
    assert ghp not in shown and "***" in shown
    assert not [char for char in HIDDEN_CHARS if char in shown]
    assert "\\x1b]0;owned\\x07" in shown and "\\u202e" in shown and "\\r\\n" in shown
    for result in (got, history, exported, history_text):
        assert ghp not in result.stdout + result.stderr
        assert not [char for char in HIDDEN_CHARS if char in result.stdout]
    assert len(history_text.stdout.splitlines()) == 1  # a changelog cannot fake a history line

    report = run("verify", "--deep", "--key-file", str(key_file))
    assert report.status == 0, report.stderr
    assert "WARNING: 1 published version(s)" in report.stdout and ghp not in report.stdout
    credentials = run("verify", "--deep", "--json").json()["credentials"]
    assert credentials == [
        {
            "client": CLIENT,
            "profile": PROFILE,
            "artifact": artifact,
            "index_version": 2,
            "paths": ["/mcpServers/gh/args/1", "/mcpServers/gh/env/GITHUB_TOKEN"],
        }
    ]


def test_deploy_refuses_a_stored_server_name_outside_the_rule(
    run: Callable[..., Result], app: App, tmp_path: Path
) -> None:
    """An earlier release could sign in ``café``; deploy and export refuse it with validation's code."""
    from mcp_orchestration.config.validation import require_valid

    payload = _named("caf\u00e9")
    legacy_publish(app, CLIENT, PROFILE, payload, "")
    with pytest.raises(OrchestrationError) as caught:
        require_valid(payload)
    target = tmp_path / "client" / "config.json"
    target.parent.mkdir()
    where = ("--client", CLIENT, "--profile", PROFILE)
    for argv in (("deploy", *where, "--config-path", str(target)), ("export", *where)):
        result = run(*argv, "--json")
        assert result.status == 2, result
        assert json.loads(result.stderr)["error"]["code"] == caught.value.code == "validation"
        assert "caf\u00e9" not in result.stderr
    assert not target.exists()
