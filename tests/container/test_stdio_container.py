"""The image run for real: the CLI and the MCP server over ``docker run -i``, hardened as Claude Desktop runs it.

Every container gets the flags of the ``claude-config`` snippet (``HARDENED``:
``--init --network none --read-only --cap-drop ALL --security-opt
no-new-privileges``), the store in a fresh named volume at
``/var/lib/mcp-orchestration`` and, where a test wants one, the signing key
mounted read-only at ``/run/secrets/signing_key`` (owned 65532, mode 0400, as a
Docker secret arrives). What it proves:

- ``init`` pins the key and prints its fingerprint; ``healthcheck`` is quiet when
  healthy and says why when not; the engine's own HEALTHCHECK agrees;
- a whole MCP session through the SDK's stdio client, with stdout carrying only
  JSON-RPC; without the key the server stays up read-only and refuses writes
  with ``key_unavailable``;
- a key the container cannot read fails with the fix, not a traceback;
- the store outlives each container; serving compiles no Python source (the
  image's bytecode is used);
- no output of any container run in this module holds the key's bytes.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import time
import uuid
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from mcp.client.stdio import StdioServerParameters

from mcp_orchestration.trust import keys
from tests.conftest import SAMPLE_CONFIG
from tests.container.conftest import DOCKER, HARDENED, IMAGE, NONROOT, docker
from tests.integration.tool_errors import tool_error, wire_error
from tests.stdio_session import RawServer, mcp_session, running, structured

pytestmark = pytest.mark.container

HOME = "/var/lib/mcp-orchestration"
KEY_TARGET = "/run/secrets/signing_key"
SNAPSHOT = Path(__file__).resolve().parents[1] / "integration" / "snapshots" / "tools_list.json"
CD = "claude-desktop"
PROFILE = "default"
FINGERPRINT = re.compile(r"SHA256:[0-9a-f]{64}")
SESSION_TIMEOUT = 60
HEALTH_TIMEOUT = 20.0


# -- every output of the module, checked for the key's bytes ----------------------------------


@dataclass
class Transcript:
    """Everything the containers of this module printed, and the keys they were given."""

    # Kept out of repr: pytest prints fixtures' reprs in failure reports.
    outputs: list[str] = field(default_factory=list, repr=False)
    key_lines: set[str] = field(default_factory=set, repr=False)

    def add_key(self, path: Path) -> None:
        """Remember a key's PEM body lines (not the armour, which libraries quote as constants)."""
        body = [line for line in path.read_text().splitlines() if line and not line.startswith("-----")]
        assert body, f"{path} has no PEM body"
        self.key_lines.update(body)
        self.key_lines.add("".join(body))

    def record(self, *texts: str | bytes) -> None:
        """Keep outputs and fail at once if one holds a line of any key."""
        for text in texts:
            decoded = text.decode(errors="replace") if isinstance(text, bytes) else text
            self.outputs.append(decoded)
            leaked = [line[:8] + "..." for line in self.key_lines if line in decoded]
            assert leaked == [], f"key bytes in container output: {leaked}"


@pytest.fixture(scope="module")
def transcript() -> Iterator[Transcript]:
    """At the end of the module: outputs were recorded and none holds any key's body."""
    collected = Transcript()
    yield collected
    assert collected.outputs, "no container output was recorded"
    everything = "\n".join(collected.outputs)
    assert [line[:8] for line in collected.key_lines if line in everything] == []


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


# -- running the image -----------------------------------------------------------------------


def mounts(volume: str, key: Path | None) -> list[str]:
    """The store volume and, if given, the key as a read-only file at the Docker secret's path."""
    args = ["-v", f"{volume}:{HOME}"]
    if key is not None:
        args += ["-v", f"{key}:{KEY_TARGET}:ro"]
    return args


def run_args(
    volume: str, key: Path | None, *command: str, entrypoint: str | None = None, pin: str | None = None
) -> list[str]:
    """``docker run`` arguments for one hardened, throwaway, stdin-attached container.

    ``pin`` is the store's root fingerprint, which a container without the key needs to read anything.
    """
    extra = ["--entrypoint", entrypoint] if entrypoint else []
    if pin is not None:
        extra += ["-e", f"MCP_ORCHESTRATION_EXPECT_KEY={pin}"]
    return ["run", "-i", "--rm", *HARDENED, *mounts(volume, key), *extra, IMAGE, *command]


