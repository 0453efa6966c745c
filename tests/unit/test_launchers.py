"""Reading launchers' command lines: which package they fetch, whether it is pinned, and rewriting the pin.

The command lines are the ones MCP servers' READMEs give (the reference
servers, GitHub's, Playwright's, Context7, mcp-remote, AWS Labs, Serena),
plus the option forms the launchers accept that put a value where a reader
might expect the package.
"""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from mcp_orchestration.config.catalog import load_catalog
from mcp_orchestration.config.launchers import (
    PackageRef,
    full_image_name,
    package_ref,
    unpinned_reason,
    with_spec,
)
from mcp_orchestration.config.model import StdioServer

DIGEST = "sha256:" + "4f" * 32
OTHER_DIGEST = "sha256:" + "a0" * 32
GITHUB_TOKEN = "ghp_" + "Zq8xR2mN4vT7wY1bC3dF5gH6jK9lP0sA2eU4"  # the shape of a real one, for the masking tests


@dataclass(frozen=True)
class Case:
    """A server's command line and what the launcher runs from it."""

    command: str
    args: tuple[str, ...]
    kind: str
    name: str
    arg_index: int
    pinned: bool
    version: str | None = None

    def server(self) -> StdioServer:
        return StdioServer(self.command, self.args)


def case(command: str, *args: str, kind: str, name: str, at: int, pinned: bool, version: str | None = None) -> Case:
    return Case(command, args, kind, name, at, pinned, version)


NPM_CASES = [
    case("npx", "-y", "@modelcontextprotocol/server-filesystem", "/Users/me/Desktop", kind="npm",
         name="@modelcontextprotocol/server-filesystem", at=1, pinned=False),
    case("npx", "-y", "@modelcontextprotocol/server-memory@2025.8.4", kind="npm",
         name="@modelcontextprotocol/server-memory", at=1, pinned=True, version="2025.8.4"),
    case("npx", "@playwright/mcp@latest", kind="npm", name="@playwright/mcp", at=0, pinned=False),
    case("npx", "-y", "@upstash/context7-mcp@^1.0.0", kind="npm", name="@upstash/context7-mcp", at=1, pinned=False),
    case("npx", "-y", "mcp-remote@0.1.29", "https://mcp.example.com/sse", kind="npm", name="mcp-remote", at=1,
         pinned=True, version="0.1.29"),
    case("npx", "-y", "tavily-mcp@v0.2.1", kind="npm", name="tavily-mcp", at=1, pinned=True, version="0.2.1"),
    case("npx", "-y", "pkg@1.2.3-beta.1+build.5", kind="npm", name="pkg", at=1, pinned=True,
         version="1.2.3-beta.1+build.5"),
    case("npx", "-y", "pkg@1.2", kind="npm", name="pkg", at=1, pinned=False),
    case("npx", "-y", "pkg@~1.2.3", kind="npm", name="pkg", at=1, pinned=False),
    case("npx", "-y", "pkg@", kind="npm", name="pkg", at=1, pinned=False),
    case("npx", "-y", "--package=@modelcontextprotocol/server-github@2025.4.8", "mcp-server-github", kind="npm",
         name="@modelcontextprotocol/server-github", at=1, pinned=True, version="2025.4.8"),
    case("npx", "-p", "@scope/tools@1.0.0", "scope-tool", "--flag", kind="npm", name="@scope/tools", at=1,
         pinned=True, version="1.0.0"),
    case("npx", "-p=@scope/tools", "scope-tool", kind="npm", name="@scope/tools", at=0, pinned=False),
    case("npx", "--yes", "--", "mcp-remote@0.1.29", "https://mcp.example.com/sse", kind="npm", name="mcp-remote",
         at=2, pinned=True, version="0.1.29"),
    case("/usr/local/bin/npx", "-y", "@modelcontextprotocol/server-everything", kind="npm",
         name="@modelcontextprotocol/server-everything", at=1, pinned=False),
    case("C:\\Program Files\\nodejs\\npx.cmd", "-y", "@modelcontextprotocol/server-filesystem", "C:\\Users\\me",
         kind="npm", name="@modelcontextprotocol/server-filesystem", at=1, pinned=False),
    case("NPX.CMD", "-y", "pkg@2.0.0", kind="npm", name="pkg", at=1, pinned=True, version="2.0.0"),
    case("cmd", "/c", "npx", "-y", "@modelcontextprotocol/server-sequential-thinking", kind="npm",
         name="@modelcontextprotocol/server-sequential-thinking", at=3, pinned=False),
    case("C:\\Windows\\System32\\cmd.exe", "/C", "npx.cmd", "-y", "pkg@1.0.0", kind="npm", name="pkg", at=3,
         pinned=True, version="1.0.0"),
    case("npm", "exec", "--yes", "--", "@modelcontextprotocol/server-memory", kind="npm",
         name="@modelcontextprotocol/server-memory", at=3, pinned=False),
    case("npm", "x", "-y", "pkg@1.2.3", kind="npm", name="pkg", at=2, pinned=True, version="1.2.3"),
    case("npx", "--registry", "https://npm.corp.example", "-y", "@corp/mcp", kind="npm", name="@corp/mcp", at=3,
         pinned=False),
    case("npx", "-q", "--prefer-online", "--node-options=--max-old-space-size=512", "pkg", kind="npm", name="pkg",
         at=3, pinned=False),
]  # fmt: skip

