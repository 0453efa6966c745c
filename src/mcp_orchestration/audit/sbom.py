"""A CycloneDX 1.6 SBOM of the whole image: its Debian packages and its venv's Python distributions.

    python -m mcp_orchestration.audit.sbom --debian-status DIR --os-release FILE --site-packages DIR
        [--lock FILE] [--wheelhouse DIR] [--image NAME] [--image-id sha256:...] [--created ISO-8601] -o OUT

Made from the image's files as copied out of a created, never started
container (``build/sbom.sh``), not from a scanner's guess:

- every Debian package of ``status.d``: name, version, purl
  ``pkg:deb/debian/NAME@VERSION?arch=ARCH&distro=debian-VERSION_ID`` (the purl
  spec's deb type), its source package as a pedigree ancestor
  (``pkg:deb/debian/SOURCE@VERSION?arch=source``), and as hash the .deb's
  SHA-256 when status.d records it (``SHA256:``);
- every distribution of the venv: name, version, ``pkg:pypi`` purl, and as
  hash the SHA-256 of the wheel installed: allowed by the lock, and proven the
  one installed by comparing its RECORD with the venv's, and the venv's files
  with their hashes there (``pydists.py``);
- the image as the document's subject, its id (the digest of its config, not
  the manifest digest that is pushed and attested) as a property.

A component without a hash says why, in its property
``mcp-orchestration:no-hash`` and on stderr; none is invented. The output is
deterministic: components sorted, no wall-clock time (``SOURCE_DATE_EPOCH``, or
``--created``, the image's creation time, or none), and a serial number that
is a UUIDv5 of the content, so two runs on one image are byte-identical.
Exit status 0 when written, 2 when an input cannot be read (the codes of
``errors.py``).
"""

from __future__ import annotations

import argparse
import hashlib
import os
import re
import sys
import tomllib
import uuid
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from importlib.metadata import PackageNotFoundError
from importlib.metadata import version as installed_version
from pathlib import Path

from cyclonedx.model import HashAlgorithm, HashType, Property
from cyclonedx.model.bom import Bom
from cyclonedx.model.component import Component, ComponentType, Pedigree
from cyclonedx.output.json import JsonV1Dot6
from packageurl import PackageURL

from mcp_orchestration.audit.dpkg import DebPackage, load_status_dir
from mcp_orchestration.audit.lock import load_lock
from mcp_orchestration.audit.osrelease import OsRelease, load_os_release
from mcp_orchestration.audit.pydists import PyDist, load_site_packages, with_wheel_hashes
from mcp_orchestration.core.errors import ExitCode, OrchestrationError, UsageError

_SERIAL_NAMESPACE = uuid.UUID("6d8a1b0e-3c5f-5b7e-9a41-0c2f7e4d8b13")  # this tool's own: serial = uuid5(it, content)
_ZERO = uuid.UUID(int=0)
# The image id, a property and not a hash: consumers would read a container's hash as its manifest digest.
IMAGE_ID_PROPERTY = "mcp-orchestration:image:config-digest"  # the name build/attested_sbom.py reads
_IMAGE_ID = re.compile(r"sha256:[0-9a-f]{64}")
_NO_DEB_SHA256 = "no SHA256: field in status.d"


def debian_component(package: DebPackage, release: OsRelease) -> Component:
    """A Debian binary package, with its source package as pedigree and its .deb's hash if recorded."""
    qualifiers = {"arch": package.architecture, "distro": f"debian-{release.version_id}"}
    purl = PackageURL(type="deb", namespace="debian", name=package.name, version=package.version, qualifiers=qualifiers)
    source_purl = PackageURL(
        type="deb",
        namespace="debian",
        name=package.source,
        version=package.source_version,
        qualifiers={"arch": "source"},
    )
    # No bom-ref: binaries of one source (libc6, libc-bin) share this ancestor, and a bom-ref must be unique.
    source = Component(
        type=ComponentType.LIBRARY, name=package.source, version=package.source_version, purl=source_purl
    )
    return Component(
        type=ComponentType.LIBRARY,
        name=package.name,
        version=package.version,
        purl=purl,
        bom_ref=purl.to_string(),
        hashes=_sha256(package.sha256),
        pedigree=Pedigree(ancestors=[source]),
        properties=[
            Property(name="mcp-orchestration:deb:source", value=package.source),
            *_unhashed(package.sha256, _NO_DEB_SHA256),
        ],
    )


