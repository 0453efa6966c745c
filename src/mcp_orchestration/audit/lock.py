"""The hash-pinned lock (``build/requirements.lock``): the ``name==version`` set every report must cover.

pip-audit reports what it saw, not what it was meant to see: pointed at the
wrong ``--path``, or at a venv whose ``*.dist-info`` it cannot read, it lists
fewer packages and exits 0 all the same. The lock says what ships, so the gate
compares every report with it (``gate.py``). Only the pins are read: one
``name==version`` per requirement, with ``--hash`` options, comments and line
continuations ignored. Anything else (a range, an environment marker, a URL,
an option such as ``-r``) would make the expected set a guess, so it stops the
gate instead (``lock_malformed``).
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from mcp_orchestration.audit.errors import LockMalformedError, LockUnreadableError
from mcp_orchestration.audit.report import canonical_name

# pip's own rule: a comment starts at a `#` at the start of a line or after whitespace.
_COMMENT = re.compile(r"(^|\s+)#.*$")
_SHA256 = "--hash=sha256:"
_PIN = re.compile(
    r"(?P<name>[A-Za-z0-9](?:[A-Za-z0-9._-]*[A-Za-z0-9])?)(?:\[[^\]]*\])?==(?P<version>[A-Za-z0-9][A-Za-z0-9.+!_-]*)"
)


@dataclass(frozen=True)
class Lock:
    """Where the lock was read from, its pins (PEP 503 name to version, as written) and the sha256 each allows.

    The gate compares versions only; the SBOM (``sbom.py``) takes a wheel's hash
    only when the lock allows it, so ``hashes`` maps a name to its lowercase hex digests.
    """

    source: str
    pins: Mapping[str, str]
    hashes: Mapping[str, frozenset[str]] = field(default_factory=dict)


def load_lock(path: Path) -> Lock:
    """Read and parse the lock; any failure is a typed error (exit 2), never a traceback."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        reason = error.strerror if isinstance(error, OSError) and error.strerror else type(error).__name__
        raise LockUnreadableError(f"Cannot read the lock {path}: {reason}.") from None
    return parse_lock(text, str(path))


def parse_lock(text: str, source: str) -> Lock:
    """Every pin of the lock; a lock that pins nothing, or a name twice, cannot say what ships."""
    pins: dict[str, str] = {}
    hashes: dict[str, frozenset[str]] = {}
    for number, words in _requirements(text):
        where = f"{source}:{number}"
        digests = frozenset(word.removeprefix(_SHA256).lower() for word in words if word.startswith(_SHA256))
        name, version = _pin([word for word in words if not word.startswith("--hash=")], where)
        key = canonical_name(name)
        if key in pins:
            raise LockMalformedError(f"{where}: {name} is pinned twice.")
        pins[key] = version
        hashes[key] = digests
    if not pins:
        raise LockMalformedError(f"{source} pins no package.")
    return Lock(source, pins, hashes)


def _requirements(text: str) -> Iterator[tuple[int, list[str]]]:
    """The words of each requirement, with the number of the line it starts on.

    Comments go first, then lines ending in a backslash are joined to the next
    one; ``--hash=...`` words are kept for ``parse_lock`` to set apart.
    """
    start = 0
    words: list[str] = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not words:
            start = number
        code = _COMMENT.sub("", line).rstrip()
        words.extend(code.removesuffix("\\").split())
        if code.endswith("\\"):
            continue
        if words:
            yield start, words
        words = []
    if words:
        yield start, words


def _pin(words: list[str], where: str) -> tuple[str, str]:
    """The name and version of one requirement, which must be exactly ``name==version`` (extras allowed)."""
    match = _PIN.fullmatch(words[0])
    if len(words) != 1 or match is None:
        raise LockMalformedError(
            f"{where}: `{' '.join(words)}` is not a `name==version` pin: ranges, environment markers, "
            "URLs and options other than --hash would leave what ships open."
        )
    return match["name"], match["version"]
