"""Fuzzing every MCP tool with hypothesis-generated arguments, through the SDK's in-memory client.

One server over one store serves the whole module (a fresh store per example
would cost more than the calls). Arguments are drawn per tool from its real
parameter names: valid ids, path-traversal and look-alike ids, random JSON
values of every type, unicode, strings far over every size limit, nested
dicts, unknown extra arguments, and canary secrets (a fresh ``ghp_`` token,
the server's own signing-key PEM lines) hidden in ids, parameters, optional
variable names and changelogs. Lone surrogates are left out: the stdio
transport's JSON parser rejects them before any tool runs.

Invariants, checked on every call:

* the call returns (the client raises nothing) within the server's time limit;
* an error result carries, in its ``_meta``, a code from the
  product's set of stable codes (code ``internal`` is a failure: it means an
  exception nobody expected), a message, and never a traceback;
* a success result has structured content;
* no result contains a canary: a planted ``ghp_`` token or an encoding of the
  signing key.

After each test the store still verifies in full (``index.verify(deep=True)``)
and the server still does the whole add, publish, get flow.

Two leaks of ``src/`` that the fuzzer found have their own tests at the end,
both refused now: a token in a changelog, and a token without upper-case
letters used as an id. Only those tokens are excused from the leak check (see
``Canaries.excused``), so the fuzzer keeps looking for other leaks; the
excuses go together with the fixes. Malformed JSON-RPC lines are covered by
``test_stdio_e2e.py``. The signing key is loaded by ``init`` in this process
before the server starts, so the redactor already knows it here; the lazy
loading of ``serve`` is the leak canary tests' business.
"""

from __future__ import annotations

import base64
import json
import re
import secrets
import string
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio
import pytest
from anyio.from_thread import BlockingPortal, start_blocking_portal
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from mcp import Client
from mcp_types import CallToolResult

from mcp_orchestration.app import operations
from mcp_orchestration.app.operations import App
from mcp_orchestration.app.settings import load_settings
from mcp_orchestration.config import catalog, clients
from mcp_orchestration.core import errors
from mcp_orchestration.server.app import DESCRIPTIONS, build_server
from mcp_orchestration.server.tools import ConfigTools
from tests.conftest import write_key
from tests.integration.tool_errors import tool_error

# Examples per tool in the per-tool test, and call sequences in the sequence test: 16 * 95 + 600 = 2,120.
PER_TOOL_EXAMPLES = 95
SEQUENCE_EXAMPLES = 600
FUZZ_SETTINGS = settings(
    deadline=None,
    database=None,  # the store is shared between examples: a replayed example would not see the same state
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.data_too_large],
)
CALL_LIMIT_SECONDS = 30.0  # above the server's own per-call limit (20 s), which must answer first


def _error_codes() -> frozenset[str]:
    """Every stable code an ``OrchestrationError`` subclass declares, less the two that mean "unexpected"."""
    found: set[str] = set()
    pending = [errors.OrchestrationError]
    while pending:
        cls = pending.pop()
        pending.extend(cls.__subclasses__())
        found.add(cls.code)
    return frozenset(found - {errors.OrchestrationError.code, errors.InternalError.code})


KNOWN_CODES = _error_codes()
TOOLS = tuple(sorted(DESCRIPTIONS))
TOOL_PARAMETERS: dict[str, tuple[str, ...]] = {
    "list_clients": (),
    "list_profiles": ("client",),
    "get_config": ("client", "profile", "artifact"),
    "diff_config": ("client", "profile"),
    "list_available_servers": (),
    "describe_server": ("server_id",),
    "add_server_to_config": ("client", "profile", "server_id", "name", "parameters", "optional_env"),
    "remove_server_from_config": ("client", "profile", "name"),
    "view_draft_config": ("client", "profile"),
    "clear_draft_config": ("client", "profile"),
    "validate_config": ("client", "profile"),
    "publish_config": ("client", "profile", "changelog"),
    "get_config_history": ("client", "profile"),
    "verify_config": ("client", "profile"),
    "get_trust_info": (),
    "export_config": ("client", "profile"),
}
CATALOG = catalog.load_catalog()
CLIENT_IDS = tuple(sorted(clients.load_clients()))
PROFILES = ("default", "work", "fuzz")
SERVER_NAMES = ("time", "fs", "my-server", "git")
PARAMETER_NAMES = tuple(sorted({name for server in CATALOG.values() for name in server.parameters}))
OPTIONAL_ENV = tuple(sorted({name for server in CATALOG.values() for name in server.optional_env}))
GHP_TOKEN = re.compile(r"ghp_[A-Za-z0-9]{36}")
NAME_ID = re.compile(r"[a-z0-9][a-z0-9._-]{0,63}")  # ids.check_name_id
TRACEBACK = "Traceback (most recent call last)"
MISSING = object()