def python_component(dist: PyDist) -> Component:
    """A Python distribution of the venv, with its wheel's hash if it was installed from a locked wheel."""
    # The purl spec's pypi name: lowercase, `_` as `-`, but a dot kept (zope.interface), unlike PEP 503's.
    purl = PackageURL(type="pypi", name=dist.name.lower().replace("_", "-"), version=dist.version)
    return Component(
        type=ComponentType.LIBRARY,
        name=dist.name,
        version=dist.version,
        purl=purl,
        bom_ref=purl.to_string(),
        hashes=_sha256(dist.sha256),
        properties=_unhashed(dist.sha256, dist.unhashed),
    )


def build_sbom(
    packages: Iterable[DebPackage],
    release: OsRelease,
    dists: Iterable[PyDist],
    *,
    image: str,
    image_id: str | None = None,
    created: datetime | None = None,
) -> str:
    """The SBOM as CycloneDX 1.6 JSON text: the same inputs give the same bytes."""
    bom = Bom()
    bom.metadata.timestamp = created  # type: ignore[assignment]  # None leaves it out; the default is now()
    root = Component(type=ComponentType.CONTAINER, name=image, bom_ref="image")
    root.properties.add(Property(name="mcp-orchestration:os-release", value=f"{release.id} {release.version_id}"))
    if image_id is not None:
        root.properties.add(Property(name=IMAGE_ID_PROPERTY, value=_checked_image_id(image_id)))
    bom.metadata.component = root
    for name in ("cyclonedx-python-lib", "mcp-orchestration"):
        tool = Component(type=ComponentType.APPLICATION, name=name, version=_version(name), bom_ref=f"tool:{name}")
        bom.metadata.tools.components.add(tool)
    components = [debian_component(package, release) for package in packages]
    components += [python_component(dist) for dist in dists]
    refs = [component.bom_ref.value for component in components]
    if len(set(refs)) != len(refs):
        raise UsageError("Two components have the same purl: the inputs list a package twice.")
    bom.components.update(components)
    bom.register_dependency(root, components)
    bom.serial_number = _ZERO
    draft = JsonV1Dot6(bom).output_as_string(indent=2)
    bom.serial_number = uuid.uuid5(_SERIAL_NAMESPACE, hashlib.sha256(draft.encode()).hexdigest())
    return JsonV1Dot6(bom).output_as_string(indent=2) + "\n"


def missing_hashes(packages: Iterable[DebPackage], dists: Iterable[PyDist]) -> list[str]:
    """One stderr line per reason components have no hash, naming them: the SBOM does not hide it."""
    names: dict[tuple[str, str], list[str]] = {}
    for package in packages:
        if package.sha256 is None:
            names.setdefault((_NO_DEB_SHA256, "Debian packages"), []).append(package.name)
    for dist in dists:
        if dist.sha256 is None:
            names.setdefault((dist.unhashed, "Python distributions"), []).append(dist.name)
    return [f"{why}, so no hash, for {len(each)} {kind}: {', '.join(each)}" for (why, kind), each in names.items()]


def _unhashed(digest: str | None, why: str) -> list[Property]:
    """The component's note that it has no hash, and why: a consumer reading the SBOM alone sees it too."""
    return [] if digest else [Property(name="mcp-orchestration:no-hash", value=why)]


def _checked_image_id(image_id: str) -> str:
    if not _IMAGE_ID.fullmatch(image_id):
        raise UsageError(f"--image-id {image_id!r} is not sha256:<64 hex digits>, an image id as docker prints it.")
    return image_id


