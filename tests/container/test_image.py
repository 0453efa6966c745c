"""The image's structure, the way distroless' own structure tests check theirs.

Everything here reads the built image without running the server: its config
(``docker image inspect``), its build history (``docker history --no-trunc``)
and its filesystem (``docker create`` + ``docker export``, read once per module
as a tar stream). What it proves:

- the config a runtime sees: non-root user, exec-form entrypoint, command and
  healthcheck, the store as a volume, no secret in the environment, OCI labels;
- nothing to run but Python: no shell, no package manager, no pip or setuptools;
- nothing secret or stray in any layer: no private key (by content or by name),
  no build context leftovers (tests, VCS, the source tree, foreign bytecode);
- the bytecode the image ships is checked-hash and is what Python really loads;
- ``--version`` reports the version in ``pyproject.toml``.
"""

from __future__ import annotations

import json
import re
import stat
from pathlib import PurePosixPath
from typing import Any

import pytest

from mcp_orchestration.trust import keys
from tests.container.conftest import IMAGE, NONROOT, Filesystem, docker, pyproject_version

pytestmark = pytest.mark.container

ENTRYPOINT = "/venv/bin/mcp-orchestration"
HOME = "/var/lib/mcp-orchestration"
SITE_PACKAGES = "venv/lib/python3.13/site-packages"
STDLIB = "usr/lib/python3.13"
SECRETS_DIR = "/run/secrets"
SECRET_WORDS = ("KEY", "TOKEN", "SECRET", "PASSWORD", "PASSWD", "PRIVATE", "CREDENTIAL")
# PEM armour, built from parts so this file never holds the marker itself.
PEM_BEGIN = "-----" + "BEGIN "
PRIVATE_KEY_ARMOUR = "PRIVATE " + "KEY-----"
# A real PEM private key: the armour, optional RFC 1421 headers, then base64 body lines and the matching END.
PEM_PRIVATE_KEY = re.compile(
    (
        re.escape(PEM_BEGIN) + r"((?:[A-Z0-9]+ )*)" + re.escape(PRIVATE_KEY_ARMOUR) + r"\r?\n"
        r"(?:[A-Za-z-]+: [^\r\n]*\r?\n)*(?:\r?\n)?"
        r"(?:[A-Za-z0-9+/=]{16,}\r?\n)+"
        r"-----END \1" + re.escape(PRIVATE_KEY_ARMOUR)
    ).encode()
)
# Any mention of the armour (weaker: libraries quote it as a constant), for text that is never code.
PEM_MENTION = re.compile(re.escape(PEM_BEGIN) + r"(?:[A-Z0-9]+ )*" + re.escape(PRIVATE_KEY_ARMOUR))
SHELLS = {"sh", "bash", "dash", "ash", "zsh", "ksh", "mksh", "csh", "tcsh", "fish", "busybox", "toybox"}
PACKAGE_MANAGERS = {
    "apt", "apt-get", "apt-cache", "apt-config", "apt-key", "aptitude", "apk", "yum", "dnf", "rpm",
    "dpkg", "dpkg-deb", "dpkg-query", "dpkg-divert", "dpkg-split", "dpkg-trigger", "dpkg-statoverride",
}  # fmt: skip
# Top-level directories only the build stages had; the runtime must hold none of them.
BUILD_ONLY = {
    "src", "tests", "locks", "dist", "buildenv", "wheelhouse", "home-skeleton", "stdlib-pyc", "stdlib_pyc", "layers",
}  # fmt: skip
# A checked-hash pyc (PEP 552): flags word 0b11, hash-based and checked against the source on import.
CHECKED_HASH = 0b11
# Stdlib modules every start of the server imports (json for JSON-RPC, asyncio for anyio).
STDLIB_MODULES = (
    "json",
    "json.decoder",
    "json.encoder",
    "json.scanner",
    "asyncio",
    "asyncio.events",
    "asyncio.base_events",
)