PYPI_CASES = [
    case("uvx", "mcp-server-time", "--local-timezone=UTC", kind="pypi", name="mcp-server-time", at=0, pinned=False),
    case("uvx", "mcp-server-fetch==2025.4.7", kind="pypi", name="mcp-server-fetch", at=0, pinned=True,
         version="2025.4.7"),
    case("uvx", "mcp-server-git@2025.1.14", "--repository", "/repo", kind="pypi", name="mcp-server-git", at=0,
         pinned=True, version="2025.1.14"),
    case("uvx", "mcp-server-git@latest", kind="pypi", name="mcp-server-git", at=0, pinned=False),
    case("uvx", "--from=mcp-server-fetch==2025.4.7", "mcp-server-fetch", kind="pypi", name="mcp-server-fetch", at=0,
         pinned=True, version="2025.4.7"),
    case("uvx", "--python", "3.12", "--with", "httpx", "mcp-server-fetch>=2025", kind="pypi",
         name="mcp-server-fetch", at=4, pinned=False),
    case("uvx", "-p", "3.12", "-w", "httpx", "-qq", "mcp-proxy", kind="pypi", name="mcp-proxy", at=5, pinned=False),
    case("uvx", "-wrich", "--no-cache", "mcp-proxy==0.8.2", kind="pypi", name="mcp-proxy", at=2, pinned=True,
         version="0.8.2"),
    case("uvx", "mcp-server-fetch==2025.*", kind="pypi", name="mcp-server-fetch", at=0, pinned=False),
    case("uvx", "legacy-tool===1.0-custom", kind="pypi", name="legacy-tool", at=0, pinned=True,
         version="1.0-custom"),
    case("uvx", "pkg>=1,==1.2", kind="pypi", name="pkg", at=0, pinned=True, version="1.2"),
    case("uvx", "pkg~=1.2", kind="pypi", name="pkg", at=0, pinned=False),
    case("uv", "tool", "run", "--from", "awslabs.aws-documentation-mcp-server[docs]==1.1.0",
         "awslabs.aws-documentation-mcp-server", kind="pypi", name="awslabs.aws-documentation-mcp-server", at=3,
         pinned=True, version="1.1.0"),
    case("uvx", "--index-url", "https://pypi.corp.example/simple", "corp-mcp", kind="pypi", name="corp-mcp", at=2,
         pinned=False),
    case("C:\\Users\\me\\.local\\bin\\uvx.exe", "mcp-server-time", kind="pypi", name="mcp-server-time", at=0,
         pinned=False),
    case("pipx", "run", "--spec", "mcp-server-fetch==2025.4.7", "mcp-server-fetch", kind="pypi",
         name="mcp-server-fetch", at=2, pinned=True, version="2025.4.7"),
    case("pipx", "run", "mcp-server-fetch", kind="pypi", name="mcp-server-fetch", at=1, pinned=False),
    case("pipx", "run", "-q", "--spec=mcp_server_fetch[extra]>=2025", "mcp-server-fetch", kind="pypi",
         name="mcp_server_fetch", at=2, pinned=False),
    case("pipx", "run", "--pip-args", "--index-url https://pypi.corp.example/simple --pre", "corp-mcp", kind="pypi",
         name="corp-mcp", at=3, pinned=False),
]  # fmt: skip

