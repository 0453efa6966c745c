"""The product's operations, shared by the command line and the MCP server.

Each function takes an :class:`App` (settings, store, telemetry, the lazily
loaded key), does one thing, records one telemetry event and returns plain
JSON-ready data. Rendering is the caller's job.
"""

from __future__ import annotations

import contextlib
import json
import os
import time
from dataclasses import asdict
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO, cast

from mcp_orchestration.app import rotation
from mcp_orchestration.app.anchor import HostAnchor
from mcp_orchestration.app.attribution import current_principal
from mcp_orchestration.app.environment import ENV_EXPECT_KEY
from mcp_orchestration.app.host_state import HostState
from mcp_orchestration.app.policy_rules import require_pinned
from mcp_orchestration.app.settings import Settings
from mcp_orchestration.app.telemetry import Telemetry
from mcp_orchestration.config import clients
from mcp_orchestration.config.masking import mask_secrets
from mcp_orchestration.config.model import McpConfig
from mcp_orchestration.config.payload import MAX_PAYLOAD_BYTES, parse_payload
from mcp_orchestration.config.strict import escape_hidden, has_hidden
from mcp_orchestration.config.validation import require_valid, unpinned_launches, validate_config
from mcp_orchestration.core.errors import (
    ConflictError,
    KeyNotTrustedError,
    LimitError,
    NotFoundError,
    OrchestrationError,
    UsageError,
    ValidationError,
    unreadable_file,
)
from mcp_orchestration.core.fsutil import UnsafeFileError, create_exclusive, open_regular_stream, read_named_file
from mcp_orchestration.security.ids import check_name_id
from mcp_orchestration.security.redaction import REDACTOR
from mcp_orchestration.security.secret_rules import scrub_text
from mcp_orchestration.store.model import Entry
from mcp_orchestration.store.repository import ANY_BASE, ExpectedBase, ProfileUpdate, Repository
from mcp_orchestration.trust import key_sources, keys
from mcp_orchestration.trust.history import KeyStatus
from mcp_orchestration.trust.key_sources import KeySpec
from mcp_orchestration.trust.keys import KeyFormat
from mcp_orchestration.trust.signer import PublicKey, Signer

if TYPE_CHECKING:  # the result types load pydantic, which the command line does without
    from mcp_orchestration.app.results import (
        ConfigHistory,
        ExportedConfig,
        HistoryVersion,
        Published,
        PublishedConfig,
        Publisher,
        ToolLockView,
    )

MAX_PUBLIC_KEY_FILE_BYTES = 64 * 1024  # a PEM public key is about 113 bytes; a bound for the read


class App:
    """One process's view of its store, its telemetry and its signing key."""

    def __init__(self, settings: Settings, telemetry: Telemetry | None = None) -> None:
        self.settings = settings
        self.anchor = HostAnchor(
            HostState(settings.host_state_file),
            settings.home.resolve(),
            settings.expect_root,
            signing_key=self._configured_key,
            loaded_key=lambda: self._key,
        )
        self.index = Repository(settings.storage_dir, policy=self.anchor, head_lifetime=settings.head_lifetime)
        self.telemetry = telemetry if telemetry is not None else Telemetry(settings.telemetry_dir)
        self._key: Signer | None = None

    def load_key(self, spec: KeySpec) -> Signer:
        """Load a key, recording a ``key_load`` event if that fails."""
        started = time.perf_counter()
        try:
            return key_sources.load_signing_key(spec)
        except OrchestrationError as exc:
            self.telemetry.record("key_load", exc.code, (time.perf_counter() - started) * 1000, source=spec.source)
            raise

    def _configured_key(self) -> Signer | None:
        """The signing key, if this process was given one (a key file that exists, the keyring or a token)."""
        return self.signing_key if key_sources.is_configured(self.settings.signing_key) else None

    @property
    def signing_key(self) -> Signer:
        """The configured signing key, loaded once on first use."""
        if self._key is None:
            self._key = self.load_key(self.settings.signing_key)
        return self._key

    def require_writable(self) -> Signer:
        """The signing key, if it may sign now: else ``key_unavailable``, ``key_retired``, ``key_revoked``...

        Checked against the key history on every call, so a rotation done by
        another process turns this one read-only at once.
        """
        key = self.signing_key
        self.index.load_history().require_active(key)
        return key


