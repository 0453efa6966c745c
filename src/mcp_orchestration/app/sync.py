"""``sync``: bring this desktop's client configs up to the newest signed config on a mirror.

Run unattended every few minutes (launchd, Task Scheduler, a systemd timer),
so the common case is cheap: one conditional fetch of the mirror's head and,
when it did not change, nothing written and nothing verified again beyond its
remembered expiry (a mirror that keeps answering "not modified" past it is
frozen: ``expired``). When the head changed, ``app/sync_walk.py`` verifies it
from the pinned root and reads only the objects of the profiles this desktop
applies; every profile is read and checked before the first config file is
written, and each is written as ``deploy`` writes (merge, backup, atomic
replace, mode kept). The state is saved last: after a failure at any point
the next sync starts from the last head fully applied.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, NamedTuple

from mcp_orchestration.app.sync_state import Applied, StateDir, SyncState
from mcp_orchestration.core.clock import format_time
from mcp_orchestration.core.errors import KeyNotTrustedError, MirrorError
from mcp_orchestration.store.mirror.transport import DEFAULT_TIMEOUT, Fetched, Source, TransportOptions, open_source
from mcp_orchestration.store.mirror.tree import HEAD_PATH, MAX_HEAD_BYTES
from mcp_orchestration.trust.freshness import require_fresh


class ApplyRequest(NamedTuple):
    """Apply ``client/profile`` to the client's config file (``config_path``, else its default place)."""

    client: str
    profile: str
    config_path: Path | None = None

    @property
    def name(self) -> str:
        return f"{self.client}/{self.profile}"

    @property
    def requested_path(self) -> str:
        return "" if self.config_path is None else str(self.config_path)


class SyncRequest(NamedTuple):
    url: str
    expect_root: str  # SHA256:<hex>, the root this desktop pins
    applies: tuple[ApplyRequest, ...]
    state_dir: Path
    resolve_env: bool = False
    dry_run: bool = False
    timeout: float = DEFAULT_TIMEOUT


class AppliedProfile(NamedTuple):
    client: str
    profile: str
    path: str
    artifact: str
    changed: bool
    backup: str | None
    diff: str


class SyncResult(NamedTuple):
    url: str
    index_version: int
    head_id: str
    expires: str | None
    head_changed: bool  # the mirror served a head this desktop had not applied
    applied: tuple[AppliedProfile, ...]
    requests: int
    bytes_received: int
    dry_run: bool

    def to_json(self) -> dict[str, Any]:
        return {**self._asdict(), "applied": [item._asdict() for item in self.applied]}


def sync(
    request: SyncRequest,
    *,
    source: Source | None = None,
    environ: Mapping[str, str] | None = None,
    now: datetime | None = None,
) -> SyncResult:
    """Fetch, verify and apply the mirror's newest index, or confirm the one applied is still current."""
    now = now or datetime.now(UTC)
    source = source or open_source(request.url, TransportOptions(timeout=request.timeout))
    state_dir = StateDir(request.state_dir)
    try:
        with state_dir.locked():
            state = state_dir.load()
            if state is not None and state.root != request.expect_root:
                raise KeyNotTrustedError(
                    f"This desktop pinned root {state.root} on its first sync, not {request.expect_root}.",
                    hint="Check the fingerprint against your records. To move this desktop to another store on "
                    f"purpose, remove {request.state_dir} first.",
                )
            same = state is not None and _same_request(state, request, source.url)
            fetched = source.fetch(HEAD_PATH, MAX_HEAD_BYTES, etag=state.etag if state is not None and same else None)
            if fetched is None:
                return _unchanged(source, state, request.dry_run, now)
            if state is not None and same and _digest(fetched.data) == state.head_id:
                # the head this desktop applied, under a new validator (a restarted server, another replica)
                result = _unchanged(source, state, request.dry_run, now)
                state_dir.save(state._replace(etag=fetched.etag, synced_at=format_time(now)))
                return result
            return _apply(request, source, state_dir, fetched, state=state, environ=environ, now=now)
    finally:
        source.close()


