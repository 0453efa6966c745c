"""Leak canary over the whole MCP flow: no encoding of a key or passphrase leaves ``serve``.

Keys and passphrases are made at run time and turned into canaries by
:class:`tests.integration.test_leak_canary.Canaries` (every encoding a key is
likely to be printed in, built from ``cryptography``, never by asking the
redactor). Real ``mcp-orchestration serve`` processes are driven over stdio by
the SDK's own client (``mcp.Client`` over ``stdio_client``), success and
failure paths alike:

* ``key-a``: plain PKCS8 key, ``serve --debug``, initialize handshake. Secrets
  where ids, names and values go before the key is loaded (invalid ids, wrong
  types, an unknown tool, a ``parameters`` value holding the PEM and a ``ghp_``
  token); then list, add, view, diff, validate, publish, get, export, verify,
  trust info, history, resources and the prompt; the same bad calls once the
  key is loaded; the key retired by ``keys rotate`` run in another process;
  finally the store tampered with underneath the running server.
* ``key-b``: encrypted PKCS8 key with a passphrase file, ``serve --debug
  --log-format json``, the discover handshake: the same flow.
* ``wrong-pass`` and ``no-key``: reads are served, writes fail with a key error.
* ``known-defects`` (key B): the vectors that leaked when this test was written
  (a secret that is a valid id, before and after the first write; secrets in
  resource URIs), and ``changelog-reader`` (no key): reads back changelogs that
  carried a token or the passphrase. Kept apart, each with its own test at the
  end, so that everything else is held to zero leaks.

A tiny recorder between the client and each server copies the server's stdout
byte for byte to a file (the client still reads the real stream). No canary may
appear in that stdout, in the server's stderr (where the logs go), in the
telemetry files under the homes, or in any answer the client received (tool
results, resources, prompts, protocol errors).
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519
from mcp import Client, StdioServerParameters
from mcp.client.stdio import stdio_client
from mcp.shared.exceptions import MCPError

from mcp_orchestration.app.environment import ENV_PREFIX
from mcp_orchestration.store.repository import Repository
from mcp_orchestration.trust import key_sources
from mcp_orchestration.trust.key_sources import KeySpec
from tests.integration.test_leak_canary import Canaries
from tests.integration.tool_errors import tool_error

CD = "claude-desktop"
PROFILE = "default"
BASE = {"client": CD, "profile": PROFILE}
VERIFICATION_CODES = ("integrity", "signature", "verification", "rollback", "key_history")
ERROR = object()  # expected: any tool error or protocol error
ANY = object()  # expected: anything (the outcome is checked by a test of its own)
DEFECTS = "known-defects"
CHANGELOG_READER = "changelog-reader"
NOTES = {"notes-token": "ci token {token}", "notes-pass": "rotated; the new passphrase is {passphrase}"}

RECORDER = '''\
"""Run a server with stdin and stderr inherited; copy its stdout to ours and to a file."""

import subprocess
import sys

child = subprocess.Popen(sys.argv[2:], stdout=subprocess.PIPE)
with open(sys.argv[1], "ab") as log:
    while chunk := child.stdout.read1(65536):
        log.write(chunk)
        log.flush()
        sys.stdout.buffer.write(chunk)
        sys.stdout.buffer.flush()
sys.exit(child.wait())
'''


# -- what a run leaves behind -------------------------------------------------------------------


@dataclass
class World:
    root: Path
    canaries: Canaries = field(repr=False)
    results: list[tuple[str, str]] = field(default_factory=list, repr=False)  # (call, what the client got)
    codes: dict[str, str | None] = field(default_factory=dict, repr=False)  # call -> error code, None: success
    failures: list[str] = field(default_factory=list)  # unmet expectations
    stdout: dict[str, str] = field(default_factory=dict, repr=False)  # session -> raw server stdout
    stderr: dict[str, str] = field(default_factory=dict, repr=False)  # session -> server stderr
    telemetry: dict[str, str] = field(default_factory=dict, repr=False)
    cli: dict[str, str] = field(default_factory=dict, repr=False)  # the rotating process's output

    def leaks(self, texts: list[tuple[str, str]]) -> list[str]:
        return [f"{name}: {found}" for name, text in texts if (found := self.canaries.leaks(text))]

    def results_of(self, session: str, *steps: str) -> list[tuple[str, str]]:
        """Results of one session whose step name contains any of ``steps`` (all steps if none given)."""
        prefix = f"{session}: "
        return [
            (name, text)
            for name, text in self.results
            if name.startswith(prefix) and (not steps or any(step in name for step in steps))
        ]


@dataclass(frozen=True)
class Secrets:
    """Material the calls try to smuggle into ids, arguments, URIs and tool names."""

    pem: str
    seed_hex: str
    der_b64: str
    token: str
    passphrase: str = ""


def _text_of(result: Any) -> str:
    """A result as the client saw it: its JSON, plus every text block unescaped."""
    parts = [result.model_dump_json(by_alias=True)]
    parts += [str(getattr(block, "text", "")) for block in getattr(result, "content", None) or []]
    parts += [str(getattr(block, "text", "")) for block in getattr(result, "contents", None) or []]
    parts += [str(getattr(m.content, "text", "")) for m in getattr(result, "messages", None) or []]
    return "\n".join(parts)


class Session:
    """One client connection to one ``serve`` process; records every answer and every unmet expectation."""

    def __init__(self, world: World, label: str, client: Client) -> None:
        self.world, self.label, self.client = world, label, client
        self.lenient = False  # record outcomes without checking them (a damaged store answers integrity)

    def _record(self, step: str, text: str, code: str | None, expected: object) -> None:
        name = f"{self.label}: {step}"
        self.world.results.append((name, text))
        self.world.codes[name] = code
        if expected is ANY or self.lenient:
            return
        ok = (
            code is not None
            if expected is ERROR
            else code in expected
            if isinstance(expected, tuple)
            else code == expected
        )
        if not ok:
            wanted = "an error" if expected is ERROR else expected or "success"
            self.world.failures.append(f"{name}: got {code or 'success'}, expected {wanted}\n{text[:600]}")

    async def tool(self, step: str, name: str, arguments: dict[str, Any], expected: object = None) -> dict[str, Any]:
        """Call a tool; ``expected`` is None (success), an error code, a tuple of codes, ERROR or ANY."""
        try:
            result = await self.client.call_tool(name, arguments)
        except MCPError as error:  # a protocol error rather than a tool error
            self._record(step, f"{error}\n{error.error.model_dump_json()}", f"protocol {error.code}", expected)
            return {}
        structured = result.structured_content or {}
        code = tool_error(result)["code"] if result.is_error else None
        self._record(step, _text_of(result), code, expected)
        return structured

    async def request(self, step: str, call: Callable[[], Awaitable[Any]], expected: object = None) -> Any:
        """Any other request (tools/list, resources, prompts); an MCPError is its error."""
        try:
            result = await call()
        except MCPError as error:
            self._record(step, f"{error}\n{error.error.model_dump_json()}", f"protocol {error.code}", expected)
            return None
        self._record(step, _text_of(result), None, expected)
        return result

    async def resource(self, step: str, uri: str, expected: object = None) -> Any:
        return await self.request(step, lambda: self.client.read_resource(uri), expected)


# -- the flows ------------------------------------------------------------------------------------


async def bad_calls(s: Session, secret: Secrets, when: str) -> None:
    """Secrets where ids, names and values go; wrong types; unknown tools. Nothing may echo them."""
    pem, token, t = secret.pem, secret.token, s.tool
    add = {"client": CD, "profile": "leaky", "server_id": "filesystem"}
    fetch = {**add, "server_id": "fetch"}
    await t(f"{when} get_config PEM as client", "get_config", {"client": pem, "profile": PROFILE}, "invalid_id")
    await t(f"{when} get_config PEM as profile", "get_config", {"client": CD, "profile": pem}, "invalid_id")
    await t(f"{when} get_config DER as artifact", "get_config", {**BASE, "artifact": secret.der_b64}, "invalid_id")
    await t(f"{when} get_config PEM as artifact", "get_config", {**BASE, "artifact": pem}, "invalid_id")
    await t(f"{when} get_config token as profile", "get_config", {"client": CD, "profile": token}, ERROR)
    await t(f"{when} list_profiles token as client", "list_profiles", {"client": token}, ANY)  # a valid id, or refused
    await t(f"{when} list_profiles PEM as client", "list_profiles", {"client": pem}, "invalid_id")
    await t(f"{when} history PEM as client", "get_config_history", {"client": pem, "profile": PROFILE}, ERROR)
    await t(f"{when} describe_server PEM", "describe_server", {"server_id": pem}, ERROR)
    await t(f"{when} describe_server token", "describe_server", {"server_id": token}, ERROR)
    await t(f"{when} add PEM as a path", "add_server_to_config", {**add, "parameters": {"paths": [pem]}}, ERROR)
    await t(
        f"{when} add token in a path",
        "add_server_to_config",
        {**add, "parameters": {"paths": [f"/data/{token}"]}},
        ERROR,
    )
    await t(f"{when} add PEM as a string", "add_server_to_config", {**fetch, "parameters": {"user_agent": pem}}, ERROR)
    await t(
        f"{when} add token as a string",
        "add_server_to_config",
        {**fetch, "parameters": {"user_agent": token}},
        ERROR,
    )
    await t(
        f"{when} add unknown parameters holding secrets",
        "add_server_to_config",
        {**add, "server_id": "github", "parameters": {"token": token, "key": pem}},
        ERROR,
    )
    await t(f"{when} add PEM as server name", "add_server_to_config", {**add, "name": pem}, ERROR)
    await t(f"{when} add token as optional env", "add_server_to_config", {**fetch, "optional_env": [token]}, ERROR)
    await t(f"{when} add PEM as optional env", "add_server_to_config", {**fetch, "optional_env": [pem]}, ERROR)
    await t(f"{when} remove PEM", "remove_server_from_config", {**BASE, "name": pem}, ERROR)
    await t(
        f"{when} wrong type: parameters is the PEM", "add_server_to_config", {**add, "parameters": pem}, "validation"
    )
    await t(
        f"{when} wrong type: parameters is a list",
        "add_server_to_config",
        {**add, "parameters": [pem, token]},
        "validation",
    )
    await t(f"{when} wrong type: client is a number", "get_config", {"client": 12345, "profile": PROFILE}, "validation")
    await t(f"{when} wrong type: profile is a dict", "get_config", {"client": CD, "profile": {"k": pem}}, "validation")
    await t(f"{when} missing argument", "get_config", {"client": CD, "key": pem}, "validation")
    await t(f"{when} extra argument", "list_clients", {"key": pem, "token": token}, ANY)
    await t(
        f"{when} changelog too long",
        "publish_config",
        {**BASE, "changelog": (pem + token) * 8},
        "limit",
    )
    await t(f"{when} unknown tool", "export_private_key", {"pem": pem, "token": token}, ERROR)
    await t(f"{when} PEM as tool name", pem, {"token": token}, ERROR)
    await s.request(f"{when} prompt with PEM", lambda: s.client.get_prompt("no_such_prompt", {"pem": pem}), ERROR)


async def good_flow(s: Session, pem: str) -> str:
    """The whole happy path on claude-desktop/default; returns the published artifact id."""
    t = s.tool
    await s.request("tools/list", s.client.list_tools)
    await t("list_clients", "list_clients", {})
    await t("list_profiles", "list_profiles", {})
    await t("list_available_servers", "list_available_servers", {})
    await t("describe_server github", "describe_server", {"server_id": "github"})
    await t(
        "add filesystem",
        "add_server_to_config",
        {**BASE, "server_id": "filesystem", "parameters": {"paths": ["/data"]}},
    )
    await t("add github", "add_server_to_config", {**BASE, "server_id": "github"})
    await t("view_draft_config", "view_draft_config", BASE)
    await t("diff_config", "diff_config", BASE)
    await t("validate_config", "validate_config", BASE)
    published = await t("publish_config", "publish_config", {**BASE, "changelog": "first version"})
    artifact = str(published.get("artifact", ""))
    # A PEM in a changelog: refused (validation), or signed in and only ever shown masked.
    pem_notes = {"client": CD, "profile": "pem-notes"}
    await t("add to pem-notes", "add_server_to_config", {**pem_notes, "server_id": "time"})
    await t("publish PEM in the changelog", "publish_config", {**pem_notes, "changelog": f"signed with {pem}"}, ANY)
    await t("pem-notes history", "get_config_history", pem_notes, ANY)
    await t("get_config", "get_config", BASE)
    await t("get_config artifact", "get_config", {**BASE, "artifact": artifact})
    await t("export_config", "export_config", BASE)
    await t("verify_config", "verify_config", BASE)
    await t("get_trust_info", "get_trust_info", {})
    await t("get_config_history", "get_config_history", BASE)
    await t("list_profiles of a client", "list_profiles", {"client": CD})
    await t("add time to a new draft", "add_server_to_config", {**BASE, "server_id": "time"})
    await t("remove time", "remove_server_from_config", {**BASE, "name": "time"})
    await t("clear_draft_config", "clear_draft_config", BASE)
    await s.request("resources/list", s.client.list_resources)
    await s.resource("capabilities", "mcp-orchestration://capabilities")
    await s.resource("key history", "mcp-orchestration://keys")
    await s.resource("latest config", f"mcp-orchestration://config/{CD}/{PROFILE}")
    await s.request("prompt", lambda: s.client.get_prompt("review_draft", BASE))
    return artifact


async def writes_refused(s: Session, when: str, code: str) -> None:
    await s.tool(f"{when} add", "add_server_to_config", {**BASE, "server_id": "memory"}, code)
    await s.tool(f"{when} remove", "remove_server_from_config", {**BASE, "name": "github"}, code)
    await s.tool(f"{when} clear", "clear_draft_config", BASE, code)
    await s.tool(f"{when} publish", "publish_config", BASE, code)


async def reads_work(s: Session, when: str) -> None:
    await s.tool(f"{when} get_config", "get_config", BASE)
    await s.tool(f"{when} export_config", "export_config", BASE)
    await s.tool(f"{when} verify_config", "verify_config", BASE)
    await s.tool(f"{when} get_trust_info", "get_trust_info", {})
    await s.tool(f"{when} history", "get_config_history", BASE)


def _flip_a_bit(path: Path) -> None:
    path.chmod(0o600)
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))


async def flow_key_a(s: Session, secret: Secrets, home: Path, rotate_env: dict[str, str]) -> None:
    """Plain PKCS8 key: bad calls before and after the key loads, the flow, a rotation elsewhere, tampering."""
    world, t = s.world, s.tool
    await bad_calls(s, secret, "cold")
    artifact = await good_flow(s, secret.pem)
    await bad_calls(s, secret, "warm")
    # Another process rotates the signing key: this server must turn read-only at once.
    rotated = await anyio.run_process(
        [sys.executable, "-m", "mcp_orchestration", "keys", "rotate", "--debug"], env=rotate_env, check=False
    )
    world.cli["keys rotate"] = (rotated.stdout + rotated.stderr).decode(errors="replace")
    if rotated.returncode != 0:
        world.failures.append(f"keys rotate failed ({rotated.returncode}): {world.cli['keys rotate'][-600:]}")
    await writes_refused(s, "retired", "key_retired")
    await reads_work(s, "retired")
    await bad_calls(s, secret, "retired")
    # Someone flips a bit of the published artifact underneath the running server ...
    if artifact:  # (a failed publish is already a recorded failure)
        _flip_a_bit(home / "storage" / "objects" / "sha256" / artifact[:2] / artifact[2:])
    await t("tampered get_config", "get_config", BASE, VERIFICATION_CODES)
    await t("tampered export_config", "export_config", BASE, VERIFICATION_CODES)
    await t("tampered verify_config", "verify_config", BASE, VERIFICATION_CODES)
    await s.resource("tampered latest config", f"mcp-orchestration://config/{CD}/{PROFILE}", ERROR)
    await t("tampered history", "get_config_history", BASE)  # the signed entries themselves are intact
    # ... and then one character of the signed head's signature.
    head = home / "storage" / "index" / "HEAD"
    envelope = json.loads(head.read_bytes())
    signature = envelope["signatures"][0]["sig"]
    envelope["signatures"][0]["sig"] = ("A" if signature[0] != "A" else "B") + signature[1:]
    head.write_text(json.dumps(envelope))
    await t("bad signature list_profiles", "list_profiles", {}, VERIFICATION_CODES)
    await t("bad signature get_trust_info", "get_trust_info", {}, VERIFICATION_CODES)
    await t("bad signature verify_config", "verify_config", BASE, VERIFICATION_CODES)
    await t("bad signature history", "get_config_history", BASE, VERIFICATION_CODES)
    s.lenient = True
    await bad_calls(s, secret, "tampered")


async def flow_key_b(s: Session, secret: Secrets) -> None:
    """Encrypted PKCS8 key with a passphrase file; also stores the secret-bearing changelog the defects read."""
    await bad_calls(s, secret, "cold")
    await good_flow(s, secret.pem)
    await bad_calls(s, secret, "warm")
    for profile, changelog in NOTES.items():  # refused, or read back by CHANGELOG_READER
        notes = {"client": CD, "profile": profile}
        await s.tool(f"add to {profile}", "add_server_to_config", {**notes, "server_id": "time"})
        text = changelog.format(passphrase=secret.passphrase, token=secret.token)
        await s.tool(f"publish {profile}", "publish_config", {**notes, "changelog": text}, ANY)


async def flow_changelog_reader(s: Session) -> None:
    """A server without the key (so without its passphrase) reads the changelogs that carried secrets."""
    for profile in NOTES:
        notes = {"client": CD, "profile": profile}
        await s.tool(f"changelog: {profile} get_config", "get_config", notes, ANY)
        await s.tool(f"changelog: {profile} history", "get_config_history", notes, ANY)


async def flow_read_only(s: Session, secret: Secrets, code: str) -> None:
    """A server whose key cannot be used: reads are served, writes answer ``code``."""
    await s.request("tools/list", s.client.list_tools)
    await reads_work(s, "read-only")
    await writes_refused(s, "read-only", code)
    await bad_calls(s, secret, "read-only")


async def flow_known_defects(s: Session, secret: Secrets) -> None:
    """The vectors that leak today, before the key is loaded ("cold": read tools only) and after ("warm")."""
    t, seed, pem_b64 = s.tool, secret.seed_hex, secret.der_b64

    async def echoes(when: str) -> None:  # read tools only: a write would load the key
        await t(f"{when} echo: seed hex as profile", "get_config", {"client": CD, "profile": seed}, ERROR)
        await t(f"{when} echo: seed hex as artifact", "get_config", {**BASE, "artifact": seed}, ERROR)
        await t(f"{when} echo: seed hex as server id", "describe_server", {"server_id": seed}, ERROR)
        await t(
            f"{when} echo: passphrase as profile",
            "get_config_history",
            {"client": CD, "profile": secret.passphrase},
            ERROR,
        )
        await t(f"{when} echo: token as profile", "get_config", {"client": CD, "profile": secret.token}, ERROR)

    async def resources(when: str) -> None:
        config = f"mcp-orchestration://config/{CD}"
        await s.resource(f"{when} resource: seed hex as profile", f"{config}/{seed}", ERROR)
        await s.resource(f"{when} resource: passphrase as profile", f"{config}/{secret.passphrase}", ERROR)
        await s.resource(f"{when} resource: token as client", f"mcp-orchestration://config/{secret.token}/x", ERROR)
        await s.resource(f"{when} resource: unknown, DER body", f"mcp-orchestration://keys/{pem_b64[22:]}", ERROR)

    await echoes("cold")
    await resources("cold")
    await t("load the key with a write", "remove_server_from_config", {**BASE, "name": secret.passphrase}, ERROR)
    await t("a write", "add_server_to_config", {"client": CD, "profile": "scratch", "server_id": "time"})
    await echoes("warm")
    await resources("warm")


# -- running the servers ----------------------------------------------------------------------------


@dataclass
class Server:
    label: str
    env: dict[str, str]
    argv: tuple[str, ...]
    mode: str


async def run_session(world: World, server: Server, flow: Callable[[Session], Awaitable[None]]) -> None:
    out, err = world.root / f"{server.label}.stdout", world.root / f"{server.label}.stderr"
    serve = [sys.executable, "-m", "mcp_orchestration", "serve", *server.argv]
    params = StdioServerParameters(
        command=sys.executable, args=[str(world.root / "recorder.py"), str(out), *serve], env=server.env, cwd=world.root
    )
    with err.open("w") as errlog:
        async with Client(stdio_client(params, errlog=errlog), mode=server.mode, read_timeout_seconds=60) as client:
            await flow(Session(world, server.label, client))
    world.stdout[server.label] = out.read_text(errors="replace") if out.exists() else ""
    world.stderr[server.label] = err.read_text(errors="replace")


def _write(path: Path, data: bytes | str) -> Path:
    path.write_bytes(data.encode() if isinstance(data, str) else data)
    path.chmod(0o600)
    return path


def _pkcs8(private: ed25519.Ed25519PrivateKey, passphrase: bytes | None = None) -> bytes:
    encryption: serialization.KeySerializationEncryption = (
        serialization.BestAvailableEncryption(passphrase) if passphrase else serialization.NoEncryption()
    )
    return private.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption)


def _init_store(home: Path, key_file: Path, passphrase_file: Path | None) -> str:
    """A store rooted in the key; returns the root's fingerprint (which a server without the key needs)."""
    key = key_sources.load_signing_key(KeySpec("file", key_file, passphrase_file))
    Repository(home / "storage").initialize(key)
    return key.fingerprint


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> World:
    root = tmp_path_factory.mktemp("mcp-leak")
    _write(root / "recorder.py", RECORDER)
    secrets_dir = root / "secrets"
    secrets_dir.mkdir()
    canaries = Canaries()
    canaries.exact["PEM private-key armour"] = "PRIVATE KEY-----"

    key_a, key_b, key_c = (ed25519.Ed25519PrivateKey.generate() for _ in range(3))
    pass_b, wrong = f"canary-pass-b-{os.urandom(12).hex()}", f"canary-wrong-{os.urandom(12).hex()}"
    a = _write(secrets_dir / "a.pem", _pkcs8(key_a))
    b = _write(secrets_dir / "b.pem", _pkcs8(key_b, pass_b.encode()))
    c = _write(secrets_dir / "c.pem", _pkcs8(key_c))
    pass_file = _write(secrets_dir / "pass_b", pass_b + "\n")
    wrong_file = _write(secrets_dir / "pass_wrong", wrong + "\n")
    for label, private, path in (("key A", key_a, a), ("key B", key_b, b), ("key C", key_c, c)):
        canaries.add_key(label, private, path.read_text())
    canaries.add_text("pass B", pass_b)
    canaries.add_text("wrong pass", wrong)
    token = "ghp_" + os.urandom(18).hex()  # credential-shaped, made here
    canaries.exact["ghp token"] = token

    def secrets_of(label: str, private: ed25519.Ed25519PrivateKey, passphrase: str = "") -> Secrets:
        pem = _pkcs8(private).decode()
        return Secrets(
            pem, canaries.exact[f"{label}: seed hex"], canaries.exact[f"{label}: DER base64"], token, passphrase
        )

    secret_a, secret_b = secrets_of("key A", key_a), secrets_of("key B", key_b, pass_b)
    home_a, home_b = root / "home-a", root / "home-b"
    _init_store(home_a, a, None)
    root_b = _init_store(home_b, b, pass_file)
    quiet = {
        "PYTHON_KEYRING_BACKEND": "keyring.backends.fail.Keyring",
        "MCP_ORCHESTRATION_HOST_STATE": str(root / "host-state.json"),
    }
    env_a = {**quiet, "MCP_ORCHESTRATION_HOME": str(home_a), "MCP_ORCHESTRATION_SIGNING_KEY_FILE": str(a)}
    env_b_no_key = {**quiet, "MCP_ORCHESTRATION_HOME": str(home_b), "MCP_ORCHESTRATION_EXPECT_KEY": root_b}
    env_b = {**env_b_no_key, "MCP_ORCHESTRATION_SIGNING_KEY_FILE": str(b)}
    env_b_pass = {**env_b, "MCP_ORCHESTRATION_SIGNING_KEY_PASSPHRASE_FILE": str(pass_file)}
    env_b_wrong = {**env_b, "MCP_ORCHESTRATION_SIGNING_KEY_PASSPHRASE_FILE": str(wrong_file)}
    rotate_env = {
        **{name: value for name, value in os.environ.items() if not name.startswith(ENV_PREFIX)},
        **env_a,
        "MCP_ORCHESTRATION_SIGNING_KEY_NEXT_FILE": str(c),
    }

    world = World(root, canaries)
    debug, json_logs = ("--debug",), ("--debug", "--log-format", "json")

    async def everything() -> None:
        async with anyio.create_task_group() as group:
            group.start_soon(
                run_session, world, Server("key-a", env_a, debug, "legacy"),
                lambda s: flow_key_a(s, secret_a, home_a, rotate_env),
            )  # fmt: skip
            group.start_soon(
                run_session, world, Server("key-b", env_b_pass, json_logs, "auto"),
                lambda s: flow_key_b(s, secret_b),
            )  # fmt: skip
        async with anyio.create_task_group() as group:
            group.start_soon(
                run_session, world, Server("wrong-pass", env_b_wrong, debug, "legacy"),
                lambda s: flow_read_only(s, secret_b, "key_passphrase"),
            )  # fmt: skip
            group.start_soon(
                run_session, world, Server("no-key", env_b_no_key, ("--log-format", "json"), "auto"),
                lambda s: flow_read_only(s, secret_b, "key_unavailable"),
            )  # fmt: skip
            group.start_soon(
                run_session, world, Server(DEFECTS, env_b_pass, debug, "legacy"),
                lambda s: flow_known_defects(s, secret_b),
            )  # fmt: skip
            group.start_soon(
                run_session, world, Server(CHANGELOG_READER, env_b_no_key, debug, "legacy"), flow_changelog_reader
            )  # fmt: skip

    anyio.run(everything)
    world.telemetry = {
        str(path.relative_to(root)): path.read_text(errors="replace")
        for path in sorted(root.glob("home-*/telemetry/*"))
        if path.is_file()
    }
    return world