# -- strategies --------------------------------------------------------------------------------------

TRAVERSAL = (
    "..",
    "../x",
    "../../../../etc/passwd",
    "a/../../b",
    "..\\..\\windows",
    "/etc/passwd",
    "C:\\Windows\\System32",
    "%2e%2e%2f",
    "claude-desktop/../cursor",
    ".hidden",
    "-rf",
    "default\x00",
    "\x00",
    "con",
    "NUL",
    "default\n",
    " default",
    "Default",
    "CLAUDE-DESKTOP",
    "\u0441laude-desktop",  # Cyrillic es
    "claude\u200b-desktop",  # zero-width space
    "\u212aelvin",  # Kelvin sign, folds to K
    "\uff44\uff45\uff46",  # fullwidth "def"
    "a" * 65,
    "0" * 64,
    "F" * 64,
    "g" * 64,
)
TEXT = st.text(alphabet=st.characters(codec="utf-8"), max_size=120)
HUGE = st.builds(
    lambda unit, count: unit * count,
    st.text(alphabet=st.characters(codec="utf-8"), min_size=1, max_size=4),
    st.integers(min_value=20_000, max_value=150_000),
)
SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.integers(min_value=-(2**80), max_value=2**80),
    st.floats(allow_nan=True, allow_infinity=True),
    TEXT,
)
JUNK = st.recursive(
    SCALARS,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(TEXT, children, max_size=4),
    max_leaves=10,
)
DEEP = st.integers(min_value=20, max_value=200).map(
    lambda depth: json.loads("[" * depth + "]" * depth) if depth % 2 else _nested_dict(depth)
)
GHP = st.text(alphabet=string.ascii_letters + string.digits, min_size=36, max_size=36).map(lambda s: "ghp_" + s)
SECRET_PREFIXES = ("", "token ", "GITHUB_TOKEN=", "--token=", "https://x-access-token:", "/home/u/", "Bearer ")
SECRET_SUFFIXES = ("", " ", "@github.com/o/r.git", "\n", "/repo")


def _nested_dict(depth: int) -> dict[str, Any]:
    value: dict[str, Any] = {}
    for level in range(depth):
        value = {f"k{level}": value}
    return value


@dataclass
class Canaries:
    """The signing key's encodings, and every ``ghp_`` token planted so far (with the call that planted it)."""

    key: frozenset[str]
    key_lines: tuple[str, ...]
    planted: dict[str, str] = field(default_factory=dict)
    excused: set[str] = field(default_factory=set)  # tokens stored through a known defect (an xfail test below)

    def plant(self, value: object, call: str) -> None:
        """Remember the tokens inside ``value`` (any nesting) as canaries."""
        if isinstance(value, str):
            for token in GHP_TOKEN.findall(value):
                self.planted.setdefault(token, call)
                if NAME_ID.fullmatch(token):
                    # BUG (known, see test_a_credential_shaped_id_is_refused): a token without upper-case
                    # letters is a valid client, profile or server id, echoed and stored as such.
                    self.excused.add(token)
        elif isinstance(value, dict):
            for key, item in value.items():
                self.plant(key, call)
                self.plant(item, call)
        elif isinstance(value, list | tuple):
            for item in value:
                self.plant(item, call)

    def leaks(self, text: str) -> list[str]:
        found = [
            f"token {token[:8]}... planted by {self.planted[token]}"
            for token in GHP_TOKEN.findall(text)
            if token in self.planted and token not in self.excused
        ]
        found += [f"signing key encoding {canary[:8]}..." for canary in self.key if canary in text]
        return found


