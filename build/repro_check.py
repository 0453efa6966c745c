"""Whether two builds of the image are the same, and if not, what differs, file by file.

``make repro-check`` builds the image twice with ``--no-cache`` and runs this on
the two; ``make repro-check REFERENCE=ghcr.io/...@sha256:...`` builds it once
and compares with a released image. Each image is read from ``docker image
save``: its config and every layer as the tar the engine hashed (gunzipped
where the engine's image store saves layers compressed). Two images
are the same when every layer digest (``rootfs.diff_ids``) is equal and the
configs are equal apart from ``created`` (the image's and each history
entry's): the engine stamps those with the wall clock.

Nothing is held whole in memory: each layer is streamed through sha256 to
check it against its diff id, and only a layer whose digest differs is walked
entry by entry (a released image is not trusted to be small).

When a layer differs, the report lists its files the way diffoci does: those
in one build only, then for each file in both the fields that differ (type,
mode, owner, size, time, link target, extended attributes, content digest),
then a difference in the order of the entries if that is all there is.

Usage: python build/repro_check.py [--docker PATH] [--limit N] IMAGE_A IMAGE_B

Exit status: 0 the same, 1 different (the report is on stdout), 2 no verdict
(an image that cannot be saved or read, or anything unexpected: stderr names
a stable code, what happened and what to do).
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import json
import subprocess
import sys
import tarfile
import tempfile
import zlib
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any, cast

STAMPED = "created"  # the only config field two builds may differ in (also per history entry)
LIMIT = 40  # differences shown per layer; the rest are counted
CHUNK = 1 << 20  # bytes read at a time from a layer or a file in it
JSON_LIMIT = 4 << 20  # the largest manifest or config read (real ones are kilobytes)
GZIP_MAGIC = b"\x1f\x8b"
ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"


class ReproCheckError(Exception):
    """Base of every failure: no verdict (exit 2). The ``code`` is stable, the ``hint`` says what to do."""

    code = "repro_check"
    hint = ""


class ArchiveError(ReproCheckError):
    code = "image_archive"
    hint = (
        "The file is not a `docker image save` archive of one image as the engine writes it. Save the image "
        "again; do not trust an image whose archive still does not read."
    )


class SaveError(ReproCheckError):
    code = "image_save"
    hint = (
        "Check that the engine runs (`docker info`), that --docker names its client, and that the image is "
        "local (`docker pull` a released image by digest first)."
    )


class LayerDigestError(ReproCheckError):
    """A layer that does not hash to the diff id its config names."""

    code = "layer_digest"
    hint = "The archive is damaged or was tampered with: pull the image again by digest, and do not run it."


class InternalError(ReproCheckError):
    """A failure this script does not expect: neither "the same" nor "different" can be claimed."""

    code = "internal"
    hint = "A bug in build/repro_check.py, or an input it does not handle: report it with this message."


@dataclass(frozen=True)
class Entry:
    """One tar entry of a layer: every field that goes into the layer's digest."""

    kind: str
    mode: str
    owner: str
    size: int
    mtime: str
    link: str
    pax: str
    digest: str

    FIELDS = ("kind", "mode", "owner", "size", "mtime", "link", "pax", "digest")


Key = tuple[str, int]  # an entry's name as written, and which entry of that name it is (1 the first)


@dataclass(frozen=True)
class Layer:
    """A layer checked against its diff id: what made it, and where its tar is in the saved archive."""

    diff_id: str
    created_by: str
    path: str


@dataclass(frozen=True)
class Image:
    name: str
    archive: Path  # the ``docker image save`` file, read again for the entries of a layer that differs
    id: str  # the config's digest: equal too when `created` is SOURCE_DATE_EPOCH (build/set_created.py)
    config: dict[str, Any]
    layers: tuple[Layer, ...]


def _kind(member: tarfile.TarInfo) -> str:
    kinds = {
        tarfile.REGTYPE: "file",
        tarfile.AREGTYPE: "file",
        tarfile.DIRTYPE: "dir",
        tarfile.SYMTYPE: "symlink",
        tarfile.LNKTYPE: "hardlink",
        tarfile.CHRTYPE: "char",
        tarfile.BLKTYPE: "block",
        tarfile.FIFOTYPE: "fifo",
    }
    return kinds.get(member.type, f"type {member.type!r}")


# PAX keys already shown as a field of their own; every other one (xattrs, atime, ...) is shown as "pax".
_PAX_SHOWN = {"path", "linkpath", "size", "uid", "gid", "uname", "gname", "mtime"}


