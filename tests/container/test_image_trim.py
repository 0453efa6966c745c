"""What the image leaves out of the distroless set, and proof that nothing the server uses went with it.

build/runtime-base.Dockerfile omits packages nothing loads (OMIT_PACKAGES) and
trims documentation but copyright files, glibc's iconv modules and tools, and
CPython's test suite. Each removal is checked here both ways: it is gone, and
what could have needed it still works in the image: every native module
imports, text in any script and codec round-trips, TLS finds its CA bundle,
time zones resolve, and each package's md5sums list matches the files left.
The server's own end-to-end tests (stdio, HTTP, compose, swarm) run on this
same trimmed image.
"""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import PurePosixPath

import pytest

from tests.container.conftest import IMAGE, ROOT, Filesystem, docker

pytestmark = pytest.mark.container

STATUS = PurePosixPath("var/lib/dpkg/status.d")
# The packages build/runtime-base.Dockerfile leaves out, as its OMIT_PACKAGES argument lists them.
_OMIT = re.search(r'^ARG OMIT_PACKAGES="([^"]*)"', (ROOT / "build/runtime-base.Dockerfile").read_text(), re.MULTILINE)
assert _OMIT is not None
OMITTED = tuple(_OMIT.group(1).replace("\\\n", " ").split())
GONE = (
    "usr/lib/x86_64-linux-gnu/gconv", "usr/lib/aarch64-linux-gnu/gconv", "usr/sbin/ldconfig", "usr/bin/localedef",
    "usr/bin/iconv", "usr/bin/locale", "usr/share/man", "usr/share/lintian", "usr/lib/python3.13/test",
    "usr/share/zoneinfo/right",
)  # fmt: skip

# Runs in the image's own interpreter: every check prints one JSON line.
PROBE = r"""
import codecs, importlib, json, locale, pathlib, ssl, sys, sysconfig, zoneinfo

failed = []
stdlib = pathlib.Path(sys.base_prefix, "lib", f"python{sys.version_info[0]}.{sys.version_info[1]}")
roots = [stdlib / "lib-dynload", pathlib.Path(sysconfig.get_paths()["purelib"])]
modules = 0
for root in roots:
    for so in sorted(root.rglob("*.so")):
        parts = so.relative_to(root).with_suffix("").parts
        name = ".".join(parts[:-1] + (parts[-1].split(".")[0],))
        try:
            importlib.import_module(name)
            modules += 1
        except ImportError as error:
            failed.append(f"{name}: {error}")
text = "Grüße, 東京, Ελληνικά, 🙂"
codec_ok = all(codecs.decode(codecs.encode(text[:5], c), c) == text[:5] for c in ("utf-8", "latin-1", "utf-16"))
codec_ok = codec_ok and codecs.decode(codecs.encode("東京", "shift_jis"), "shift_jis") == "東京"
stats = ssl.create_default_context().cert_store_stats()
try:
    zoneinfo.ZoneInfo("right/UTC")
    right = True
except zoneinfo.ZoneInfoNotFoundError:
    right = False
print(json.dumps({
    "modules": modules, "failed": failed, "locale": locale.setlocale(locale.LC_ALL, ""),
    "preferred": locale.getpreferredencoding(False), "codecs": codec_ok, "ca": stats["x509_ca"],
    "berlin": str(zoneinfo.ZoneInfo("Europe/Berlin").key), "right": right,
    "stdout": sys.stdout.encoding, "echo": text,
}))
"""


def _status(filesystem: Filesystem) -> dict[str, str]:
    return {
        path.name: filesystem.read(str(path)).decode()
        for path in filesystem.names()
        if path.parent == STATUS and not path.name.endswith(".md5sums")
    }


def _source(control: str) -> str:
    """A package's source package: its Source field without a version, else its own name."""
    match = re.search(r"^Source: (\S+)", control, re.MULTILINE) or re.search(r"^Package: (\S+)", control, re.MULTILINE)
    assert match is not None
    return match.group(1)