def _digest(data: bytes) -> str:
    import hashlib  # loads OpenSSL's digests: only when the mirror sent a head

    return hashlib.sha256(data).hexdigest()


def _same_request(state: SyncState, request: SyncRequest, url: str) -> bool:
    """Whether the last sync applied the same profiles to the same files from the same mirror."""
    wanted = {apply.name: apply.requested_path for apply in request.applies}
    applied = {name: item.path for name, item in state.applied.items()}
    return state.url == url and wanted == applied and not request.dry_run


def _unchanged(source: Source, state: SyncState | None, dry_run: bool, now: datetime) -> SyncResult:
    """The mirror's head is the one applied last: still fresh, or the mirror is frozen."""
    if state is None:
        raise MirrorError(f"The mirror at {source.url} answered 'not modified' to a request without a validator.")
    require_fresh(state.index_version, state.expires, now)
    return _result(source, state, head_changed=False, applied=(), dry_run=dry_run)


def _apply(
    request: SyncRequest,
    source: Source,
    state_dir: StateDir,
    fetched: Fetched,
    *,
    state: SyncState | None,
    environ: Mapping[str, str] | None,
    now: datetime,
) -> SyncResult:
    from mcp_orchestration.app import deploy
    from mcp_orchestration.app.sync_walk import MirrorObjects, read_profile, read_tree, verify_index
    from mcp_orchestration.config.clients import get_client

    index = verify_index(
        fetched.data, source, state=state, state_dir=state_dir, expect_root=request.expect_root, now=now
    )
    head = index.head
    environ = os.environ if environ is None else environ
    objects = MirrorObjects(source)
    specs = [get_client(apply.client) for apply in request.applies]
    tree = read_tree(objects, head)
    profiles = [read_profile(objects, head, tree, apply.client, apply.profile) for apply in request.applies]
    results = []
    for apply, spec, published in zip(request.applies, specs, profiles, strict=True):
        source_config = deploy.VerifiedConfig(
            head.head.version, head.keyid, request.expect_root, published.entry.artifact, published.payload
        )
        target = apply.config_path or deploy.default_config_path(spec, environ)
        written = deploy.apply(
            spec,
            apply.profile,
            source_config,
            target,
            dry_run=request.dry_run,
            resolve_env=request.resolve_env,
            environ=environ,
            now=now,
        )
        results.append(
            AppliedProfile(
                apply.client,
                apply.profile,
                written.path,
                written.artifact,
                written.changed,
                written.backup,
                written.diff,
            )
        )
    new_state = SyncState(
        root=request.expect_root,
        head_id=head.head_id,
        index_version=head.head.version,
        key_history_version=len(index.history.versions),
        expires=head.head.expires,
        root_object=head.head.root,
        url=source.url,
        etag=fetched.etag,
        synced_at=format_time(now),
        applied={
            apply.name: Applied(published.entry.artifact, apply.requested_path)
            for apply, published in zip(request.applies, profiles, strict=True)
        },
    )
    if not request.dry_run:
        state_dir.add_key_versions(
            len(index.history.versions) - len(index.new_key_versions) + 1, index.new_key_versions
        )
        state_dir.save(new_state)
    head_changed = state is None or state.head_id != head.head_id
    return _result(source, new_state, head_changed=head_changed, applied=tuple(results), dry_run=request.dry_run)


def _result(
    source: Source, state: SyncState, *, head_changed: bool, applied: tuple[AppliedProfile, ...], dry_run: bool
) -> SyncResult:
    return SyncResult(
        url=source.url,
        index_version=state.index_version,
        head_id=state.head_id,
        expires=state.expires,
        head_changed=head_changed,
        applied=applied,
        requests=source.counters.requests,
        bytes_received=source.counters.bytes_received,
        dry_run=dry_run,
    )