def _sha256(digest: str | None) -> list[HashType]:
    return [HashType(alg=HashAlgorithm.SHA_256, content=digest)] if digest else []


def _version(name: str) -> str | None:
    """A tool's version; this project's is its checkout's when run from src/ (make sbom), where no metadata exists."""
    try:
        return installed_version(name)
    except PackageNotFoundError:
        return _checkout_version() if name == "mcp-orchestration" else None


def _checkout_version() -> str | None:
    pyproject = Path(__file__).resolve().parents[3] / "pyproject.toml"
    try:
        version = tomllib.loads(pyproject.read_text(encoding="utf-8"))["project"]["version"]
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError, KeyError, TypeError):
        return None
    return version if isinstance(version, str) else None


def created_time(image_created: str | None) -> datetime | None:
    """SOURCE_DATE_EPOCH if set, else the image's creation time, else none: never the clock."""
    epoch = os.environ.get("SOURCE_DATE_EPOCH", "").strip()
    try:
        if epoch:
            return datetime.fromtimestamp(int(epoch), UTC)
        if image_created:
            whole_seconds = re.sub(r"\.\d+", "", image_created)  # Docker gives nanoseconds, Python 3.11 takes micro
            return datetime.fromisoformat(whole_seconds).astimezone(UTC)
    except (ValueError, OverflowError):
        raise UsageError(f"Not a time: SOURCE_DATE_EPOCH={epoch!r}, --created={image_created!r}.") from None
    return None


def build_parser() -> argparse.ArgumentParser:
    """The tool's options (see the module docstring)."""
    parser = argparse.ArgumentParser(
        prog="python -m mcp_orchestration.audit.sbom",
        description=(__doc__ or "").split("\n\n")[0],
    )
    parser.add_argument("--debian-status", type=Path, required=True, metavar="DIR", help="the image's status.d")
    parser.add_argument("--os-release", type=Path, required=True, metavar="FILE", help="the image's /etc/os-release")
    parser.add_argument("--site-packages", type=Path, required=True, metavar="DIR", help="the image's venv's")
    parser.add_argument("--lock", type=Path, default=Path("build/requirements.lock"), metavar="FILE")
    parser.add_argument("--wheelhouse", type=Path, metavar="DIR", help="build/out/wheelhouse/<arch> the image used")
    parser.add_argument("--image", default="mcp-orchestration", help="the image's name (default: %(default)s)")
    parser.add_argument("--image-id", metavar="sha256:HEX", help="the image's id (its config's digest)")
    parser.add_argument("--created", metavar="ISO-8601", help="the image's creation time")
    parser.add_argument("-o", "--output", type=Path, required=True, metavar="OUT")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Write the SBOM; the exit status is 0, or 2 with the error's code on stderr."""
    args = build_parser().parse_args(argv)
    try:
        release = load_os_release(args.os_release)
        packages = load_status_dir(args.debian_status)
        dists = load_site_packages(args.site_packages)
        if args.wheelhouse is not None:
            dists = with_wheel_hashes(dists, args.wheelhouse, load_lock(args.lock).hashes)
        text = build_sbom(
            packages, release, dists, image=args.image, image_id=args.image_id, created=created_time(args.created)
        )
        args.output.write_text(text, encoding="utf-8")
    except OrchestrationError as error:
        sys.stderr.write(f"error [{error.code}]: {error.diagnostics()}\n")
        return ExitCode.USAGE
    except OSError as error:
        sys.stderr.write(f"error [usage]: cannot write {args.output}: {error.strerror or type(error).__name__}\n")
        return ExitCode.USAGE
    for line in missing_hashes(packages, dists):
        sys.stderr.write(f"sbom: {line}\n")
    sys.stderr.write(f"sbom: {args.output}: {len(packages)} Debian packages, {len(dists)} Python distributions\n")
    return ExitCode.OK


if __name__ == "__main__":
    sys.exit(main())