@pytest.fixture(scope="module")
def config() -> dict[str, Any]:
    """The image config (``docker image inspect``), as a runtime reads it."""
    inspected = json.loads(docker("image", "inspect", IMAGE).stdout)
    assert isinstance(inspected, list) and len(inspected) == 1
    image_config = inspected[0]["Config"]
    assert isinstance(image_config, dict)
    return image_config


@pytest.fixture(scope="module")
def history() -> str:
    """Every layer's ``created_by``, untruncated: what a registry user can read of the build."""
    return docker("history", "--no-trunc", "--format", "{{.CreatedBy}}", IMAGE).stdout


def _run_python(*args: str) -> tuple[int, str, str]:
    """Run the image's venv interpreter (not the entrypoint) in a throwaway container."""
    result = docker(
        "run", "--rm", "--network", "none", "--read-only", "--entrypoint", "/venv/bin/python", IMAGE, *args, check=False
    )  # fmt: skip
    return result.returncode, result.stdout, result.stderr


def _pyc_flags(data: bytes) -> int:
    """The PEP 552 flags word of a pyc header (after the 4-byte magic)."""
    assert len(data) >= 16, "truncated pyc"
    return int.from_bytes(data[4:8], "little")


def _looks_secret(text: str) -> bool:
    return any(word in text.upper() for word in SECRET_WORDS)


# -- the config a runtime sees ---------------------------------------------------------------


def test_runs_as_nonroot_uid_and_gid_65532(config: dict[str, Any]) -> None:
    """Numeric uid:gid, so Kubernetes' runAsNonRoot can verify it without an /etc/passwd lookup."""
    assert config["User"] == f"{NONROOT}:{NONROOT}"


def test_entrypoint_and_command_are_exec_form(config: dict[str, Any]) -> None:
    """No ``/bin/sh -c`` wrapper (there is no shell): the server is PID 1's direct child and gets signals."""
    assert config["Entrypoint"] == [ENTRYPOINT]
    assert config["Cmd"] == ["serve"]


def test_healthcheck_is_exec_form_and_runs_the_cli_healthcheck(config: dict[str, Any]) -> None:
    """``CMD-SHELL`` would need a shell; the check must be the CLI's own ``healthcheck``."""
    health = config["Healthcheck"]
    assert health["Test"] == ["CMD", ENTRYPOINT, "healthcheck"]
    assert 0 < health["Timeout"] <= health["Interval"]
    assert health["Retries"] >= 1


def test_store_is_a_declared_volume(config: dict[str, Any]) -> None:
    """The store must outlive the container and stay writable under ``--read-only``."""
    assert HOME in (config["Volumes"] or {})
    assert config["WorkingDir"] == HOME


def test_environment_names_the_home_and_holds_nothing_secret(config: dict[str, Any]) -> None:
    """An ENV is in every layer's config for anyone who pulls the image: no key, token or password."""
    env = dict(entry.split("=", 1) for entry in config["Env"])
    assert env["MCP_ORCHESTRATION_HOME"] == HOME
    assert env["PATH"].split(":")[0] == "/venv/bin"
    for name, value in env.items():
        if name.endswith("_FILE") and value.startswith(SECRETS_DIR + "/"):
            continue  # a path to a Docker secret, not a secret
        assert not _looks_secret(name), f"secret-looking variable in the image: {name}"
        assert not _looks_secret(value), f"secret-looking value in the image: {name}={value}"


def test_oci_labels_are_present_and_match_the_project(config: dict[str, Any]) -> None:
    """The labels scanners and registries read; the version must be the one being shipped."""
    labels = config["Labels"] or {}
    for key in ("title", "source", "version", "revision", "licenses"):
        value = labels.get(f"org.opencontainers.image.{key}", "")
        assert value.strip(), f"label org.opencontainers.image.{key} is missing or empty"
    assert labels["org.opencontainers.image.title"] == "mcp-orchestration"
    assert labels["org.opencontainers.image.version"] == pyproject_version()
    assert labels["org.opencontainers.image.source"].startswith("https://")
    assert labels["org.opencontainers.image.licenses"] == "Apache-2.0"


# -- nothing to run but Python ---------------------------------------------------------------


