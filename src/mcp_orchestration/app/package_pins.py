"""Which exact release a launcher would run now, asked of the package manager the launcher itself uses.

Resolving with the launcher's own tool honours what it honours: private
registries and indexes, their credentials, ``.npmrc``, ``uv.toml`` and
``pip.conf``, and the launcher's options that choose a source (which the
:class:`~mcp_orchestration.config.launchers.PackageRef` carries along).

- npx: ``npm pack --dry-run --json SPEC``. ``npm view SPEC`` does not pick a
  release: for a range it lists every match, in the registry's order. ``npm
  pack`` picks exactly as npx does (npm-pick-manifest: the ``latest`` tag if
  it matches, else the highest match, preferring releases that are not
  deprecated), at the cost of fetching the tarball into npm's cache, as npx
  would.
- uvx: ``uv pip compile --no-deps``, with the requirement on stdin: uv's own
  resolver with uv's configuration.
- pipx: ``python -m pip install --dry-run --no-deps --report -``: pip is
  pipx's classic backend and reads ``pip.conf`` as pipx's pip does. (pipx
  1.18 uses uv instead when it finds it; both pick the highest release that
  matches on the index they are configured with.)
- docker, podman: ``image inspect`` for the image the engine holds under that
  name, after a ``pull`` if it holds none (as ``docker run`` would). The pin
  is the registry's manifest digest from ``RepoDigests``; an image that never
  came from a registry (built locally) is pinned by its image id.

Every command is an argument list (no shell) run in a scratch directory (so
no project's own config applies, as none would on a client), with stdin
given or closed, output captured up to a bound, one deadline for the whole
resolution and the caller's environment (package managers need their
config). Tool output quoted in an error is redacted and cut short.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import IO, Any, Literal, NamedTuple, get_args

from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name

from mcp_orchestration.config.launchers import Launcher, PackageKind, PackageRef, full_image_name
from mcp_orchestration.config.strict import escape_hidden
from mcp_orchestration.core.errors import PackageResolveError, ValidationError
from mcp_orchestration.security.redaction import REDACTOR
from mcp_orchestration.security.secret_rules import scrub_text

ResolvedSource = Literal["registry", "local-image", "config"]

STDOUT_LIMIT = 16 * 1024 * 1024  # `npm pack --json` lists every file of a package
STDERR_LIMIT = 64 * 1024
_QUOTED_LINES = 3
_QUOTED_LENGTH = 400
_JOIN_SECONDS = 5.0
_JSON_KEYS = ("kind", "name", "version", "digest", "pin", "source")


@dataclass(frozen=True)
class ResolvedPackage:
    """The exact release a launcher runs: ``pin`` is the spec that runs it ("name@1.2.3", "repo@sha256:...").

    ``source`` says where the answer came from: ``registry`` (npm, the
    package index or the image's registry digest), ``local-image`` (an image
    the engine holds that no registry digest names: ``pin`` and ``digest``
    are its image id, which only that engine knows) or ``config`` (the config
    already names an exact release; nothing was asked).
    """

    kind: PackageKind
    name: str
    pin: str
    source: ResolvedSource
    version: str | None = None
    digest: str | None = None

    def to_json(self) -> dict[str, str | None]:
        """The lock file's form: every key always present, in one order."""
        return {key: getattr(self, key) for key in _JSON_KEYS}

    @classmethod
    def from_json(cls, data: object) -> ResolvedPackage:
        """Read :meth:`to_json`'s form back; ``ValidationError`` for anything else."""
        if not isinstance(data, Mapping) or set(data) != set(_JSON_KEYS):
            raise ValidationError(f"A resolved package is an object with exactly the keys {', '.join(_JSON_KEYS)}.")
        well_formed = (
            data["kind"] in get_args(PackageKind)
            and data["source"] in get_args(ResolvedSource)
            and isinstance(data["name"], str)
            and isinstance(data["pin"], str)
            and bool(data["pin"])
            and all(data[key] is None or isinstance(data[key], str) for key in ("version", "digest"))
        )
        if not well_formed:
            raise ValidationError(
                "A resolved package needs a known kind and source, a name and a pin, and a version and a digest "
                "that are strings or null."
            )
        return cls(**data)


