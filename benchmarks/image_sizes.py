"""Where an image's bytes go: by Debian package, by Python distribution, and by directory.

Reads the image's filesystem as ``docker export`` of a created (never started)
container streams it, then gives each regular file to its owner: a Debian
package by its ``status.d/*.md5sums`` list, a Python distribution by its
``RECORD`` (bytecode goes with the source file it was compiled from), and
whatever no list names to "unowned" (ld.so.cache, the CA bundle, the stdlib
bytecode the image adds). Sizes are file sizes, as ``docker image inspect``
counts them.
"""

from __future__ import annotations

import csv
import io
import subprocess
import tarfile
from collections import Counter
from dataclasses import dataclass
from pathlib import PurePosixPath

STATUS = PurePosixPath("var/lib/dpkg/status.d")
PYCACHE = "__pycache__"


@dataclass(frozen=True)
class Sizes:
    total: int
    packages: Counter[str]  # "deb:NAME" or "py:NAME" or "unowned"
    directories: Counter[str]


def _export(docker: str, image: str) -> dict[str, bytes | int]:
    """Every regular file of the image: the bytes of the lists read below, the size of the rest."""
    container = subprocess.run([docker, "create", image], capture_output=True, text=True, check=True).stdout.strip()
    try:
        with subprocess.Popen([docker, "export", container], stdout=subprocess.PIPE) as export:
            assert export.stdout is not None
            files: dict[str, bytes | int] = {}
            with tarfile.open(fileobj=export.stdout, mode="r|") as tar:
                for member in tar:
                    if not member.isfile():
                        continue
                    name = member.name.removeprefix("./")
                    wanted = name.endswith((".md5sums", ".dist-info/RECORD"))
                    handle = tar.extractfile(member) if wanted else None
                    files[name] = handle.read() if handle is not None else member.size
    finally:
        subprocess.run([docker, "rm", "-f", "-v", container], capture_output=True, check=False)
    return files


def _size(value: bytes | int) -> int:
    return len(value) if isinstance(value, bytes) else value


def _owners(files: dict[str, bytes | int]) -> dict[str, str]:
    owners: dict[str, str] = {}
    for name, value in files.items():
        path = PurePosixPath(name)
        if path.parent == STATUS and path.suffix == ".md5sums" and isinstance(value, bytes):
            for line in value.decode().splitlines():
                owners[line.split(maxsplit=1)[1]] = f"deb:{path.stem}"
        elif path.name == "RECORD" and path.parent.name.endswith(".dist-info") and isinstance(value, bytes):
            site = path.parent.parent
            distribution = path.parent.name.removesuffix(".dist-info").rsplit("-", 1)[0].lower()
            for row in csv.reader(io.StringIO(value.decode())):
                if row:
                    owners[str(site / row[0])] = f"py:{distribution}"
    return owners


def _source_of(path: PurePosixPath) -> str:
    """``a/__pycache__/m.cpython-313.pyc`` was compiled from ``a/m.py``."""
    return str(path.parent.parent / (path.name.split(".", 1)[0] + ".py"))


def _directory(name: str) -> str:
    parts = PurePosixPath(name).parts
    depth = 5 if parts[:2] == ("venv", "lib") else 3
    return "/" + "/".join(parts[:depth])


def measure(docker: str, image: str) -> Sizes:
    files = _export(docker, image)
    owners = _owners(files)
    packages: Counter[str] = Counter()
    directories: Counter[str] = Counter()
    for name, value in files.items():
        path = PurePosixPath(name)
        owner = owners.get(name)
        if owner is None and path.parent.name == PYCACHE:
            owner = owners.get(_source_of(path))
            if owner is not None and owner.startswith("deb:"):
                owner = "unowned"  # bytecode the image adds for a Debian package's module
        packages[owner or "unowned"] += _size(value)
        directories[_directory(name)] += _size(value)
    return Sizes(sum(packages.values()), packages, directories)
