"""The ``mcp-orchestration`` command: parse, call one operation, render, exit.

Errors are one redacted paragraph on stderr (what happened, how to fix it)
and a documented exit status; a traceback is shown only with ``--debug``,
and even then it passes through the redactor and carries no local variables.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

from mcp_orchestration.app.environment import refuse_plain_secret_variables
from mcp_orchestration.core.errors import ExitCode, FilesystemError, OrchestrationError, UnhealthyError, UsageError
from mcp_orchestration.core.version import package_version
from mcp_orchestration.security.redaction import REDACTOR

if TYPE_CHECKING:
    import logging

    from mcp_orchestration.app.operations import App
    from mcp_orchestration.app.settings import TokenOptions


class _VersionAction(argparse.Action):
    """``--version`` on every command; the package metadata is read only when asked (it is slow to import)."""

    def __init__(self, option_strings: Sequence[str], dest: str, **kwargs: Any) -> None:
        super().__init__(option_strings, dest, nargs=0, default=argparse.SUPPRESS, help="show the version and exit")

    def __call__(self, parser: argparse.ArgumentParser, *args: Any, **kwargs: Any) -> None:
        sys.stdout.write(f"mcp-orchestration {package_version()}\n")
        parser.exit()


class _Formatter(argparse.HelpFormatter):
    """argparse's help layout, sized without importing shutil (which loads three compression modules):
    argparse makes one for every option added, and a scheduled sync builds its parser every few minutes."""

    def __init__(self, prog: str, indent_increment: int = 2, max_help_position: int = 24, width: int | None = None):
        super().__init__(prog, indent_increment, max_help_position, width if width is not None else _columns() - 2)


def _columns() -> int:
    """The terminal's width as ``shutil.get_terminal_size`` finds it: ``$COLUMNS``, the terminal, else 80."""
    try:
        return int(os.environ["COLUMNS"])
    except (KeyError, ValueError):
        pass
    try:
        return os.get_terminal_size(sys.__stdout__.fileno()).columns if sys.__stdout__ else 80
    except (ValueError, OSError):
        return 80