OCI_CASES = [
    case("docker", "run", "-i", "--rm", "-e", "GITHUB_PERSONAL_ACCESS_TOKEN", "ghcr.io/github/github-mcp-server",
         kind="oci", name="ghcr.io/github/github-mcp-server", at=5, pinned=False),
    case("docker", "run", "-i", "--rm", "mcp/fetch", kind="oci", name="mcp/fetch", at=3, pinned=False),
    case("docker", "run", "-i", "--rm", "--mount", "type=bind,src=/Users/me,dst=/projects", "mcp/filesystem",
         "/projects", kind="oci", name="mcp/filesystem", at=5, pinned=False),
    case("docker", "run", "-i", "--rm", "-v", "/var/run/docker.sock:/var/run/docker.sock", "--network", "host",
         "-e", "X=1", "corp/mcp:1.0", kind="oci", name="corp/mcp", at=9, pinned=False, version="1.0"),
    case("docker", "run", "-i", "--rm", f"busybox@{DIGEST}", kind="oci", name="busybox", at=3, pinned=True),
    case("docker", "run", "-i", f"registry.corp.example:5000/team/mcp:2.1@{DIGEST}", kind="oci",
         name="registry.corp.example:5000/team/mcp", at=2, pinned=True, version="2.1"),
    case("docker", "run", "-i", "localhost:5000/mcp", kind="oci", name="localhost:5000/mcp", at=2, pinned=False),
    case("docker", "run", "-i", "mcp:5000", kind="oci", name="mcp", at=2, pinned=False, version="5000"),
    case("docker.exe", "run", "-i", "--rm", "-e=TOKEN", "mcp/time", kind="oci", name="mcp/time", at=4,
         pinned=False),
    case("docker", "run", "-it", "--rm", "-eFOO=bar", "mcp/time", kind="oci", name="mcp/time", at=4, pinned=False),
    case("docker", "run", "-ie", "FOO", "mcp/time", kind="oci", name="mcp/time", at=3, pinned=False),
    case("docker", "run", "-ie=FOO", "mcp/time", kind="oci", name="mcp/time", at=2, pinned=False),
    case("docker", "container", "run", "-i", "--rm", "mcp/time", kind="oci", name="mcp/time", at=4, pinned=False),
    case("docker", "--context", "remote", "run", "-i", "mcp/time", kind="oci", name="mcp/time", at=4, pinned=False),
    case("docker", "-H", "ssh://me@build-host", "run", "-i", "mcp/time", kind="oci", name="mcp/time", at=4,
         pinned=False),
    case("/usr/bin/podman", "run", "-i", "--rm", "--userns=keep-id", "--pod", "mcp-pod", "quay.io/org/mcp:latest",
         kind="oci", name="quay.io/org/mcp", at=6, pinned=False, version="latest"),
    case("docker", "run", "--entrypoint", "/bin/sh", "-i", "mcp/time", "-c", "x", kind="oci", name="mcp/time", at=4,
         pinned=False),
    case("docker", "run", "-i", "--rm", "--", "mcp/time", kind="oci", name="mcp/time", at=4, pinned=False),
    case("docker", "run", "--rm=false", "--sig-proxy=false", "-i", "mcp/time", kind="oci", name="mcp/time", at=4,
         pinned=False),
    case("docker", "run", "--future-option=1", "-i", "mcp/time", kind="oci", name="mcp/time", at=3, pinned=False),
    case("docker", "run", "-i", "sha256:" + "b1" * 32, kind="oci", name="", at=2, pinned=True),
]  # fmt: skip

