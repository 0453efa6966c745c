"""One redactor for every output channel: logs, telemetry, CLI errors, tool output.

The redactor learns each secret the process loads, in every encoding it is
likely to be printed in, and also masks any PEM private-key block it sees,
known or not. Output channels call :meth:`Redactor.redact` last, on the final
text, so format arguments, child loggers and tracebacks are all covered.
"""

from __future__ import annotations

import base64
import json
import re
import threading
from collections.abc import Iterable

from mcp_orchestration.security.secret_rules import MASK, scrub_text

# A private-key block, whole or cut short (a truncated block still leaks).
_PEM_PRIVATE_BLOCK = (
    r"-----BEGIN [A-Z0-9 ]*PRIVATE KEY-----"
    r"(?:.*?-----END [A-Z0-9 ]*PRIVATE KEY-----|[A-Za-z0-9+/=:\s\\,-]*)"
)
# Shorter fragments of a PEM body (its last line, say) carry too little to matter
# and would mask innocent text.
_MIN_LINE_LENGTH = 16
# Strings shorter than this are not secrets worth masking (passphrases must be at
# least 8 characters) and masking them would mangle every output, error codes included.
MIN_SECRET_LENGTH = 8


def encodings_of_pem(pem: str) -> set[str]:
    """The PEM text, its JSON-escaped form, each base64 body line and the body as one string."""
    text = pem.strip()
    forms = {text, json.dumps(text)[1:-1]}
    body = [line.strip() for line in text.splitlines() if line.strip() and not line.startswith("-----")]
    body = [line for line in body if ":" not in line]  # skip RFC 1421 headers of legacy PEM
    forms.update(line for line in body if len(line) >= _MIN_LINE_LENGTH)
    if body:
        forms.add("".join(body))
    return forms


def encodings_of_bytes(raw: bytes) -> set[str]:
    """Hex (both cases), base64 and base64url (with and without padding) of ``raw``, also as part of a larger blob.

    Inside a larger base64 text ``raw`` starts at a byte offset of 0, 1 or 2
    modulo 3, and each offset encodes it to different characters. For each,
    the run of characters that depend on ``raw`` alone is learnt too: the
    characters that mix in a neighbouring byte (first or last) are dropped.
    """
    forms = {raw.hex(), raw.hex().upper()}
    for encode in (base64.b64encode, base64.urlsafe_b64encode):
        whole = encode(raw).decode()
        forms.update((whole, whole.rstrip("=")))
        for offset in (0, 1, 2):
            shifted = encode(bytes(offset) + raw).decode()
            forms.add(shifted[(8 * offset + 5) // 6 : 8 * (offset + len(raw)) // 6])
    return forms


class Redactor:
    """Masks registered secrets and PEM private-key blocks in any text."""

    def __init__(self) -> None:
        self._secrets: set[str] = set()
        self._lock = threading.Lock()
        self._pattern = re.compile(_PEM_PRIVATE_BLOCK, re.DOTALL)

    def register(self, secrets: Iterable[str]) -> None:
        """Learn more secret strings; strings shorter than ``MIN_SECRET_LENGTH`` are ignored."""
        with self._lock:
            new = {s for s in secrets if len(s.strip()) >= MIN_SECRET_LENGTH} - self._secrets
            if new:
                self._secrets.update(new)
                self._rebuild()

    def register_text(self, secret: str) -> None:
        """Learn a secret string in its plain and JSON-escaped forms."""
        self.register({secret, secret.strip(), json.dumps(secret)[1:-1], json.dumps(secret.strip())[1:-1]})

    def _rebuild(self) -> None:
        known = sorted(self._secrets, key=len, reverse=True)
        alternatives = [_PEM_PRIVATE_BLOCK, *(re.escape(s) for s in known)]
        self._pattern = re.compile("|".join(alternatives), re.DOTALL)

    def redact(self, text: str) -> str:
        """Return ``text`` with every known secret and private-key block masked."""
        return self._pattern.sub(MASK, text)

    def scrub(self, text: str) -> str:
        """Text that may quote input (an error, a log line): known secrets and anything credential-like masked.

        Errors and logs quote requests and arguments (an id, a resource URI), so
        unlike tool output they can carry a secret the process never loaded.
        """
        return scrub_text(self.redact(text))

    def __len__(self) -> int:
        return len(self._secrets)


REDACTOR = Redactor()
"""The process-wide redactor: every secret loader registers here, every output channel reads it."""
