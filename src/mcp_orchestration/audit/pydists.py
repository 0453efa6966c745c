"""The Python distributions of the image's venv, and the wheel each was installed from.

Every ``*.dist-info/METADATA`` of site-packages names a distribution and its
version. Its hash in the SBOM is the SHA-256 of the wheel pip installed. The
build installs only from the wheelhouse (``build/out/wheelhouse/<arch>/``)
with ``--require-hashes`` against ``build/requirements.lock``; the wheel of
that name and version there is taken only if its digest is one the lock
allows (``wheel_mismatch`` otherwise), and only if it is provably the one
installed: its own RECORD must list every file it holds, each of those must be
in the installed RECORD with the same hash, and the installed RECORD may list
nothing else in site-packages, but for what the installer writes itself
(RECORD, INSTALLER, REQUESTED, direct_url.json, bytecode; also the entry
scripts of ``*.data/scripts``, whose first line it rewrites). And the venv must
still be as installed: every file of site-packages its RECORD lists with a
hash must be a regular file with that hash, reached through no symlink. A path
of the RECORD with ``..`` counts where it lands: in site-packages (by name, or
through a linked folder, as lib64 is lib) it is judged like any other; outside
(entry scripts in bin/, data) it is the venv's, not read. RECORD and METADATA
are read only as bounded regular files, through no link.
What no RECORD hashes is not proven: bytecode (the image build compiles it
after the install, so no RECORD lists it; pip lists what it compiles without a
hash) and files no RECORD lists at all, such as a planted ``.pth``.
A wheelhouse rebuilt since the image, with another wheel of the same name and
version that the lock also allows, therefore gives no hash rather than a wrong
one, and so does a file edited since the install. A distribution without such
a wheel, such as this project (built from source inside the image build), gets
no hash and the reason why; so do all when there is no wheelhouse.
"""

from __future__ import annotations

import base64
import csv
import hashlib
import io
import lzma
import os
import posixpath
import re
import zipfile
import zlib
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from email.parser import HeaderParser
from pathlib import Path
from typing import IO

from packaging.utils import InvalidWheelFilename, canonicalize_name, parse_wheel_filename
from packaging.version import InvalidVersion, Version

from mcp_orchestration.audit.errors import VenvUnreadableError, WheelhouseUnreadableError, WheelMismatchError
from mcp_orchestration.core.fsutil import open_directory, open_regular_stream, open_regular_stream_at, read_regular

NO_WHEELHOUSE = "no wheelhouse: none given, or no such directory"
NO_LOCKED_WHEEL = "no wheel the lock allows in the wheelhouse"
NOT_INSTALLED = (
    "the wheelhouse's wheel is not provably the one installed (its RECORD, the venv's, or the venv's files differ)"
)

_RECORD_LIMIT = 16 * 1024 * 1024  # bytes: far above any real RECORD, and all a hostile one can make us read
_METADATA_LIMIT = 16 * 1024 * 1024  # bytes: far above any real METADATA, its long description included
_FILE_LIMIT = 2 * 1024**3  # bytes hashed of one wheel or installed file: a larger one proves nothing
_CHUNK = 1024 * 1024
_RECORD_HASHES = frozenset({"sha256", "sha384", "sha512"})  # what the wheel spec allows in a RECORD
# What reading a zip member can raise: a cut or garbled archive, a corrupt deflate or LZMA stream (bzip2: OSError),
# an unknown compression, an encrypted member.
_ZIP_ERRORS = (OSError, EOFError, zipfile.BadZipFile, zlib.error, lzma.LZMAError, NotImplementedError, RuntimeError)
_INSTALLER_WRITES = frozenset({"RECORD", "INSTALLER", "REQUESTED", "direct_url.json"})  # in the .dist-info
_WHEEL_RECORD = re.compile(r"[^/]+\.dist-info/RECORD")
_DATA = re.compile(r"[^/]+\.data/(?P<scheme>[^/]+)/(?P<path>.+)")


@dataclass(frozen=True, order=True)
class PyDist:
    """An installed distribution: its name as METADATA spells it, its version, and the sha256 of its wheel.

    ``unhashed`` says why ``sha256`` is None, for the SBOM to say so.
    """

    name: str
    version: str
    dist_info: Path = field(compare=False)
    sha256: str | None = None
    unhashed: str = NO_WHEELHOUSE

    @property
    def key(self) -> str:
        """The PEP 503 name: what locks and wheels compare."""
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
    """The distribution a METADATA names: one that cannot be read cannot be listed, so it stops the SBOM."""
    try:
        text = _read_dist_info(path.parent, path.name, _METADATA_LIMIT).decode("utf-8", errors="replace")
    except OSError as error:
        raise VenvUnreadableError(f"Cannot read {path}: {error.strerror or type(error).__name__}.") from None
    headers = HeaderParser().parsestr(text, headersonly=True)
    name, version = headers.get("Name", "").strip(), headers.get("Version", "").strip()
    if not name or not version:
        raise VenvUnreadableError(f"{path} has no Name or Version.")
    return PyDist(name, version, path.parent)