# An option's value that looks like an image (or a package) must be read as that option's value.
LOOKALIKE_CASES = [
    case("docker", "run", "-i", "--rm", "--name", "mcp/time", "mcp/fetch", kind="oci", name="mcp/fetch", at=5,
         pinned=False),
    case("docker", "run", "--platform", "linux/amd64", "mcp/time", kind="oci", name="mcp/time", at=3, pinned=False),
    case("docker", "run", "--pull", "always", "-i", "mcp/time", kind="oci", name="mcp/time", at=4, pinned=False),
    case("docker", "run", "-u", "node", "-w", "app", "-h", "host", "mcp/time", kind="oci", name="mcp/time", at=7,
         pinned=False),
    case("docker", "run", "--env-file", "mcp.env", "--label", "team/x", "--network=mcp", "mcp/time", kind="oci",
         name="mcp/time", at=6, pinned=False),
    case("podman", "run", "--secret", "gh-token", "--arch", "arm64", "mcp/time", kind="oci", name="mcp/time", at=5,
         pinned=False),
    case("docker", "--config", "/etc/docker-ci", "run", "mcp/time", kind="oci", name="mcp/time", at=3, pinned=False),
    case("npx", "--registry", "pkg-lookalike", "-y", "real-pkg@1.0.0", kind="npm", name="real-pkg", at=3,
         pinned=True, version="1.0.0"),
    case("npx", "-c", "other-bin", "-p", "real-pkg", kind="npm", name="real-pkg", at=3, pinned=False),
    case("uvx", "--with", "httpx==0.28.1", "--from", "real-pkg", "real-bin", kind="pypi", name="real-pkg", at=3,
         pinned=False),
    case("uvx", "--python", "3.12", "--index", "pypi-lookalike", "real-pkg", kind="pypi", name="real-pkg", at=4,
         pinned=False),
    case("pipx", "run", "--python", "python3.12", "--spec", "real-pkg", "real-bin", kind="pypi", name="real-pkg",
         at=4, pinned=False),
]  # fmt: skip

ALL_CASES = NPM_CASES + PYPI_CASES + OCI_CASES + LOOKALIKE_CASES


def _id(c: Case) -> str:
    return " ".join((c.command, *c.args))[:80]


@pytest.mark.parametrize("c", ALL_CASES, ids=_id)
def test_a_launcher_is_read_as_the_launcher_reads_it(c: Case) -> None:
    ref = package_ref(c.server())
    assert ref is not None
    assert (ref.kind, ref.name, ref.arg_index, ref.pinned, ref.problem) == (c.kind, c.name, c.arg_index, c.pinned, None)
    assert c.args[c.arg_index].endswith(ref.spec)
    if c.version is not None:
        assert ref.version == c.version


@pytest.mark.parametrize("c", [c for c in ALL_CASES if not c.pinned], ids=_id)
def test_pinning_rewrites_only_the_package_argument_and_reads_back_as_pinned(c: Case) -> None:
    server = c.server()
    ref = package_ref(server)
    assert ref is not None
    pin = "9.8.7" if ref.kind != "oci" else DIGEST
    args = with_spec(server, ref, ref.pinned_spec(pin))
    repinned = package_ref(StdioServer(c.command, args))
    assert repinned is not None
    assert (repinned.kind, repinned.name, repinned.arg_index) == (ref.kind, ref.name, ref.arg_index)
    assert repinned.pinned
    assert (repinned.digest if ref.kind == "oci" else repinned.version) == pin
    assert [a for i, a in enumerate(args) if i != ref.arg_index] == [
        a for i, a in enumerate(c.args) if i != ref.arg_index
    ]


@pytest.mark.parametrize(
    ("command", "args", "rewritten"),
    [
        ("npx", ("--package=@scope/tools", "tool"), ("--package=@scope/tools@9.8.7", "tool")),
        ("npx", ("-p=@scope/tools", "tool"), ("-p=@scope/tools@9.8.7", "tool")),
        ("uvx", ("--from=mcp-server-fetch>=2025", "fetch"), ("--from=mcp-server-fetch==9.8.7", "fetch")),
        ("uvx", ("mcp-server-git@latest",), ("mcp-server-git@9.8.7",)),
        ("uvx", ("mcp-server-time",), ("mcp-server-time==9.8.7",)),
        ("uvx", ('pkg[cli,extra]>=1; python_version >= "3.10"',), ('pkg[cli,extra]==9.8.7; python_version >= "3.10"',)),
        ("pipx", ("run", "--spec=pkg~=1.0", "tool"), ("run", "--spec=pkg==9.8.7", "tool")),
        ("npx", ("-y", "pkg@v1.0.0"), ("-y", "pkg@9.8.7")),
    ],
)  # fmt: skip
def test_a_pinned_spec_keeps_the_form_it_was_written_in(
    command: str, args: tuple[str, ...], rewritten: tuple[str, ...]
) -> None:
    server = StdioServer(command, args)
    ref = package_ref(server)
    assert ref is not None
    assert with_spec(server, ref, ref.pinned_spec("9.8.7")) == rewritten