class _Parser(argparse.ArgumentParser):
    """argparse that reports usage errors through the redactor with the documented status."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("formatter_class", _Formatter)
        super().__init__(*args, **kwargs)

    def error(self, message: str) -> NoReturn:
        self.print_usage(sys.stderr)
        sys.stderr.write(REDACTOR.scrub(f"{self.prog}: error: {message}\n"))
        raise SystemExit(ExitCode.USAGE)


def _owner(text: str) -> tuple[int, int]:
    uid, _, gid = text.partition(":")
    if not uid.isdigit() or (gid and not gid.isdigit()):
        raise argparse.ArgumentTypeError("expected UID or UID:GID (numbers)")
    return int(uid), int(gid or uid)


def _mode(text: str) -> int:
    if text not in ("0600", "0400", "600", "400"):
        raise argparse.ArgumentTypeError("expected 0600 or 0400")
    return int(text, 8)


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The full command tree, or only ``command``'s (what a scheduled ``sync`` builds, every few minutes);
    global options are accepted before or after the subcommand."""
    common = _Parser(add_help=False)
    group = common.add_argument_group("global options")
    if command != "sync":  # a sync reads no store and holds no key
        group.add_argument(
            "--home",
            type=Path,
            default=argparse.SUPPRESS,
            help="store home (default: $MCP_ORCHESTRATION_HOME or the per-user data dir)",
        )
        group.add_argument(
            "--key-file",
            type=Path,
            default=argparse.SUPPRESS,
            help="signing key file (default: $MCP_ORCHESTRATION_SIGNING_KEY_FILE or /run/secrets/signing_key)",
        )
        group.add_argument(
            "--passphrase-file",
            type=Path,
            default=argparse.SUPPRESS,
            help="passphrase of the key file (for keys generate: encrypt the new key with it)",
        )
        from mcp_orchestration.app.settings import key_source_choices

        sources = key_source_choices()
        group.add_argument(
            "--key-source",
            choices=tuple(sources),
            default=argparse.SUPPRESS,
            help="where the signing key comes from (default: $MCP_ORCHESTRATION_KEY_SOURCE, else file): "
            + "; ".join(f"{name}: {text}" for name, text in sources.items()),
        )
        group.add_argument(
            "--pkcs11-module",
            type=Path,
            default=argparse.SUPPRESS,
            help="pkcs11: the token's PKCS#11 library (default: $MCP_ORCHESTRATION_PKCS11_MODULE)",
        )
        group.add_argument(
            "--token-label",
            default=argparse.SUPPRESS,
            help="pkcs11: label of the token holding the key (default: $MCP_ORCHESTRATION_PKCS11_TOKEN_LABEL)",
        )
        group.add_argument(
            "--key-label",
            default=argparse.SUPPRESS,
            help="pkcs11: label of the Ed25519 key pair in the token (default: $MCP_ORCHESTRATION_PKCS11_KEY_LABEL)",
        )
        group.add_argument(
            "--key-id",
            metavar="HEX",
            default=argparse.SUPPRESS,
            help="pkcs11: CKA_ID of the key pair, in hex, instead of or with --key-label "
            "(default: $MCP_ORCHESTRATION_PKCS11_KEY_ID)",
        )
        group.add_argument(
            "--pin-file",
            type=Path,
            default=argparse.SUPPRESS,
            help="pkcs11: file holding the token's user PIN "
            "(default: $MCP_ORCHESTRATION_PKCS11_PIN_FILE or /run/secrets/pkcs11_pin)",
        )
    group.add_argument(
        "--expect-key",
        metavar="SHA256:HEX",
        default=argparse.SUPPRESS,
        help="the store's root key fingerprint: refuse any other, and pin it on this host if none is pinned "
        "(default: $MCP_ORCHESTRATION_EXPECT_KEY, else the root this host pinned)",
    )
    group.add_argument("--json", action="store_true", default=argparse.SUPPRESS, help="machine-readable output")
    group.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help="show (redacted) tracebacks")
    group.add_argument("--log-format", choices=("text", "json"), default=argparse.SUPPRESS, help="stderr log format")

    parser = _Parser(prog="mcp-orchestration", description=__doc__.splitlines()[0], parents=[common])
    parser.add_argument("--version", action=_VersionAction)
    commands = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    def add(name: str, handler: Callable[[argparse.Namespace], int], help_text: str, into: Any = commands) -> Any:
        sub = into.add_parser(name, parents=[common], help=help_text, description=help_text)
        sub.add_argument("--version", action=_VersionAction)
        sub.set_defaults(handler=handler)
        return sub

    def profile_args(sub: Any) -> None:
        sub.add_argument("--client", required=True)
        sub.add_argument("--profile", required=True)

    if command == "sync":
        _add_sync_command(add)
        return parser

    add("init", _cmd_init, "create the store and pin the signing key as its root, on this host too")
    sub = add("publish", _cmd_publish, "sign and store a config for a client profile")
    profile_args(sub)
    sub.add_argument("--file", required=True, help="JSON config file, or - for stdin")
    sub.add_argument("--changelog", default="", help="why this version exists")
    sub = add("get", _cmd_get, "print a profile's config (verified; env and header values masked)")
    profile_args(sub)
    sub.add_argument("--artifact", help="a past artifact id from the profile's history")
    sub = add("history", _cmd_history, "list a profile's published versions")
    profile_args(sub)
    sub = add(
        "export",
        _cmd_export,
        "print a profile's config in the client's own file format (json: masked, like get), or as Claude Desktop's "
        "managed configuration for an MDM (mobileconfig, reg: the servers deploy would write, unmasked)",
    )
    profile_args(sub)
    sub.add_argument(
        "--format",
        choices=("json", "mobileconfig", "reg"),
        default="json",
        help="json (default), mobileconfig (macOS configuration profile) or reg (Windows registry file, UTF-16)",
    )
    sub.add_argument(
        "--resolve-env",
        action="store_true",
        help="mobileconfig/reg: write the values of ${env:NAME} placeholders from this environment, as deploy does",
    )
    sub = add("verify", _cmd_verify, "verify key history, signatures and the index chain")
    sub.add_argument(
        "--deep",
        action="store_true",
        help="re-hash every reachable object and every head, and report stored configs that hold a credential",
    )
    sub = add("refresh", _cmd_refresh, "re-sign the unchanged index with a new expiry (run it on a schedule)")
    sub.add_argument(
        "--expires-in",
        metavar="DURATION",
        help="how long the new head stays fresh: 90m, 36h, 7d (default: $MCP_ORCHESTRATION_HEAD_LIFETIME, else 7d)",
    )
    sub.add_argument(
        "--push-to",
        action="append",
        default=[],
        metavar="URL",
        help="then push the store to this mirror, as `mirror push --to URL` does; repeatable",
    )
    sub.add_argument("--token-file", type=Path, help="http(s) mirrors: a file holding the bearer token for PUT")
    sub = add(
        "lock",
        _cmd_lock,
        "start each local server of a profile's published config, list its tools, prompts and resource templates, "
        "and sign what they expose as the profile's tool lock (run where the servers can run: the publisher or CI)",
    )
    profile_args(sub)
    sub.add_argument("--timeout", type=float, default=60.0, help="seconds for each server (default: %(default)s)")
    split = sub.add_mutually_exclusive_group()
    split.add_argument(
        "--out",
        type=Path,
        metavar="FILE",
        help="list the servers with no key and write the lock to FILE (where the servers may run: a sandbox, CI)",
    )
    split.add_argument(
        "--from", dest="observed", type=Path, metavar="FILE", help="sign a lock --out wrote; run no server"
    )
    sub = add(
        "check",
        _cmd_check,
        f"list each server again and compare with the signed tool lock: exit {ExitCode.DRIFT} on any drift",
    )
    profile_args(sub)
    sub.add_argument("--timeout", type=float, default=60.0, help="seconds for each server (default: %(default)s)")
    policy_commands = add("policy", _no_subcommand, "the store's signed policy").add_subparsers(
        dest="policy_command", required=True, parser_class=_Parser
    )
    add("show", _cmd_policy_show, "print the store's policy", into=policy_commands)
    sub = add(
        "set", _cmd_policy_set, "sign a policy file as the store's policy (a new index version)", into=policy_commands
    )
    sub.add_argument("--file", required=True, type=Path, help='JSON such as {"require_tool_lock": true}')
    sub = add("backup", _cmd_backup, "verify the store deeply, then write it as one tar archive")
    sub.add_argument("--out", required=True, metavar="FILE|-", help="new archive file (mode 0600), or - for stdout")
    sub.add_argument("--force", action="store_true", help="replace an existing file")
    sub = add("restore", _cmd_restore, "check a backup archive completely, then put its store in place")
    sub.add_argument("--from", dest="source", required=True, metavar="FILE|-", help="archive file, or - for stdin")
    sub.add_argument(
        "--force", action="store_true", help="replace an existing store, kept as storage.pre-restore-<UTC time>"
    )
    sub = add("deploy", _cmd_deploy, "merge a profile's verified servers into a client's config file on this machine")
    profile_args(sub)
    sub.add_argument("--config-path", type=Path, help="the client's config file (default: its place on this platform)")
    sub.add_argument("--dry-run", action="store_true", help="print the (masked) diff and write nothing")
    sub.add_argument(
        "--resolve-env",
        action="store_true",
        help="write the values of ${env:NAME} placeholders the client cannot expand (Claude Desktop) from this "
        "environment",
    )
    mirror = add("mirror", _no_subcommand, "distribute the signed store to desktops").add_subparsers(
        dest="mirror_command", required=True, parser_class=_Parser
    )
    sub = add(
        "push", _cmd_mirror_push, "put the verified store on a mirror (only what it lacks; the head last)", into=mirror
    )
    sub.add_argument(
        "--to",
        required=True,
        metavar="URL",
        help="a directory or file:// URL, http(s):// (PUT), or oci://registry/repo:tag",
    )
    sub.add_argument("--token-file", type=Path, help="http(s): a file holding the bearer token the server expects")
    _add_sync_command(add)
    sub = add("serve", _cmd_serve, "run the MCP server on stdio, or on streamable HTTP with --http")
    sub.add_argument(
        "--http",
        metavar="[HOST:]PORT",
        help="serve streamable HTTP at /mcp instead of stdio (HOST defaults to 127.0.0.1; PORT 0 picks one)",
    )
    sub.add_argument(
        "--resource",
        metavar="URL",
        help="--http: the URL clients reach /mcp by, the audience of their tokens (needed off loopback)",
    )
    sub.add_argument("--issuer", metavar="URL", help="--http: accept JWT access tokens from this OAuth issuer")
    sub.add_argument("--jwks-url", metavar="URL", help="--http: the issuer's JWKS (default: from its metadata)")
    sub.add_argument(
        "--token-file", type=Path, help="--http: accept one static bearer token, read from this secret file"
    )
    sub.add_argument(
        "--no-auth", action="store_true", help="--http: accept every request (refused off a loopback address)"
    )
    sub.add_argument(
        "--allow-origin",
        action="append",
        default=[],
        metavar="ORIGIN",
        help="--http: a browser origin allowed besides the server's own (repeatable)",
    )
    sub = add("healthcheck", _cmd_healthcheck, "exit 0 if the store, its chain and the key are healthy (quiet), else 1")
    sub.add_argument("--http", metavar="URL", help="also require this /healthz URL to answer (serve --http)")
    sub = add(
        "claude-config",
        _cmd_claude_config,
        "print the Claude Desktop snippet that runs the container: read-only (no key) unless --single-machine",
    )
    sub.add_argument(
        "--single-machine",
        action="store_true",
        help="this machine is also the publisher: mount the key named by --key-file (read-only) so the container "
        "can publish",
    )
    sub.add_argument("--image", default="mcp-orchestration:latest", help="image to run (default: %(default)s)")
    sub.add_argument("--volume", default="mcp-orchestration-data", help="store volume (default: %(default)s)")

    trust = add("trust", _no_subcommand, "what this host trusts about the store").add_subparsers(
        dest="trust_command", required=True, parser_class=_Parser
    )
    add("show", _cmd_trust_show, "print the root this host pinned and the last head it accepted", into=trust)
    add("forget", _cmd_trust_forget, "forget them (after re-creating or rewinding the store on purpose)", into=trust)

    index = add("index", _no_subcommand, "index commands").add_subparsers(
        dest="index_command", required=True, parser_class=_Parser
    )
    add("export", _cmd_index_export, "print the current signed DSSE envelope", into=index)

    key_commands = add("keys", _no_subcommand, "signing key commands").add_subparsers(
        dest="keys_command", required=True, parser_class=_Parser
    )
    sub = add("generate", _cmd_keys_generate, "create a new Ed25519 key (never overwrites)", into=key_commands)
    target = sub.add_mutually_exclusive_group(required=True)
    target.add_argument("--out", type=Path, help="new key file")
    target.add_argument("--keyring", action="store_true", help="store the key in the OS keyring instead")
    sub.add_argument("--format", choices=("pkcs8", "openssh"), default="pkcs8")
    sub.add_argument(
        "--owner", type=_owner, metavar="UID[:GID]", help="owner of the file (e.g. 65532 for the container)"
    )
    sub.add_argument("--mode", type=_mode, default=0o600, metavar="0600|0400")
    # The global --passphrase-file is the passphrase the new key is encrypted with.
    sub = add("fingerprint", _cmd_keys_fingerprint, "print a key's fingerprint", into=key_commands)
    sub.add_argument("--public-key", type=Path, help="a public key PEM instead of the signing key")
    add("list", _cmd_keys_list, "list the key history", into=key_commands)
    sub = add("export-public", _cmd_keys_export_public, "print a public key as PEM", into=key_commands)
    sub.add_argument("--keyid", help="which key (default: the active one)")
    sub = add("rotate", _cmd_keys_rotate, "rotate signing to a new key", into=key_commands)
    sub.add_argument(
        "--new-key-file",
        type=Path,
        help="new key (default: $MCP_ORCHESTRATION_SIGNING_KEY_NEXT_FILE or /run/secrets/signing_key_next)",
    )
    sub.add_argument("--new-passphrase-file", type=Path, help="passphrase of the new key")
    sub.add_argument(
        "--new-key-source", choices=tuple(sources), default="file", help="where the new key comes from (default: file)"
    )
    sub.add_argument("--new-token-label", help="pkcs11: the new key's token (default: the --token-label setting)")
    sub.add_argument("--new-key-label", help="pkcs11: the new key pair's label")
    sub.add_argument("--new-key-id", metavar="HEX", help="pkcs11: the new key pair's CKA_ID, in hex")
    sub.add_argument(
        "--new-pin-file",
        type=Path,
        help="pkcs11: the new key's token PIN file "
        "(default: $MCP_ORCHESTRATION_PKCS11_NEXT_PIN_FILE or /run/secrets/pkcs11_pin_next)",
    )
    sub = add("revoke", _cmd_keys_revoke, "revoke a compromised key", into=key_commands)
    sub.add_argument("keyid", help="SHA256:HEX fingerprint of the key to revoke")
    return parser


