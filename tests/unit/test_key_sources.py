"""The key-source registry: one list of names for the CLI, the settings and the loaders."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from mcp_orchestration import cli
from mcp_orchestration.app.settings import TokenOptions, key_source_choices, load_settings
from mcp_orchestration.core.errors import KeySourceUnavailableError, PlainSecretEnvError, UsageError
from mcp_orchestration.trust import key_sources
from mcp_orchestration.trust.key_sources import KeySpec
from mcp_orchestration.trust.signer import Signer


def test_the_registry_names_file_keyring_and_pkcs11_with_file_first() -> None:
    assert tuple(key_sources.SOURCES) == ("file", "keyring", "pkcs11")
    assert tuple(key_source_choices()) == tuple(key_sources.SOURCES)
    assert all(source.description for source in key_sources.SOURCES.values())


def test_an_unknown_source_is_a_usage_error_listing_the_choices() -> None:
    with pytest.raises(UsageError) as caught:
        key_sources.get_source("vault")
    assert caught.value.code == "usage"
    assert "'vault'" in caught.value.message
    assert "file, keyring, pkcs11" in caught.value.message


def test_an_unknown_source_in_the_environment_is_refused_with_the_choices() -> None:
    with pytest.raises(UsageError, match="file, keyring, pkcs11"):
        load_settings(environ={"MCP_ORCHESTRATION_KEY_SOURCE": "hsm", "MCP_ORCHESTRATION_HOME": "/h"})


def test_the_cli_offers_exactly_the_registered_sources(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as caught:
        cli.main(["--key-source", "vault", "keys", "fingerprint"])
    assert caught.value.code == 2
    assert "'file', 'keyring', 'pkcs11'" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        cli.main(["keys", "rotate", "--new-key-source", "vault"])
    assert "'file', 'keyring', 'pkcs11'" in capsys.readouterr().err


def test_a_file_key_loads_as_a_signer(key_file: Path) -> None:
    key = key_sources.load_signing_key(KeySpec("file", key_file))
    assert isinstance(key, Signer)
    assert key.public_key.verify(key.sign(b"m"), b"m")
    assert key_sources.is_configured(KeySpec("file", key_file))
    assert not key_sources.is_configured(KeySpec("file"))
    assert key_sources.is_configured(KeySpec("keyring"))


def test_pkcs11_settings_come_from_options_then_variables(tmp_path: Path) -> None:
    environ = {
        "MCP_ORCHESTRATION_HOME": "/h",
        "MCP_ORCHESTRATION_KEY_SOURCE": "pkcs11",
        "MCP_ORCHESTRATION_PKCS11_MODULE": "/usr/lib/softhsm/libsofthsm2.so",
        "MCP_ORCHESTRATION_PKCS11_TOKEN_LABEL": "ci",
        "MCP_ORCHESTRATION_PKCS11_KEY_LABEL": "signing",
        "MCP_ORCHESTRATION_PKCS11_PIN_FILE": str(tmp_path / "pin"),
    }
    assert load_settings(environ=environ).signing_key == KeySpec(
        "pkcs11",
        token_label="ci",
        key_label="signing",
        pin_path=tmp_path / "pin",
        module=Path("/usr/lib/softhsm/libsofthsm2.so"),
    )
    chosen = load_settings(environ=environ, token=TokenOptions(key_label="next", pin_file=tmp_path / "other"))
    assert (chosen.signing_key.key_label, chosen.signing_key.pin_path) == ("next", tmp_path / "other")


@pytest.mark.parametrize("variable", ["MCP_ORCHESTRATION_PKCS11_PIN", "MCP_ORCHESTRATION_PKCS11_NEXT_PIN"])
def test_a_pin_in_a_plain_variable_is_refused(variable: str) -> None:
    with pytest.raises(PlainSecretEnvError) as caught:
        load_settings(environ={variable: "12345678-secret-pin"})
    assert f"{variable}_FILE" in caught.value.diagnostics()
    assert "12345678-secret-pin" not in caught.value.diagnostics()


def test_a_key_id_that_is_not_hex_is_a_usage_error(tmp_path: Path) -> None:
    spec = KeySpec("pkcs11", token_label="t", key_id="zz", pin_path=tmp_path / "pin", module=tmp_path / "lib.so")
    with pytest.raises(UsageError, match="not hex"):
        key_sources.load_signing_key(spec)


def test_pkcs11_without_python_pkcs11_is_a_structured_error(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    pin = tmp_path / "pin"
    pin.write_text("a-token-pin-0000\n")
    pin.chmod(0o600)
    monkeypatch.setitem(sys.modules, "pkcs11", None)  # as if the extra were not installed: import raises
    spec = KeySpec("pkcs11", token_label="t", key_label="k", pin_path=pin, module=tmp_path / "lib.so")
    with pytest.raises(KeySourceUnavailableError) as caught:
        key_sources.load_signing_key(spec)
    assert caught.value.code == "key_source_unavailable"
    assert "mcp-orchestration[pkcs11]" in caught.value.hint