def run(
    transcript: Transcript, volume: str, key: Path | None, *command: str, stdin: str = "", pin: str | None = None
) -> subprocess.CompletedProcess[str]:
    """Run one CLI command in a container; its output is recorded and checked for key bytes."""
    result = docker(*run_args(volume, key, *command, pin=pin), check=False, input=stdin, timeout=60)
    transcript.record(result.stdout, result.stderr)
    return result


@contextmanager
def fresh_volume() -> Iterator[str]:
    """One more named volume, for tests that need two stores."""
    name = f"mcpo-test-{uuid.uuid4().hex[:12]}"
    docker("volume", "create", name)
    try:
        yield name
    finally:
        docker("volume", "rm", "-f", name, check=False)


@dataclass(frozen=True)
class Store:
    volume: str
    key: Path
    fingerprint: str


@pytest.fixture
def key(secret_key: Path, transcript: Transcript) -> Path:
    """The conftest's secret-shaped key (65532, 0400), registered so no output may contain it."""
    transcript.add_key(secret_key)
    return secret_key


@pytest.fixture
def root_only_key(tmp_path: Path, key: Path) -> Path:
    """The same key as root would leave it: owner 0, mode 0400, unreadable by uid 65532."""
    path = tmp_path / "root-only" / "signing_key"
    path.parent.mkdir()
    shutil.copyfile(key, path)
    path.chmod(0o400)  # copyfile as root leaves owner 0
    assert path.stat().st_uid == 0
    return path


@pytest.fixture
def store(volume: str, key: Path, transcript: Transcript) -> Store:
    """A volume initialised through the container, with the key that pinned it."""
    result = run(transcript, volume, key, "init")
    assert result.returncode == 0, result.stderr
    match = FINGERPRINT.search(result.stdout)
    assert match, result.stdout
    return Store(volume, key, match.group(0))


def _fingerprint_on_host(path: Path) -> str:
    return keys.parse_private_key(path.read_bytes(), None, "test").fingerprint


def _snapshot() -> list[dict[str, Any]]:
    listing = json.loads(SNAPSHOT.read_text())
    assert isinstance(listing, list) and len(listing) == 16
    return listing


def _assert_clean_stderr(stderr: str) -> None:
    assert "Traceback" not in stderr, stderr


# -- init and healthcheck --------------------------------------------------------------------


def test_init_prints_the_root_fingerprint_and_is_idempotent(volume: str, key: Path, transcript: Transcript) -> None:
    """The fingerprint an operator pins is the key's own, and a second init only confirms it."""
    first = run(transcript, volume, key, "init")
    assert first.returncode == 0, first.stderr
    assert _fingerprint_on_host(key) in first.stdout
    assert f"Root key: {_fingerprint_on_host(key)}" in first.stdout
    again = run(transcript, volume, key, "init")
    assert again.returncode == 0, again.stderr
    assert _fingerprint_on_host(key) in again.stdout
    _assert_clean_stderr(first.stderr + again.stderr)


def test_healthcheck_is_quiet_and_succeeds_on_an_initialised_store(store: Store, transcript: Transcript) -> None:
    """The HEALTHCHECK command prints nothing when healthy, so the engine's health log stays clean."""
    result = run(transcript, store.volume, store.key, "healthcheck")
    assert (result.returncode, result.stdout, result.stderr) == (0, "", "")


def test_healthcheck_fails_clearly_on_an_empty_volume(volume: str, key: Path, transcript: Transcript) -> None:
    """An operator who forgot ``init`` must read that in ``docker inspect``'s health log."""
    result = run(transcript, volume, key, "healthcheck")
    assert result.returncode == 1
    assert result.stdout == ""
    _assert_clean_stderr(result.stderr)
    assert "not_initialized" in result.stderr, f"unclear healthcheck failure: {result.stderr!r}"
    assert "init" in result.stderr.replace("not_initialized", ""), f"no fix named: {result.stderr!r}"


# -- MCP over docker's stdio -----------------------------------------------------------------