def test_an_image_is_pinned_by_its_repository_and_digest_without_the_tag() -> None:
    server = StdioServer("docker", ("run", "-i", "--rm", "ghcr.io/github/github-mcp-server:v0.9"))
    ref = package_ref(server)
    assert ref is not None
    assert with_spec(server, ref, ref.pinned_spec(DIGEST))[-1] == f"ghcr.io/github/github-mcp-server@{DIGEST}"


def test_an_image_id_is_its_own_pin() -> None:
    ref = package_ref(StdioServer("docker", ("run", "-i", DIGEST)))
    assert ref is not None
    assert (ref.name, ref.digest, ref.pinned) == ("", DIGEST, True)
    assert ref.pinned_spec(OTHER_DIGEST) == OTHER_DIGEST


@pytest.mark.parametrize(
    ("command", "args", "finding"),
    [
        ("docker", ("run", "--frobnicate", "mcp/time"), "docker has the option '--frobnicate'"),
        ("docker", ("run", "-x", "mcp/time"), "docker has the option '-x'"),
        ("docker", ("run", "-iZ", "mcp/time"), "docker has the option '-iZ'"),
        ("docker", ("--new-global", "run", "mcp/time"), "docker has the option '--new-global'"),
        ("docker", ("run", "-i", "--rm"), "docker names no image"),
        ("docker", ("run", "-i", "--rm", "--"), "docker names no image"),
        ("podman", ("run", "--gpus"), "podman names no image"),
        ("npx", ("--frob", "pkg"), "npx has the option '--frob'"),
        ("npx", ("-yq", "pkg"), "npx has the option '-yq'"),
        ("npx", ("-y",), "npx names no package"),
        ("npx", ("--package",), "npx gives --package no value"),
        ("npx", ("-p", "a", "-p", "b", "tool"), "npx names 2 packages with --package"),
        ("uvx", ("--frob", "pkg"), "uvx has the option '--frob'"),
        ("uvx", ("-Z", "pkg"), "uvx has the option '-Z'"),
        ("pipx", ("run", "--pip-args", "'unbalanced", "app"), "pipx has --pip-args whose quoting cannot be read"),
        ("pipx", ("run",), "pipx names no package"),
    ],
)
def test_arguments_it_cannot_read_are_unpinned_with_the_reason_never_a_guess(
    command: str, args: tuple[str, ...], finding: str
) -> None:
    ref = package_ref(StdioServer(command, args))
    assert ref is not None
    assert (ref.name, ref.spec, ref.arg_index, ref.pinned) == ("", "", None, False)
    what = "image" if ref.kind == "oci" else "package"
    assert unpinned_reason(ref) == f"{finding}: this check cannot tell which {what} it runs, so it cannot pin it."
    with pytest.raises(ValueError, match="does not hold"):
        with_spec(StdioServer(command, args), ref, "x")