# -- the assertions ---------------------------------------------------------------------------------

MAIN = ("key-a", "key-b", "wrong-pass", "no-key")


def test_canaries_are_built_from_the_real_keys(world: World) -> None:
    """The detector is not vacuous: it finds the canaries in the secret files and their encodings."""
    secrets_dir = world.root / "secrets"
    assert "key A file: PEM line 1" in world.canaries.leaks((secrets_dir / "a.pem").read_text())
    assert "key B file: PEM line 1" in world.canaries.leaks((secrets_dir / "b.pem").read_text())
    assert "pass B" in world.canaries.leaks((secrets_dir / "pass_b").read_text())
    assert "ghp token" in world.canaries.leaks(json.dumps({"token": world.canaries.exact["ghp token"]}))
    seed_hex = world.canaries.exact["key A: seed hex"]
    assert "key A: part of seed hex" in world.canaries.leaks(ascii(seed_hex[10:40]))
    assert "key A: seed HEX" in world.canaries.leaks(seed_hex.upper())
    assert "key B: seed base64url" in world.canaries.exact


def test_every_call_behaved_as_expected(world: World) -> None:
    assert not world.failures, "\n\n".join(world.failures)
    assert set(world.stdout) == {*MAIN, DEFECTS, CHANGELOG_READER}
    for session in MAIN:
        assert len(world.results_of(session)) >= 35, session
    assert world.codes["key-a: retired publish"] == "key_retired"
    assert world.codes["wrong-pass: read-only publish"] == "key_passphrase"
    assert world.codes["no-key: read-only get_config"] is None


