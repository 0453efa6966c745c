from __future__ import annotations

import pytest

from mcp_orchestration.core.errors import InvalidIdError
from mcp_orchestration.security.ids import check_artifact_id, check_name_id, check_server_name, is_server_name
from mcp_orchestration.trust.keys import parse_keyid

VALID_DIGEST = "a" * 64


@pytest.mark.parametrize("value", ["claude-desktop", "cursor", "a", "team.prod_2", "x" * 64])
def test_name_ids_that_are_plain_ascii_pass(value: str) -> None:
    assert check_name_id(value, "client") == value


@pytest.mark.parametrize(
    "value",
    [
        "",
        "..",
        "../etc",
        "a/b",
        "/abs",
        "a\\b",
        "a\x00b",
        ".hidden",
        "-flag",
        "UPPER",
        "x" * 65,
        "caf\u00e9",
        "\uff41",  # fullwidth 'a'
        "a\u200bb",  # zero-width space
        "a..b",
        "trailing\n",
        "١٢٣",  # Arabic-Indic digits
        None,
        42,
    ],
)
def test_name_ids_with_traversal_or_unicode_tricks_are_rejected(value: object) -> None:
    with pytest.raises(InvalidIdError) as caught:
        check_name_id(value, "profile")
    assert caught.value.code == "invalid_id"
    assert "profile" in caught.value.message


def test_artifact_ids_must_be_64_lowercase_hex() -> None:
    assert check_artifact_id(VALID_DIGEST) == VALID_DIGEST
    for bad in ["A" * 64, "a" * 63, "a" * 65, "g" * 64, "../" + "a" * 61, VALID_DIGEST + "\n", "٣" * 64]:
        with pytest.raises(InvalidIdError):
            check_artifact_id(bad)


def test_error_text_shows_only_an_escaped_prefix_of_the_input() -> None:
    with pytest.raises(InvalidIdError) as caught:
        check_name_id("\x00" + "y" * 500, "client")
    assert "\x00" not in caught.value.message
    assert "y" * 100 not in caught.value.message


def test_an_id_that_looks_like_a_credential_is_never_echoed() -> None:
    token = "ghp_" + "Q7w8E9r0T1" * 4
    for check in (lambda v: check_name_id(v, "client"), check_artifact_id, check_server_name, parse_keyid):
        with pytest.raises(InvalidIdError) as caught:
            check(f"x/{token}")
        assert token not in caught.value.message
        assert "***" in caught.value.message


@pytest.mark.parametrize("name", ["fs", "GitHub", "a.b-c_d", "x" * 64])
def test_server_names_follow_the_one_rule(name: str) -> None:
    assert is_server_name(name) and check_server_name(name) == name


@pytest.mark.parametrize("name", ["caf\u00e9", "a..b", "..", "-x", ".x", "x" * 65, "a b", "a\x1b", "\u202ea", "", None])
def test_server_names_outside_the_rule_are_refused(name: object) -> None:
    assert not is_server_name(name)
    with pytest.raises(InvalidIdError):
        check_server_name(name)