def init(app: App) -> dict[str, Any]:
    """Create the store, pin the signing key as the root of its key history, and pin that root on this host."""
    with app.telemetry.operation("init") as event:
        key = app.signing_key
        event.set(keyid=key.keyid)
        expected = app.settings.expect_root
        if expected is not None and expected != key.fingerprint:
            raise KeyNotTrustedError(
                f"The signing key is {key.fingerprint}, not the expected {expected}.",
                hint="Check which secret file is mounted; init pins the first key for good.",
            )
        if not app.index.exists():
            app.anchor.forget()  # a new store in this home: what the host held about an old one no longer applies
        history, head, created = app.index.initialize(key)
        event.set(index_version=head.head.version)
        return {
            "created": created,
            "home": str(app.settings.home),
            "fingerprint": history.root_fingerprint,
            "index_version": head.head.version,
        }


def publish(app: App, *, client: str, profile: str, data: bytes, source: str, changelog: str) -> Published:
    """Parse untrusted bytes as a config, then publish it through :func:`publish_payload`."""
    app.require_writable()  # before parsing: the redactor must know the key before an error can quote the file
    return publish_payload(app, client, profile, parse_payload(data, source), changelog)


def publish_payload(
    app: App,
    client: str,
    profile: str,
    payload: dict[str, Any],
    changelog: str,
    *,
    base_artifact: ExpectedBase = ANY_BASE,
) -> Published:
    """Sign and store a new config for ``client/profile``: the one gate of every writer (CLI, MCP, tests alike).

    ``base_artifact`` is what the payload was edited from (None: nothing was
    published): a publish by anyone else since then is a ``conflict``, checked
    under the index lock. The default, ``ANY_BASE``, replaces whatever is there.
    """
    with app.telemetry.operation("publish") as event:
        key = admit(app, client, profile, payload, changelog)
        event.set(keyid=key.keyid, client=client, profile=profile)
        update = ProfileUpdate(
            client, profile, payload, changelog, expected_base=base_artifact, published_by=current_principal()
        )
        config = McpConfig.from_payload(payload)
        result = app.index.publish(key, [update], lambda policy: require_pinned(policy, config))
        event.set(index_version=result.index_version, changed=not result.unchanged)
        return {
            "client": client,
            "profile": profile,
            "artifact": result.artifacts[f"{client}/{profile}"],
            "index_version": result.index_version,
            "changed": not result.unchanged,
            "keyid": result.keyid,
            "warnings": [{"code": p.code, "path": p.path, "message": p.message} for p in unpinned_launches(config)],
        }


def admit(app: App, client: str, profile: str, payload: dict[str, Any], changelog: str) -> Signer:
    """Check everything a publish would sign, and return the key that may sign it; else raise.

    The key comes first: once loaded, the redactor knows its every encoding, so
    no check can let the key through or quote it back. Then the ids (the client
    must be one this product knows), the changelog and the payload. The
    store policy's rules are checked under the index lock, by the publish.
    """
    key = app.require_writable()
    clients.get_client(client)
    check_name_id(profile, "profile")
    check_changelog(changelog)
    check_payload(payload)
    return key


MAX_CHANGELOG_CHARS = 1000


def check_changelog(changelog: str) -> None:
    """A changelog is signed into the index and shown to everyone: one bounded line of visible text, no credential."""
    if len(changelog) > MAX_CHANGELOG_CHARS:
        raise LimitError(f"The changelog is {len(changelog)} characters; the limit is {MAX_CHANGELOG_CHARS}.")
    if has_hidden(changelog):
        raise ValidationError(
            "The changelog contains a control or invisible character (a line break, tab, escape sequence, NUL, "
            "bidi override or zero-width character).",
            "Write the changelog as one line of visible text: it is printed to terminals and shown to models.",
        )
    if scrub_text(changelog) != changelog or REDACTOR.redact(changelog) != changelog:
        raise ValidationError(
            "The changelog contains something that looks like a credential.",
            "Describe the change without secrets; configs reference them as ${env:NAME} placeholders.",
        )