def _sha256(stream: IO[bytes]) -> str:
    """The digest of a stream read in chunks: a layer or a file is never held whole."""
    digest = hashlib.sha256()
    while chunk := stream.read(CHUNK):
        digest.update(chunk)
    return "sha256:" + digest.hexdigest()


def _time(mtime: float) -> str:
    """A UTC date, or the raw seconds for a time no date can show (year 36812, a PAX ``inf``): never an error."""
    try:
        return datetime.fromtimestamp(mtime, UTC).isoformat()
    except (ValueError, OverflowError, OSError):
        return str(int(mtime) if isinstance(mtime, float) and mtime.is_integer() else mtime)


def _entry(member: tarfile.TarInfo, handle: IO[bytes] | None) -> Entry:
    digest = _sha256(handle) if handle is not None else ""
    pax = {key: value for key, value in sorted(member.pax_headers.items()) if key not in _PAX_SHOWN}
    kind = _kind(member)
    if member.ischr() or member.isblk():
        kind += f" {member.devmajor},{member.devminor}"
    return Entry(
        kind=kind,
        mode=f"{member.mode:04o}",
        owner=f"{member.uid}:{member.gid} ({member.uname or '-'}:{member.gname or '-'})",
        size=member.size,
        mtime=_time(member.mtime),
        link=member.linkname,
        pax=json.dumps(pax, sort_keys=True) if pax else "",
        digest=digest,
    )


def read_layer(stream: IO[bytes]) -> dict[Key, Entry]:
    """Every entry of one layer tar, read as a stream, in the order written; a name written again is another key."""
    entries: dict[Key, Entry] = {}
    written: Counter[str] = Counter()
    with tarfile.open(fileobj=stream, mode="r|") as tar:
        for member in tar:
            written[member.name] += 1  # the name as written: "./a" is another name than "a"
            handle = tar.extractfile(member) if member.isfile() else None
            entries[member.name, written[member.name]] = _entry(member, handle)
    return entries


@contextmanager
def _reading(name: str) -> Iterator[None]:
    """Any failure to read an image's archive as an error that names the image: no verdict."""
    try:
        yield
    except ReproCheckError as error:
        raise type(error)(f"{name}: {error}") from error
    except (OSError, EOFError, zlib.error, tarfile.TarError, KeyError, TypeError, ValueError) as error:
        raise ArchiveError(f"{name}: not a readable image archive ({type(error).__name__}: {error})") from error


def read_saved(name: str, archive: Path) -> Image:
    """An image from a ``docker image save`` archive: its config, and each layer checked against its diff id."""
    with _reading(name), tarfile.open(archive) as saved:
        manifest, config_bytes = _manifest_and_config(saved)
        config = json.loads(config_bytes)
        diff_ids = config["rootfs"]["diff_ids"]
        paths = manifest["Layers"]
        if len(paths) != len(diff_ids):
            raise ArchiveError(f"{len(paths)} layers but {len(diff_ids)} diff ids")
        history = [entry for entry in config.get("history", []) if isinstance(entry, dict)]
        made_by = [entry.get("created_by", "") for entry in history if not entry.get("empty_layer")]
        layers = []
        for index, (path, diff_id) in enumerate(zip(paths, diff_ids, strict=True)):
            digest = _sha256(_layer(saved, path))
            if digest != diff_id:
                raise LayerDigestError(f"layer {index} hashes to {digest}, its config says {diff_id}")
            layers.append(Layer(diff_id, made_by[index] if index < len(made_by) else "", path))
    return Image(name, archive, _config_digest(config_bytes), config, tuple(layers))


def read_config_digest(name: str, archive: Path) -> str:
    """The digest of a saved image's config alone: its layers are named in it, and not read here."""
    with _reading(name), tarfile.open(archive) as saved:
        return _config_digest(_manifest_and_config(saved)[1])


def _manifest_and_config(saved: tarfile.TarFile) -> tuple[dict[str, Any], bytes]:
    """The archive's one manifest entry and the config bytes it names."""
    manifest = json.loads(_json_bytes(saved, "manifest.json"))
    if not (isinstance(manifest, list) and len(manifest) == 1):
        raise ArchiveError(f"the archive holds {len(manifest)} images, not one")
    return manifest[0], _json_bytes(saved, manifest[0]["Config"])


def _config_digest(config_bytes: bytes) -> str:
    return "sha256:" + hashlib.sha256(config_bytes).hexdigest()