def _add_sync_command(add: Callable[..., Any]) -> None:
    sub = add("sync", _cmd_sync, "fetch, verify and apply the newest signed config from a mirror (no key needed)")
    sub.add_argument(
        "--from",
        dest="source",
        required=True,
        metavar="URL",
        help="https://..., oci://registry/repo:tag or file:///...",
    )
    sub.add_argument(
        "--apply",
        action="append",
        required=True,
        type=_apply_request,
        metavar="CLIENT/PROFILE[=PATH]",
        help="apply this profile to the client's config file (its default place, or PATH); repeatable",
    )
    sub.add_argument(
        "--state-dir",
        type=Path,
        help="where this desktop keeps the head it accepted (default: $MCP_ORCHESTRATION_SYNC_STATE, "
        "else sync/ in the per-user state directory)",
    )
    sub.add_argument("--timeout", type=float, default=30.0, help="seconds for each request (default: %(default)s)")
    sub.add_argument("--dry-run", action="store_true", help="verify and print the (masked) diffs; write nothing")
    sub.add_argument(
        "--print-schedule",
        choices=("macos", "windows", "linux"),
        help="print the launchd agent, scheduled task or systemd timer that runs this same sync; sync nothing",
    )
    sub.add_argument(
        "--every", default="15m", metavar="DURATION", help="with --print-schedule: how often (default: 15m)"
    )
    sub.add_argument(
        "--schedule-out", type=Path, metavar="DIR", help="with --print-schedule: write the files into DIR instead"
    )
    sub.add_argument(
        "--program",
        metavar="PATH",
        help="with --print-schedule: the mcp-orchestration executable on the desktops (default: this Python, -m)",
    )
    sub.add_argument(
        "--resolve-env",
        action="store_true",
        help="as for deploy: write the values of ${env:NAME} placeholders the client cannot expand",
    )