@pytest.mark.anyio
async def test_a_whole_mcp_session_through_the_container(store: Store, transcript: Transcript, tmp_path: Path) -> None:
    """The SDK's stdio client drives the image exactly as Claude Desktop would; stdout is JSON-RPC only."""
    params = StdioServerParameters(command=DOCKER, args=run_args(store.volume, store.key))
    errlog_path = tmp_path / "serve.stderr"
    where = {"client": CD, "profile": PROFILE}
    async with mcp_session(params, errlog_path, SESSION_TIMEOUT) as sdk:
        session = sdk.session
        assert sdk.initialized.server_info.name == "mcp-orchestration"

        tools = (await session.list_tools()).tools
        listing = [
            {
                "name": t.name,
                "description": t.description,
                "inputSchema": t.input_schema,
                "outputSchema": t.output_schema,
            }
            for t in tools
        ]
        assert [tool["name"] for tool in listing] == [tool["name"] for tool in _snapshot()]
        assert listing == _snapshot()  # the image serves exactly the tools this checkout defines

        clients = structured(await session.call_tool("list_clients", {}))
        assert CD in {client["id"] for client in clients["clients"]}

        draft = structured(await session.call_tool("add_server_to_config", {**where, "server_id": "time"}))
        assert "time" in draft["config"]["mcpServers"]

        report = structured(await session.call_tool("validate_config", where))
        assert report["ok"] is True

        published = structured(await session.call_tool("publish_config", {**where, "changelog": "container"}))
        assert published["changed"] is True
        assert published["index_version"] == 2

        config = structured(await session.call_tool("get_config", where))
        assert config["artifact"] == published["artifact"]
        assert config["config"] == draft["config"]

        verified = structured(await session.call_tool("verify_config", where))
        assert verified["verified"] is True
        assert verified["artifact"] == published["artifact"]

        history = structured(await session.call_tool("get_config_history", where))
        assert [(v["artifact"], v["changelog"]) for v in history["versions"]] == [(published["artifact"], "container")]

    stderr = errlog_path.read_text()
    transcript.record(stderr)
    assert sdk.unparsed == [], sdk.unparsed
    _assert_clean_stderr(stderr)


def raw_container(args: list[str], stderr_path: Path) -> AbstractContextManager[RawServer]:
    """``docker run -i`` driven line by line (``tests.stdio_session.RawServer``); every stdout line is kept."""
    return running([DOCKER, *args], stderr_path)


def _close_and_collect(server: RawServer, transcript: Transcript, stderr_path: Path) -> str:
    """Close stdin, read stdout to its end; the container must exit 0. Returns its stderr."""
    assert server.close() == 0
    stderr = stderr_path.read_text(errors="replace")
    transcript.record(b"".join(server.seen), stderr)
    return stderr


def test_stdout_carries_only_json_rpc_and_the_container_exits_on_eof(
    store: Store, transcript: Transcript, tmp_path: Path
) -> None:
    """Byte for byte: every line on the container's stdout is one JSON-RPC 2.0 message; EOF ends it with 0."""
    stderr_path = tmp_path / "raw.stderr"
    with raw_container(run_args(store.volume, store.key), stderr_path) as server:
        server.initialize("container-test")
        listed = server.request("tools/list")
        assert len(listed["result"]["tools"]) == 16
        added = server.call("add_server_to_config", {"client": CD, "profile": PROFILE, "server_id": "memory"})
        assert added.get("isError") is not True, added
        assert wire_error(server.call("get_config", {"client": "../x", "profile": PROFILE}))["code"] == "invalid_id"
        assert server.request("ping").get("result") == {}
        stderr = _close_and_collect(server, transcript, stderr_path)
    server.assert_stdout_is_only_jsonrpc()
    _assert_clean_stderr(stderr)


