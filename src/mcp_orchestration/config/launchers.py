"""Which package a local server's launcher fetches, and whether the config pins its release.

Most MCP servers are started through a launcher that fetches a package each
time the client starts them: ``npx`` (or ``npm exec``) from npm, ``uvx`` (or
``uv tool run``) and ``pipx run`` from PyPI, ``docker run`` and ``podman run``
from an OCI registry. Unless the config names an exact release (an npm
version, a PyPI ``==`` version, an image digest), each client may run a
different one than the publisher reviewed. :func:`package_ref` finds the
package argument by reading the launcher's own options as the launcher does,
so that an option's value is never mistaken for the package; when it cannot
tell (an option it does not know), the result says so rather than guess.

Pinned means one release on every client: an exact npm version
(``pkg@1.2.3``; npm reads ``v1.2.3`` alike), a PyPI ``==1.2.3`` (a ``===``
too: it matches one version string exactly; ``==1.*`` does not) or uv's
``pkg@1.2.3``, an image digest. A range, a dist-tag (``latest``, ``next``)
or nothing at all is not. A pin covers the package itself, not its
dependencies, which npx and uvx resolve again at each install, nor uvx's
``--with`` extras.

Pure: no process is started and nothing is fetched (``app.package_pins``
asks the package managers which release a reference resolves to).
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import PureWindowsPath
from typing import Literal

from packaging.requirements import InvalidRequirement, Requirement
from packaging.specifiers import SpecifierSet
from packaging.utils import canonicalize_name
from packaging.version import InvalidVersion, Version

from mcp_orchestration.config.model import StdioServer
from mcp_orchestration.security.secret_rules import PLACEHOLDER, scrub_text

PackageKind = Literal["npm", "pypi", "oci"]
Launcher = Literal["npx", "uvx", "pipx", "docker", "podman"]

_SHOWN_LENGTH = 120
_WINDOWS_SUFFIXES = (".cmd", ".exe", ".bat")


@dataclass(frozen=True)
class PackageRef:
    """The package a launcher runs, as the config writes it.

    ``name`` is the npm name (with its ``@scope/``), the PyPI project name or
    the image repository (with its registry host), as written and without a
    version, tag or digest (an engine's image id names no repository: empty).
    ``version`` is set only for an exact npm or PyPI release; for an image it
    is the tag, and ``digest`` pins it. ``problem`` says why the reference
    cannot be pinned as written: a URL, local code or a placeholder (then
    ``name`` is the whole spec), or arguments this module cannot read (then
    ``name`` and ``spec`` are empty and ``arg_index`` is None).
    ``source_options`` are the launcher's options that choose where packages
    come from (an index URL, a registry, a Docker context), ready to hand to
    the same tool's resolver.
    """

    kind: PackageKind
    launcher: Launcher
    name: str
    spec: str
    arg_index: int | None
    version: str | None = None
    digest: str | None = None
    problem: str | None = None
    source_options: tuple[str, ...] = ()

    @property
    def pinned(self) -> bool:
        """Whether every client runs the same release: an exact npm or PyPI version, or an image digest."""
        return (self.digest if self.kind == "oci" else self.version) is not None

    @property
    def canonical_name(self) -> str:
        """The name as the registry compares it: PEP 503 for PyPI, Docker's full form for images."""
        if self.kind == "pypi":
            return canonicalize_name(self.name)
        if self.kind == "oci" and self.name:
            return full_image_name(self.name)
        return self.name

    def pinned_spec(self, version_or_digest: str) -> str:
        """The spec that runs exactly that release, in the form this launcher reads it.

        npm: ``name@1.2.3``; PyPI: ``name==1.2.3`` (with the extras and markers
        as written), or ``name@1.2.3`` where the config used uv's ``@`` form;
        an image: ``repository@sha256:...``.
        """
        if self.problem is not None:
            raise ValueError(f"{self.spec!r} cannot be pinned: {self.problem}")
        if self.kind != "pypi":
            return f"{self.name}@{version_or_digest}" if self.name else version_or_digest  # an image id alone
        head, at, _ = self.spec.partition("@")
        if at:
            return f"{head}@{version_or_digest}"
        requirement = Requirement(self.spec)
        requirement.specifier = SpecifierSet(f"=={version_or_digest}")
        return str(requirement)


def package_ref(server: StdioServer) -> PackageRef | None:
    """The package ``server`` starts through a launcher; None when its command is no launcher known here."""
    args = server.args or ()
    found = _launcher(server.command, args, 0)
    if found is None:
        return None
    kind, launcher, start = found
    try:
        return _READERS[kind](launcher, args, start)
    except _Unreadable as unreadable:
        what = "image" if kind == "oci" else "package"
        problem = f"{launcher} {unreadable}: this check cannot tell which {what} it runs, so it cannot pin it."
        return PackageRef(kind, launcher, "", "", None, problem=problem)


def full_image_name(repository: str) -> str:
    """Docker's full form of an image repository, to compare names: "busybox" is "docker.io/library/busybox"."""
    first, slash, rest = repository.partition("/")
    has_domain = slash and ("." in first or ":" in first or first == "localhost")
    domain, path = (first, rest) if has_domain else ("docker.io", repository)
    domain = "docker.io" if domain == "index.docker.io" else domain
    return f"{domain}/library/{path}" if domain == "docker.io" and "/" not in path else f"{domain}/{path}"


def with_spec(server: StdioServer, ref: PackageRef, spec: str) -> tuple[str, ...]:
    """``server.args`` with ``spec`` in place of ``ref.spec``, keeping an ``--from=``/``--package=`` prefix.

    ``ref`` must come from :func:`package_ref` of this same server (a ``ValueError`` otherwise).
    """
    args = server.args or ()
    index = ref.arg_index
    if index is None or not ref.spec or index >= len(args) or not args[index].endswith(ref.spec):
        raise ValueError(f"argument {index} of this server does not hold {ref.spec!r}")
    written = args[index]
    return (*args[:index], written[: len(written) - len(ref.spec)] + spec, *args[index + 1 :])


def unpinned_reason(ref: PackageRef) -> str:
    """One sentence for a validation warning: why this launch may run a different release on each client."""
    if ref.problem is not None:
        return ref.problem
    if ref.pinned:
        raise ValueError(f"{ref.spec!r} is pinned")
    if ref.kind == "oci":
        return (
            f"{ref.launcher} runs {_shown(ref.spec)} without a digest: each client runs whatever image "
            "its engine holds or pulls under that name."
        )
    exact = "an exact version (==)" if ref.kind == "pypi" else "an exact version"
    return f"{ref.launcher} runs {_shown(ref.spec)} without {exact}: each client start may run a newer release."


# -- reading a launcher's options ---------------------------------------------------------------


@dataclass(frozen=True)
class _Grammar:
    """A launcher's own options, by long name: which take a value, which name the package, which choose its source.

    ``aliases`` maps short (and alternative) spellings to long names.
    ``clusters``: short options run together ("-it", "-ePATH=x") as pflag,
    clap and argparse read them; npx reads "-yq" as one (unknown) option.
    ``split``: options whose value is a command line of its own (pipx
    ``--pip-args``), forwarded to the resolver as its words.
    """

    flags: frozenset[str]
    valued: frozenset[str]
    aliases: Mapping[str, str] = field(default_factory=dict)
    package: str | None = None
    source: frozenset[str] = frozenset()
    split: frozenset[str] = frozenset()
    clusters: bool = True


@dataclass(frozen=True)
class _Option:
    """One option as read: its long name, how many arguments it spans (1 or 2) and its value, if it takes one."""

    name: str
    width: int
    value: str | None


@dataclass(frozen=True)
class _Scan:
    """A launcher's arguments read up to the first positional one (None: there is none)."""

    positional: int | None
    options: tuple[tuple[int, _Option], ...]  # each with the index of its last argument (where a value sits)
    unknown: str | None = None  # an option whose arity is unknown: nothing after it can be read

    def named(self, name: str) -> list[tuple[int, _Option]]:
        return [(index, option) for index, option in self.options if option.name == name]


def _scan(args: Sequence[str], start: int, grammar: _Grammar) -> _Scan:
    """Read options from ``args[start]`` on, as the launcher does, up to its first positional argument."""
    options: list[tuple[int, _Option]] = []
    index = start
    while index < len(args):
        arg = args[index]
        if arg == "--":
            return _Scan(index + 1 if index + 1 < len(args) else None, tuple(options))
        if arg == "-" or not arg.startswith("-"):
            return _Scan(index, tuple(options))
        option = _read_option(args, index, grammar)
        if option is None:
            return _Scan(None, tuple(options), arg)
        index += option.width
        options.append((index - 1, option))
    return _Scan(None, tuple(options))


def _read_option(args: Sequence[str], index: int, grammar: _Grammar) -> _Option | None:
    """The option at ``args[index]``; None if the grammar cannot say how many arguments it takes."""
    arg = args[index]
    if grammar.clusters and not arg.startswith("--"):
        return _read_cluster(args, index, grammar)
    written, equals, attached = arg.partition("=")
    name = grammar.aliases.get(written, written)
    if name in grammar.flags:
        return _Option(name, 1, None)
    if name in grammar.valued:
        return _Option(name, 1, attached) if equals else _Option(name, 2, _next(args, index))
    if equals and written.startswith("--"):
        return _Option(written, 1, attached)  # unknown, but its value is attached: safe to step over
    return None


def _read_cluster(args: Sequence[str], index: int, grammar: _Grammar) -> _Option | None:
    """Short options run together: "-it", "-ePATH=x", "-e=x", "-ie NAME" (the value is the rest, or the next)."""
    arg = args[index]
    for position in range(1, len(arg)):
        name = grammar.aliases.get("-" + arg[position], "")
        if name in grammar.flags:
            continue
        if name not in grammar.valued:
            return None
        rest = arg[position + 1 :]
        return _Option(name, 1, rest.removeprefix("=")) if rest else _Option(name, 2, _next(args, index))
    return _Option(arg, 1, None)


def _next(args: Sequence[str], index: int) -> str | None:
    return args[index + 1] if index + 1 < len(args) else None


def _forwarded(scan: _Scan, grammar: _Grammar) -> tuple[str, ...]:
    """The source options read, as arguments for the resolver of the same tool."""
    words: list[str] = []
    for _, option in scan.options:
        if option.name not in grammar.source:
            continue
        if option.name in grammar.split and option.value is not None:
            try:
                words.extend(shlex.split(option.value))
            except ValueError:
                raise _Unreadable(f"has {option.name} whose quoting cannot be read") from None
        else:
            words.extend([option.name] if option.value is None else [option.name, option.value])
    return tuple(words)


def _locate(args: Sequence[str], scan: _Scan, grammar: _Grammar, noun: str) -> tuple[int, str]:
    """Where the package is, and its spec: a package option's value, else the first positional argument."""
    if scan.unknown is not None:
        raise _Unreadable(f"has the option {_shown_option(scan.unknown)}")
    given = scan.named(grammar.package) if grammar.package else []
    if len(given) > 1:
        raise _Unreadable(f"names {len(given)} packages with {grammar.package}")
    if given:
        index, option = given[0]
        if option.value is None:
            raise _Unreadable(f"gives {grammar.package} no value")
        return index, option.value
    if scan.positional is None:
        raise _Unreadable(f"names no {noun}")
    return scan.positional, args[scan.positional]


class _Unreadable(Exception):
    """The launcher's arguments do not say which package it runs; the message says what was found instead."""


# -- the launchers ------------------------------------------------------------------------------


def _words(*texts: str) -> frozenset[str]:
    """Option names written as the launchers' help lists them, one space apart."""
    return frozenset(word for text in texts for word in text.split())


_NPX = _Grammar(
    flags=_words(
        "--yes --no --no-yes --no-install --quiet --silent --verbose --force --global --offline --prefer-offline "
        "--prefer-online --ignore-scripts --legacy-peer-deps --workspaces --include-workspace-root"
    ),
    valued=_words(
        "--package --call --registry --before --tag --userconfig --globalconfig --cache --loglevel --prefix "
        "--workspace --shell --script-shell --node-options --node-arg --npm"  # the last two: removed, with their value
    ),
    aliases={"-y": "--yes", "-n": "--node-arg", "-q": "--quiet", "-s": "--silent", "-f": "--force", "-g": "--global"}
    | {"-p": "--package", "-c": "--call", "-w": "--workspace", "-C": "--prefix"},
    package="--package",
    source=_words("--registry --before --tag --userconfig --globalconfig"),
    clusters=False,  # npx's own reading (npx-cli.js) takes "-yq" as one option named "yq"
)

_UV_SOURCES = (
    "--index --default-index --index-url --extra-index-url --find-links --no-index --index-strategy "
    "--keyring-provider --prerelease --resolution --exclude-newer --allow-insecure-host --config-file --no-config"
)
_UVX = _Grammar(  # `uvx --help` (uv 0.13)
    flags=_words(
        "--isolated --no-env-file --lfs --version --no-index --upgrade --no-sources --reinstall --compile-bytecode "
        "--no-build-isolation --no-build --no-binary --require-build-hashes --no-require-build-hashes --no-cache "
        "--refresh --managed-python --no-managed-python --no-python-downloads --quiet --verbose --system-certs "
        "--native-tls --offline --no-progress --no-config --help --preview --no-preview"
    ),
    valued=_words(
        "--from --with --with-editable --with-requirements --constraints --build-constraints --overrides --env-file "
        "--python-platform --torch-backend --index --default-index --index-url --extra-index-url --find-links "
        "--index-strategy --keyring-provider --upgrade-package --upgrade-group --resolution --prerelease "
        "--prerelease-package --fork-strategy --exclude-newer --exclude-newer-package --no-sources-package "
        "--reinstall-package --link-mode --config-setting --config-settings-package --no-build-isolation-package "
        "--no-build-package --no-binary-package --cache-dir --refresh-package --python --color "
        "--allow-insecure-host --directory --project --config-file"
    ),
    aliases={"-w": "--with", "-c": "--constraints", "-b": "--build-constraints", "-i": "--index-url"}
    | {"-f": "--find-links", "-U": "--upgrade", "-P": "--upgrade-package", "-C": "--config-setting"}
    | {"-n": "--no-cache", "-p": "--python", "-q": "--quiet", "-v": "--verbose", "-h": "--help", "-V": "--version"},
    package="--from",
    source=_words(_UV_SOURCES),
)

_PIPX = _Grammar(  # `pipx run --help` (pipx 1.18)
    flags=_words(
        "--quiet --verbose --skip-maintenance --global --no-cache --refresh --no-path-check --path --pypackages "
        "--fetch-missing-python --system-site-packages --editable --help"
    ),
    valued=_words("--python-args --with --spec --python --fetch-python --index-url --pip-args --cooldown --backend"),
    aliases={"-q": "--quiet", "-v": "--verbose", "-i": "--index-url", "-e": "--editable", "-h": "--help"},
    package="--spec",
    source=_words("--index-url --pip-args"),
    split=_words("--pip-args"),
)

# `docker run --help` (Docker 28), with the hidden spellings (--net, --dns-opt, Windows-only options).
_DOCKER_RUN_FLAGS = (
    "--detach --disable-content-trust --help --init --interactive --no-healthcheck --oom-kill-disable --privileged "
    "--publish-all --quiet --read-only --rm --sig-proxy --tty --use-api-socket"
)
_DOCKER_RUN_VALUED = (
    "--add-host --annotation --attach --blkio-weight --blkio-weight-device --cap-add --cap-drop --cgroup-parent "
    "--cgroupns --cidfile --cpu-count --cpu-percent --cpu-period --cpu-quota --cpu-rt-period --cpu-rt-runtime "
    "--cpu-shares --cpus --cpuset-cpus --cpuset-mems --detach-keys --device --device-cgroup-rule --device-read-bps "
    "--device-read-iops --device-write-bps --device-write-iops --dns --dns-opt --dns-option --dns-search "
    "--domainname --entrypoint --env --env-file --expose --gpus --group-add --health-cmd --health-interval "
    "--health-retries --health-start-interval --health-start-period --health-timeout --hostname --io-maxbandwidth "
    "--io-maxiops --ip --ip6 --ipc --isolation --kernel-memory --label --label-file --link --link-local-ip "
    "--log-driver --log-opt --mac-address --memory --memory-reservation --memory-swap --memory-swappiness --mount "
    "--name --net --net-alias --network --network-alias --oom-score-adj --pid --pids-limit --platform --publish "
    "--pull --restart --runtime --security-opt --shm-size --stop-signal --stop-timeout --storage-opt --sysctl "
    "--tmpfs --ulimit --user --userns --uts --volume --volume-driver --volumes-from --workdir"
)
_DOCKER_RUN_ALIASES = (
    {"-a": "--attach", "-c": "--cpu-shares", "-d": "--detach", "-e": "--env", "-h": "--hostname"}
    | {"-i": "--interactive", "-l": "--label", "-m": "--memory", "-p": "--publish", "-P": "--publish-all"}
    | {"-q": "--quiet", "-t": "--tty", "-u": "--user", "-v": "--volume", "-w": "--workdir"}
)
# `podman run --help` (Podman 5) adds these to Docker's.
_PODMAN_RUN_FLAGS = (
    "--env-host --http-proxy --no-hostname --no-hosts --passwd --read-only-tmpfs --replace --rmi --rootfs "
    "--tls-verify --unsetenv-all"
)
_PODMAN_RUN_VALUED = (
    "--arch --authfile --cert-dir --cgroup-conf --cgroups --chrootdirs --conmon-pidfile --creds --decryption-key "
    "--env-merge --gidmap --group-entry --health-log-destination --health-max-log-count --health-max-log-size "
    "--health-on-failure --health-startup-cmd --health-startup-interval --health-startup-retries "
    "--health-startup-success --health-startup-timeout --hosts-file --hostuser --image-volume --init-path --os "
    "--passwd-entry --personality --pidfile --pod --pod-id-file --preserve-fd --preserve-fds --requires --retry "
    "--retry-delay --sdnotify --seccomp-policy --secret --shm-size-systemd --subgidname --subuidname --systemd "
    "--timeout --tz --uidmap --umask --unsetenv --variant"
)
_RUN: dict[str, _Grammar] = {
    "docker": _Grammar(_words(_DOCKER_RUN_FLAGS), _words(_DOCKER_RUN_VALUED), _DOCKER_RUN_ALIASES),
    "podman": _Grammar(
        _words(_DOCKER_RUN_FLAGS, _PODMAN_RUN_FLAGS),
        _words(_DOCKER_RUN_VALUED, _PODMAN_RUN_VALUED),
        _DOCKER_RUN_ALIASES,
    ),
}
# The options before `run` choose the engine (a context, a host, a connection, a storage root): all forwarded.
_DOCKER_GLOBAL_FLAGS = _words("--debug --tls --tlsverify")
_DOCKER_GLOBAL_VALUED = _words("--config --context --host --log-level --tlscacert --tlscert --tlskey")
_PODMAN_GLOBAL_FLAGS = _words("--debug --remote --syslog --noout --transient-store")
_PODMAN_GLOBAL_VALUED = _words(
    "--connection --url --identity --root --runroot --storage-driver --storage-opt --log-level --cgroup-manager "
    "--runtime --runtime-flag --tmpdir --module --config --conmon --network-cmd-path --events-backend --imagestore "
    "--hooks-dir --ssh --out"
)
_ENGINE: dict[str, _Grammar] = {
    "docker": _Grammar(
        _DOCKER_GLOBAL_FLAGS,
        _DOCKER_GLOBAL_VALUED,
        {"-c": "--context", "-D": "--debug", "-H": "--host", "-l": "--log-level"},
        source=_DOCKER_GLOBAL_FLAGS | _DOCKER_GLOBAL_VALUED,
    ),
    "podman": _Grammar(
        _PODMAN_GLOBAL_FLAGS,
        _PODMAN_GLOBAL_VALUED,
        {"-c": "--connection", "-r": "--remote"},
        source=_PODMAN_GLOBAL_FLAGS | _PODMAN_GLOBAL_VALUED,
    ),
}


# Each launcher: the program, the words that follow it, what it fetches, and the name messages give it.
_LAUNCHERS: tuple[tuple[str, tuple[str, ...], PackageKind, Launcher], ...] = (
    ("npx", (), "npm", "npx"),
    ("npm", ("exec",), "npm", "npx"),
    ("npm", ("x",), "npm", "npx"),
    ("uvx", (), "pypi", "uvx"),
    ("uv", ("tool", "run"), "pypi", "uvx"),
    ("pipx", ("run",), "pypi", "pipx"),
    ("docker", (), "oci", "docker"),
    ("podman", (), "oci", "podman"),
)


def _launcher(command: str, args: Sequence[str], start: int) -> tuple[PackageKind, Launcher, int] | None:
    """Which launcher ``command`` is, and where its own options begin in ``args``."""
    program = _program_name(command)
    if program == "cmd" and len(args) > start + 1 and args[start].lower() == "/c":  # Windows: "cmd /c npx -y pkg"
        return _launcher(args[start + 1], args, start + 2)
    for name, words, kind, launcher in _LAUNCHERS:
        if program == name and tuple(args[start : start + len(words)]) == words:
            return kind, launcher, start + len(words)
    return None


def _program_name(command: str) -> str:
    """The launcher a command names: its file name, lower case, without a Windows suffix (".cmd", ".exe", ".bat")."""
    name = PureWindowsPath(command).name.lower()  # splits on "\\" and "/" alike
    for suffix in _WINDOWS_SUFFIXES:
        name = name.removesuffix(suffix)
    return name


def _read_npm(launcher: Launcher, args: Sequence[str], start: int) -> PackageRef | None:
    scan = _scan(args, start, _NPX)
    if scan.unknown is None and scan.positional is None and scan.named("--call") and not scan.named("--package"):
        return None  # `npx -c "cmd"`: a shell command in the local project, no package to fetch
    index, spec = _locate(args, scan, _NPX, "package")
    return _npm_ref(PackageRef("npm", launcher, spec, spec, index, source_options=_forwarded(scan, _NPX)))


def _read_pypi(launcher: Launcher, args: Sequence[str], start: int) -> PackageRef:
    grammar = _UVX if launcher == "uvx" else _PIPX
    scan = _scan(args, start, grammar)
    index, spec = _locate(args, scan, grammar, "package")
    written = PackageRef("pypi", launcher, spec, spec, index, source_options=_forwarded(scan, grammar))
    if scan.named("--path"):  # pipx run --path: the app is a file
        return replace(written, problem=_local_code(launcher, spec))
    return _pypi_ref(written)


def _read_oci(engine: Launcher, args: Sequence[str], start: int) -> PackageRef | None:
    head = _scan(args, start, _ENGINE[engine])
    if head.unknown is not None:  # the engine's own options cannot be read: a `run` among them may start an image
        if "run" not in args[start:]:
            return None
        raise _Unreadable(f"has the option {_shown_option(head.unknown)}")
    position = len(args) if head.positional is None else head.positional
    command = tuple(args[position : position + 2])
    width = 1 if command[:1] == ("run",) else 2 if command == ("container", "run") else 0
    if not width:
        return None  # docker exec, compose, build, --version, ...
    scan = _scan(args, position + width, _RUN[engine])
    index, spec = _locate(args, scan, _RUN[engine], "image")
    written = PackageRef("oci", engine, spec, spec, index, source_options=_forwarded(head, _ENGINE[engine]))
    if scan.named("--rootfs"):  # podman run --rootfs: a directory, not an image
        return replace(written, problem=_local_code(engine, spec))
    return _oci_ref(written)


_READERS: dict[PackageKind, Callable[[Launcher, Sequence[str], int], PackageRef | None]] = {
    "npm": _read_npm,
    "pypi": _read_pypi,
    "oci": _read_oci,
}


# -- the specs ----------------------------------------------------------------------------------

_NPM_NAME = re.compile(r"(?:@[a-z0-9~-][a-z0-9._~-]*/)?[a-z0-9~-][a-z0-9._~-]*", re.IGNORECASE)
_SEMVER = re.compile(  # an exact version as npm reads one (semver.valid, loose: a leading "v" or "=")
    r"[v=]?(?P<version>(?:0|[1-9]\d*)\.(?:0|[1-9]\d*)\.(?:0|[1-9]\d*)"
    r"(?:-[0-9A-Za-z-]+(?:\.[0-9A-Za-z-]+)*)?(?:\+[0-9A-Za-z-]+(?:\.[0-9A-Za-z-]+)*)?)"
)
_GITHUB_SHORTHAND = re.compile(r"[^@%/\s.-][^:@%/\s]*/[^@\s/%]+(?:#.*)?")  # npm's "user/repo"
_URL_PREFIXES = ("git+", "git:", "github:", "gitlab:", "bitbucket:", "gist:", "http:", "https:")
_PATH_PREFIXES = (".", "/", "~", "\\", "file:")
_WINDOWS_PATH = re.compile(r"[A-Za-z]:[\\/]")
_ARCHIVES = (".tgz", ".tar.gz", ".tar", ".whl", ".zip", ".tar.bz2", ".tar.xz")
_PYPI_AT = re.compile(r"(?P<name>[A-Za-z0-9][A-Za-z0-9._-]*)(?P<extras>\[[^\]]*\])?@(?P<version>\S+)")
_DOCKER_DOMAIN = r"[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?(?:\.[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?)*(?::[0-9]+)?"
_DOCKER_PATH = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
_IMAGE_REFERENCE = re.compile(  # the distribution reference grammar: [domain/]path[:tag][@digest]
    rf"(?P<name>(?:{_DOCKER_DOMAIN}/)?{_DOCKER_PATH}(?:/{_DOCKER_PATH})*)"
    r"(?::(?P<tag>\w[\w.-]{0,127}))?(?:@(?P<digest>sha256:[0-9a-f]{64}|sha512:[0-9a-f]{128}))?"
)
_IMAGE_ID = re.compile(r"(?:sha256:)?(?P<hex>[0-9a-f]{64})")  # Docker never reads 64 hex digits as a repository


def _npm_ref(written: PackageRef) -> PackageRef:
    """``written`` (named by its whole spec) with its package name and exact version read, or why it has none."""
    launcher, spec = written.launcher, written.spec
    problem = _source_problem(launcher, spec)
    if problem is None and spec.startswith("npm:"):
        problem = f"{launcher} runs {_shown(spec)}, an npm: alias: name the package itself to pin it."
    elif problem is None and _GITHUB_SHORTHAND.fullmatch(spec):
        problem = _from_url(launcher, spec)
    if problem is not None:
        return replace(written, problem=problem)
    scope = "@" if spec.startswith("@") else ""
    name, _, wanted = spec[len(scope) :].partition("@")
    if not _NPM_NAME.fullmatch(scope + name):
        return replace(written, problem=_not_a_name(launcher, spec, "an npm package"))
    exact = _SEMVER.fullmatch(wanted)
    return replace(written, name=scope + name, version=exact.group("version") if exact else None)


def _pypi_ref(written: PackageRef) -> PackageRef:
    """``written`` with its project name and exact version (``==``, ``===`` or uv's ``@``) read, or why it has none."""
    launcher, spec = written.launcher, written.spec
    problem = _source_problem(launcher, spec)
    if problem is not None:
        return replace(written, problem=problem)
    if uv_form := _PYPI_AT.fullmatch(spec):  # uv's "name@1.2.3" and "name@latest"
        wanted = uv_form.group("version")
        version = None if wanted == "latest" else _pep440(wanted)
        if version is None and wanted != "latest":
            return replace(written, problem=_not_a_name(launcher, spec, "a PyPI requirement"))
        return replace(written, name=uv_form.group("name"), version=version)
    try:
        requirement = Requirement(spec)
    except InvalidRequirement:
        return replace(written, problem=_not_a_name(launcher, spec, "a PyPI requirement"))
    if requirement.url:
        return replace(written, problem=_from_url(launcher, spec))
    exact = [s for s in requirement.specifier if s.operator == "===" or (s.operator == "==" and "*" not in s.version)]
    version = exact[0].version if len(exact) == 1 else None  # other clauses beside it ("==1.2,>=1") only narrow
    return replace(written, name=requirement.name, version=version)


def _oci_ref(written: PackageRef) -> PackageRef:
    """``written`` with its repository, tag and digest read, or why it cannot be read."""
    launcher, spec = written.launcher, written.spec
    if PLACEHOLDER.search(spec):
        return replace(written, problem=_placeholder(launcher, spec))
    if image_id := _IMAGE_ID.fullmatch(spec):  # an engine's own image id names no repository, and pins the image
        return replace(written, name="", digest=f"sha256:{image_id.group('hex')}")
    reference = _IMAGE_REFERENCE.fullmatch(spec)
    if reference is None:
        return replace(written, problem=_not_a_name(launcher, spec, "an image reference"))
    return replace(
        written, name=reference.group("name"), version=reference.group("tag"), digest=reference.group("digest")
    )


def _pep440(text: str) -> str | None:
    try:
        return str(Version(text))
    except InvalidVersion:
        return None


def _source_problem(launcher: Launcher, spec: str) -> str | None:
    """Why a package spec names no registry release: a placeholder, local code, or a URL (None if it may)."""
    if PLACEHOLDER.search(spec):
        return _placeholder(launcher, spec)
    if spec.startswith(_PATH_PREFIXES) or _WINDOWS_PATH.match(spec):
        return _local_code(launcher, spec)
    if "://" in spec or spec.startswith(_URL_PREFIXES):
        return _from_url(launcher, spec)
    if spec.endswith(_ARCHIVES):  # a file name, as npm, uv and pip read one
        return _local_code(launcher, spec)
    return None


# -- what is wrong, in words --------------------------------------------------------------------


def _placeholder(launcher: Launcher, spec: str) -> str:
    return (
        f"{launcher} runs {_shown(spec)}, which holds a placeholder: the release is only known on each client, "
        "so it cannot be pinned here."
    )


def _local_code(launcher: Launcher, spec: str) -> str:
    return f"{launcher} runs local code from {_shown(spec)}, not a published package: there is no release to pin."


def _from_url(launcher: Launcher, spec: str) -> str:
    return f"{launcher} runs {_shown(spec)} from a URL or git repository, not a registry release: it cannot be pinned."


def _not_a_name(launcher: Launcher, spec: str, what: str) -> str:
    return f"{launcher} runs {_shown(spec)}, which is not {what} this check can read: it cannot be pinned."


def _shown(text: str) -> str:
    """``text`` quoted for a message: anything credential-like masked, and cut short."""
    scrubbed = scrub_text(text)
    return repr(scrubbed if len(scrubbed) <= _SHOWN_LENGTH else scrubbed[:_SHOWN_LENGTH] + "...")


def _shown_option(arg: str) -> str:
    """An option for a message, without any value attached to it."""
    return _shown(arg.partition("=")[0][:40])