# -- rendering ---------------------------------------------------------------------------


def _emit(args: argparse.Namespace, data: Mapping[str, Any], text: str) -> int:
    """Print ``data`` as JSON with --json, else ``text``; both redacted."""
    out = json.dumps(data, indent=2, sort_keys=True) if getattr(args, "json", False) else text
    sys.stdout.write(REDACTOR.redact(out).rstrip("\n") + "\n")
    return ExitCode.OK


def _token_options(args: argparse.Namespace) -> TokenOptions:
    from mcp_orchestration.app.settings import TokenOptions

    return TokenOptions(
        module=getattr(args, "pkcs11_module", None),
        token_label=getattr(args, "token_label", None),
        key_label=getattr(args, "key_label", None),
        key_id=getattr(args, "key_id", None),
        pin_file=getattr(args, "pin_file", None),
    )


def _app(args: argparse.Namespace) -> App:
    from mcp_orchestration.app.operations import App
    from mcp_orchestration.app.settings import load_settings

    settings = load_settings(
        home=getattr(args, "home", None),
        key_file=getattr(args, "key_file", None),
        passphrase_file=getattr(args, "passphrase_file", None),
        key_source=getattr(args, "key_source", None),
        token=_token_options(args),
        expect_key=getattr(args, "expect_key", None),
    )
    return App(settings)


# -- commands ----------------------------------------------------------------------------


def _no_subcommand(args: argparse.Namespace) -> int:
    raise UsageError("A subcommand is required.")


def _cmd_init(args: argparse.Namespace) -> int:
    from mcp_orchestration.app import operations

    result = operations.init(_app(args))
    verb = "Initialised" if result["created"] else "Already initialised:"
    return _emit(args, result, f"{verb} store at {result['home']}\nRoot key: {result['fingerprint']}")


def _cmd_publish(args: argparse.Namespace) -> int:
    from mcp_orchestration.app import operations

    data = sys.stdin.buffer.read() if args.file == "-" else _read_input(Path(args.file))
    result = operations.publish(
        _app(args), client=args.client, profile=args.profile, data=data, source=args.file, changelog=args.changelog
    )
    state = "published" if result["changed"] else "unchanged"
    for warning in [] if getattr(args, "json", False) else result["warnings"]:  # --json: in the result
        sys.stderr.write(
            REDACTOR.redact(f"warning [{warning['code']}]: {warning['path']}: {warning['message']}") + "\n"
        )
    return _emit(
        args,
        result,
        f"{args.client}/{args.profile} {state}: {result['artifact']} (index version {result['index_version']})",
    )


def _read_input(path: Path) -> bytes:
    """``publish --file``: a regular file (a link to one is followed), never a FIFO or a device.

    A file over the payload limit is refused here, before it is read whole.
    """
    from mcp_orchestration.app.operations import unreadable_input
    from mcp_orchestration.config.payload import MAX_PAYLOAD_BYTES
    from mcp_orchestration.core.fsutil import read_named_file

    try:
        return read_named_file(path, MAX_PAYLOAD_BYTES)
    except OSError as exc:
        raise unreadable_input(path, exc) from None


def _cmd_get(args: argparse.Namespace) -> int:
    from mcp_orchestration.app import operations

    result = operations.get(_app(args), args.client, args.profile, args.artifact)
    return _emit(args, result, json.dumps(result["config"], indent=2, sort_keys=True))


def _cmd_export(args: argparse.Namespace) -> int:
    from mcp_orchestration.app import operations

    if args.format != "json":
        from mcp_orchestration.app.mdm import export_managed

        data = export_managed(_app(args), args.client, args.profile, args.format, resolve_env=args.resolve_env)
        sys.stdout.flush()
        sys.stdout.buffer.write(data)  # bytes as they are: a .reg file is UTF-16
        sys.stdout.buffer.flush()
        return ExitCode.OK
    if args.resolve_env:
        raise UsageError("--resolve-env applies to --format mobileconfig or reg; the json export is masked.")
    result = operations.export(_app(args), args.client, args.profile)
    return _emit(args, result, json.dumps(result["config"], indent=2, sort_keys=True))


def _cmd_history(args: argparse.Namespace) -> int:
    from mcp_orchestration.app import operations
    from mcp_orchestration.security.principal import OPERATOR

    result = operations.profile_history(_app(args), args.client, args.profile)  # changelogs come back escaped
    lines = [  # who: an HTTP caller's subject, or "-" for the host's own operator (no token may say "-")
        f"{v['index_version']:>6}  {v['published_at']}  {v['artifact']}  "
        f"{v['published_by']['subject'] if v['published_by'] else OPERATOR}  {v['changelog']}".rstrip()
        for v in result["versions"]
    ]
    return _emit(args, result, "\n".join(lines))


