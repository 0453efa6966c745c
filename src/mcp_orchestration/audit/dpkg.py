"""The Debian packages of an image, as distroless records them: ``/var/lib/dpkg/status.d/<package>``.

A distroless image has no dpkg database; its build writes each package's
control stanza to a file of its own (plus ``<package>.md5sums``, ignored
here). The SBOM (``sbom.py``) lists every package, and the Debian audit
(``debian_gate.py``) looks each one up by its *source* package, since that is
what Debian's security tracker names: ``Source: glibc (2.41-12)`` for the
binary ``libc6 2.41-12+b1``, or no ``Source:`` when both names and versions
are the same. ``SHA256:`` is the .deb's digest as apt verified it, when the
image's build recorded it (build/runtime-base.Dockerfile); an upstream base
does not, and then the package has no hash rather than an invented one.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from debian.deb822 import Deb822

from mcp_orchestration.audit.errors import DpkgStatusEmptyError, DpkgStatusMalformedError, DpkgStatusUnreadableError

# Debian policy 5.6.1: lower-case letters, digits, + - and ., at least two, starting alphanumeric; compared exactly.
PACKAGE_NAME = re.compile(r"[a-z0-9][a-z0-9+.-]+")
_SOURCE = re.compile(rf"(?P<name>{PACKAGE_NAME.pattern})(?:\s+\((?P<version>[^()\s]+)\))?")
_SHA256 = re.compile(r"[0-9a-f]{64}")


@dataclass(frozen=True, order=True)
class DebPackage:
    """One installed binary package, with the source package and version it was built from."""

    name: str
    version: str
    architecture: str
    source: str
    source_version: str
    sha256: str | None


def load_status_dir(directory: Path) -> tuple[DebPackage, ...]:
    """Every package of a status.d directory, sorted; none at all is an error, not an empty image."""
    try:
        files = sorted(path for path in directory.iterdir() if _is_stanza_file(path))
        packages = [package for path in files for package in _read(path)]
    except OSError as error:
        raise DpkgStatusUnreadableError(f"Cannot read {directory}: {error.strerror or type(error).__name__}.") from None
    if not packages:
        raise DpkgStatusEmptyError(f"{directory} lists no Debian package.")
    seen: set[tuple[str, str]] = set()
    for package in packages:
        key = (package.name, package.architecture)
        if key in seen:
            raise DpkgStatusMalformedError(f"{directory}: {package.name}:{package.architecture} is listed twice.")
        seen.add(key)
    return tuple(sorted(packages))


def _is_stanza_file(path: Path) -> bool:
    return not path.name.startswith(".") and not path.name.endswith(".md5sums") and not path.is_dir()


def _read(path: Path) -> list[DebPackage]:
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise DpkgStatusMalformedError(f"{path} is not UTF-8 text.") from None
    stanzas = list(Deb822.iter_paragraphs(text.splitlines(), use_apt_pkg=False))
    if not stanzas:
        raise DpkgStatusMalformedError(f"{path} holds no control stanza.")
    return [parse_stanza(stanza, str(path)) for stanza in stanzas]


def parse_stanza(stanza: Deb822, where: str) -> DebPackage:
    """One control stanza as a package; a missing field or a malformed ``Source:``/``SHA256:`` is an error."""
    fields: dict[str, str] = {}
    for key in ("Package", "Version", "Architecture"):
        value = stanza.get(key, "").strip()
        if not value:
            raise DpkgStatusMalformedError(f"{where}: no `{key}:` field.")
        fields[key] = value
    name, version = fields["Package"], fields["Version"]
    source, source_version = name, version
    if raw := stanza.get("Source", "").strip():
        match = _SOURCE.fullmatch(raw)
        if match is None:
            raise DpkgStatusMalformedError(f"{where}: `Source: {raw}` is not `name` or `name (version)`.")
        source, source_version = match["name"], match["version"] or version
    sha256 = stanza.get("SHA256", "").strip().lower() or None
    if sha256 is not None and not _SHA256.fullmatch(sha256):
        raise DpkgStatusMalformedError(f"{where}: `SHA256:` is not 64 hexadecimal digits.")
    return DebPackage(name, version, fields["Architecture"], source, source_version, sha256)
