"""config/strict.py: data files are read field by field, typed, bounded and free of hidden characters."""

from __future__ import annotations

import re
from dataclasses import dataclass

import pytest

from mcp_orchestration.config.strict import (
    check_flag,
    check_list,
    check_names,
    check_object,
    check_text,
    escape_hidden,
    has_hidden,
    index_by_id,
    is_hidden,
    parse_document,
)
from mcp_orchestration.core.errors import LimitError, ValidationError

NAME = re.compile(r"[a-z]+")


@pytest.mark.parametrize(
    "char",
    [
        "\x00",
        "\x1b",
        "\t",
        "\n",
        "\r",
        "\x7f",
        "\u200b",
        "\u202e",
        "\u2028",
        "\u2029",
        "\ufe0f",
        "\U000e0100",
        "\ue000",
    ],
)
def test_controls_format_separators_variation_selectors_and_private_use_are_hidden(char: str) -> None:
    assert is_hidden(char)
    assert has_hidden(f"visible{char}text")
    assert char not in escape_hidden(f"a{char}b")


@pytest.mark.parametrize("text", ["plain ascii", "café", "日本語", "emoji \U0001f600", "e\u0301"])
def test_visible_text_is_not_hidden_and_escapes_to_itself(text: str) -> None:
    assert not has_hidden(text)
    assert escape_hidden(text) == text


def test_escaping_writes_each_hidden_character_as_its_python_escape() -> None:
    assert escape_hidden("a\x1b]0;t\x07b\u202ec\r\n") == "a\\x1b]0;t\\x07b\\u202ec\\r\\n"


def test_a_document_error_names_its_source_once() -> None:
    with pytest.raises(ValidationError) as caught:
        parse_document(b'{"a": 1, "a": 2}', "catalog.json")
    assert caught.value.message.startswith("catalog.json: ")
    with pytest.raises(ValidationError) as broken:
        parse_document(b"{", "catalog.json")
    assert broken.value.message.startswith("catalog.json is not valid JSON")
    assert broken.value.message.count("catalog.json") == 1
    assert parse_document(b'{"a": 1}', "catalog.json") == {"a": 1}


def test_text_must_be_a_visible_non_empty_string_within_its_limit() -> None:
    assert check_text("abc", "name", 3) == "abc"
    for bad in ["", None, 5, ["abc"]]:
        with pytest.raises(ValidationError, match="name must be a non-empty string"):
            check_text(bad, "name", 3)
    with pytest.raises(LimitError, match="4 characters long; the limit is 3"):
        check_text("abcd", "name", 3)
    with pytest.raises(ValidationError, match="control or invisible"):
        check_text("a\nb", "name", 10)
    with pytest.raises(ValidationError, match="unexpected form"):
        check_text("ABC", "name", 10, NAME)


def test_an_object_needs_every_required_field_and_no_unknown_one() -> None:
    raw = {"id": "x", "note": "y"}
    assert check_object(raw, "entry", required=["id"], optional=["note"]) is raw
    with pytest.raises(ValidationError, match="entry lacks the field 'id'"):
        check_object({"note": "y"}, "entry", required=["id"], optional=["note"])
    with pytest.raises(ValidationError, match="entry has an unknown field 'typo'"):
        check_object({"id": "x", "typo": 1}, "entry", required=["id"])
    with pytest.raises(ValidationError, match="must be a JSON object"):
        check_object([("id", "x")], "entry", required=["id"])


def test_a_list_is_bounded() -> None:
    assert check_list([1, 2], "items", 2) == [1, 2]
    with pytest.raises(LimitError, match="3 items; the limit is 2"):
        check_list([1, 2, 3], "items", 2)
    with pytest.raises(ValidationError, match="must be a JSON array"):
        check_list((1, 2), "items", 2)


def test_names_are_distinct_and_each_matches_the_pattern() -> None:
    assert check_names(["a", "b"], "clients", 5, NAME) == ("a", "b")
    with pytest.raises(ValidationError, match="the same item twice"):
        check_names(["a", "a"], "clients", 5, NAME)
    with pytest.raises(ValidationError, match="clients item has an unexpected form"):
        check_names(["a", "B"], "clients", 5, NAME)
    with pytest.raises(LimitError):
        check_names(["a", "b", "c"], "clients", 2, NAME)


@pytest.mark.parametrize("value", [True, False])
def test_a_flag_is_a_json_boolean(value: bool) -> None:
    assert check_flag(value, "enabled") is value


@pytest.mark.parametrize("value", [1, 0, "true", None])
def test_anything_but_a_boolean_is_not_a_flag(value: object) -> None:
    with pytest.raises(ValidationError, match="enabled must be true or false"):
        check_flag(value, "enabled")


@dataclass(frozen=True)
class _Entry:
    id: str


def _parse_entry(raw: object, what: str) -> _Entry:
    return _Entry(check_text(check_object(raw, what, ["id"])["id"], f"{what} id", 10, NAME))


def test_entries_are_indexed_read_only_by_id_and_a_repeated_id_is_refused() -> None:
    entries = index_by_id([{"id": "a"}, {"id": "b"}], "catalog", "server", 5, _parse_entry)
    assert dict(entries) == {"a": _Entry("a"), "b": _Entry("b")}
    with pytest.raises(TypeError):
        entries["c"] = _Entry("c")  # type: ignore[index]
    with pytest.raises(ValidationError, match="defines the server 'a' twice"):
        index_by_id([{"id": "a"}, {"id": "a"}], "catalog", "server", 5, _parse_entry)
    with pytest.raises(ValidationError, match="catalog, server 1 lacks the field 'id'"):
        index_by_id([{"id": "a"}, {}], "catalog", "server", 5, _parse_entry)
