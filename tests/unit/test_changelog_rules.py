"""The changelog rule refuses every character that could break or hide a line in a terminal or a transcript."""

from __future__ import annotations

import pytest

from mcp_orchestration.app.operations import check_changelog
from mcp_orchestration.config.strict import escape_hidden
from mcp_orchestration.core.errors import ValidationError


@pytest.mark.parametrize(
    "hidden",
    ["\u2028", "\u2029", "\ufe0f", "\U000e0100", "\x1b[2J", "\r", "\n", "\t", "\x00", "\u202e", "\u200b"],
)
def test_a_changelog_with_a_line_breaking_or_invisible_character_is_refused(hidden: str) -> None:
    with pytest.raises(ValidationError, match="control or invisible"):
        check_changelog(f"fix{hidden}ed")
    assert "\\" in escape_hidden(hidden)  # and an old store's changelog shows it escaped


@pytest.mark.parametrize("visible", ["café", "cafe\u0301", "naïve 日本語 ✓", "emoji 🙂"])
def test_visible_text_in_any_script_is_a_changelog(visible: str) -> None:
    check_changelog(visible)