def read_entries(image: Image, layer: Layer) -> dict[Key, Entry]:
    """The entries of one of the image's layers, walked only when its digest differs from the other image's."""
    with _reading(image.name), tarfile.open(image.archive) as saved:
        return read_layer(_layer(saved, layer.path))


def _layer(saved: tarfile.TarFile, path: str) -> IO[bytes]:
    """A layer as the tar its diff id hashes: Docker's containerd image store saves layers gzip-compressed."""
    handle = _member(saved, path)
    magic = handle.read(4)
    handle.seek(0)
    if magic.startswith(GZIP_MAGIC):
        return cast(IO[bytes], gzip.GzipFile(fileobj=handle, mode="rb"))  # read() is all a layer is read by
    if magic == ZSTD_MAGIC:
        raise ArchiveError(
            f"{path} is zstd-compressed, which this check cannot read: save the image from a classic store"
        )
    return handle


def _member(saved: tarfile.TarFile, path: str) -> IO[bytes]:
    handle = saved.extractfile(path)
    if handle is None:
        raise ArchiveError(f"{path} is not a file in the archive")
    return handle


def _json_bytes(saved: tarfile.TarFile, path: str) -> bytes:
    """A manifest or config, refused past JSON_LIMIT rather than read whole."""
    data = _member(saved, path).read(JSON_LIMIT + 1)
    if len(data) > JSON_LIMIT:
        raise ArchiveError(f"{path} is larger than {JSON_LIMIT} bytes: not an image config or manifest")
    return data


def save(docker: str, name: str, directory: Path) -> Path:
    """``docker image save`` of one image into a file under ``directory``."""
    archive = directory / hashlib.sha256(name.encode()).hexdigest()
    command = [docker, "image", "save", "-o", str(archive), name]
    try:
        result = subprocess.run(command, check=False, capture_output=True, text=True, errors="backslashreplace")
    except OSError as error:
        raise SaveError(f"{name}: cannot run {docker}: {error}") from error
    if result.returncode != 0:
        raise SaveError(f"{name}: docker image save failed: {result.stderr.strip()}")
    return archive


def normalised_config(config: Mapping[str, Any]) -> dict[str, Any]:
    """The config without the engine's wall-clock stamps (a history entry that is not an object is kept as is)."""
    kept = {key: value for key, value in config.items() if key != STAMPED}
    if isinstance(history := config.get("history"), list):
        kept["history"] = [
            {k: v for k, v in entry.items() if k != STAMPED} if isinstance(entry, dict) else entry for entry in history
        ]
    return kept


def _flatten(value: Any, path: str = "") -> Iterator[tuple[str, str]]:
    """Every leaf by its JSON Pointer (RFC 6901: ``/`` and ``~`` escaped, so no two paths collide)."""
    if isinstance(value, dict) and value:
        for key in sorted(value):
            yield from _flatten(value[key], f"{path}/{key.replace('~', '~0').replace('/', '~1')}")
    elif isinstance(value, list) and value:
        for index, item in enumerate(value):
            yield from _flatten(item, f"{path}/{index}")
    else:  # a scalar, or an empty object or list (which is not the same as none)
        yield path, json.dumps(value)


def config_differences(a: Mapping[str, Any], b: Mapping[str, Any]) -> list[str]:
    """Each config field, by its JSON Pointer, that differs between the two (``created`` left out)."""
    left_config, right_config = normalised_config(a), normalised_config(b)
    if left_config == right_config:
        return []
    left, right = dict(_flatten(left_config)), dict(_flatten(right_config))
    lines = [f"{path}: {left.get(path, '(absent)')} != {right.get(path, '(absent)')}"
             for path in sorted(left.keys() | right.keys()) if left.get(path) != right.get(path)]  # fmt: skip
    return lines or ["the configs differ in a way their fields do not show"]


def _shown(key: Key) -> str:
    name, occurrence = key
    return name if occurrence == 1 else f"{name} (entry {occurrence} of this name)"


def _written_again(a: Mapping[Key, Entry], b: Mapping[Key, Entry]) -> list[str]:
    """Each name written more than once in a layer, and not as often in the other: extraction keeps the last."""
    in_a, in_b = Counter(name for name, _ in a), Counter(name for name, _ in b)
    return [
        f"{name}: entries of this name: {in_a[name]} in A, {in_b[name]} in B"
        for name in sorted(in_a.keys() | in_b.keys())
        if in_a[name] != in_b[name] and max(in_a[name], in_b[name]) > 1
    ]


