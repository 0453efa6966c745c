"""The product's operations, shared by the command line and the MCP server.

Each function takes an :class:`App` (settings, store, telemetry, the lazily
loaded key), does one thing, records one telemetry event and returns plain
JSON-ready data. Rendering is the caller's job.
"""

from __future__ import annotations

import contextlib
import errno
import os
import time
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, BinaryIO

from mcp_orchestration.domain.payload import parse_payload
from mcp_orchestration.domain.secret_rules import scrub_text
from mcp_orchestration.errors import (
    ConflictError,
    KeyNotTrustedError,
    LimitError,
    NotFoundError,
    OrchestrationError,
    UsageError,
    ValidationError,
)
from mcp_orchestration.fsutil import UnsafeFileError, create_exclusive, open_regular_stream, read_named_file
from mcp_orchestration.redaction import REDACTOR
from mcp_orchestration.settings import KeySpec, Settings
from mcp_orchestration.store.index import Index, ProfileUpdate
from mcp_orchestration.telemetry import Telemetry
from mcp_orchestration.trust import keys, rotation
from mcp_orchestration.trust.history import KeyStatus
from mcp_orchestration.trust.keys import KeyFormat, PublicKey, SigningKey

MAX_PUBLIC_KEY_FILE_BYTES = 64 * 1024  # a PEM public key is about 113 bytes; a bound for the read


class App:
    """One process's view of its store, its telemetry and its signing key."""

    def __init__(self, settings: Settings, telemetry: Telemetry | None = None) -> None:
        self.settings = settings
        self.index = Index(settings.storage_dir)
        self.telemetry = telemetry if telemetry is not None else Telemetry(settings.telemetry_dir)
        self._key: SigningKey | None = None

    def load_key(self, spec: KeySpec) -> SigningKey:
        """Load a key, recording a ``key_load`` event if that fails."""
        started = time.perf_counter()
        try:
            return keys.load_signing_key(spec)
        except OrchestrationError as exc:
            self.telemetry.record("key_load", exc.code, (time.perf_counter() - started) * 1000, source=spec.source)
            raise

    @property
    def signing_key(self) -> SigningKey:
        """The configured signing key, loaded once on first use."""
        if self._key is None:
            self._key = self.load_key(self.settings.signing_key)
        return self._key

    def require_writable(self) -> SigningKey:
        """The signing key, if it may sign now: else ``key_unavailable``, ``key_retired``, ``key_revoked``...

        Checked against the key history on every call, so a rotation done by
        another process turns this one read-only at once.
        """
        key = self.signing_key
        self.index.load_history().require_active(key)
        return key


def init(app: App, expect_key: str | None) -> dict[str, Any]:
    """Create the store and pin the signing key as the root of its key history."""
    with app.telemetry.operation("init") as event:
        key = app.signing_key
        event.set(keyid=key.keyid)
        if expect_key is not None and keys.public_key_fingerprint(expect_key) != key.fingerprint:
            raise KeyNotTrustedError(
                f"The signing key is {key.fingerprint}, not the expected {keys.public_key_fingerprint(expect_key)}.",
                hint="Check which secret file is mounted; init pins the first key for good.",
            )
        history, head, created = app.index.initialize(key)
        event.set(index_version=head.head.version)
        return {
            "created": created,
            "home": str(app.settings.home),
            "fingerprint": history.root_fingerprint,
            "index_version": head.head.version,
        }


def publish(app: App, *, client: str, profile: str, data: bytes, source: str, changelog: str) -> dict[str, Any]:
    """Parse untrusted bytes as a config, then sign and store it for ``client/profile``."""
    return publish_payload(app, client, profile, parse_payload(data, source), changelog)


def publish_payload(app: App, client: str, profile: str, payload: dict[str, Any], changelog: str) -> dict[str, Any]:
    """Sign and store a new config for ``client/profile``."""
    check_changelog(changelog)
    with app.telemetry.operation("publish") as event:
        key = app.signing_key
        event.set(keyid=key.keyid)
        result = app.index.publish(key, [ProfileUpdate(client, profile, payload, changelog)])
        event.set(index_version=result.index_version, changed=not result.unchanged)
        return {
            "client": client,
            "profile": profile,
            "artifact": result.artifacts[f"{client}/{profile}"],
            "index_version": result.index_version,
            "changed": not result.unchanged,
            "keyid": result.keyid,
        }


MAX_CHANGELOG_CHARS = 1000


def check_changelog(changelog: str) -> None:
    """A changelog is signed into the index and shown to everyone: bounded, and never a credential."""
    if len(changelog) > MAX_CHANGELOG_CHARS:
        raise LimitError(f"The changelog is {len(changelog)} characters; the limit is {MAX_CHANGELOG_CHARS}.")
    if scrub_text(changelog) != changelog or REDACTOR.redact(changelog) != changelog:
        raise ValidationError(
            "The changelog contains something that looks like a credential.",
            "Describe the change without secrets; configs reference them as ${env:NAME} placeholders.",
        )