def test_no_shell_can_be_started() -> None:
    """Overriding the entrypoint with a shell fails at exec: there is none to start."""
    result = docker("run", "--rm", "--network", "none", "--entrypoint", "/bin/sh", IMAGE, "-c", "true", check=False)
    assert result.returncode != 0
    assert "no such file or directory" in result.stderr.lower(), result.stderr


def test_no_shell_or_busybox_anywhere(filesystem: Filesystem) -> None:
    """No shell under any name or path (a symlink counts), so an exploit cannot get one."""
    found = sorted(str(path) for path in filesystem.names() if path.name in SHELLS or path.name.startswith("busybox"))
    assert found == []


def test_no_package_manager(filesystem: Filesystem) -> None:
    """Nothing can install software at run time."""
    found = sorted(
        name
        for name, member in filesystem.members.items()
        if PurePosixPath(name).name in PACKAGE_MANAGERS and not member.isdir()  # /var/lib/dpkg is data
    )
    assert found == []


def test_no_pip_or_setuptools(filesystem: Filesystem) -> None:
    """The venv is sealed: no installer in it, no ``pip`` executable anywhere, no bundled wheels."""
    installers = ("pip", "setuptools", "pkg_resources", "_distutils_hack", "wheel")
    found = []
    for path in filesystem.names():
        text = str(path)
        if text.startswith(SITE_PACKAGES + "/"):
            top = path.parts[len(PurePosixPath(SITE_PACKAGES).parts)]
            distribution = re.split(r"-\d", top, maxsplit=1)[0].lower()
            if top in installers or distribution in installers or top == "distutils-precedence.pth":
                found.append(text)
        if re.fullmatch(r"pip(3(\.\d+)?)?", path.name) or re.fullmatch(r"(pip|setuptools)-.*\.whl", path.name):
            found.append(text)
    assert sorted(set(found)) == []


def test_dpkg_status_lists_the_runtime_packages(filesystem: Filesystem) -> None:
    """Scanners (Trivy, Grype) find distroless packages only through ``/var/lib/dpkg/status.d``."""
    status = {
        path.name: filesystem.read(str(path)).decode()
        for path in filesystem.names()
        if str(path.parent) == "var/lib/dpkg/status.d" and not path.name.endswith(".md5sums")
    }
    for package in ("libpython3.13-stdlib", "python3.13-minimal", "libc6", "libssl3t64"):
        assert package in status, f"{package} missing from /var/lib/dpkg/status.d: {sorted(status)}"
    for name, text in status.items():
        fields = dict(re.findall(r"^([A-Za-z-]+): (.*)$", text, flags=re.MULTILINE))
        assert fields.get("Package") == name, (name, fields.get("Package"))
        assert fields.get("Version"), f"{name} has no Version"


def test_passwd_has_nonroot_65532(filesystem: Filesystem) -> None:
    """uid 65532 resolves to a named user with no login shell (there is none to log into)."""
    passwd = filesystem.read("etc/passwd").decode().splitlines()
    entries = {line.split(":")[0]: line.split(":") for line in passwd if line}
    assert entries["nonroot"][2:4] == [str(NONROOT), str(NONROOT)]
    assert entries["nonroot"][6] in {"/sbin/nologin", "/usr/sbin/nologin", "/bin/false"}
    group = filesystem.read("etc/group").decode()
    assert f"nonroot:x:{NONROOT}:" in group.splitlines()


def test_store_directory_is_owned_by_nonroot_with_mode_0700(filesystem: Filesystem) -> None:
    """A fresh named volume copies this directory: the server can write it, nobody else can read it."""
    member = filesystem.members[HOME.lstrip("/")]
    assert member.isdir()
    assert (member.uid, member.gid) == (NONROOT, NONROOT)
    assert stat.S_IMODE(member.mode) == 0o700


def test_tmp_is_world_writable_and_sticky(filesystem: Filesystem) -> None:
    """Mode 1777, as on any Linux: Python's tempfile works for uid 65532 without a tmpfs."""
    member = filesystem.members["tmp"]
    assert member.isdir()
    assert stat.S_IMODE(member.mode) == 0o1777


