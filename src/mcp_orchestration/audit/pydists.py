"""The Python distributions of the image's venv, and the wheel each was installed from.

Every ``*.dist-info/METADATA`` of site-packages names a distribution and its
version. Its hash in the SBOM is the SHA-256 of the wheel pip installed: the
build installs only from the wheelhouse (``build/out/wheelhouse/<arch>/``)
with ``--require-hashes`` against ``build/requirements.lock``, so the wheel of
that name and version there is the one, and it is taken only if its digest is
one the lock allows (``wheel_mismatch`` otherwise: the wheelhouse changed since
the image was built). A distribution with no locked wheel, such as this
project (built from source inside the image build), gets no hash.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from email.parser import HeaderParser
from pathlib import Path

from packaging.utils import InvalidWheelFilename, canonicalize_name, parse_wheel_filename
from packaging.version import InvalidVersion, Version

from mcp_orchestration.audit.errors import VenvUnreadableError, WheelMismatchError


@dataclass(frozen=True, order=True)
class PyDist:
    """An installed distribution: its name as METADATA spells it, its version, and the sha256 of its wheel."""

    name: str
    version: str
    sha256: str | None = None

    @property
    def key(self) -> str:
        """The PEP 503 name: what locks, wheels and purls compare."""
        return canonicalize_name(self.name)


def load_site_packages(site: Path) -> tuple[PyDist, ...]:
    """Every distribution of a site-packages directory, sorted by name; none at all is an error."""
    try:
        metadata = sorted(site.glob("*.dist-info/METADATA"))
        dists = [_dist(path) for path in metadata]
    except OSError as error:
        raise VenvUnreadableError(f"Cannot read {site}: {error.strerror or type(error).__name__}.") from None
    if not dists:
        raise VenvUnreadableError(f"{site} holds no *.dist-info/METADATA: it is not the venv's site-packages.")
    return tuple(sorted(dists, key=lambda dist: dist.key))


def _dist(path: Path) -> PyDist:
    headers = HeaderParser().parsestr(path.read_text(encoding="utf-8", errors="replace"), headersonly=True)
    name, version = headers.get("Name", "").strip(), headers.get("Version", "").strip()
    if not name or not version:
        raise VenvUnreadableError(f"{path} has no Name or Version.")
    return PyDist(name, version)


def with_wheel_hashes(
    dists: tuple[PyDist, ...], wheelhouse: Path, allowed: Mapping[str, frozenset[str]]
) -> tuple[PyDist, ...]:
    """The distributions with the sha256 of their wheel where the lock pins one, checked against the lock."""
    wheels = _wheels(wheelhouse)
    hashed = []
    for dist in dists:
        digests = allowed.get(dist.key)
        candidates = wheels.get((dist.key, _normal(dist.version)), [])
        if not digests or not candidates:
            hashed.append(dist)
            continue
        if len(candidates) > 1:
            names = ", ".join(sorted(path.name for path in candidates))
            raise WheelMismatchError(f"{wheelhouse}: more than one wheel of {dist.name} {dist.version} ({names}).")
        digest = hashlib.sha256(candidates[0].read_bytes()).hexdigest()
        if digest not in digests:
            raise WheelMismatchError(f"{candidates[0]}: sha256 {digest} is not one the lock allows for {dist.name}.")
        hashed.append(PyDist(dist.name, dist.version, digest))
    return tuple(hashed)


def _wheels(wheelhouse: Path) -> dict[tuple[str, str], list[Path]]:
    found: dict[tuple[str, str], list[Path]] = {}
    try:
        paths = sorted(wheelhouse.glob("*.whl"))
    except OSError:
        paths = []
    for path in paths:
        try:
            name, version, _build, _tags = parse_wheel_filename(path.name)
        except InvalidWheelFilename:
            continue
        found.setdefault((name, str(version)), []).append(path)
    return found


def _normal(version: str) -> str:
    try:
        return str(Version(version))
    except InvalidVersion:
        return version