def with_wheel_hashes(
    dists: tuple[PyDist, ...], wheelhouse: Path, allowed: Mapping[str, frozenset[str]]
) -> tuple[PyDist, ...]:
    """The distributions with the sha256 of the locked wheel each was installed from, or why there is none."""
    wheels = _wheels(wheelhouse)
    if wheels is None:
        return dists  # each keeps NO_WHEELHOUSE
    return tuple(
        _hashed(dist, wheels.get((dist.key, _normal(dist.version)), []), allowed.get(dist.key, frozenset()))
        for dist in dists
    )


def _hashed(dist: PyDist, candidates: list[Path], digests: frozenset[str]) -> PyDist:
    if not digests or not candidates:
        return replace(dist, unhashed=NO_LOCKED_WHEEL)
    if len(candidates) > 1:
        names = ", ".join(sorted(path.name for path in candidates))
        raise WheelMismatchError(
            f"{candidates[0].parent}: more than one wheel of {dist.name} {dist.version} ({names})."
        )
    digest = _proven_digest(candidates[0], dist, digests)
    return replace(dist, sha256=digest) if digest else replace(dist, unhashed=NOT_INSTALLED)


def _proven_digest(path: Path, dist: PyDist, digests: frozenset[str]) -> str | None:
    """The wheel's sha256 if it is provably the one installed.

    Hashed and read through one open file: a wheel renamed over the path meanwhile is not read, but one
    rewritten in place meanwhile could be (whoever can do that can change what the image is built from).
    """
    try:
        with open_regular_stream(path) as wheel:
            digest = _digest(wheel, "sha256")
            if digest is None:
                return None
            if digest.hex() not in digests:
                raise WheelMismatchError(f"{path}: sha256 {digest.hex()} is not one the lock allows for {dist.name}.")
            return digest.hex() if was_installed(wheel, dist.dist_info) else None
    except OSError:
        return None  # a wheel that cannot be read, or is a FIFO or a device, proves nothing


def was_installed(wheel: IO[bytes], dist_info: Path) -> bool:
    """Whether the venv holds this wheel's files as installed, and beside them only the installer's.

    Both ways: a wheel with a file the venv lacks is not the one installed, nor is one lacking a
    file of the venv (a pure wheel beside the compiled one of the same version). Each file of
    site-packages the venv's RECORD lists with a hash must still have it. A wheel that cannot be
    read proves nothing.
    """
    site = dist_info.parent
    files, record = _wheel_record(wheel), _installed_record(dist_info)
    landed = None if record is None else _landed(site, record)
    if files is None or landed is None:
        return False
    inside, outside = landed
    kept = {path: digest for path, digest in files.items() if not _rewritten(path)}
    placed = {_placed(path) for path in kept}
    return (
        all(_installed_as(path, digest, inside, outside) for path, digest in kept.items())
        and all(where in placed or _installer_made(where) for where in inside)
        and all(_still_has(site, where, digest) for where, digest in inside.items() if digest)
    )


def _wheel_record(wheel: IO[bytes]) -> dict[str, str] | None:
    """The wheel's RECORD, path to hash, if it lists exactly the files the wheel holds."""
    try:
        with zipfile.ZipFile(wheel) as archive:
            members = {info.filename: info for info in archive.infolist() if not info.is_dir()}
            records = [info for name, info in members.items() if _WHEEL_RECORD.fullmatch(name)]
            if len(records) != 1 or records[0].file_size > _RECORD_LIMIT:
                return None
            with archive.open(records[0]) as stream:
                files = _record(stream.read(_RECORD_LIMIT + 1))  # the size in the zip's header may lie
    except _ZIP_ERRORS:
        return None
    return files if files is not None and files.keys() == members.keys() else None


def _installed_record(dist_info: Path) -> dict[str, str] | None:
    """The venv's RECORD of a distribution; None, proving nothing, if it is not a regular file within the bound."""
    try:
        return _record(_read_dist_info(dist_info, "RECORD", _RECORD_LIMIT))
    except OSError:
        return None


def _read_dist_info(dist_info: Path, name: str, limit: int) -> bytes:
    """A file of a .dist-info, read as a regular file of at most ``limit`` bytes reached through no link.

    A FIFO would hang the read and a link to ``/dev/zero`` never end it; a link elsewhere is not the venv's file.
    """
    directory = open_directory(dist_info.parent, [dist_info.name], create=False)
    try:
        return read_regular(name, limit, dir_fd=directory)
    finally:
        os.close(directory)


def _landed(site: Path, record: Mapping[str, str]) -> tuple[dict[str, str], dict[str, str]] | None:
    """The installed RECORD split by where each path lands: in site-packages (by its path there), or outside.

    None, proving nothing, for an absolute path (pip writes none on POSIX), a path with a NUL (no file has
    one), or two names of one file.
    """
    inside: dict[str, str] = {}
    outside: dict[str, str] = {}
    for where, digest in record.items():
        if posixpath.isabs(where) or "\0" in where:
            return None
        landing = _landing(site, where)
        if landing is None:
            outside[where] = digest
        elif landing in inside:
            return None
        else:
            inside[landing] = digest
    return inside, outside