def resolve(ref: PackageRef, *, timeout: float, program: str | None = None) -> ResolvedPackage:
    """The exact release ``ref``'s launcher would run now, as its own package manager resolves it.

    ``program`` runs instead of the tool found on PATH (npm, uv, docker or
    podman; for pipx, the Python whose pip resolves). A ref that is already
    pinned is answered from the config, with no process started.
    """
    if ref.problem is not None:
        raise PackageResolveError(ref.problem, "Name a registry release in the server's command line to pin it.")
    if ref.pinned:
        version = None if ref.kind == "oci" else ref.version  # an image's tag is no version: its digest pins it
        return ResolvedPackage(ref.kind, ref.name, ref.spec, "config", version, ref.digest)
    deadline = _Deadline(timeout)
    with tempfile.TemporaryDirectory(prefix="mcp-orchestration-resolve-") as scratch:
        return _RESOLVERS[ref.launcher](ref, _TOOLS[ref.launcher].located(program, ref.launcher), deadline, scratch)


# -- running a tool -----------------------------------------------------------------------------


class _Deadline:
    """One time budget for every command of a resolution."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self._end = time.monotonic() + seconds

    def remaining(self) -> float:
        return self._end - time.monotonic()


class _Output(NamedTuple):
    """What a tool printed (each stream up to its bound), and how it exited."""

    returncode: int
    stdout: bytes
    stderr: bytes


@dataclass(frozen=True)
class _Tool:
    """A package manager: its name, the arguments that start it, and what to install when it is missing."""

    name: str
    argv: tuple[str, ...]
    install: str

    def located(self, program: str | None, launcher: Launcher) -> _Tool:
        """This tool as it will run: ``program`` (else its own) found on PATH; an error naming it if it is not."""
        wanted = program or self.argv[0]
        found = shutil.which(wanted)
        if found is None:
            raise PackageResolveError(
                f"{wanted} is not installed (or not on PATH): {launcher} packages are resolved with {self.name}.",
                self.install,
            )
        return replace(self, argv=(found, *self.argv[1:]))

    def run(self, args: Sequence[str], deadline: _Deadline, cwd: str, stdin: bytes | None = None) -> _Output:
        """Run the tool with ``args`` within the deadline; a timeout or a failure to start is an error."""
        remaining = deadline.remaining()
        if remaining <= 0:
            raise PackageResolveError(f"{self.name} ran out of time (the budget was {deadline.seconds:g} s).")
        try:
            child = subprocess.Popen(
                [*self.argv, *args],
                stdin=subprocess.DEVNULL if stdin is None else subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                cwd=cwd,
            )
        except OSError as exc:
            raise PackageResolveError(f"{self.name} cannot be started: {exc.strerror}.", self.install) from None
        with child:
            stdout, stderr = bytearray(), bytearray()
            readers = [_drain(child.stdout, stdout, STDOUT_LIMIT), _drain(child.stderr, stderr, STDERR_LIMIT)]
            if stdin is not None and child.stdin is not None:
                _feed(child.stdin, stdin)
            try:
                returncode = child.wait(timeout=remaining)
            except subprocess.TimeoutExpired:
                child.kill()
                child.wait()
                raise PackageResolveError(
                    f"{self.name} did not answer within {deadline.seconds:g} s.",
                    "Raise the timeout if the registry is slow, or check that this machine can reach it.",
                ) from None
            finally:
                for reader in readers:
                    reader.join(_JOIN_SECONDS)
        return _Output(returncode, bytes(stdout), bytes(stderr))

    def failed(self, ref: PackageRef, output: _Output) -> PackageResolveError:
        """The error for a run that failed: the tool's first error lines, redacted and cut short, in the message."""
        return PackageResolveError(
            f"{self.name} could not resolve {_shown(ref.spec)} (exit status {output.returncode}): "
            f"{_quoted(output.stderr)}"
        )

    def json(self, output: _Output) -> Any:
        """The JSON the tool was asked to print."""
        try:
            return json.loads(output.stdout)
        except ValueError:
            raise PackageResolveError(f"{self.name} did not print the JSON it was asked for.") from None


