"""The pkcs11 key source against a real SoftHSM2 token: the private key stays in the token.

A module fixture creates a SoftHSM2 token in a temporary directory (its own
``SOFTHSM2_CONF`` and token directory), generates Ed25519 key pairs inside it
(CKM_EC_EDWARDS_KEY_PAIR_GEN, not extractable), and the tests drive the
product through the command line and the app layer. Nothing is mocked.

Without SoftHSM2 (``apt-get install softhsm2``) or python-pkcs11 these tests
skip, unless ``MCP_ORCHESTRATION_REQUIRE_SOFTHSM`` is set: CI sets it, so
there they fail instead of skipping.
"""

from __future__ import annotations

import json
import os
import pickle
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import pytest

from mcp_orchestration.app import operations
from mcp_orchestration.app.operations import App
from mcp_orchestration.app.settings import Settings
from mcp_orchestration.core.errors import DraftUnauthenticatedError, KeyUnavailableError, PinError
from mcp_orchestration.store.drafts import Draft, DraftStore
from mcp_orchestration.trust import key_sources
from mcp_orchestration.trust.key_sources import KeySpec
from mcp_orchestration.trust.signer import Signer
from tests.conftest import SAMPLE_CONFIG, Run, write_key

REQUIRE_VARIABLE = "MCP_ORCHESTRATION_REQUIRE_SOFTHSM"
MODULE_CANDIDATES = (
    Path("/usr/lib/softhsm/libsofthsm2.so"),  # Debian, Ubuntu
    Path("/usr/lib/x86_64-linux-gnu/softhsm/libsofthsm2.so"),
    Path("/usr/lib64/pkcs11/libsofthsm2.so"),  # Fedora
    Path("/usr/local/lib/softhsm/libsofthsm2.so"),  # built from source
)
TOKEN = "mcp-orchestration-test"
PIN = "token-user-pin-4711"  # long enough for the redactor to know it
SO_PIN = "security-officer-0815"
ED25519_OID = "1.3.101.112"


def _missing() -> str | None:
    """Why these tests cannot run here, or None."""
    if shutil.which("softhsm2-util") is None or not any(p.exists() for p in MODULE_CANDIDATES):
        return "SoftHSM2 is not installed (`apt-get install softhsm2`)"
    try:
        import pkcs11  # noqa: F401
    except ImportError:
        return "python-pkcs11 is not installed (`pip install -e '.[test]'`)"
    return None


MISSING = _missing()
if MISSING is not None and not os.environ.get(REQUIRE_VARIABLE):
    pytest.skip(f"{MISSING}; CI sets {REQUIRE_VARIABLE} so these tests never skip there", allow_module_level=True)


@dataclass(frozen=True)
class Token:
    module: Path
    pin_file: Path

    def spec(self, key_label: str, *, token_label: str = TOKEN, pin_file: Path | None = None) -> KeySpec:
        return KeySpec(
            "pkcs11",
            token_label=token_label,
            key_label=key_label,
            pin_path=pin_file or self.pin_file,
            module=self.module,
        )

    def options(self, key_label: str) -> list[str]:
        """The global CLI options that select ``key_label`` in the token."""
        return [
            "--key-source", "pkcs11",
            "--pkcs11-module", str(self.module),
            "--token-label", TOKEN,
            "--key-label", key_label,
            "--pin-file", str(self.pin_file),
        ]  # fmt: skip


def _generate(module: Path, label: str, key_id: bytes) -> None:
    """An Ed25519 key pair made inside the token: the private half is sensitive and never extractable."""
    import pkcs11
    from pkcs11 import Attribute, KeyType, Mechanism
    from pkcs11.util.ec import encode_named_curve_parameters

    token = pkcs11.lib(str(module)).get_token(token_label=TOKEN)
    with token.open(user_pin=PIN, rw=True) as session:
        session.generate_keypair(
            KeyType.EC_EDWARDS,
            mechanism=Mechanism.EC_EDWARDS_KEY_PAIR_GEN,
            store=True,
            public_template={
                Attribute.EC_PARAMS: encode_named_curve_parameters(ED25519_OID),
                Attribute.LABEL: label,
                Attribute.ID: key_id,
            },
            private_template={
                Attribute.LABEL: label,
                Attribute.ID: key_id,
                Attribute.SENSITIVE: True,
                Attribute.EXTRACTABLE: False,
            },
        )