def _cmd_verify(args: argparse.Namespace) -> int:
    from mcp_orchestration.app import operations

    report = operations.verify(_app(args), args.deep)
    text = (
        f"OK: index version {report['index_version']} signed by SHA256:{report['keyid']}, "
        f"{report['heads_checked']} head(s) checked, "
        + (f"fresh until {report['expires']}" if report["expires"] else "no expiry (run `refresh` to set one)")
    )
    if args.deep:
        text += f", {report['objects_checked']} object(s) re-hashed, {report['profiles']} profile(s)"
        if report["damaged_unreferenced"]:
            text += (
                f"\nNote: {len(report['damaged_unreferenced'])} damaged object(s) that no index version refers to "
                "(left by an interrupted write; harmless, and replaced if the same content is published again)."
            )
        if report["credentials"]:
            text += "\n" + _credentials_warning(report["credentials"])
    return _emit(args, report, text)


def _cmd_refresh(args: argparse.Namespace) -> int:
    from mcp_orchestration.app import operations
    from mcp_orchestration.core.clock import parse_duration

    lifetime = parse_duration(args.expires_in, "--expires-in") if args.expires_in else None
    app = _app(args)
    result = operations.refresh(app, lifetime)
    lines = [f"Re-signed as index version {result['index_version']}, fresh until {result['expires']}."]
    result["pushed"] = [operations.mirror_push(app, url, args.token_file) for url in args.push_to]
    lines += [f"Pushed it to {pushed['url']} ({pushed['objects']} object(s))." for pushed in result["pushed"]]
    return _emit(args, result, "\n".join(lines))


def _credentials_warning(found: list[dict[str, Any]]) -> str:
    """The warning block of ``verify --deep`` for stored configs that hold a credential (places only, no value)."""
    lines = [
        f"WARNING: {len(found)} published version(s) hold what looks like a credential (signed in by an earlier "
        "release, which did not check command-line publishes). The store is intact and append-only, so this is "
        "not a verification failure, but every reader of the store, its backups and mirrors has these values:"
    ]
    lines += [
        f"  {item['client']}/{item['profile']} index version {item['index_version']} artifact {item['artifact']}: "
        + ", ".join(item["paths"])
        for item in found
    ]
    lines.append(
        "Rotate each credential at its issuer now, then publish a version that references it as a ${env:NAME} "
        "placeholder (see SECURITY.md, 'A credential in the store')."
    )
    return "\n".join(lines)


def _cmd_lock(args: argparse.Namespace) -> int:
    from mcp_orchestration.app import locking
    from mcp_orchestration.config.toollock import MAX_LOCK_BYTES, SURFACE_KINDS

    if args.out is not None:
        from mcp_orchestration.core.canonical import canonical_bytes
        from mcp_orchestration.core.fsutil import atomic_write

        observed = locking.observe_lock(_app(args), args.client, args.profile, timeout=args.timeout)
        atomic_write(args.out, canonical_bytes(observed.to_json()))
        text = f"Wrote the lock of {args.client}/{args.profile} to {args.out}; sign it with `lock --from {args.out}`."
        return _emit(args, {"out": str(args.out), "artifact": observed.artifact}, text)
    if args.observed is not None:
        from mcp_orchestration.app.operations import unreadable_input
        from mcp_orchestration.core.fsutil import read_named_file

        try:
            data = read_named_file(args.observed, MAX_LOCK_BYTES)
        except OSError as exc:
            raise unreadable_input(args.observed, exc) from None
        result = locking.sign_lock(_app(args), locking.read_observed_lock(data, args.client, args.profile))
    else:
        result = locking.lock(_app(args), args.client, args.profile, timeout=args.timeout)
    state = "locked" if result["changed"] else "unchanged (the same lock is in place)"
    lines = [f"{args.client}/{args.profile} {state}: lock {result['lock']} (index version {result['index_version']})"]
    for name, server in result["servers"].items():
        counts = ", ".join(f"{len(server[kind])} {kind.replace('_', ' ')}" for kind in SURFACE_KINDS)
        release = f" [{server['package']}]" if server["package"] else ""
        lines.append(f"  {name}{release}: {server['server']['name']} {server['server']['version']}; {counts}")
    lines += [f"  {name}: not locked ({reason})" for name, reason in result["not_locked"].items()]
    return _emit(args, result, "\n".join(lines))


def _cmd_check(args: argparse.Namespace) -> int:
    from mcp_orchestration.app.locking import check

    result = check(_app(args), args.client, args.profile, timeout=args.timeout)
    name = f"{args.client}/{args.profile}"
    if not result["drift"]:
        text = f"OK: {name}'s {result['servers_checked']} server(s) expose what lock {result['lock']} approved."
    else:
        lines = [f"DRIFT: {name} differs from lock {result['lock']} (taken {result['locked_at']}):"]
        if result["stale"]:
            lines.append(f"  the lock was taken for artifact {result['lock_artifact']}, not the published one")
        for change in result["changes"]:
            lines.append(f"  {change['server']}: {change['summary']}" + ("" if change["drift"] else " (not drift)"))
            lines += [f"      {detail}" for detail in change["details"]]
        text = "\n".join(lines)
    _emit(args, result, text)
    return ExitCode.DRIFT if result["drift"] else ExitCode.OK


def _cmd_policy_show(args: argparse.Namespace) -> int:
    from mcp_orchestration.app.store_policy import show_policy

    result = show_policy(_app(args))
    rules = ", ".join(f"{rule}: {str(value).lower()}" for rule, value in result["rules"].items())
    origin = f"policy {result['policy']}" if result["policy"] else "the default policy"
    return _emit(args, result, f"Index version {result['index_version']}, {origin}: {rules}")


def _cmd_policy_set(args: argparse.Namespace) -> int:
    from mcp_orchestration.app.store_policy import parse_policy_file, set_policy

    result = set_policy(_app(args), parse_policy_file(_read_input(args.file)))
    state = "set" if result["changed"] else "unchanged"
    return _emit(args, result, f"Policy {state}: {result['policy']} (index version {result['index_version']})")