_TOOLS: dict[Launcher, _Tool] = {
    "npx": _Tool("npm", ("npm",), "Install Node.js, which brings npm."),
    "uvx": _Tool("uv", ("uv",), "Install uv (https://docs.astral.sh/uv/, or `pip install uv`)."),
    "pipx": _Tool("pip", (sys.executable, "-m", "pip"), "Run with a Python that has pip 22.2 or later."),
    "docker": _Tool("docker", ("docker",), "Install Docker and start its engine."),
    "podman": _Tool("podman", ("podman",), "Install Podman."),
}


def _drain(stream: IO[bytes] | None, sink: bytearray, limit: int) -> threading.Thread:
    """Read ``stream`` to its end in a thread, keeping the first ``limit`` bytes (the rest is read and dropped)."""

    def read() -> None:
        if stream is None:
            return
        try:
            while chunk := stream.read(65536):
                sink.extend(chunk[: max(0, limit - len(sink))])
        except (OSError, ValueError):  # closed under it, after a kill
            return

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    return reader


def _feed(stream: IO[bytes], data: bytes) -> None:
    """Write ``data`` (a requirement line: it fits the pipe's buffer, so this never blocks) and close the stream.

    A tool that exits without reading it is not an error here; its exit status tells.
    """
    try:
        stream.write(data)
        stream.close()
    except (BrokenPipeError, ValueError):
        pass


def _quoted(stderr: bytes) -> str:
    """The first error lines of a tool's stderr (else its last lines), redacted, escaped and cut short, for a message.

    The lines may quote what a registry answered, which may hold terminal escapes: ``lock`` and ``check`` print it.
    """
    lines = [line.strip() for line in stderr.decode("utf-8", "replace").splitlines() if line.strip()]
    first_error = next((index for index, line in enumerate(lines) if "error" in line.lower()), None)
    chosen = lines[-_QUOTED_LINES:] if first_error is None else lines[first_error : first_error + _QUOTED_LINES]
    text = escape_hidden(scrub_text(REDACTOR.redact(" / ".join(chosen)))) or "no message"
    return text if len(text) <= _QUOTED_LENGTH else text[:_QUOTED_LENGTH] + "..."


# -- the resolvers ------------------------------------------------------------------------------


def _npm(ref: PackageRef, npm: _Tool, deadline: _Deadline, scratch: str) -> ResolvedPackage:
    args = ["pack", "--dry-run", "--json", "--ignore-scripts", *ref.source_options, "--", ref.spec]
    output = npm.run(args, deadline, scratch)
    if output.returncode != 0:
        raise npm.failed(ref, output)
    manifests = npm.json(output)
    manifest = manifests[0] if isinstance(manifests, list) and manifests and isinstance(manifests[0], dict) else {}
    version = manifest.get("version") if manifest.get("name") == ref.name else None
    if not isinstance(version, str):
        raise PackageResolveError(f"npm did not name the release of {_shown(ref.spec)} it would fetch.")
    return ResolvedPackage("npm", ref.name, ref.pinned_spec(version), "registry", version)


def _uv(ref: PackageRef, uv: _Tool, deadline: _Deadline, scratch: str) -> ResolvedPackage:
    args = ["pip", "compile", "--no-deps", "--no-header", "--no-annotate", "--quiet", *ref.source_options, "-"]
    output = uv.run(args, deadline, scratch, stdin=f"{_requirement(ref)}\n".encode())
    if output.returncode != 0:
        raise uv.failed(ref, output)
    for line in output.stdout.decode("utf-8", "replace").splitlines():
        version = _pinned_version(line, ref)
        if version is not None:
            return ResolvedPackage("pypi", ref.name, ref.pinned_spec(version), "registry", version)
    raise PackageResolveError(f"uv did not name the release of {_shown(ref.spec)} it would install.")