def _landing(site: Path, where: str) -> str | None:
    """Where a relative RECORD path lands, relative to site-packages; None outside it.

    ``..`` is taken by name first (``../site-packages/x`` is ``x``), then through the venv's folders
    (``../../../lib64/python3.13/site-packages/x`` too, lib64 being a link to lib).
    """
    named = posixpath.normpath(where)
    if named != ".." and not named.startswith("../"):
        return named
    folder = os.path.realpath(site / posixpath.dirname(where))
    relative = os.path.relpath(folder, os.path.realpath(site))
    if relative == ".." or relative.startswith("../"):
        return None
    return posixpath.normpath(posixpath.join(relative, posixpath.basename(where)))


def _still_has(site: Path, where: str, recorded: str) -> bool:
    """Whether site-packages holds at ``where`` a regular file with the RECORD's hash, reached through no link."""
    algorithm, _, expected = recorded.partition("=")
    if algorithm not in _RECORD_HASHES:
        return False
    folder, _, name = where.rpartition("/")
    try:
        directory = open_directory(site, folder.split("/") if folder else [], create=False)
        try:
            stream = open_regular_stream_at(directory, name)
        finally:
            os.close(directory)
        with stream:
            digest = _digest(stream, algorithm)
    except (OSError, ValueError):  # a link, a FIFO, a device, missing; ValueError: a name such as `.` (a/..)
        return False
    return digest is not None and base64.urlsafe_b64encode(digest).rstrip(b"=").decode() == expected


def _digest(stream: IO[bytes], algorithm: str) -> bytes | None:
    """The stream's digest, read in chunks from its start; None past ``_FILE_LIMIT`` bytes."""
    stream.seek(0)
    hasher, size = hashlib.new(algorithm), 0
    while chunk := stream.read(_CHUNK):
        size += len(chunk)
        if size > _FILE_LIMIT:
            return None
        hasher.update(chunk)
    return hasher.digest()


def _record(data: bytes) -> dict[str, str] | None:
    """A RECORD's rows as path to hash (``sha256=...``, or empty); None if too long, not CSV text, or a path twice."""
    if len(data) > _RECORD_LIMIT:
        return None
    try:
        rows = [row for row in csv.reader(io.StringIO(data.decode("utf-8"))) if row]
    except (UnicodeDecodeError, csv.Error):
        return None
    files = {row[0]: row[1] for row in rows if len(row) >= 2}
    return files if len(files) == len(rows) else None


def _rewritten(path: str) -> bool:
    """What the installer writes itself: RECORD and its marks in the .dist-info, and entry scripts' first line."""
    folder, _, name = path.rpartition("/")
    if folder.endswith(".dist-info") and "/" not in folder and name in _INSTALLER_WRITES:
        return True
    data = _DATA.fullmatch(path)
    return data is not None and data["scheme"] == "scripts"


def _installer_made(where: str) -> bool:
    """A file of site-packages no wheel holds: the installer's own, bytecode."""
    return _rewritten(where) or ("__pycache__/" in where and where.endswith(".pyc"))


def _placed(path: str) -> str | None:
    """Where the installer puts a wheel's file, relative to site-packages; None when outside it."""
    data = _DATA.fullmatch(path)
    if data is None:
        return path
    return data["path"] if data["scheme"] in ("purelib", "platlib") else None


def _installed_as(path: str, digest: str, inside: Mapping[str, str], outside: Mapping[str, str]) -> bool:
    """Whether the installed RECORD has this wheel file with this hash, where the installer puts it."""
    if not digest:
        return False  # a file without a hash proves nothing
    where = _placed(path)
    if where is not None:
        return inside.get(where) == digest
    # headers and data go outside site-packages, under a prefix the installer picks: known by their tail
    tail = "/" + path.split("/", 2)[2]
    return any(where.endswith(tail) and hashed == digest for where, hashed in outside.items())


def _wheels(wheelhouse: Path) -> dict[tuple[str, str], list[Path]] | None:
    """The wheelhouse's wheels by name and version; None when there is nothing at that path.

    Anything else there that cannot be listed, a regular file included, is an operator's error to fix.
    """
    try:
        names = sorted(os.listdir(wheelhouse))
    except FileNotFoundError:
        return None
    except OSError as error:
        raise WheelhouseUnreadableError(
            f"Cannot read {wheelhouse}: {error.strerror or type(error).__name__}."
        ) from None
    found: dict[tuple[str, str], list[Path]] = {}
    for file_name in names:
        try:
            name, version, _build, _tags = parse_wheel_filename(file_name)
        except InvalidWheelFilename:
            continue  # not a wheel (an sdist, a note), or one misnamed: no wheel of anything
        found.setdefault((name, str(version)), []).append(wheelhouse / file_name)
    return found


def _normal(version: str) -> str:
    try:
        return str(Version(version))
    except InvalidVersion:
        return version
