"""Error text that quotes a model's input never carries a credential back into the transcript."""

from __future__ import annotations

import hashlib

from mcp_orchestration.security.secret_rules import scrub_text

TOKEN = "ghp_" + "a1B2c3D4e5F6g7H8i9J0" * 2


def test_credentials_quoted_in_error_text_are_masked() -> None:
    text = f"Invalid client id '{TOKEN}': use 1-64 characters. Also Bearer {TOKEN[4:]} and {TOKEN}."
    scrubbed = scrub_text(text)
    assert TOKEN not in scrubbed and TOKEN[4:] not in scrubbed
    assert scrubbed.startswith("Invalid client id '***'")


def test_the_products_own_ids_and_ordinary_words_stay_readable() -> None:
    digest = hashlib.sha256(b"config").hexdigest()
    text = (
        f"Object {digest} is corrupted. Key SHA256:{digest} is retired. "
        "See /home/user/.config/Claude/claude_desktop_config.json at 2026-11-29T17:49:15Z "
        "for @modelcontextprotocol/server-filesystem."
    )
    assert scrub_text(text) == text