def _cmd_backup(args: argparse.Namespace) -> int:
    import contextlib

    from mcp_orchestration.app import operations

    to_stdout = args.out == "-"
    if to_stdout and sys.stdout.isatty():
        raise UsageError(
            "Refusing to write a binary archive to a terminal.", hint="Redirect stdout, or pass --out FILE."
        )
    target = sys.stdout.buffer if to_stdout else Path(args.out)
    result = operations.backup(_app(args), target, force=args.force)
    text = (
        f"Backed up index version {result['index_version']} ({result['files']} files, {result['bytes']} bytes, "
        f"root key {result['root_fingerprint']}) to {result['out']} after verify --deep; "
        "no private key is in it (the store never holds one)."
    )
    if to_stdout:  # stdout carries the archive and nothing else
        with contextlib.redirect_stdout(sys.stderr):
            return _emit(args, result, text)
    return _emit(args, result, text)


def _cmd_restore(args: argparse.Namespace) -> int:
    from mcp_orchestration.app import operations

    from_stdin = args.source == "-"
    if from_stdin and sys.stdin.isatty():
        raise UsageError("Refusing to read an archive from a terminal.", hint="Pipe it in, or pass --from FILE.")
    source = sys.stdin.buffer if from_stdin else Path(args.source)
    result = operations.restore(_app(args), source, force=args.force)
    version = result["index_version"]
    lines = [
        f"Restored index version {version} (backup of {result['created_at']}, root key {result['root_fingerprint']}, "
        f"{result['files']} files) to {result['storage']} after verify --deep."
    ]
    if result["replaced"]:
        lines.append(
            f"The previous store (index version {result['replaced_index_version'] or 'unknown'}) is kept at "
            f"{result['replaced']}."
        )
    if result["older_than_replaced"]:
        lines.append(f"This index is OLDER than the one it replaced (version {result['replaced_index_version']}).")
    if result["unreferenced_objects"]:
        lines.append(
            f"It holds {result['unreferenced_objects']} object(s) that no index version refers to (left by "
            "interrupted publishes; harmless: nothing reads them, and each holds only what its hash names)."
        )
    lines.append(
        f"This host now accepts index version {version} as the newest of this store. Any other host that accepted "
        "a newer index of it refuses this one with [rollback] or [fork] until `mcp-orchestration trust forget` "
        "is run there."
    )
    return _emit(args, result, "\n".join(lines))


def _cmd_deploy(args: argparse.Namespace) -> int:
    from dataclasses import asdict

    from mcp_orchestration.app.deploy import deploy

    result = deploy(
        _app(args),
        args.client,
        args.profile,
        config_path=args.config_path,
        dry_run=args.dry_run,
        resolve_env=args.resolve_env,
    )
    source = f"{result.client}/{result.profile} (index version {result.index_version}, artifact {result.artifact})"
    if not result.changed:
        text = f"{result.path} already has the servers of {source}; nothing to write."
    elif result.dry_run:
        text = f"{result.diff}\nDry run: this is what deploying {source} would change; nothing was written."
    else:
        done = f"backup: {result.backup}" if result.backup else "created"
        text = f"Deployed {source} to {result.path} ({done})."
    return _emit(args, asdict(result), text)


def _cmd_mirror_push(args: argparse.Namespace) -> int:
    from mcp_orchestration.app import operations

    result = operations.mirror_push(_app(args), args.to, args.token_file)
    if result["mirror_version"] == result["index_version"]:
        text = f"{result['url']} already serves index version {result['index_version']}."
    else:
        text = (
            f"Pushed index version {result['index_version']} to {result['url']}: {result['objects']} object(s), "
            f"{result['key_versions']} key history version(s), {result['bytes_sent']} bytes."
        )
    return _emit(args, result, text)


def _apply_request(text: str) -> Any:
    """``CLIENT/PROFILE[=PATH]`` for ``sync --apply``."""
    from mcp_orchestration.app.sync import ApplyRequest
    from mcp_orchestration.security.ids import check_name_id

    names, _, path = text.partition("=")
    client, _, profile = names.partition("/")
    try:
        return ApplyRequest(
            check_name_id(client, "client"), check_name_id(profile, "profile"), Path(path) if path else None
        )
    except OrchestrationError as error:
        raise argparse.ArgumentTypeError(f"expected CLIENT/PROFILE[=PATH]: {error.message}") from None


def _cmd_sync(args: argparse.Namespace) -> int:
    from mcp_orchestration.app.environment import ENV_EXPECT_KEY, default_sync_state_dir, root_fingerprint
    from mcp_orchestration.app.sync import SyncRequest, sync

    expected = getattr(args, "expect_key", None) or os.environ.get(ENV_EXPECT_KEY)
    if not expected:
        raise UsageError(
            "sync needs the store's root key fingerprint.",
            hint="Pass --expect-key SHA256:... (from `mcp-orchestration keys list` at the publisher), or set "
            f"{ENV_EXPECT_KEY}.",
        )
    if args.print_schedule:
        return _print_schedule(args, expected)
    request = SyncRequest(
        url=args.source,
        expect_root=root_fingerprint(expected),
        applies=tuple(args.apply),
        state_dir=args.state_dir or default_sync_state_dir(os.environ),
        resolve_env=args.resolve_env,
        dry_run=args.dry_run,
        timeout=args.timeout,
    )
    result = sync(request)
    fresh = f"fresh until {result.expires}"
    if not result.head_changed and not result.applied:
        text = f"Up to date: index version {result.index_version}, {fresh} ({result.requests} request(s))."
    else:
        lines = [f"Index version {result.index_version} from {result.url} verified, {fresh}."]
        for item in result.applied:
            what = f"{item.client}/{item.profile} -> {item.path}"
            if result.dry_run:
                lines.append(f"{item.diff}\nDry run: {what} would {'change' if item.changed else 'stay as it is'}.")
            elif item.changed:
                lines.append(f"Applied {what} ({f'backup: {item.backup}' if item.backup else 'created'}).")
            else:
                lines.append(f"{what}: already up to date.")
        text = "\n".join(lines)
    return _emit(args, result.to_json(), text)