def key_encodings(key_file: Path) -> tuple[frozenset[str], tuple[str, ...]]:
    """The PEM text, its base64 lines and body, and the raw seed in hex and base64."""
    pem = key_file.read_text().strip()
    lines = tuple(line for line in pem.splitlines() if line and not line.startswith("-----"))
    private = serialization.load_pem_private_key(pem.encode(), None)
    assert isinstance(private, ed25519.Ed25519PrivateKey)
    seed = private.private_bytes(
        serialization.Encoding.Raw, serialization.PrivateFormat.Raw, serialization.NoEncryption()
    )
    encodings = {
        pem,
        json.dumps(pem)[1:-1],
        "".join(lines),
        *(line for line in lines if len(line) >= 16),
        seed.hex(),
        base64.b64encode(seed).decode().rstrip("="),
        base64.urlsafe_b64encode(seed).decode().rstrip("="),
    }
    return frozenset(encodings), lines


def secrets_strategy(key_lines: tuple[str, ...]) -> st.SearchStrategy[str]:
    """A credential inside realistic surroundings: a ``ghp_`` token, the key's PEM lines or whole PEM."""
    armour = "PRIVATE KEY-----"  # split so no committed file carries a whole private-key header
    pem = f"-----BEGIN {armour}\n" + "\n".join(key_lines) + f"\n-----END {armour}\n"
    secret = st.one_of(GHP, GHP, st.sampled_from(key_lines), st.just(pem))
    return st.builds(
        lambda prefix, value, suffix: prefix + value + suffix,
        st.sampled_from(SECRET_PREFIXES),
        secret,
        st.sampled_from(SECRET_SUFFIXES),
    )


def ids(valid: tuple[str, ...], secret: st.SearchStrategy[str]) -> st.SearchStrategy[Any]:
    """An id argument: valid ones often, and everything a model or an attacker could put there."""
    return st.one_of(
        st.sampled_from(valid),
        st.sampled_from(valid),
        st.sampled_from(TRAVERSAL),
        TEXT,
        HUGE,
        secret,
        JUNK,
    )


def artifacts(secret: st.SearchStrategy[str]) -> st.SearchStrategy[Any]:
    return st.one_of(
        st.none(),
        st.text(alphabet="0123456789abcdef", min_size=64, max_size=64),
        st.text(alphabet="0123456789ABCDEF", min_size=64, max_size=64),
        st.text(alphabet="0123456789abcdef", min_size=0, max_size=70),
        st.sampled_from(TRAVERSAL),
        secret,
        JUNK,
    )


def parameter_values(secret: st.SearchStrategy[str]) -> st.SearchStrategy[Any]:
    plausible = st.sampled_from(("/srv/data", "/home/u/project", "C:\\data", "Europe/Paris", "http://proxy:3128"))
    value = st.one_of(plausible, st.sampled_from(TRAVERSAL), TEXT, secret, HUGE, JUNK, DEEP)
    return st.one_of(value, st.lists(st.one_of(plausible, secret, TEXT, JUNK), max_size=70))


def parameters(secret: st.SearchStrategy[str]) -> st.SearchStrategy[Any]:
    keys = st.one_of(st.sampled_from(PARAMETER_NAMES), TEXT, secret)
    return st.one_of(
        st.none(),
        st.dictionaries(keys, parameter_values(secret), max_size=5),
        st.dictionaries(TEXT, JUNK, min_size=17, max_size=40),
        DEEP,
        JUNK,
    )


def optional_env(secret: st.SearchStrategy[str]) -> st.SearchStrategy[Any]:
    name = st.one_of(st.sampled_from(OPTIONAL_ENV), TEXT, secret)
    return st.one_of(st.none(), st.lists(name, max_size=6), st.lists(name, min_size=40, max_size=80), secret, JUNK)


def changelogs(secret: st.SearchStrategy[str]) -> st.SearchStrategy[Any]:
    return st.one_of(st.just(""), TEXT, secret, st.builds(str.__add__, TEXT, secret), HUGE, JUNK)


def argument_strategies(secret: st.SearchStrategy[str]) -> dict[str, st.SearchStrategy[Any]]:
    return {
        "client": ids(CLIENT_IDS, secret),
        "profile": ids(PROFILES, secret),
        "server_id": ids(tuple(CATALOG), secret),
        "name": st.one_of(st.none(), ids(SERVER_NAMES, secret)),
        "artifact": artifacts(secret),
        "parameters": parameters(secret),
        "optional_env": optional_env(secret),
        "changelog": changelogs(secret),
    }