# -- nothing secret or stray in any layer ----------------------------------------------------


def test_no_private_key_in_any_file(filesystem: Filesystem) -> None:
    """No PEM private key in any file of any layer (the export flattens them all)."""
    found = [name for name, data in filesystem.regular_files() if PEM_PRIVATE_KEY.search(data)]
    assert found == []


def test_the_private_key_scan_would_see_a_key() -> None:
    """The scan above is not vacuous: it matches a real key and ignores libraries quoting the armour."""
    generated = keys.generate()
    pkcs8 = generated.serialize("pkcs8", None)
    openssh = generated.serialize("openssh", None)
    assert PEM_PRIVATE_KEY.search(b"junk\n" + pkcs8 + b"junk")
    assert PEM_PRIVATE_KEY.search(openssh)
    quoted = (PEM_BEGIN + "OPENSSH " + PRIVATE_KEY_ARMOUR).encode()
    assert not PEM_PRIVATE_KEY.search(b'_SK_START = b"' + quoted + b'"\n')


def test_no_private_key_or_secret_in_the_build_history(history: str) -> None:
    """``docker history`` shows every RUN, ARG and ENV: no key armour, no key path, no secret-named ARG/ENV."""
    assert history.strip()
    assert not PEM_MENTION.search(history)
    assert "signing_key" not in history.replace(f"{SECRETS_DIR}/signing_key", "")
    for line in history.splitlines():
        match = re.match(r"\s*(?:/bin/sh -c #\(nop\) )?(ARG|ENV)\s+(.*)", line)
        if not match:
            continue
        for name in re.findall(r"(?:^|\s)([A-Za-z_][A-Za-z0-9_]*)=", match.group(2)):
            assert not _looks_secret(name), f"secret-looking {match.group(1)} in the history: {line.strip()}"


CA_BUNDLES = {f"{SITE_PACKAGES}/certifi/cacert.pem"}  # requests' public CA certificates, for oci:// mirrors


def test_no_files_named_like_keys(filesystem: Filesystem) -> None:
    """Key files by name: PEM, .key, the secret's own name, SSH identities; a CA bundle holds certificates only."""
    pattern = re.compile(r"(.*\.(pem|key|p12|pfx)|signing_key.*|id_(rsa|dsa|ecdsa|ed25519)(\.pub)?)", re.IGNORECASE)
    found = sorted(str(path) for path in filesystem.names() if pattern.fullmatch(path.name))
    assert [name for name in found if name not in CA_BUNDLES] == []
    for bundle in found:
        text = filesystem.read(bundle).decode()
        assert "PRIVATE KEY" not in text and text.count("BEGIN CERTIFICATE") > 100, bundle


def test_no_build_context_leftovers(filesystem: Filesystem) -> None:
    """The build context never reaches the runtime: no tests, VCS, source tree or foreign bytecode."""
    tops = {path.parts[0] for path in filesystem.names()}
    assert tops & BUILD_ONLY == set()
    names = list(filesystem.names())
    # (venv/.gitignore is the one `python -m venv` writes itself.)
    assert [
        str(p) for p in names if ".git" in p.parts or p.name in {".dockerignore", "Makefile", "pyproject.toml"}
    ] == []
    # Nothing of this repository's test tree, under any prefix.
    ours = {"test_stdio_e2e.py", "tool_errors.py", "crash_driver.py", "test_image.py", "tools_list.json"}
    assert [str(p) for p in names if p.name in ours] == []
    assert [str(p) for p in names if "mcp_orchestration" in p.parts and "tests" in p.parts] == []
    # The package is installed as a wheel, not an editable link back to /src.
    assert [
        str(p) for p in names if str(p.parent) == SITE_PACKAGES and p.suffix == ".pth" and "editable" in p.name
    ] == []
    assert f"{SITE_PACKAGES}/mcp_orchestration/__init__.py" in filesystem.members
    # Bytecode only where the image made it: the venv and the stdlib, never the build context's own.
    stray = [
        str(p)
        for p in names
        if (p.name == "__pycache__" or p.suffix == ".pyc")
        and not (str(p).startswith(SITE_PACKAGES + "/") or str(p).startswith(STDLIB + "/"))
    ]
    assert stray == []
    assert not any(p.name.endswith(".cpython-311.pyc") or p.name.endswith(".cpython-312.pyc") for p in names)