def _print_schedule(args: argparse.Namespace, expect_key: str) -> int:
    """The schedule files that run this sync unattended: printed, or written (new files only) into a directory."""
    from mcp_orchestration.app.environment import default_sync_state_dir
    from mcp_orchestration.app.schedules import render_schedule
    from mcp_orchestration.core.clock import parse_duration
    from mcp_orchestration.core.fsutil import create_exclusive

    arguments = ["sync", "--from", args.source, "--expect-key", expect_key]
    for apply in args.apply:
        where = f"={apply.config_path.expanduser().absolute()}" if apply.config_path is not None else ""
        arguments += ["--apply", f"{apply.name}{where}"]
    state_dir = (args.state_dir or default_sync_state_dir(os.environ)).expanduser().absolute()
    arguments += ["--state-dir", str(state_dir), "--timeout", f"{args.timeout:g}"]
    arguments += ["--resolve-env"] if args.resolve_env else []
    program = [args.program] if args.program else [sys.executable, "-m", "mcp_orchestration"]
    files = render_schedule(args.print_schedule, program, arguments, parse_duration(args.every, "--every"))
    if args.schedule_out is None:
        text = "\n".join(f"==> {name} <==\n{_schedule_text(data)}" for name, data in files.items())
        return _emit(args, {name: _schedule_text(data) for name, data in files.items()}, text)
    args.schedule_out.mkdir(parents=True, exist_ok=True)
    for name, data in files.items():
        try:
            create_exclusive(args.schedule_out / name, data, 0o644)
        except FileExistsError:
            raise UsageError(f"{args.schedule_out / name} already exists; it is never overwritten.") from None
    written = [str(args.schedule_out / name) for name in files]
    return _emit(args, {"written": written}, "Wrote " + ", ".join(written))


def _schedule_text(data: bytes) -> str:
    """A schedule file as text: Task Scheduler's XML is UTF-16, the others UTF-8."""
    return data.decode("utf-16") if data.startswith((b"\xff\xfe", b"\xfe\xff")) else data.decode()


def _cmd_serve(args: argparse.Namespace) -> int:
    import anyio

    from mcp_orchestration.server.app import build_server
    from mcp_orchestration.server.stdio import serve_stdio
    from mcp_orchestration.server.tools import ConfigTools

    catalog = os.environ.get("MCP_ORCHESTRATION_CATALOG_FILE")
    app = _app(args)
    try:
        app.require_writable()  # loaded up front, so the redactor knows it before any request arrives
    except OrchestrationError as error:
        _log().warning("Serving read-only [%s]: %s%s", error.code, error.message, _hint(error.hint))
    tools = ConfigTools(app, Path(catalog) if catalog else None)
    if args.http is None:
        _refuse_http_options(args)
        anyio.run(serve_stdio, build_server(tools))  # the SDK's stdio run, with stdin read in bounded lines
        return ExitCode.OK
    from mcp_orchestration.server import http

    asked = http.HttpEndpoint(*_host_port(args.http), resource=args.resource or "", extra_origins=args.allow_origin)
    asked.check()
    sock, endpoint = http.listen(asked)
    auth, verifier = http.access_control(
        endpoint, issuer=args.issuer, jwks_url=args.jwks_url, token_file=args.token_file, no_auth=args.no_auth
    )
    http.serve_http(build_server(tools, auth=auth, token_verifier=verifier), endpoint, sock)
    return ExitCode.OK


def _refuse_http_options(args: argparse.Namespace) -> None:
    given = [
        name
        for name in ("resource", "issuer", "jwks_url", "token_file", "no_auth", "allow_origin")
        if getattr(args, name)
    ]
    if given:
        flag = "--" + given[0].replace("_", "-")
        raise UsageError(f"{flag} applies to --http only.", hint="Add --http [HOST:]PORT, or drop it.")


def _host_port(text: str) -> tuple[str, int]:
    """``[HOST:]PORT`` (an IPv6 host in brackets) as a host and a port."""
    host, _, port = text.rpartition(":")
    host = host.strip("[]") or "127.0.0.1"
    if not port.isdigit() or int(port) > 65535:
        raise UsageError(f"--http takes [HOST:]PORT, not {text!r}.")
    return host, int(port)


def _hint(hint: str) -> str:
    """A hint appended to a one-line message, if there is one."""
    return f" {hint}" if hint else ""


def _cmd_healthcheck(args: argparse.Namespace) -> int:
    from mcp_orchestration.app import operations

    try:
        operations.healthcheck(_app(args))
        if args.http:
            _check_health_url(args.http)
    except OrchestrationError as error:
        sys.stderr.write(REDACTOR.scrub(f"unhealthy [{error.code}]: {error.message}{_hint(error.hint)}") + "\n")
        return ExitCode.FAILURE
    except OSError as error:
        where = f" ({error.filename})" if error.filename else ""
        reason = f"{error.strerror or type(error).__name__}{where}"
        sys.stderr.write(REDACTOR.scrub(f"unhealthy [filesystem]: {reason}") + "\n")
        return ExitCode.FAILURE
    return ExitCode.OK


def _check_health_url(url: str) -> None:
    """Raise unless ``url`` answers 200 within a few seconds (the container's own server, on loopback)."""
    import urllib.request

    try:
        with urllib.request.urlopen(url, timeout=3):  # noqa: S310 (an operator's URL); any status but 2xx raises
            pass
    except (OSError, ValueError) as exc:
        raise UnhealthyError(f"{url} does not answer: {type(exc).__name__}.") from None


def _cmd_claude_config(args: argparse.Namespace) -> int:
    from mcp_orchestration.app import operations

    # --key-file (a global option) names the key on the host; it is mounted, never read here.
    key_file = getattr(args, "key_file", None)
    if key_file is not None and not args.single_machine:
        raise UsageError(
            "claude-config mounts no signing key unless asked: a fleet desktop only reads, and publishing "
            "happens at the publisher.",
            hint="Drop --key-file for a desktop; on the one machine that also publishes, add --single-machine.",
        )
    if args.single_machine and key_file is None:
        raise UsageError("--single-machine mounts the signing key: name it with --key-file PATH.")
    expect_key = getattr(args, "expect_key", None)
    snippet = operations.claude_config(args.image, key_file, args.volume, expect_key)
    sys.stdout.write(json.dumps(snippet, indent=2) + "\n")
    return ExitCode.OK