def _pip(ref: PackageRef, pip: _Tool, deadline: _Deadline, scratch: str) -> ResolvedPackage:
    args = ["install", "--dry-run", "--no-deps", "--ignore-installed", "--quiet", "--no-input", "--report", "-"]
    output = pip.run([*args, "--disable-pip-version-check", *ref.source_options, _requirement(ref)], deadline, scratch)
    if output.returncode != 0:
        raise pip.failed(ref, output)
    report = pip.json(output)
    installs = report.get("install") if isinstance(report, dict) else None
    for item in installs if isinstance(installs, list) else []:
        metadata = item.get("metadata") if isinstance(item, dict) else None
        name, version = (metadata.get("name"), metadata.get("version")) if isinstance(metadata, dict) else (None, None)
        if isinstance(name, str) and isinstance(version, str) and canonicalize_name(name) == ref.canonical_name:
            return ResolvedPackage("pypi", ref.name, ref.pinned_spec(version), "registry", version)
    raise PackageResolveError(f"pip did not name the release of {_shown(ref.spec)} it would install.")


def _engine(ref: PackageRef, engine: _Tool, deadline: _Deadline, scratch: str) -> ResolvedPackage:
    inspect = [*ref.source_options, "image", "inspect", "--", ref.spec]
    output = engine.run(inspect, deadline, scratch)
    if output.returncode != 0:  # not here (or no engine): fetch it as `run` would, then look again
        pulled = engine.run([*ref.source_options, "pull", "--quiet", "--", ref.spec], deadline, scratch)
        if pulled.returncode != 0:
            raise engine.failed(ref, pulled)
        output = engine.run(inspect, deadline, scratch)
        if output.returncode != 0:
            raise engine.failed(ref, output)
    images = engine.json(output)
    image = images[0] if isinstance(images, list) and images else None
    if not isinstance(image, dict) or not isinstance(image.get("Id"), str):
        raise PackageResolveError(f"{engine.name} did not describe the image {_shown(ref.spec)}.")
    digests = sorted(_repo_digests(image.get("RepoDigests"), ref.canonical_name))
    if digests:  # several: the same image pushed more than once; each of them runs it
        return ResolvedPackage("oci", ref.name, ref.pinned_spec(digests[0]), "registry", digest=digests[0])
    image_id = image["Id"] if image["Id"].startswith("sha256:") else f"sha256:{image['Id']}"  # podman: bare hex
    return ResolvedPackage("oci", ref.name, image_id, "local-image", digest=image_id)


_RESOLVERS = {"npx": _npm, "uvx": _uv, "pipx": _pip, "docker": _engine, "podman": _engine}


def _requirement(ref: PackageRef) -> str:
    """The spec as a PEP 508 requirement: uv's ``name@latest`` is the bare name (every other ``@`` form is pinned)."""
    return ref.spec.removesuffix("@latest")


def _pinned_version(line: str, ref: PackageRef) -> str | None:
    """The version in a ``name==version`` line of ``uv pip compile`` for ``ref``'s project, else None."""
    try:
        requirement = Requirement(line.strip())
    except InvalidRequirement:
        return None
    pins = [spec.version for spec in requirement.specifier if spec.operator == "=="]
    same = canonicalize_name(requirement.name) == ref.canonical_name
    return pins[0] if same and len(pins) == 1 else None


def _repo_digests(entries: object, canonical_name: str) -> set[str]:
    """The manifest digests in ``RepoDigests`` ("repo@sha256:...") recorded for this repository."""
    found = set()
    for entry in entries if isinstance(entries, list) else []:
        name, at, digest = str(entry).rpartition("@")
        if at and full_image_name(name) == canonical_name:
            found.add(digest)
    return found


def _shown(spec: str) -> str:
    return repr(scrub_text(spec))