@pytest.mark.anyio
async def test_without_the_key_reads_work_and_writes_answer_key_unavailable(
    store: Store, transcript: Transcript, tmp_path: Path
) -> None:
    """No key mounted: the server still starts and reads, and a write is a tool error, not a crash."""
    published = run(
        transcript, store.volume, store.key, "publish", "--client", CD, "--profile", PROFILE, "--file", "-",
        stdin=json.dumps(SAMPLE_CONFIG),
    )  # fmt: skip
    assert published.returncode == 0, published.stderr

    params = StdioServerParameters(command=DOCKER, args=run_args(store.volume, None, pin=store.fingerprint))
    errlog_path = tmp_path / "readonly.stderr"
    where = {"client": CD, "profile": PROFILE}
    async with mcp_session(params, errlog_path, SESSION_TIMEOUT) as sdk:
        session = sdk.session
        config = structured(await session.call_tool("get_config", where))
        assert config["config"] == SAMPLE_CONFIG
        assert structured(await session.call_tool("verify_config", where))["verified"] is True
        trust = structured(await session.call_tool("get_trust_info", {}))
        assert store.fingerprint in json.dumps(trust)

        refused = await session.call_tool("add_server_to_config", {**where, "server_id": "time"})
        assert tool_error(refused)["code"] == "key_unavailable"
        assert (await session.call_tool("list_clients", {})).is_error is False  # still serving

    stderr = errlog_path.read_text()
    transcript.record(stderr)
    _assert_clean_stderr(stderr)


# -- the engine's HEALTHCHECK ----------------------------------------------------------------


@contextmanager
def detached_containers() -> Iterator[list[str]]:
    """Names of containers a test starts with ``-d``; removed (with anonymous volumes) on the way out."""
    started: list[str] = []
    try:
        yield started
    finally:
        for name in started:
            docker("rm", "-f", "-v", name, check=False)


def _health(container: str) -> str:
    return docker("inspect", "-f", "{{.State.Health.Status}}", container).stdout.strip()


def _wait_for_health(containers: dict[str, str], timeout: float) -> dict[str, str]:
    """Poll until each container reached its expected status (or the time is up); return the last seen."""
    deadline = time.monotonic() + timeout
    seen = {name: "" for name in containers}
    while time.monotonic() < deadline:
        seen = {name: _health(name) for name in containers}
        if seen == containers:
            break
        time.sleep(0.5)
    return seen


def test_the_engines_healthcheck_reports_healthy_and_unhealthy(store: Store, transcript: Transcript) -> None:
    """The image's HEALTHCHECK (run by the engine as uid 65532) agrees with the store's state."""
    # --health-start-period=0s would keep the image's 10 s (the engine fills zero values from the image).
    timing = ["--health-interval=1s", "--health-start-period=1ms", "--health-retries=2", "--health-timeout=10s"]
    with fresh_volume() as empty, detached_containers() as started:
        for name, volume in (
            (f"mcpo-healthy-{uuid.uuid4().hex[:8]}", store.volume),
            (f"mcpo-unhealthy-{uuid.uuid4().hex[:8]}", empty),
        ):
            docker("run", "-d", "-i", "--name", name, *HARDENED, *timing, *mounts(volume, store.key), IMAGE)
            started.append(name)
        healthy, unhealthy = started
        seen = _wait_for_health({healthy: "healthy", unhealthy: "unhealthy"}, HEALTH_TIMEOUT)
        logs = {name: docker("inspect", "-f", "{{json .State.Health.Log}}", name).stdout for name in started}
        transcript.record(*logs.values(), *(docker("logs", name).stderr for name in started))
        assert seen == {healthy: "healthy", unhealthy: "unhealthy"}, logs
        for entry in json.loads(logs[unhealthy]):
            assert entry["ExitCode"] == 1
            _assert_clean_stderr(entry["Output"])


# -- a key the container cannot read ---------------------------------------------------------


def _assert_names_the_fix(stderr: str) -> None:
    """The code, the uid that could not read, and how to fix it; no traceback."""
    _assert_clean_stderr(stderr)
    assert "key_unreadable" in stderr, stderr
    assert f"uid {NONROOT}" in stderr, stderr
    assert f"chown {NONROOT}" in stderr, stderr
    assert "chmod" in stderr, stderr


def test_init_with_a_root_only_key_fails_naming_uid_65532_and_the_fix(
    volume: str, root_only_key: Path, transcript: Transcript
) -> None:
    """The commonest deployment mistake (a secret file left root:root 0400) explains itself."""
    result = run(transcript, volume, root_only_key, "init")
    assert result.returncode == 4, result.stderr  # the exit code of a key problem
    _assert_names_the_fix(result.stderr)
    assert result.stdout == ""


