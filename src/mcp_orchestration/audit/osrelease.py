"""The image's ``/etc/os-release``: which Debian release its packages come from.

The purls of the SBOM carry ``distro=debian-<VERSION_ID>`` and the Debian
audit reads the tracker's entries for ``VERSION_CODENAME`` (trixie). The
format is shell-like ``KEY=value`` lines (os-release(5)); only what is needed
is read, and an image that is not Debian, or says no release, is an error: a
verdict on the wrong release's data would be no verdict at all.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass
from pathlib import Path

from mcp_orchestration.audit.errors import OsReleaseError

_LINE = re.compile(r"(?P<key>[A-Z][A-Z0-9_]*)=(?P<value>.*)")
_WORD = re.compile(r"[a-z0-9][a-z0-9._-]*")


@dataclass(frozen=True)
class OsRelease:
    """The distribution id (``debian``), its version (``13``) and codename (``trixie``)."""

    id: str
    version_id: str
    codename: str


def load_os_release(path: Path) -> OsRelease:
    """Read and parse the file; anything but a Debian release with a version and a codename is an error."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        reason = error.strerror if isinstance(error, OSError) and error.strerror else type(error).__name__
        raise OsReleaseError(f"Cannot read {path}: {reason}.") from None
    return parse_os_release(text, str(path))


def parse_os_release(text: str, source: str) -> OsRelease:
    """The three values, each a lowercase word; ``source`` names the file in messages."""
    values: dict[str, str] = {}
    for line in text.splitlines():
        match = _LINE.fullmatch(line.strip())
        if match is None:
            continue
        try:
            words = shlex.split(match["value"])
        except ValueError:
            raise OsReleaseError(f"{source}: unbalanced quotes in `{match['key']}`.") from None
        values[match["key"]] = words[0] if len(words) == 1 else ""
    if values.get("ID") != "debian":
        raise OsReleaseError(f"{source}: ID is {values.get('ID')!r}, not 'debian'.")
    found = {key: values.get(key, "") for key in ("VERSION_ID", "VERSION_CODENAME")}
    for key, value in found.items():
        if not _WORD.fullmatch(value):
            raise OsReleaseError(f"{source}: no usable {key} ({value!r}).")
    return OsRelease("debian", found["VERSION_ID"], found["VERSION_CODENAME"])