def check_payload(payload: dict[str, Any]) -> None:
    """A config is as bounded as a parsed file, passes every config rule, and holds no secret this process knows."""
    text = json.dumps(payload, ensure_ascii=False, separators=(",", ":"))
    size = len(text.encode("utf-8", "surrogatepass"))
    if size > MAX_PAYLOAD_BYTES:
        raise LimitError(f"The config is {size} bytes as JSON; the limit is {MAX_PAYLOAD_BYTES}.")
    require_valid(payload)
    if REDACTOR.redact(text) != text:
        raise ValidationError(
            "The config contains a secret this process holds (the signing key, in some encoding).",
            "Never put key material in a config; if it was pasted somewhere else too, rotate the key.",
        )


def shown_changelog(changelog: str) -> str:
    """A stored changelog as every interface shows it: credential-like words masked, hidden characters escaped.

    Stores written by earlier versions may hold either (their command line checked neither).
    """
    return escape_hidden(scrub_text(changelog))


def read_published(app: App, client: str, profile: str, artifact: str | None = None) -> tuple[Entry, Any]:
    """A profile's verified entry and payload, unmasked: for drafts, diffs and deploy, never for output."""
    return app.index.get_artifact(client, profile, artifact)


def published_view(entry: Entry, config: dict[str, Any], tool_lock: ToolLockView | None) -> PublishedConfig:
    """A published version as shown: its entry's facts, the safe changelog, the (masked) ``config`` and what
    its tool lock approved."""
    return {
        "client": entry.client,
        "profile": entry.profile,
        "artifact": entry.artifact,
        "index_version": entry.index_version,
        "published_at": entry.published_at,
        "changelog": shown_changelog(entry.changelog),
        "config": config,
        "tool_lock": tool_lock,
    }


def lock_view(app: App, entry: Entry) -> ToolLockView | None:
    """The tool lock ``entry`` names, as shown (None: the profile was never locked)."""
    if entry.lock is None:
        return None
    tool_lock = app.index.lock(entry.lock)
    servers: dict[str, Any] = {name: surface.summary() for name, surface in sorted(tool_lock.servers.items())}
    return {
        "lock": entry.lock,
        "locked_at": tool_lock.locked_at,
        "current": tool_lock.artifact == entry.artifact,
        "servers": servers,
        "not_locked": dict(tool_lock.not_locked),
    }


def get(app: App, client: str, profile: str, artifact: str | None) -> PublishedConfig:
    """A profile's latest (or a given) version, verified, with its config masked."""
    entry, payload = read_published(app, client, profile, artifact)
    return published_view(entry, mask_secrets(payload), lock_view(app, entry))


def export_view(published: PublishedConfig) -> ExportedConfig:
    """A :func:`published_view` in its client's own file shape (servers under the client's key, its field names)."""
    spec = clients.get_client(published["client"])
    config = McpConfig.from_payload(published["config"], "The profile's config")
    return {
        "client": published["client"],
        "profile": published["profile"],
        "artifact": published["artifact"],
        "index_version": published["index_version"],
        "config": spec.render(config),
    }


def export(app: App, client: str, profile: str) -> ExportedConfig:
    """A profile's latest config in the client's own file shape, masked like :func:`get`."""
    clients.get_client(client)
    return export_view(get(app, client, profile, None))


def profile_history(app: App, client: str, profile: str) -> ConfigHistory:
    """Every published version of a profile, newest first (changelogs as :func:`shown_changelog` shows them)."""
    versions: list[HistoryVersion] = [
        {
            "client": e.client,
            "profile": e.profile,
            "artifact": e.artifact,
            "previous_entry": e.previous_entry,
            "changelog": shown_changelog(e.changelog),
            "published_at": e.published_at,
            "index_version": e.index_version,
            "published_by": None if e.published_by is None else cast("Publisher", e.published_by.to_json()),
        }
        for e in app.index.profile_history(client, profile)
    ]
    return {"client": client, "profile": profile, "versions": versions}


def verify(app: App, deep: bool) -> dict[str, Any]:
    """Verify key history, signatures, chain and (deep) every reachable object and every stored config's content,
    against the host's anchor."""
    with app.telemetry.operation("verify") as event:
        report = app.index.verify(deep=deep)
        event.set(keyid=report.keyid, index_version=report.index_version, deep=deep)
        result = asdict(report)
        if deep:
            result["credentials"] = stored_credentials(app)
            event.set(credentials=len(result["credentials"]))
        return result