def test_stdout_carries_only_protocol(world: World) -> None:
    for label, text in world.stdout.items():
        lines = text.splitlines()
        assert lines, label
        for row in lines:
            assert json.loads(row).get("jsonrpc") == "2.0", (label, row[:200])


@pytest.mark.parametrize("channel", ["stdout", "stderr"])
def test_no_secret_in_server_output(world: World, channel: str) -> None:
    texts: dict[str, str] = getattr(world, channel)
    assert not world.leaks([(label, texts[label]) for label in MAIN])


def test_no_secret_in_any_result(world: World) -> None:
    results = [item for session in MAIN for item in world.results_of(session)]
    assert len(results) > 250
    leaks = world.leaks(results)
    assert not leaks, "\n".join(leaks)


def test_no_secret_in_telemetry(world: World) -> None:
    assert {"home-a/telemetry/events.jsonl", "home-b/telemetry/events.jsonl"} <= set(world.telemetry)
    events = [json.loads(row) for text in world.telemetry.values() for row in text.splitlines()]
    assert {"publish", "verify", "rotate", "key_load"} <= {event["event"] for event in events}
    assert {"key_passphrase", "key_unavailable"} <= {event["outcome"] for event in events}
    leaks = world.leaks(list(world.telemetry.items()))
    assert not leaks, "\n".join(leaks)