def get(app: App, client: str, profile: str, artifact: str | None) -> dict[str, Any]:
    """A profile's latest (or a given) artifact, with its entry."""
    entry, payload = app.index.get_artifact(client, profile, artifact)
    return {"entry": asdict(entry), "payload": payload}


def profile_history(app: App, client: str, profile: str) -> dict[str, Any]:
    """Every published version of a profile, newest first."""
    entries = app.index.profile_history(client, profile)
    return {"client": client, "profile": profile, "versions": [asdict(e) for e in entries]}


def verify(app: App, deep: bool, expect_key: str | None) -> dict[str, Any]:
    """Verify key history, signatures, chain and (deep) every reachable object."""
    with app.telemetry.operation("verify") as event:
        expect = keys.public_key_fingerprint(expect_key) if expect_key else None
        report = app.index.verify(deep=deep, expect_root=expect)
        event.set(keyid=report.keyid, index_version=report.index_version, deep=deep)
        return asdict(report)


def backup(app: App, target: Path | BinaryIO, expect_key: str | None, *, force: bool) -> dict[str, Any]:
    """Deep-verify the store and write it as one archive: to a new file, or to a stream such as stdout."""
    from mcp_orchestration.store import backup as archive  # operator commands only: serving never loads tarfile

    with app.telemetry.operation("backup") as event:
        expect = keys.public_key_fingerprint(expect_key) if expect_key else None
        output: contextlib.AbstractContextManager[BinaryIO]
        if isinstance(target, Path):
            if target.resolve().is_relative_to(app.settings.storage_dir.resolve()):
                raise UsageError(f"{target} is inside the store; write the backup somewhere else.")
            output = archive.new_file(target, replace=force)
        else:
            output = contextlib.nullcontext(target)
        with output as out:
            manifest = archive.backup(app.index, out, expect_root=expect, now=datetime.now(UTC))
            out.flush()
        event.set(index_version=manifest.index_version, files=len(manifest.files))
        return {**manifest.summary(), "out": str(target) if isinstance(target, Path) else "-"}


def restore(app: App, source: Path | BinaryIO, expect_key: str | None, *, force: bool) -> dict[str, Any]:
    """Check a backup archive completely, deep-verify the store in it, then put that store in place."""
    from mcp_orchestration.store import backup as archive

    with app.telemetry.operation("restore") as event:
        expect = keys.public_key_fingerprint(expect_key) if expect_key else None
        storage_dir = app.settings.storage_dir
        opened = _open_archive(source) if isinstance(source, Path) else contextlib.nullcontext(source)
        with opened as stream:
            result = archive.restore(storage_dir, stream, expect_root=expect, force=force, now=datetime.now(UTC))
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
    if isinstance(exc, UnsafeFileError) and exc.errno == errno.EFBIG:
        return LimitError(f"{path} is over the limit: it {exc.strerror}.")
    if isinstance(exc, UnsafeFileError):
        return UsageError(
            f"Cannot read {path}: it {exc.strerror}.",
            hint="Name a regular file (a link to one is followed); a FIFO or a device is never read, use - for a pipe.",
        )
    return UsageError(f"Cannot read {path}: {exc.strerror}.")


def export_index(app: App) -> bytes:
    """The current signed index envelope (verified before it is handed out)."""
    return app.index.export()


def list_keys(app: App) -> dict[str, Any]:
    """The key history's keys with status and index range (public data only)."""
    history = app.index.load_history()
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
    history = app.index.load_history()
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
    """Rotate signing from the configured key to the key ``new_spec`` names."""
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
    spec = app.settings.signing_key
    if spec.source == "keyring" or spec.path is not None:
        key = app.signing_key
        record = history.keys.get(key.keyid)
        if record is None or record.status is KeyStatus.REVOKED:
            history.require_active(key)


DEFAULT_IMAGE = "mcp-orchestration:latest"
DEFAULT_VOLUME = "mcp-orchestration-data"
CONTAINER_HOME = "/var/lib/mcp-orchestration"


def claude_config(image: str, key_file: Path | None, volume: str) -> dict[str, Any]:
    """The Claude Desktop ``mcpServers`` entry that runs the hardened container over stdio.

    The key is mounted read-only as a file at ``/run/secrets/signing_key``; it never
    appears in ``args`` or ``env``. No TTY (``-t`` would corrupt the protocol).
    """
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
    args.append(image)
    return {"mcpServers": {"mcp-orchestration": {"command": "docker", "args": args}}}