@pytest.fixture(scope="module")
def token(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Token]:
    """A fresh SoftHSM2 token with key pairs ``signing-a`` (id 0a) and ``signing-b`` (id 0b).

    SoftHSM2 reads its config once per process (at C_Initialize), so the token lives as long as the module.
    """
    if MISSING is not None:
        pytest.fail(f"{MISSING}, although {REQUIRE_VARIABLE} is set")
    module = next(p for p in MODULE_CANDIDATES if p.exists())
    root = tmp_path_factory.mktemp("softhsm")
    (root / "tokens").mkdir()
    config = root / "softhsm2.conf"
    config.write_text(f"directories.tokendir = {root / 'tokens'}\nobjectstore.backend = file\nlog.level = ERROR\n")
    previous = os.environ.get("SOFTHSM2_CONF")
    os.environ["SOFTHSM2_CONF"] = str(config)
    try:
        subprocess.run(
            ["softhsm2-util", "--init-token", "--free", "--label", TOKEN, "--so-pin", SO_PIN, "--pin", PIN],
            check=True,
            capture_output=True,
        )
        _generate(module, "signing-a", b"\x0a")
        _generate(module, "signing-b", b"\x0b")
        pin_file = root / "pin"
        pin_file.write_text(PIN + "\n")
        pin_file.chmod(0o600)
        yield Token(module, pin_file)
    finally:
        if previous is None:
            os.environ.pop("SOFTHSM2_CONF", None)
        else:
            os.environ["SOFTHSM2_CONF"] = previous


def _app(home: Path, spec: KeySpec) -> App:
    return App(Settings(home=home, signing_key=spec))


def test_a_token_key_signs_inside_the_token_and_verifies_with_the_ordinary_verifier(token: Token) -> None:
    key = key_sources.load_signing_key(token.spec("signing-a"))
    assert isinstance(key, Signer)
    signature = key.sign(b"message")
    assert key.public_key.verify(signature, b"message")
    assert not key.public_key.verify(signature, b"other message")
    assert key.sign(b"message") == signature  # Ed25519 is deterministic, in the token too


def test_init_publish_and_verify_with_a_token_key(run: Run, token: Token, config_file: Path, home: Path) -> None:
    init = run(*token.options("signing-a"), "--json", "init")
    assert init.status == 0, init.stderr
    root = key_sources.load_signing_key(token.spec("signing-a")).fingerprint
    assert json.loads(init.stdout)["fingerprint"] == root
    published = run(
        *token.options("signing-a"), "publish", "--client", "claude-desktop", "--profile", "default",
        "--file", str(config_file),
    )  # fmt: skip
    assert published.status == 0, published.stderr
    # No key at all: the signatures the token made verify with the public key history alone.
    reader = _app(home, KeySpec("file"))
    assert operations.verify(reader, deep=True)["keyid"] == root.removeprefix("SHA256:")
    entry = operations.get(reader, "claude-desktop", "default", None)
    assert entry["config"]["mcpServers"].keys() == SAMPLE_CONFIG["mcpServers"].keys()


def test_rotation_from_a_file_key_to_a_token_key_and_back(
    run: Run, token: Token, tmp_path: Path, home: Path, config_file: Path
) -> None:
    first, last = tmp_path / "first_key", tmp_path / "last_key"
    write_key(first)
    last_key = write_key(last)
    assert run("init", "--key-file", str(first)).status == 0
    to_token = run(
        "--key-file", str(first), "--json", "keys", "rotate",
        "--new-key-source", "pkcs11", "--pkcs11-module", str(token.module), "--token-label", TOKEN,
        "--new-key-label", "signing-b", "--new-pin-file", str(token.pin_file),
    )  # fmt: skip
    assert to_token.status == 0, to_token.stderr
    token_key = key_sources.load_signing_key(token.spec("signing-b"))
    assert json.loads(to_token.stdout)["new_fingerprint"] == token_key.fingerprint

    on_token = _app(home, token.spec("signing-b"))
    operations.publish(on_token, client="cursor", profile="default", data=json.dumps(SAMPLE_CONFIG).encode(),
                       source="test", changelog="signed in the token")  # fmt: skip
    retired = run(
        "--key-file", str(first), "publish", "--client", "cursor", "--profile", "x", "--file", str(config_file)
    )
    assert retired.status != 0
    assert "key_retired" in retired.stderr

    to_file = run(*token.options("signing-b"), "--json", "keys", "rotate", "--new-key-file", str(last))
    assert to_file.status == 0, to_file.stderr
    assert json.loads(to_file.stdout)["new_fingerprint"] == last_key.fingerprint
    history = [(k["fingerprint"], k["status"]) for k in operations.list_keys(_app(home, KeySpec("file")))["keys"]]
    assert [status for _, status in history] == ["retired", "retired", "active"]
    assert history[1][0] == token_key.fingerprint
    assert operations.verify(_app(home, KeySpec("file", last)), deep=True)["keyid"] == last_key.keyid