@pytest.fixture(scope="module")
def probe() -> dict[str, object]:
    result = docker(
        "run", "--rm", "--network", "none", "--read-only", "--cap-drop", "ALL", "--entrypoint", "/venv/bin/python",
        IMAGE, "-c", PROBE,
    )  # fmt: skip
    answer = json.loads(result.stdout)
    assert isinstance(answer, dict)
    return answer


def test_every_native_module_of_the_stdlib_and_the_venv_still_loads(probe: dict[str, object]) -> None:
    """No library a module links to went with an omitted package (cryptography, pydantic-core, _ssl, _sqlite3...)."""
    assert probe["failed"] == []
    assert isinstance(probe["modules"], int) and probe["modules"] >= 30


def test_text_round_trips_without_glibcs_iconv_modules(probe: dict[str, object]) -> None:
    """Python's codecs are its own; C.UTF-8 is still a locale the image has."""
    assert probe["codecs"] is True
    assert probe["locale"] == "C.UTF-8"
    assert probe["preferred"] == "UTF-8"
    assert probe["echo"] == "Grüße, 東京, Ελληνικά, 🙂"


def test_tls_finds_the_ca_bundle(probe: dict[str, object]) -> None:
    assert isinstance(probe["ca"], int) and probe["ca"] > 100


def test_time_zones_resolve_but_the_leap_second_zones_are_gone(probe: dict[str, object]) -> None:
    assert probe["berlin"] == "Europe/Berlin"
    assert probe["right"] is False


def test_trimmed_paths_and_omitted_packages_are_absent(filesystem: Filesystem) -> None:
    names = {str(path) for path in filesystem.names()}
    assert [gone for gone in GONE if gone in names] == []
    status = _status(filesystem)
    assert [package for package in OMITTED if package in status] == []
    assert "libc6" in status and "libpython3.13-stdlib" in status


def test_documentation_is_only_the_copyright_files(filesystem: Filesystem) -> None:
    """Licences require the copyright files: every package keeps its own, and nothing else stays under doc."""
    doc = ("usr", "share", "doc")
    docs = [path for path in filesystem.names() if path.parts[:3] == doc and len(path.parts) > 4]
    assert [str(path) for path in docs if path.name != "copyright" or len(path.parts) != 5] == []
    documented = {path.parts[3] for path in docs}
    # a package's doc directory may be a link to another's (libgcc-s1 -> gcc-14-base), as Debian ships it
    for path in filesystem.names():
        member = filesystem.members[str(path)]
        if path.parts[:3] == doc and len(path.parts) == 4 and member.issym() and member.linkname in documented:
            documented.add(path.parts[3])
    # or it links to a package not shipped (python3.13-venv -> python3.13): one of the same source carries it
    status = _status(filesystem)
    sources = {name: _source(text) for name, text in status.items()}
    documented |= {name for name, source in sources.items() if source in {sources.get(d) for d in documented}}
    assert sorted(set(status) - documented) == []


def test_each_md5sums_list_matches_the_files_left(filesystem: Filesystem) -> None:
    """dpkg-style verification stays true after the trim: every listed file is there, with its digest."""
    files = dict(filesystem.regular_files())
    listed = 0
    wrong = []
    for path in filesystem.names():
        if path.parent != STATUS or not path.name.endswith(".md5sums"):
            continue
        for line in files[str(path)].decode().splitlines():
            digest, name = re.split(r"\s+", line, maxsplit=1)
            listed += 1
            if name not in files:
                # a symlinked path (merged /usr) is fine when its target resolves in the image
                wrong.append(f"{path.name}: {name} missing")
            elif hashlib.md5(files[name], usedforsecurity=False).hexdigest() != digest:
                wrong.append(f"{path.name}: {name} differs")
    assert wrong == []
    assert listed > 1000


def test_each_status_file_records_the_sha256_of_its_deb(filesystem: Filesystem) -> None:
    """The SBOM names each Debian package by the digest apt verified against the signed archive index."""
    status = _status(filesystem)
    missing = [name for name, text in status.items() if not re.search(r"^SHA256: [0-9a-f]{64}$", text, re.MULTILINE)]
    assert missing == []