@pytest.fixture
def served_with_root_only_key(
    store: Store, root_only_key: Path, transcript: Transcript
) -> subprocess.CompletedProcess[str]:
    """``serve`` on an initialised store with the key mounted but unreadable; stdin at EOF at once."""
    return run(transcript, store.volume, root_only_key, "serve")


def test_serve_with_a_root_only_key_names_uid_65532_and_the_fix(
    served_with_root_only_key: subprocess.CompletedProcess[str],
) -> None:
    """Whatever serve then does, its log must say why the key is unusable and how to fix it."""
    _assert_names_the_fix(served_with_root_only_key.stderr)
    assert served_with_root_only_key.stdout == ""  # nothing on the protocol channel


def test_serve_with_a_root_only_key_runs_read_only(
    served_with_root_only_key: subprocess.CompletedProcess[str],
) -> None:
    """As documented, a key the server cannot load leaves it read-only rather than down: reads go on,
    and the warning above (and every write's error) names the fix."""
    assert served_with_root_only_key.returncode == 0, served_with_root_only_key.stderr
    assert "Serving read-only [key_unreadable]" in served_with_root_only_key.stderr


# -- persistence and bytecode ----------------------------------------------------------------


def test_the_store_outlives_the_container(store: Store, transcript: Transcript) -> None:
    """Publish in one container, read and verify in others: the volume holds the signed store."""
    published = run(
        transcript, store.volume, store.key, "--json", "publish", "--client", CD, "--profile", PROFILE, "--file", "-",
        "--changelog", "persist", stdin=json.dumps(SAMPLE_CONFIG),
    )  # fmt: skip
    assert published.returncode == 0, published.stderr

    unpinned = run(transcript, store.volume, None, "--json", "get", "--client", CD, "--profile", PROFILE)
    assert unpinned.returncode == 4 and json.loads(unpinned.stderr)["error"]["code"] == "key_untrusted"
    got = run(transcript, store.volume, None, "get", "--client", CD, "--profile", PROFILE, pin=store.fingerprint)
    assert got.returncode == 0, got.stderr
    assert json.loads(got.stdout) == SAMPLE_CONFIG

    verified = run(transcript, store.volume, None, "--json", "verify", "--deep", pin=store.fingerprint)
    assert verified.returncode == 0, verified.stderr
    report = json.loads(verified.stdout)
    assert report["index_version"] == 2
    _assert_clean_stderr(published.stderr + got.stderr + verified.stderr)


