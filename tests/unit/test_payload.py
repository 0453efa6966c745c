"""config/payload.py: an untrusted payload is one bounded JSON object, with one meaning."""

from __future__ import annotations

import json

import pytest

from mcp_orchestration.config.payload import MAX_PAYLOAD_BYTES, parse_payload
from mcp_orchestration.core.errors import LimitError, ValidationError


def test_a_json_object_parses_to_the_same_dict() -> None:
    payload = {"mcpServers": {"fs": {"command": "npx", "args": ["-y", "server"]}}, "n": 1, "ok": True}
    assert parse_payload(json.dumps(payload).encode()) == payload


def test_a_key_repeated_in_one_object_is_refused_at_any_depth() -> None:
    with pytest.raises(ValidationError, match="repeats the key 'a'"):
        parse_payload(b'{"a": 1, "a": 2}')
    with pytest.raises(ValidationError, match="repeats the key 'cmd'"):
        parse_payload(b'{"mcpServers": {"x": {"cmd": "a", "cmd": "b"}}}')
    assert parse_payload(b'{"a": {"k": 1}, "b": {"k": 2}}') == {"a": {"k": 1}, "b": {"k": 2}}


@pytest.mark.parametrize("constant", ["NaN", "Infinity", "-Infinity"])
def test_constants_json_does_not_allow_are_refused(constant: str) -> None:
    with pytest.raises(ValidationError, match="which JSON does not allow"):
        parse_payload(f'{{"x": {constant}}}'.encode())


@pytest.mark.parametrize("data", [b"[]", b'"text"', b"42", b"null", b"true"])
def test_anything_but_an_object_is_refused(data: bytes) -> None:
    with pytest.raises(ValidationError, match="must be a JSON object"):
        parse_payload(data)


def test_broken_json_names_the_source_and_the_byte_it_broke_at() -> None:
    with pytest.raises(ValidationError) as caught:
        parse_payload(b'{"a": }', source="config.json")
    assert caught.value.message.startswith("config.json is not valid JSON")
    assert "byte 6" in caught.value.message


def test_bytes_that_are_not_utf8_are_a_validation_error() -> None:
    with pytest.raises(ValidationError, match="not valid JSON"):
        parse_payload(b'{"a": "\xff\xfe"}')


def test_the_size_limit_is_inclusive_and_checked_before_parsing() -> None:
    filler = MAX_PAYLOAD_BYTES - len(b'{"a": ""}')
    at_limit = b'{"a": "' + b"x" * filler + b'"}'
    assert len(at_limit) == MAX_PAYLOAD_BYTES
    assert parse_payload(at_limit)["a"] == "x" * filler
    with pytest.raises(LimitError, match=f"the limit is {MAX_PAYLOAD_BYTES}"):
        parse_payload(b" " + at_limit)
    with pytest.raises(LimitError):
        parse_payload(b"[" * (MAX_PAYLOAD_BYTES + 1))  # not even looked at


def test_nesting_too_deep_for_the_parser_is_a_limit_error() -> None:
    depth = 100_000
    with pytest.raises(LimitError, match="nested too deeply"):
        parse_payload(b'{"a": ' + b"[" * depth + b"]" * depth + b"}")


def test_an_integer_beyond_the_digit_limit_is_a_validation_error() -> None:
    with pytest.raises(ValidationError, match="huge number"):
        parse_payload(b'{"n": ' + b"9" * 5000 + b"}")