@pytest.mark.parametrize(
    ("command", "args", "index", "words"),
    [
        ("npx", ("github:modelcontextprotocol/servers",), 0, "from a URL or git repository"),
        ("npx", ("modelcontextprotocol/servers#main",), 0, "from a URL or git repository"),
        ("npx", ("git+https://github.com/org/repo.git",), 0, "from a URL or git repository"),
        ("npx", ("https://example.com/pkg-1.0.0.tgz",), 0, "from a URL or git repository"),
        ("npx", ("-y", "./my-server"), 1, "runs local code from './my-server'"),
        ("npx", ("file:../my-server",), 0, "runs local code"),
        ("npx", ("C:\\src\\my-server",), 0, "runs local code"),
        ("npx", ("my-server-1.0.0.tgz",), 0, "runs local code"),
        ("npx", ("-y", "npm:other-pkg@1.0.0"), 1, "an npm: alias"),
        ("npx", ("-y", "Not A Name"), 1, "not an npm package this check can read"),
        ("npx", ("-y", "pkg@${env:PKG_VERSION}"), 1, "holds a placeholder"),
        ("uvx", ("--from", "git+https://github.com/oraios/serena", "serena", "start-mcp-server"), 1,
         "from a URL or git repository"),
        ("uvx", ("mcp-server @ https://files.example/mcp_server-1.0-py3-none-any.whl",), 0,
         "from a URL or git repository"),
        ("uvx", ("--from", "/opt/src/my-server", "my-server"), 1, "runs local code"),
        ("uvx", ("--from", "dist/my_server-1.0-py3-none-any.whl", "my-server"), 1, "runs local code"),
        ("uvx", ("mcp-server@not a version",), 0, "not a PyPI requirement this check can read"),
        ("uvx", ("${input:server}",), 0, "holds a placeholder"),
        ("pipx", ("run", "--path", "tool.py"), 2, "runs local code"),
        ("docker", ("run", "-i", "ghcr.io/org/mcp:${env:TAG}"), 2, "holds a placeholder"),
        ("docker", ("run", "-i", "Ghcr.io/Org/MCP"), 2, "not an image reference this check can read"),
        ("docker", ("run", "-i", "mcp@sha256:abc"), 2, "not an image reference this check can read"),
        ("podman", ("run", "-i", "--rootfs", "/srv/rootfs"), 3, "runs local code"),
    ],
)  # fmt: skip
def test_a_spec_that_names_no_registry_release_is_unpinned_with_a_reason(
    command: str, args: tuple[str, ...], index: int, words: str
) -> None:
    ref = package_ref(StdioServer(command, args))
    assert ref is not None
    assert (ref.arg_index, ref.spec, ref.pinned) == (index, args[index], False)
    assert ref.problem is not None and words in ref.problem
    assert unpinned_reason(ref) == ref.problem
    with pytest.raises(ValueError, match="cannot be pinned"):
        ref.pinned_spec("1.0.0")


@pytest.mark.parametrize(
    ("command", "args"),
    [
        ("node", ("server.js",)),
        ("python", ("-m", "mcp_server_time")),
        ("uv", ("run", "server.py")),
        ("uv", ("tool", "install", "pkg")),
        ("pipx", ("install", "pkg")),
        ("npm", ("start",)),
        ("npx", ("-c", "local-bin --flag")),
        ("docker", ("exec", "-i", "mcp-container", "server")),
        ("docker", ("compose", "run", "mcp")),
        ("docker", ("--version",)),
        ("docker", ("--new-global", "ps")),
        ("/opt/npx-wrapper/bin/server", ("-y", "pkg")),
        ("cmd", ("/c",)),
        ("bunx", ("pkg",)),
    ],
)
def test_a_command_that_is_no_package_launcher_has_no_package(command: str, args: tuple[str, ...]) -> None:
    assert package_ref(StdioServer(command, args)) is None


def test_a_server_without_args_is_read_too() -> None:
    ref = package_ref(StdioServer("npx"))
    assert ref is not None and ref.problem == (
        "npx names no package: this check cannot tell which package it runs, so it cannot pin it."
    )


@pytest.mark.parametrize(
    ("command", "args", "sources"),
    [
        ("npx", ("--registry", "https://npm.corp.example", "--before=2025-01-01", "-y", "pkg"),
         ("--registry", "https://npm.corp.example", "--before", "2025-01-01")),
        ("uvx", ("-i", "https://pypi.corp.example/simple", "--extra-index-url=https://x/simple", "--with", "h", "pkg"),
         ("--index-url", "https://pypi.corp.example/simple", "--extra-index-url", "https://x/simple")),
        ("uvx", ("--no-index", "-f", "/wheels", "--prerelease", "allow", "--python", "3.12", "pkg"),
         ("--no-index", "--find-links", "/wheels", "--prerelease", "allow")),
        ("pipx", ("run", "-i", "https://pypi.corp.example/simple", "--pip-args=--pre --trusted-host 'x y'", "app"),
         ("--index-url", "https://pypi.corp.example/simple", "--pre", "--trusted-host", "x y")),
        ("docker", ("-c", "remote", "--tlsverify", "run", "-i", "--rm", "mcp/time"),
         ("--context", "remote", "--tlsverify")),
        ("podman", ("--remote", "--connection=box", "run", "mcp/time"), ("--remote", "--connection", "box")),
        ("docker", ("run", "--platform", "linux/arm64", "mcp/time"), ()),
    ],
)  # fmt: skip
def test_options_that_choose_the_source_go_along_to_the_resolver(
    command: str, args: tuple[str, ...], sources: tuple[str, ...]
) -> None:
    ref = package_ref(StdioServer(command, args))
    assert ref is not None
    assert ref.source_options == sources