def _make(target: str, **variables: str) -> subprocess.CompletedProcess[str]:
    """A Makefile target, run as an operator would (the image and volume named by variables)."""
    assignments = [f"{name}={value}" for name, value in {"IMAGE": IMAGE, "DOCKER": DOCKER, **variables}.items()]
    root = Path(__file__).resolve().parents[2]
    return subprocess.run(
        ["make", "--no-print-directory", "-C", str(root), target, *assignments],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip


def test_make_backup_and_restore_move_a_verified_store_between_volumes(
    store: Store, transcript: Transcript, tmp_path: Path
) -> None:
    """``make backup`` streams a verified archive out of the volume; ``make restore`` refuses a tampered
    copy and brings the intact one into an empty volume, where the same artifact verifies."""
    published = run(
        transcript, store.volume, store.key, "--json", "publish", "--client", CD, "--profile", PROFILE, "--file", "-",
        stdin=json.dumps(SAMPLE_CONFIG),
    )  # fmt: skip
    assert published.returncode == 0, published.stderr
    archive = tmp_path / "store.tar"
    made = _make("backup", VOLUME=store.volume, BACKUP=str(archive), EXPECT_KEY=store.fingerprint)
    transcript.record(made.stdout, made.stderr)
    assert made.returncode == 0, made.stderr
    assert archive.stat().st_mode & 0o077 == 0  # the archive is the operator's alone
    data = archive.read_bytes()
    tampered = tmp_path / "tampered.tar"
    assert data.count(b'"npx"') == 1  # the published artifact's bytes
    tampered.write_bytes(data.replace(b'"npx"', b'"npy"'))
    with fresh_volume() as target:
        unpinned = _make("restore", VOLUME=target, BACKUP=str(archive))
        assert unpinned.returncode != 0 and "EXPECT_KEY" in unpinned.stderr
        refused = _make("restore", VOLUME=target, BACKUP=str(tampered), EXPECT_KEY=store.fingerprint)
        transcript.record(refused.stdout, refused.stderr)
        assert refused.returncode != 0 and "[integrity]" in refused.stderr, refused.stderr
        assert run(transcript, target, None, "verify").returncode == 5  # nothing was installed
        restored = _make("restore", VOLUME=target, BACKUP=str(archive), EXPECT_KEY=store.fingerprint)
        transcript.record(restored.stdout, restored.stderr)
        assert restored.returncode == 0, restored.stderr
        got = run(transcript, target, None, "get", "--client", CD, "--profile", PROFILE, pin=store.fingerprint)
        assert got.returncode == 0, got.stderr
        assert json.loads(got.stdout) == SAMPLE_CONFIG
        assert run(transcript, target, None, "verify", "--deep", "--expect-key", store.fingerprint).returncode == 0


def test_serving_a_session_compiles_no_python_source(store: Store, transcript: Transcript, tmp_path: Path) -> None:
    """Under ``python -v``, a whole session loads every module from bytecode: none is compiled at run time."""
    stderr_path = tmp_path / "verbose.stderr"
    args = run_args(store.volume, store.key, "-v", "-m", "mcp_orchestration", "serve", entrypoint="/venv/bin/python")
    where = {"client": CD, "profile": PROFILE}
    with raw_container(args, stderr_path) as server:
        server.initialize("container-test")
        server.request("tools/list")
        server.call("add_server_to_config", {**where, "server_id": "time"})
        for tool in ("view_draft_config", "diff_config", "validate_config", "publish_config", "get_config"):
            assert server.call(tool, where).get("isError") is not True, tool
        for tool in ("get_config_history", "verify_config", "export_config"):
            assert server.call(tool, where).get("isError") is not True, tool
        for tool in ("list_clients", "list_profiles", "list_available_servers", "get_trust_info"):
            assert server.call(tool, {}).get("isError") is not True, tool
        server.request("resources/read", {"uri": "mcp-orchestration://capabilities"})
        stderr = _close_and_collect(server, transcript, stderr_path)
    from_bytecode = re.findall(r"^# code object from '(/\S+\.pyc)'$", stderr, flags=re.MULTILINE)
    assert len(from_bytecode) > 300, "python -v printed no imports"
    compiled = re.findall(r"^# code object from (/\S+\.py)$", stderr, flags=re.MULTILINE)
    assert compiled == [], f"compiled from source at run time: {compiled}"


def _options(args: list[str]) -> list[tuple[str, ...]]:
    """Command-line options as (flag,) or (flag, value) tuples."""
    options: list[tuple[str, ...]] = []
    for arg in args:
        if arg.startswith("-") or not options:
            options.append((arg,))
        else:
            options[-1] = (*options[-1], arg)
    return options


def test_the_claude_config_snippet_runs_the_server(store: Store, transcript: Transcript, tmp_path: Path) -> None:
    """The snippet the image prints for Claude Desktop is hardened at least as HARDENED, and it works."""
    printed = run(
        transcript,
        store.volume,
        None,
        "claude-config",
        "--image",
        IMAGE,
        "--single-machine",
        "--key-file",
        str(store.key),
        "--volume",
        store.volume,
    )
    assert printed.returncode == 0, printed.stderr
    entry = json.loads(printed.stdout)["mcpServers"]["mcp-orchestration"]
    assert entry["command"] == "docker"
    args: list[str] = entry["args"]
    assert args[:3] == ["run", "-i", "--rm"]
    assert "-t" not in args and "--tty" not in args
    snippet = _options(args[: args.index(IMAGE)])
    for option in _options(list(HARDENED)):
        assert option in snippet, (option, args)
    assert f"{store.key}:{KEY_TARGET}:ro" in args
    assert not any("BEGIN" in arg for arg in args)

    stderr_path = tmp_path / "snippet.stderr"
    with raw_container(args, stderr_path) as server:
        server.initialize("container-test")
        clients = server.call("list_clients", {})
        assert clients.get("isError") is not True, clients
        stderr = _close_and_collect(server, transcript, stderr_path)
    _assert_clean_stderr(stderr)