def arguments(tool: str, secret: st.SearchStrategy[str]) -> st.SearchStrategy[dict[str, Any]]:
    """Arguments for ``tool``: each of its parameters given or left out, plus unknown extra arguments."""
    values = argument_strategies(secret)
    fields = {name: st.one_of(st.just(MISSING), values[name], values[name]) for name in TOOL_PARAMETERS[tool]}
    extra = st.dictionaries(st.one_of(st.sampled_from(("__proto__", "admin", "path", "key_file")), TEXT), JUNK)

    def combine(given: dict[str, Any], more: dict[str, Any]) -> dict[str, Any]:
        return {**more, **{name: value for name, value in given.items() if value is not MISSING}}

    return st.builds(combine, st.fixed_dictionaries(fields), st.one_of(st.just({}), extra))


def plausible_arguments(tool: str, secret: st.SearchStrategy[str]) -> st.SearchStrategy[dict[str, Any]]:
    """Arguments with valid ids, so that sequences reach drafts, publishing and history."""
    plausible: dict[str, st.SearchStrategy[Any]] = {
        "client": st.sampled_from(CLIENT_IDS[:2]),
        "profile": st.sampled_from(PROFILES[:2]),
        "server_id": st.sampled_from(tuple(CATALOG)),
        "name": st.one_of(st.none(), st.sampled_from(SERVER_NAMES)),
        "artifact": st.none(),
        "parameters": st.one_of(
            st.none(),
            st.fixed_dictionaries({}, optional={name: parameter_values(secret) for name in PARAMETER_NAMES}),
        ),
        "optional_env": st.one_of(st.none(), st.lists(st.sampled_from(OPTIONAL_ENV), max_size=2)),
        "changelog": changelogs(secret),
    }
    return st.fixed_dictionaries({name: plausible[name] for name in TOOL_PARAMETERS[tool]})


# -- the server under test ---------------------------------------------------------------------------


class Harness:
    """One store, one server and one connected in-memory client, kept in a blocking portal's event loop."""

    def __init__(self, root: Path) -> None:
        key_file = root / "signing_key"
        write_key(key_file)
        self.app = App(load_settings(home=root / "home", key_file=key_file, environ={}))
        operations.init(self.app)
        key, lines = key_encodings(key_file)
        self.canaries = Canaries(key, lines)
        self.secret = secrets_strategy(lines)
        self.calls = 0
        self._portal_context = start_blocking_portal()
        self.portal: BlockingPortal = self._portal_context.__enter__()
        self._client_context = self.portal.wrap_async_context_manager(Client(build_server(ConfigTools(self.app))))
        self.client: Client = self._client_context.__enter__()

    def close(self) -> None:
        self._client_context.__exit__(None, None, None)
        self._portal_context.__exit__(None, None, None)

    async def _call(self, tool: str, args: dict[str, Any]) -> CallToolResult:
        with anyio.fail_after(CALL_LIMIT_SECONDS):
            result: CallToolResult = await self.client.call_tool(tool, args)
            return result

    def call(self, tool: str, args: dict[str, Any]) -> CallToolResult:
        """Call a tool and check every invariant of its result."""
        self.calls += 1
        shown = _describe(tool, args)
        self.canaries.plant(args, shown)
        try:
            result: CallToolResult = self.portal.call(self._call, tool, args)
        except Exception as exc:  # the invariant: nothing escapes to the client
            pytest.fail(f"{shown} raised {type(exc).__name__}: {str(exc)[:500]}")
        text = "\n".join(getattr(block, "text", "") for block in result.content)
        everything = text + "\n" + json.dumps(result.model_dump(mode="json"), default=repr)
        leaks = self.canaries.leaks(everything)
        assert not leaks, f"{shown} leaked {leaks}:\n{everything[:2000]}"
        assert TRACEBACK not in everything, f"{shown} returned a traceback:\n{everything[:2000]}"
        if result.is_error:
            error = tool_error(result)
            assert error.get("code") in KNOWN_CODES, f"{shown}: unknown error code {error.get('code')!r}: {error}"
            assert isinstance(error.get("message"), str) and error["message"], f"{shown}: no message: {error}"
            assert text.startswith(f"[{error['code']}] "), f"{shown}: text {text[:200]!r}"
        else:
            assert isinstance(result.structured_content, dict), f"{shown} returned no structured content: {text[:500]}"
        return result


def _describe(tool: str, args: dict[str, Any]) -> str:
    """The call, short enough for a failure message (huge values cut)."""
    shown = json.dumps(args, default=repr, ensure_ascii=True)
    return f"{tool}({shown[:600]}{'...' if len(shown) > 600 else ''})"