def stored_credentials(app: App) -> list[dict[str, Any]]:
    """Every published version whose config holds a credential, by place (JSON pointers), never by value.

    Earlier releases signed command-line publishes unchecked, so an intact,
    append-only store can hold one; it cannot be removed, only reported.
    """
    found = []
    paths_of: dict[str, list[str]] = {}
    for client, profiles in sorted(app.index.list_profiles().items()):
        for profile in profiles:
            for entry in app.index.profile_history(client, profile):
                if entry.artifact not in paths_of:
                    report = validate_config(app.index.objects.get_json(entry.artifact))
                    paths_of[entry.artifact] = [p.path for p in report.problems if p.code == "secret"]
                if paths_of[entry.artifact]:
                    found.append(
                        {
                            "client": client,
                            "profile": profile,
                            "artifact": entry.artifact,
                            "index_version": entry.index_version,
                            "paths": paths_of[entry.artifact],
                        }
                    )
    return found


def backup(app: App, target: Path | BinaryIO, *, force: bool) -> dict[str, Any]:
    """Deep-verify the store and write it as one archive: to a new file, or to a stream such as stdout."""
    from mcp_orchestration.store import backup as archive  # operator commands only: serving never loads tarfile

    with app.telemetry.operation("backup") as event:
        output: contextlib.AbstractContextManager[BinaryIO]
        if isinstance(target, Path):
            if target.resolve().is_relative_to(app.settings.storage_dir.resolve()):
                raise UsageError(f"{target} is inside the store; write the backup somewhere else.")
            output = archive.new_file(target, replace=force)
        else:
            output = contextlib.nullcontext(target)
        with output as out:
            manifest = archive.backup(app.index, out, expect_root=None, now=datetime.now(UTC))
            out.flush()
        event.set(index_version=manifest.index_version, files=len(manifest.files))
        return {**manifest.summary(), "out": str(target) if isinstance(target, Path) else "-"}


def restore(app: App, source: Path | BinaryIO, *, force: bool) -> dict[str, Any]:
    """Check a backup archive completely, deep-verify the store in it against the pinned root, then put that
    store in place; this host then accepts the restored index as its newest (it was restored on purpose)."""
    from mcp_orchestration.store import backup as archive

    with app.telemetry.operation("restore") as event:
        expect = app.anchor.pinned_root()
        if expect is None:
            raise KeyNotTrustedError(
                "Restore needs the store's root key: no root is pinned for this store on this host.",
                hint="Pass --expect-key SHA256:<root fingerprint> (from your records, not from the backup).",
            )
        storage_dir = app.settings.storage_dir
        opened = _open_archive(source) if isinstance(source, Path) else contextlib.nullcontext(source)
        with opened as stream:
            result = archive.restore(
                storage_dir,
                stream,
                expect_root=expect,
                force=force,
                now=datetime.now(UTC),
                check_history=app.anchor.check_restorable,
            )
        app.anchor.repin(expect)
        app.index.snapshot()  # accepted as this host's newest index
        event.set(index_version=result.manifest.index_version, files=len(result.manifest.files))
        return {
            **result.manifest.summary(),
            "storage": str(storage_dir),
            "replaced": None if result.replaced is None else str(result.replaced),
            "replaced_index_version": result.replaced_index_version,
            "older_than_replaced": result.older_than_replaced,
            "unreferenced_objects": result.unreferenced_objects,
        }


def _open_archive(path: Path) -> BinaryIO:
    """The archive a restore reads, as a stream: a named path must be a regular file (``-`` is the pipe)."""
    try:
        return open_regular_stream(path)
    except OSError as exc:
        raise unreadable_input(path, exc) from None


def unreadable_input(path: Path, exc: OSError) -> UsageError:
    """The error for an operator's input file that cannot be read, or is not a regular file within its bound."""
    hint = "Name a regular file (a link to one is followed); a FIFO or a device is never read, use - for a pipe."
    return unreadable_file(str(path), exc, hint=hint if isinstance(exc, UnsafeFileError) else None)