def _cmd_trust_show(args: argparse.Namespace) -> int:
    from mcp_orchestration.app import operations

    result = operations.trust_show(_app(args))
    if result["root"] is None:
        text = f"No root key is pinned on this host for the store at {result['home']}."
    else:
        accepted = (
            f"last accepted index version {result['index_version']} (head {result['head_id']}, {result['seen_at']})"
            if result["head_id"]
            else "no index accepted yet"
        )
        text = f"Store at {result['home']}: root {result['root']}; {accepted}.\nState file: {result['state_file']}"
    return _emit(args, result, text)


def _cmd_trust_forget(args: argparse.Namespace) -> int:
    from mcp_orchestration.app import operations

    result = operations.trust_forget(_app(args))
    verb = "Forgot" if result["forgotten"] else "Nothing was pinned for"
    return _emit(args, result, f"{verb} the store at {result['home']} on this host; pin it again with --expect-key.")


def _cmd_index_export(args: argparse.Namespace) -> int:
    from mcp_orchestration.app import operations

    sys.stdout.write(operations.export_index(_app(args)).decode() + "\n")
    return ExitCode.OK


def _cmd_keys_generate(args: argparse.Namespace) -> int:
    from mcp_orchestration.app import operations

    result = operations.generate_key(
        out=args.out,
        fmt=args.format,
        passphrase_file=getattr(args, "passphrase_file", None),
        owner=args.owner,
        mode=args.mode,
        to_keyring=args.keyring,
    )
    where = "the OS keyring" if args.keyring else str(args.out)
    return _emit(args, result, f"Wrote a new Ed25519 key to {where}\nFingerprint: {result['fingerprint']}")


def _cmd_keys_fingerprint(args: argparse.Namespace) -> int:
    from mcp_orchestration.app import operations

    result = operations.fingerprint(_app(args), args.public_key)
    return _emit(args, result, result["fingerprint"])


def _cmd_keys_list(args: argparse.Namespace) -> int:
    from mcp_orchestration.app import operations

    result = operations.list_keys(_app(args))
    lines = [
        f"{k['fingerprint']}  {k['status']:<8} index {k['first_index']}..{k['last_index'] or ''}"
        for k in result["keys"]
    ]
    return _emit(args, result, "\n".join(lines))


def _cmd_keys_export_public(args: argparse.Namespace) -> int:
    from mcp_orchestration.app import operations

    sys.stdout.write(operations.export_public(_app(args), args.keyid))
    return ExitCode.OK


def _cmd_keys_rotate(args: argparse.Namespace) -> int:
    from mcp_orchestration.app import operations
    from mcp_orchestration.app.settings import NEXT_SIGNING_KEY, TokenOptions, key_spec

    current = _token_options(args)
    new_spec = key_spec(
        key_file=args.new_key_file,
        passphrase_file=args.new_passphrase_file,
        key_source=args.new_key_source,
        environ=os.environ,
        names=NEXT_SIGNING_KEY,
        token=TokenOptions(
            module=current.module,
            token_label=args.new_token_label or current.token_label,
            key_label=args.new_key_label,
            key_id=args.new_key_id,
            pin_file=args.new_pin_file,
        ),
    )
    result = operations.rotate(_app(args), new_spec)
    text = (
        f"{'Rotation was already complete' if result['already_done'] else 'Rotated'}: "
        f"{result['old_fingerprint']} -> {result['new_fingerprint']} (index version {result['index_version']})\n"
        "Next: make the new key the signing_key secret and restart the server."
    )
    return _emit(args, result, text)


def _cmd_keys_revoke(args: argparse.Namespace) -> int:
    from mcp_orchestration.app import operations

    result = operations.revoke(_app(args), args.keyid)
    verb = "Revoked" if result["changed"] else "Already revoked:"
    return _emit(args, result, f"{verb} {result['revoked']}")


# -- entry point -------------------------------------------------------------------------


def _report(args: argparse.Namespace | None, error: OrchestrationError) -> int:
    """One error on stderr, scrubbed as the MCP server scrubs its errors (known secrets, credential-like words)."""
    if args is not None and getattr(args, "json", False):
        text = json.dumps({"error": error.to_dict()}, sort_keys=True)
    else:
        text = f"error [{error.code}]: {error.diagnostics()}"
    sys.stderr.write(REDACTOR.scrub(text) + "\n")
    return error.exit_code


def _configure_logs(args: argparse.Namespace, debug: bool) -> None:
    """Logs go to stderr through the redactor. A sync logs nothing unless asked (``--debug``, ``--log-format``),
    so a scheduled one does not load ``logging`` at all."""
    if args.command == "sync" and not debug and not hasattr(args, "log_format"):
        return
    import logging

    from mcp_orchestration.security.logs import configure_logging

    configure_logging(logging.DEBUG if debug else logging.WARNING, getattr(args, "log_format", "text"))


def _log() -> logging.Logger:
    import logging

    return logging.getLogger("mcp_orchestration")


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command and return its exit status."""
    argv = sys.argv[1:] if argv is None else list(argv)
    parser = build_parser(argv[0] if argv[:1] == ["sync"] else None)
    args = parser.parse_args(argv)
    debug = getattr(args, "debug", False)
    _configure_logs(args, debug)
    try:
        refuse_plain_secret_variables(os.environ)
        status: int = args.handler(args)
        return status
    except OrchestrationError as error:
        if debug:
            _log().debug("Traceback of the error below", exc_info=True)
        return _report(args, error)
    except KeyboardInterrupt:
        return ExitCode.FAILURE
    except OSError as error:
        _log().debug("Filesystem error", exc_info=True)
        where = f" on {error.filename}" if error.filename else ""
        return _report(args, FilesystemError(f"Filesystem error{where}: {error.strerror or type(error).__name__}."))
    except Exception as error:  # an unexpected failure: still no traceback, no secret
        _log().debug("Unexpected error", exc_info=True)
        wrapped = OrchestrationError(
            f"Unexpected internal error ({type(error).__name__}).", hint="Re-run with --debug and report the issue."
        )
        return _report(args, wrapped)


def entry_point() -> None:
    """Console-script entry point."""
    sys.exit(main())