def test_a_token_key_is_found_by_id_too(token: Token) -> None:
    by_label = key_sources.load_signing_key(token.spec("signing-b"))
    by_id = key_sources.load_signing_key(replace(token.spec("signing-b"), key_label=None, key_id="0b"))
    assert by_id.fingerprint == by_label.fingerprint
    assert "with id 0b" in by_id.origin


def test_draft_macs_derive_from_the_token_deterministically(token: Token) -> None:
    one = key_sources.load_signing_key(token.spec("signing-a"))
    two = key_sources.load_signing_key(token.spec("signing-a"))
    other = key_sources.load_signing_key(token.spec("signing-b"))
    mac = one.derive_key(b"draft").mac(b"m")
    assert two.derive_key(b"draft").mac(b"m") == mac  # another process, the same secret
    assert one.derive_key(b"other purpose").mac(b"m") != mac
    assert other.derive_key(b"draft").mac(b"m") != mac


def test_a_draft_saved_with_a_token_key_reads_back_only_with_that_key(token: Token, tmp_path: Path) -> None:
    (tmp_path / "storage").mkdir()
    drafts = DraftStore(tmp_path / "storage")
    draft = Draft("cursor", "default", SAMPLE_CONFIG, None, "2026-01-01T00:00:00Z")
    drafts.save(draft, key_sources.load_signing_key(token.spec("signing-a")))
    assert drafts.get("cursor", "default", key_sources.load_signing_key(token.spec("signing-a"))) == draft
    with pytest.raises(DraftUnauthenticatedError):
        drafts.get("cursor", "default", key_sources.load_signing_key(token.spec("signing-b")))


def test_a_token_key_never_shows_its_pin(token: Token) -> None:
    key = key_sources.load_signing_key(token.spec("signing-a"))
    for shown in (repr(key), str(key), f"{key}", repr(key.derive_key(b"draft"))):
        assert PIN not in shown
    assert key.fingerprint in repr(key)
    with pytest.raises(TypeError):
        pickle.dumps(key)


def test_a_wrong_pin_is_a_structured_error_without_the_pin(run: Run, token: Token, tmp_path: Path) -> None:
    wrong = "not-the-token-pin-1234"
    wrong_file = tmp_path / "wrong_pin"
    wrong_file.write_text(wrong)
    wrong_file.chmod(0o600)
    with pytest.raises(PinError) as caught:
        key_sources.load_signing_key(token.spec("signing-a", pin_file=wrong_file))
    assert caught.value.code == "key_pin"
    assert str(wrong_file) in caught.value.message
    for text in (caught.value.diagnostics(), json.dumps(caught.value.to_dict())):
        assert wrong not in text
        assert PIN not in text
    result = run(*token.options("signing-a"), "--pin-file", str(wrong_file), "--json", "init")
    assert result.status == 4
    assert json.loads(result.stderr)["error"]["code"] == "key_pin"
    assert wrong not in result.stderr + result.stdout


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"token_label": "no-such-token"}, "No PKCS#11 token labelled 'no-such-token'"),
        ({"key_label": "no-such-key"}, "holds no private key labelled 'no-such-key'"),
        ({"module": Path("/nonexistent/libpkcs11.so")}, "cannot be loaded"),
        ({"key_label": None}, "needs a token label and a key label or id"),
        ({"key_id": "0b"}, "holds no private key labelled 'signing-a' and with id 0b"),
        ({"pin_path": None}, "No PIN file is configured"),
    ],
)
def test_a_missing_token_key_or_module_is_key_unavailable(
    token: Token, change: dict[str, object], expected: str
) -> None:
    spec = replace(token.spec("signing-a"), **change)  # type: ignore[arg-type]
    with pytest.raises(KeyUnavailableError, match=expected) as caught:
        key_sources.load_signing_key(spec)
    assert caught.value.code == "key_unavailable"
    assert caught.value.hint
    assert PIN not in caught.value.diagnostics()