def trust_show(app: App) -> dict[str, Any]:
    """The root this host pinned for the store and the last head it accepted (public data only)."""
    record = app.anchor.state.get(app.anchor.home)
    return {
        "home": str(app.anchor.home),
        "state_file": str(app.anchor.state.path),
        "root": record.root if record else None,
        "head_id": record.head_id if record else None,
        "index_version": record.index_version if record else None,
        "key_history_version": record.key_history_version if record else None,
        "seen_at": record.seen_at if record else None,
    }


def trust_forget(app: App) -> dict[str, Any]:
    """Forget the store's pinned root and last accepted head on this host."""
    forgotten = app.anchor.state.get(app.anchor.home) is not None
    app.anchor.forget(strict=True)
    return {"home": str(app.anchor.home), "forgotten": forgotten}


def export_index(app: App) -> bytes:
    """The current signed index envelope (verified before it is handed out)."""
    return app.index.export()


def list_keys(app: App) -> dict[str, Any]:
    """The key history's keys with status and index range (public data only), under the host's checks."""
    history, _ = app.index.snapshot()  # the history with the head that commits to it, as every reader sees it
    return {
        "key_history_version": len(history.versions),
        "root": history.root_fingerprint,
        "keys": [
            {
                "fingerprint": record.public_key.fingerprint,
                "status": record.status.value,
                "first_index": record.first_index,
                "last_index": record.last_index,
            }
            for record in sorted(history.keys.values(), key=lambda r: r.first_index)
        ],
    }


def export_public(app: App, keyid: str | None) -> str:
    """A key's public PEM: the given key id, else the active key."""
    history, _ = app.index.snapshot()
    wanted = keys.parse_keyid(keyid) if keyid else history.current.active[0]
    record = history.keys.get(wanted)
    if record is None:
        raise NotFoundError(
            f"Key SHA256:{wanted} is not in the key history.", hint="See `mcp-orchestration keys list`."
        )
    return record.public_key.to_pem()


def fingerprint(app: App, public_key_file: Path | None) -> dict[str, Any]:
    """The fingerprint of a public key file, else of the configured signing key."""
    if public_key_file is not None:
        try:
            pem = read_named_file(public_key_file, MAX_PUBLIC_KEY_FILE_BYTES)
        except OSError as exc:
            raise unreadable_input(public_key_file, exc) from None
        public = PublicKey.from_pem(pem)
    else:
        public = app.signing_key.public_key
    return {"fingerprint": public.fingerprint, "keyid": public.keyid}


def generate_key(
    *,
    out: Path | None,
    fmt: KeyFormat,
    passphrase_file: Path | None,
    owner: tuple[int, int] | None,
    mode: int,
    to_keyring: bool,
) -> dict[str, Any]:
    """Create a new key file (never overwriting one) or keyring entry; return its fingerprint."""
    key = keys.generate()
    if to_keyring:
        keys.store_in_keyring(key)
        return {"fingerprint": key.fingerprint, "keyring": True}
    if out is None:
        raise UsageError("Say where the key goes: --out FILE or --keyring.")
    passphrase = keys.read_passphrase(passphrase_file) if passphrase_file is not None else None
    try:
        create_exclusive(out, key.serialize(fmt, passphrase), mode=mode, owner=owner)
    except FileExistsError:
        raise ConflictError(f"{out} already exists; a key file is never overwritten.") from None
    except PermissionError:
        raise UsageError(f"Cannot create {out}: permission denied (setting an owner needs root).") from None
    except FileNotFoundError:
        raise UsageError(f"Cannot create {out}: its directory does not exist.") from None
    return {"fingerprint": key.fingerprint, "path": str(out), "format": fmt, "encrypted": passphrase is not None}


def rotate(app: App, new_spec: KeySpec) -> dict[str, Any]:
    """Rotate signing from the configured key to the key ``new_spec`` names, from any source."""
    with app.telemetry.operation("rotate") as event:
        current = app.signing_key
        new = app.load_key(new_spec)
        event.set(keyid=new.keyid, previous_keyid=current.keyid)
        result = rotation.rotate(app.index, current, new)
        event.set(index_version=result.index_version, already_done=result.already_done)
        return asdict(result)