def test_no_secret_from_the_rotating_process(world: World) -> None:
    assert not world.leaks(list(world.cli.items()))


def test_pem_in_a_changelog_is_refused_or_masked(world: World) -> None:
    """A PEM in a changelog is refused, or signed in and shown masked (whether the server holds the key or not)."""
    for session in ("key-a", "key-b"):
        code = world.codes[f"{session}: publish PEM in the changelog"]
        assert code in (None, "validation"), (session, code)
        (_, history), *_ = world.results_of(session, "pem-notes history")
        assert "BEGIN" not in history
        if code is None:
            assert "***" in history


def test_secret_ids_are_masked_once_the_key_is_loaded(world: World) -> None:
    """After the first write the redactor knows every encoding of the key and its passphrase."""
    results = world.results_of(DEFECTS, "warm echo:")
    assert len(results) == 5
    assert not world.leaks(results)


def test_secret_ids_are_never_echoed(world: World) -> None:
    results = world.results_of(DEFECTS, "cold echo:")
    assert len(results) == 5
    assert not world.leaks(results)


def test_resource_errors_do_not_echo_secrets(world: World) -> None:
    results = world.results_of(DEFECTS, "resource:")
    assert len(results) == 8
    leaks = world.leaks([*results, (f"{DEFECTS} stderr", world.stderr[DEFECTS])])
    assert not leaks, "\n".join(leaks)


def test_changelog_secrets_are_not_served(world: World) -> None:
    """A token or the key's passphrase in a changelog: refused, never signed in and served to everyone."""
    results = world.results_of(CHANGELOG_READER, "changelog:")
    assert len(results) == 4
    leaks = world.leaks(results)
    assert not leaks, "\n".join(leaks)
