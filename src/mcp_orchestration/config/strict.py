"""Strict readers for the JSON data files: every field expected, typed and bounded.

The client registry and the server catalog are data, and the catalog can also
come from an operator's file. A typo there must fail when the file is loaded,
naming the file and the entry, rather than yield a config that quietly does
something else. Text may not carry control or invisible format characters, so
nothing loaded here can hide a line break or a bidi override in a description.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable, Collection, Mapping
from types import MappingProxyType
from typing import Any, Protocol, TypeVar

from mcp_orchestration.config.payload import parse_payload
from mcp_orchestration.core.errors import LimitError, ValidationError
from mcp_orchestration.security.ids import shown

# Control, format (bidi overrides, zero-width), surrogate, private-use and unassigned characters.
# Controls, format characters (bidi overrides, zero-width), surrogates, private use, unassigned, and the
# line and paragraph separators (U+2028, U+2029), which break lines like LF does.
_HIDDEN_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"})
# Variation selectors (category Mn, like real accents): invisible, and they can smuggle bytes past a reader.
_VARIATION_SELECTORS = ((0xFE00, 0xFE0F), (0xE0100, 0xE01EF))


def is_hidden(char: str) -> bool:
    """Whether ``char`` is invisible or breaks or controls a terminal line: it could fake or hide text around it."""
    if unicodedata.category(char) in _HIDDEN_CATEGORIES:
        return True
    code = ord(char)
    return any(low <= code <= high for low, high in _VARIATION_SELECTORS)


def has_hidden(text: str) -> bool:
    """Whether ``text`` holds a control or invisible character (ESC, CR, LF, TAB, NUL, U+202E, U+200B...)."""
    return any(is_hidden(char) for char in text)


def escape_hidden(text: str) -> str:
    """``text`` with each control or invisible character written as its escape (``\\x1b``, ``\\u202e``)."""
    return "".join(ascii(char)[1:-1] if is_hidden(char) else char for char in text)


def parse_document(data: bytes, source: str) -> dict[str, Any]:
    """Parse a bounded JSON object like ``parse_payload`` does, with every error naming ``source``."""
    try:
        return parse_payload(data, source)
    except ValidationError as exc:
        if exc.message.startswith(source):
            raise
        raise ValidationError(f"{source}: {exc.message}") from None


def check_text(value: object, what: str, max_chars: int, pattern: re.Pattern[str] | None = None) -> str:
    """Return ``value`` if it is a non-empty, visible string of at most ``max_chars`` characters."""
    if not isinstance(value, str) or not value:
        raise ValidationError(f"{what} must be a non-empty string.")
    if len(value) > max_chars:
        raise LimitError(f"{what} is {len(value)} characters long; the limit is {max_chars}.")
    if has_hidden(value):
        raise ValidationError(f"{what} contains a control or invisible character.")
    if pattern is not None and not pattern.fullmatch(value):
        raise ValidationError(f"{what} has an unexpected form: {shown(value)}.")
    return value


def check_object(
    raw: object, what: str, required: Collection[str], optional: Collection[str] = ()
) -> Mapping[str, Any]:
    """Return ``raw`` if it is a JSON object with all ``required`` fields and no others than ``optional``."""
    if not isinstance(raw, dict):
        raise ValidationError(f"{what} must be a JSON object.")
    for name in raw:
        if name not in required and name not in optional:
            raise ValidationError(f"{what} has an unknown field {shown(name)}.")
    for name in required:
        if name not in raw:
            raise ValidationError(f"{what} lacks the field {name!r}.")
    return raw


def check_list(raw: object, what: str, max_items: int) -> list[Any]:
    """Return ``raw`` if it is a JSON array of at most ``max_items`` items."""
    if not isinstance(raw, list):
        raise ValidationError(f"{what} must be a JSON array.")
    if len(raw) > max_items:
        raise LimitError(f"{what} has {len(raw)} items; the limit is {max_items}.")
    return raw


def check_names(raw: object, what: str, max_items: int, pattern: re.Pattern[str]) -> tuple[str, ...]:
    """A JSON array of distinct names that each match ``pattern``."""
    names = tuple(check_text(item, f"{what} item", 128, pattern) for item in check_list(raw, what, max_items))
    if len(set(names)) != len(names):
        raise ValidationError(f"{what} names the same item twice.")
    return names


def check_flag(raw: object, what: str) -> bool:
    """Return ``raw`` if it is a JSON ``true`` or ``false``."""
    if not isinstance(raw, bool):
        raise ValidationError(f"{what} must be true or false.")
    return raw


class _HasId(Protocol):
    @property
    def id(self) -> str: ...


_Item = TypeVar("_Item", bound=_HasId)


def index_by_id(
    raw: object, what: str, kind: str, max_items: int, parse: Callable[[object, str], _Item]
) -> Mapping[str, _Item]:
    """Parse a bounded list of ``kind`` entries into a read-only mapping by id, refusing a repeated id."""
    items: dict[str, _Item] = {}
    for number, entry in enumerate(check_list(raw, what, max_items)):
        item = parse(entry, f"{what}, {kind} {number}")
        if item.id in items:
            raise ValidationError(f"{what} defines the {kind} {item.id!r} twice.")
        items[item.id] = item
    return MappingProxyType(items)