def revoke(app: App, keyid: str) -> dict[str, Any]:
    """Revoke a (retired) key with the active key."""
    with app.telemetry.operation("revoke") as event:
        key = app.signing_key
        target = keys.parse_keyid(keyid)
        event.set(keyid=key.keyid, revoked_keyid=target)
        changed = rotation.revoke(app.index, key, target)
        return {"revoked": f"SHA256:{target}", "changed": changed}


def refresh(app: App, lifetime: timedelta | None = None) -> dict[str, Any]:
    """Re-sign the unchanged index with a new expiry (``lifetime`` from now, else the configured one)."""
    with app.telemetry.operation("refresh") as event:
        key = app.signing_key
        if lifetime is not None:
            app.index.head_lifetime = lifetime
        event.set(keyid=key.keyid)
        signed = rotation.refresh(app.index, key)
        event.set(index_version=signed.head.version)
        return {"index_version": signed.head.version, "head_id": signed.head_id, "expires": signed.head.expires}


def mirror_push(app: App, url: str, token_file: Path | None = None) -> dict[str, Any]:
    """Put what the mirror at ``url`` lacks of the verified store on it, its head last."""
    from mcp_orchestration.store.mirror import push
    from mcp_orchestration.store.mirror.transport import TransportOptions, open_target

    with app.telemetry.operation("mirror_push") as event:
        target = open_target(url, TransportOptions(token_file=token_file))
        try:
            result = push.push(app.index, target)
        finally:
            target.close()
        event.set(index_version=result.index_version, objects=result.objects, scheme=url.split(":", 1)[0])
        return asdict(result)


def healthcheck(app: App) -> None:
    """Raise unless the store is readable and writable, its chain verifies and the key (if any) is trusted.

    Cheap enough for a container HEALTHCHECK: the chain check is incremental.
    """
    history, _ = app.index.snapshot()  # first: an uninitialised store says so, with the fix
    probe = app.settings.storage_dir / f".healthcheck-{os.getpid()}"
    try:
        create_exclusive(probe, b"ok")
    finally:
        probe.unlink(missing_ok=True)
    app.index.verify()
    if key_sources.is_configured(app.settings.signing_key):
        key = app.signing_key
        record = history.keys.get(key.keyid)
        if record is None or record.status is KeyStatus.REVOKED:
            history.require_active(key)


DEFAULT_IMAGE = "mcp-orchestration:latest"
DEFAULT_VOLUME = "mcp-orchestration-data"
CONTAINER_HOME = "/var/lib/mcp-orchestration"


def claude_config(image: str, key_file: Path | None, volume: str, expect_key: str | None = None) -> dict[str, Any]:
    """The Claude Desktop ``mcpServers`` entry that runs the hardened container over stdio.

    By default (``key_file`` None) no key is mounted: a fleet desktop's container
    browses, diffs, verifies and drafts, and publishing happens at the publisher.
    Only the single-machine mode passes ``key_file``; it is mounted read-only as a
    file at ``/run/secrets/signing_key`` and never appears in ``args`` or ``env``.
    The root fingerprint, public, is passed as ``MCP_ORCHESTRATION_EXPECT_KEY``: the
    container keeps no host state, and without the key it has no other anchor
    (``expect_key``: a fingerprint or a public key file, as ``--expect-key`` takes).
    No TTY (``-t`` would corrupt the protocol).
    """
    expect_root = keys.public_key_fingerprint(expect_key) if expect_key else None
    args = [
        "run", "-i", "--rm", "--init",
        "--network", "none",
        "--read-only",
        "--cap-drop", "ALL",
        "--security-opt", "no-new-privileges",
        "--tmpfs", "/tmp:rw,noexec,nosuid,size=16m",  # noqa: S108 (the container's own /tmp)
        "-v", f"{volume}:{CONTAINER_HOME}",
    ]  # fmt: skip
    if key_file is not None:
        args += ["-v", f"{key_file.expanduser().resolve()}:/run/secrets/signing_key:ro"]
    if expect_root is not None:
        args += ["-e", f"{ENV_EXPECT_KEY}={expect_root}"]
    args.append(image)
    return {"mcpServers": {"mcp-orchestration": {"command": "docker", "args": args}}}