def layer_differences(a: Mapping[Key, Entry], b: Mapping[Key, Entry]) -> list[str]:
    """Files in one layer only, names written again, then the fields that differ for files in both, then order."""
    lines = [f"only in A: {_shown(key)}" for key in sorted(a.keys() - b.keys())]
    lines += [f"only in B: {_shown(key)}" for key in sorted(b.keys() - a.keys())]
    lines += _written_again(a, b)
    for key in sorted(a.keys() & b.keys()):
        left, right = a[key], b[key]
        changed = [f"{field} {getattr(left, field)} != {getattr(right, field)}"
                   for field in Entry.FIELDS if getattr(left, field) != getattr(right, field)]  # fmt: skip
        if changed:
            lines.append(f"{_shown(key)}: " + "; ".join(changed))
    order_a, order_b = list(a), list(b)
    if not lines and order_a != order_b:  # the same keys, so some position holds another one
        first = next(i for i, (x, y) in enumerate(zip(order_a, order_b, strict=True)) if x != y)
        moved = f"{_shown(order_a[first])} != {_shown(order_b[first])}"
        lines.append(f"same entries in another order, from entry {first}: {moved}")
    return lines


def compare(a: Image, b: Image, limit: int = LIMIT) -> list[str]:
    """The report: empty when the two images are the same."""
    report = [f"config: {line}" for line in config_differences(a.config, b.config)]
    if len(a.layers) != len(b.layers):
        report.append(f"layers: A has {len(a.layers)}, B has {len(b.layers)}")
    for index, (left, right) in enumerate(zip(a.layers, b.layers, strict=False)):
        if left.diff_id == right.diff_id:
            continue
        made_by = left.created_by or right.created_by or "?"
        report.append(f"layer {index} ({made_by}): {left.diff_id} != {right.diff_id}")
        lines = layer_differences(read_entries(a, left), read_entries(b, right))
        lines = lines or ["the same entries, yet different bytes (tar headers)"]
        report += [f"  {line}" for line in lines[:limit]]
        if len(lines) > limit:
            report.append(f"  ... and {len(lines) - limit} more")
    return report


def summary(image: Image) -> list[str]:
    return [f"  layer {i}: {layer.diff_id}  {layer.created_by}" for i, layer in enumerate(image.layers)]


def verdict(a: Image, b: Image, report: Sequence[str]) -> list[str]:
    """What is printed: the layers of A, then B's and the report when they differ, and the verdict."""
    lines = [f"A: {a.name} (image id {a.id})", *summary(a), f"B: {b.name} (image id {b.id})"]
    if not report:
        configs = "image ids equal" if a.id == b.id else f"configs equal but for {STAMPED!r}"
        return [*lines, f"repro-check: the same: {len(a.layers)} layer digests equal, {configs}"]
    return [*lines, *summary(b), "repro-check: DIFFERENT", *report]


def _printable(line: str) -> str:
    """One line as one printable line: a newline in a name cannot forge another, nor bytes that are no text stop it."""
    return line if line.isprintable() else line.encode("unicode_escape").decode("ascii")


def _no_verdict(error: ReproCheckError) -> int:
    print(_printable(f"repro-check: no verdict [{error.code}]: {error}"), file=sys.stderr)
    if error.hint:
        print(error.hint, file=sys.stderr)
    return 2


def _positive(text: str) -> int:
    """An argparse type for --limit: 0 or less would show no difference at all, so it is a usage error."""
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be a whole number above 0, not {text}")
    return value


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="repro_check.py",
        description="Compare two images layer by layer; report what differs, file by file.",
    )
    parser.add_argument("image_a", metavar="IMAGE_A")
    parser.add_argument("image_b", metavar="IMAGE_B")
    parser.add_argument("--docker", default="/usr/bin/docker", help="the Docker client (default: %(default)s)")
    parser.add_argument(
        "--limit", type=_positive, default=LIMIT, help="differences shown per layer (default: %(default)s)"
    )
    args = parser.parse_args(argv)
    try:
        with tempfile.TemporaryDirectory(prefix="repro-check-") as scratch:
            a = read_saved(args.image_a, save(args.docker, args.image_a, Path(scratch)))
            b = read_saved(args.image_b, save(args.docker, args.image_b, Path(scratch)))
            report = compare(a, b, args.limit)
        print("\n".join(_printable(line) for line in verdict(a, b, report)))
    except ReproCheckError as error:
        return _no_verdict(error)
    except Exception as error:  # whatever went wrong, "the same" (0) or "different" (1) would be a false verdict
        return _no_verdict(InternalError(f"{type(error).__name__}: {error}"))
    return 1 if report else 0


if __name__ == "__main__":
    sys.exit(main())