def test_unpinned_reasons_name_the_launcher_and_spec_and_what_may_change() -> None:
    reasons = {
        c: unpinned_reason(ref)
        for c in ("npx -y @scope/pkg", "uvx mcp-server-time", "docker run -i mcp/time:1.0")
        if (ref := package_ref(StdioServer(c.split()[0], tuple(c.split()[1:])))) is not None
    }
    assert reasons == {
        "npx -y @scope/pkg": (
            "npx runs '@scope/pkg' without an exact version: each client start may run a newer release."
        ),
        "uvx mcp-server-time": (
            "uvx runs 'mcp-server-time' without an exact version (==): each client start may run a newer release."
        ),
        "docker run -i mcp/time:1.0": (
            "docker runs 'mcp/time:1.0' without a digest: each client runs whatever image its engine holds or pulls "
            "under that name."
        ),
    }


def test_a_pinned_ref_has_no_unpinned_reason() -> None:
    ref = package_ref(StdioServer("npx", ("-y", "pkg@1.0.0")))
    assert ref is not None
    with pytest.raises(ValueError, match="is pinned"):
        unpinned_reason(ref)


@pytest.mark.parametrize(
    "args",
    [
        ("--from", f"git+https://mcp-bot:{GITHUB_TOKEN}@github.com/org/private-mcp", "private-mcp"),
        (f"--{GITHUB_TOKEN}", "pkg"),
        (f"--{GITHUB_TOKEN}=x", f"{GITHUB_TOKEN} @ https://example.com/x.whl"),
    ],
)
def test_a_reason_never_quotes_a_credential(args: tuple[str, ...]) -> None:
    ref = package_ref(StdioServer("uvx", args))
    assert ref is not None and ref.problem is not None
    assert GITHUB_TOKEN not in unpinned_reason(ref)
    assert GITHUB_TOKEN[4:20] not in unpinned_reason(ref)


def test_with_spec_refuses_a_ref_of_another_server() -> None:
    ref = package_ref(StdioServer("npx", ("-y", "pkg")))
    assert ref is not None
    with pytest.raises(ValueError, match="does not hold 'pkg'"):
        with_spec(StdioServer("npx", ("-y", "other")), ref, "pkg@1.0.0")
    with pytest.raises(ValueError, match="does not hold 'pkg'"):
        with_spec(StdioServer("npx", ("-y",)), ref, "pkg@1.0.0")


@pytest.mark.parametrize(
    ("kind_and_name", "canonical"),
    [
        (("pypi", "AWSLabs.AWS_Documentation-MCP-Server"), "awslabs-aws-documentation-mcp-server"),
        (("npm", "@scope/pkg"), "@scope/pkg"),
        (("oci", "busybox"), "docker.io/library/busybox"),
        (("oci", "mcp/time"), "docker.io/mcp/time"),
        (("oci", "docker.io/busybox"), "docker.io/library/busybox"),
        (("oci", "index.docker.io/mcp/time"), "docker.io/mcp/time"),
        (("oci", "localhost/mcp"), "localhost/mcp"),
        (("oci", "registry:5000/mcp"), "registry:5000/mcp"),
        (("oci", "ghcr.io/github/github-mcp-server"), "ghcr.io/github/github-mcp-server"),
        (("oci", ""), ""),
    ],
)
def test_names_compare_in_their_registry_s_canonical_form(kind_and_name: tuple[str, str], canonical: str) -> None:
    kind, name = kind_and_name
    ref = PackageRef(kind, "docker" if kind == "oci" else "npx", name, name, 0)  # type: ignore[arg-type]
    assert ref.canonical_name == canonical
    if kind == "oci" and name:
        assert full_image_name(name) == canonical


def _instantiated(server_id: str) -> StdioServer:
    """A bundled catalog server with a placeholder value for each parameter it requires."""
    server = load_catalog()[server_id]
    values = {"string": "value", "path": "/srv/data", "list": ["/srv/data"]}
    entry = server.instantiate({name: values[p.kind] for name, p in server.parameters.items() if p.required})
    return StdioServer(entry["command"], tuple(entry["args"]))


@pytest.mark.parametrize("server_id", sorted(load_catalog()))
def test_every_bundled_catalog_server_is_a_launch_this_module_reads(server_id: str) -> None:
    ref = package_ref(_instantiated(server_id))
    assert ref is not None and ref.problem is None and ref.name