@pytest.fixture(scope="module")
def harness(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Harness]:
    harness = Harness(tmp_path_factory.mktemp("fuzz"))
    yield harness
    harness.close()


@pytest.fixture(autouse=True)
def _store_still_verifies(harness: Harness) -> Iterator[None]:
    """After each test: the store verifies in full, and the server still serves the whole flow."""
    yield
    harness.app.index.verify(deep=True)
    client, profile = "windsurf", "after-fuzz"
    harness.call("clear_draft_config", {"client": client, "profile": profile})
    added = harness.call("add_server_to_config", {"client": client, "profile": profile, "server_id": "time"})
    assert not added.is_error, added.structured_content
    published = harness.call("publish_config", {"client": client, "profile": profile, "changelog": "after fuzz"})
    assert not published.is_error, published.structured_content
    got = harness.call("get_config", {"client": client, "profile": profile})
    assert got.structured_content["artifact"] == published.structured_content["artifact"]
    verified = harness.call("verify_config", {"client": client, "profile": profile})
    assert verified.structured_content["verified"] is True


# -- tests -------------------------------------------------------------------------------------------


def test_tool_parameters_match_the_server(harness: Harness) -> None:
    """The fuzzer knows every tool and every parameter the server declares."""
    listed = harness.portal.call(harness.client.list_tools).tools
    declared = {tool.name: tuple(sorted(tool.input_schema.get("properties", {}))) for tool in listed}
    assert declared == {tool: tuple(sorted(names)) for tool, names in TOOL_PARAMETERS.items()}
    assert len(TOOLS) * PER_TOOL_EXAMPLES + SEQUENCE_EXAMPLES >= 2000


@pytest.mark.parametrize("tool", TOOLS)
def test_each_tool_survives_fuzzed_arguments(harness: Harness, tool: str) -> None:
    examples = 0

    @settings(FUZZ_SETTINGS, max_examples=PER_TOOL_EXAMPLES)
    @given(args=arguments(tool, harness.secret))
    def fuzz(args: dict[str, Any]) -> None:
        nonlocal examples
        examples += 1
        harness.call(tool, args)

    fuzz()
    assert examples == PER_TOOL_EXAMPLES


def test_fuzzed_call_sequences(harness: Harness) -> None:
    """Short sequences of calls, mostly with valid ids, so that drafts get published and read back."""

    def call(plausible: bool) -> st.SearchStrategy[tuple[str, dict[str, Any]]]:
        build = plausible_arguments if plausible else arguments
        return st.sampled_from(TOOLS).flatmap(lambda tool: st.tuples(st.just(tool), build(tool, harness.secret)))

    examples = 0

    @settings(FUZZ_SETTINGS, max_examples=SEQUENCE_EXAMPLES)
    @given(calls=st.lists(st.one_of(call(True), call(True), call(False)), min_size=1, max_size=5))
    def fuzz(calls: list[tuple[str, dict[str, Any]]]) -> None:
        nonlocal examples
        examples += 1
        for tool, args in calls:
            harness.call(tool, args)

    fuzz()
    assert examples == SEQUENCE_EXAMPLES


def test_a_credential_in_a_changelog_is_refused(harness: Harness) -> None:
    token = "ghp_" + "".join(secrets.choice(string.ascii_letters + string.digits) for _ in range(36))
    where = {"client": "vscode", "profile": "changelog-secret"}
    published = harness.portal.call(
        harness.client.call_tool, "publish_config", {**where, "changelog": f"rotated the token {token}"}
    )
    assert published.is_error and tool_error(published)["code"] == "validation"
    assert token not in json.dumps(published.model_dump(mode="json"))


def test_a_credential_shaped_id_is_refused(harness: Harness) -> None:
    token = "ghp_" + "".join(secrets.choice(string.ascii_lowercase + string.digits) for _ in range(36))
    where = {"client": "vscode", "profile": token}
    try:
        added = harness.portal.call(harness.client.call_tool, "add_server_to_config", {**where, "server_id": "time"})
        assert added.is_error, "a token was accepted as a profile id"
        assert tool_error(added)["code"] in {"invalid_id", "validation"}
        assert token not in json.dumps(added.model_dump(mode="json"))
    finally:
        harness.portal.call(harness.client.call_tool, "clear_draft_config", where)