# -- bytecode --------------------------------------------------------------------------------


def _cached(source: str) -> str:
    """Where Python looks for the bytecode of ``source`` (``importlib.util.cache_from_source`` for 3.13)."""
    path = PurePosixPath(source)
    return str(path.parent / "__pycache__" / f"{path.stem}.cpython-313.pyc")


def _module_source(filesystem: Filesystem, module: str) -> str:
    base = f"{STDLIB}/{module.replace('.', '/')}"
    return f"{base}/__init__.py" if f"{base}/__init__.py" in filesystem.members else f"{base}.py"


def test_stdlib_modules_the_server_imports_have_checked_hash_bytecode(filesystem: Filesystem) -> None:
    """Debian ships no stdlib bytecode; the image adds it, checked against the source's hash on import."""
    for module in STDLIB_MODULES:
        source = _module_source(filesystem, module)
        assert source in filesystem.members, f"{module}: no {source}"
        cached = _cached(source)
        assert cached in filesystem.members, f"{module}: no {cached}"
        assert _pyc_flags(filesystem.read(cached)) == CHECKED_HASH, f"{cached} is not checked-hash"
    # Every stdlib pyc the image added is checked-hash: a timestamp pyc would go stale silently.
    stdlib_pycs = [name for name in filesystem.members if name.startswith(STDLIB + "/") and name.endswith(".pyc")]
    assert len(stdlib_pycs) >= 100, f"only {len(stdlib_pycs)} stdlib pyc files"
    unchecked = [name for name in stdlib_pycs if _pyc_flags(filesystem.read(name)) != CHECKED_HASH]
    assert unchecked == []


def test_python_loads_the_stdlib_and_the_package_from_bytecode() -> None:
    """``python -v`` says where each code object came from: the pyc, and no module compiled from source."""
    status, _, stderr = _run_python("-v", "-c", "import json, asyncio, mcp_orchestration.cli")
    assert status == 0, stderr
    loaded = set(re.findall(r"^# code object from '([^']+\.pyc)'$", stderr, flags=re.MULTILINE))
    for module in STDLIB_MODULES:
        parts = module.split(".")
        candidates = {
            _cached(f"/{STDLIB}/{'/'.join(parts)}/__init__.py"),
            _cached(f"/{STDLIB}/{'/'.join(parts)}.py"),
        }
        assert candidates & loaded, f"{module} was not loaded from its pyc"
    assert _cached(f"/{SITE_PACKAGES}/mcp_orchestration/cli.py") in loaded
    # A source compile prints the .py path unquoted; none of the modules imported here may need one.
    compiled = re.findall(r"^# code object from (/\S+\.py)$", stderr, flags=re.MULTILINE)
    assert [path for path in compiled if path.startswith((f"/{STDLIB}/json", f"/{STDLIB}/asyncio", "/venv/"))] == []


def test_the_package_has_checked_hash_bytecode_for_every_module(filesystem: Filesystem) -> None:
    """``compileall --invalidation-mode checked-hash`` covered all of mcp_orchestration."""
    package = f"{SITE_PACKAGES}/mcp_orchestration/"
    sources = [name for name in filesystem.members if name.startswith(package) and name.endswith(".py")]
    assert len(sources) >= 20, sources
    for source in sources:
        cached = _cached(source)
        assert cached in filesystem.members, f"no bytecode for {source}"
        assert _pyc_flags(filesystem.read(cached)) == CHECKED_HASH, f"{cached} is not checked-hash"


# -- the version -----------------------------------------------------------------------------


def test_version_matches_pyproject() -> None:
    """The image runs the code this checkout describes (a stale image fails here first)."""
    result = docker("run", "--rm", "--network", "none", "--read-only", IMAGE, "--version")
    assert result.stdout.strip() == f"mcp-orchestration {pyproject_version()}"
