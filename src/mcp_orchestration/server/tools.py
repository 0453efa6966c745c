"""What each MCP tool does, apart from MCP: plain functions over the store, returning JSON data.

Every config that leaves here is masked (``env`` and ``headers`` values other
than placeholders), every id is checked before use, and every failure is an
:class:`~mcp_orchestration.core.errors.OrchestrationError` with a stable code.
Nothing here writes outside the store: writing a client's file on the user's
machine is the operator's ``deploy`` command.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any, cast

from mcp_orchestration.app import operations
from mcp_orchestration.app.operations import App
from mcp_orchestration.config import catalog, clients
from mcp_orchestration.config.diff import ConfigDiff, diff_configs
from mcp_orchestration.config.masking import mask_secrets
from mcp_orchestration.config.validation import require_valid, validate_config
from mcp_orchestration.core.clock import utc_now
from mcp_orchestration.core.errors import NotFoundError
from mcp_orchestration.security.ids import check_name_id, check_server_name, shown
from mcp_orchestration.server import schemas
from mcp_orchestration.store.drafts import Draft, DraftStore

EMPTY_CONFIG: dict[str, Any] = {"mcpServers": {}}
MASKED_CACHE_ENTRIES = 256


class ConfigTools:
    """The tool operations of one server process."""

    def __init__(self, app: App, catalog_file: Path | None = None) -> None:
        self.app = app
        self.drafts = DraftStore(app.settings.storage_dir)
        self.catalog_file = catalog_file
        self._masked_cache: dict[str, str] = {}
        self._masked_lock = threading.Lock()

    # -- browsing ------------------------------------------------------------------------

    def list_clients(self) -> schemas.ClientList:
        """The MCP clients this server can produce configs for."""
        return {
            "clients": [
                {"id": spec.id, "name": spec.name, "config_key": spec.config_key, "transports": list(spec.transports)}
                for spec in clients.load_clients().values()
            ]
        }

    def list_profiles(self, client: str | None = None) -> schemas.ProfileList:
        """Every published profile (optionally of one client), and which have a draft."""
        if client is not None:
            check_name_id(client, "client")
        published = self.app.index.list_profiles()
        drafts = set(self.drafts.list())  # names checked, files not read: listing needs no key
        names = {(c, p) for c, profiles in published.items() for p in profiles} | drafts
        return {
            "profiles": [
                {
                    "client": c,
                    "profile": p,
                    "published": p in published.get(c, []),
                    "has_draft": (c, p) in drafts,
                }
                for c, p in sorted(names)
                if client is None or c == client
            ]
        }

    def list_available_servers(self) -> schemas.ServerList:
        """The catalog of well-known servers, in brief."""
        return {
            "servers": [
                {"id": s.id, "name": s.name, "description": s.description, "transport": s.transport}
                for s in catalog.load_catalog(self.catalog_file).values()
            ]
        }

    def describe_server(self, server_id: str) -> schemas.ServerDetails:
        """One catalog entry in full: command, parameters and environment variable names."""
        description = catalog.get_server(server_id, self.catalog_file).describe()
        return {"server": cast("schemas.ServerDescription", description)}

    # -- published configs ---------------------------------------------------------------

    def get_config(self, client: str, profile: str, artifact: str | None = None) -> schemas.PublishedConfig:
        """A profile's published config (latest, or a past artifact), verified and masked."""
        entry, payload = operations.read_published(self.app, client, profile, artifact)
        view = operations.published_view(entry, self._masked(entry.artifact, payload))
        return cast("schemas.PublishedConfig", view)

    def _masked(self, artifact: str, payload: Any) -> dict[str, Any]:
        """``mask_secrets`` of an artifact, computed once per artifact (artifacts never change)."""
        with self._masked_lock:  # tools run in worker threads
            text = self._masked_cache.get(artifact)
        if text is None:
            text = json.dumps(mask_secrets(payload))
            with self._masked_lock:
                if len(self._masked_cache) >= MASKED_CACHE_ENTRIES:
                    self._masked_cache.pop(next(iter(self._masked_cache)))
                self._masked_cache[artifact] = text
        return dict(json.loads(text))

    def get_config_history(self, client: str, profile: str) -> schemas.ConfigHistory:
        """Every published version of a profile, newest first."""
        return cast("schemas.ConfigHistory", operations.profile_history(self.app, client, profile))

    def export_config(self, client: str, profile: str) -> schemas.ExportedConfig:
        """The client's own file shape for a profile's published config, with its artifact and index version."""
        clients.get_client(client)
        exported = operations.export_view(dict(self.get_config(client, profile)))
        return cast("schemas.ExportedConfig", exported)

    def verify_config(self, client: str, profile: str) -> schemas.VerifyResult:
        """Verify the key history, the signed chain and the profile's artifact bytes."""
        report = operations.verify(self.app, deep=False)
        entry, _ = operations.read_published(self.app, client, profile)  # re-hashes the artifact
        return cast(
            "schemas.VerifyResult",
            {"client": client, "profile": profile, "artifact": entry.artifact, "verified": True, **report},
        )

    def get_trust_info(self) -> schemas.TrustInfo:
        """Fingerprints, the key history and the current index version (public data only)."""
        keys = operations.list_keys(self.app)
        _, head = self.app.index.snapshot()
        trust = {**keys, "index_version": head.head.version, "signed_by": f"SHA256:{head.keyid}"}
        return cast("schemas.TrustInfo", trust)

    # -- drafts --------------------------------------------------------------------------

    def _draft(self, client: str, profile: str) -> Draft:
        """The profile's draft, or a new one started from its published config.

        Checking a draft's MAC needs the signing key: without one, the key's
        error is the answer, never a draft no one can vouch for.
        """
        clients.get_client(client)
        check_name_id(profile, "profile")
        existing = self.drafts.get(client, profile, self.app.signing_key)
        if existing is not None:
            return existing
        try:
            entry, payload = operations.read_published(self.app, client, profile)
        except NotFoundError:
            return Draft(client, profile, dict(EMPTY_CONFIG), None, utc_now())
        return Draft(client, profile, payload, entry.artifact, utc_now())

    def _edit(self, client: str, profile: str, change: Callable[[dict[str, Any]], dict[str, Any]]) -> schemas.DraftView:
        """Apply ``change`` to the draft's config: read, change and write under the drafts lock, so no edit is lost."""
        key = self.app.require_writable()
        with self.drafts.lock():
            draft = self._draft(client, profile)
            updated = Draft(client, profile, change(draft.payload), draft.base_artifact, utc_now())
            self.drafts.save(updated, key)
        return self._show(updated)

    def _show(self, draft: Draft) -> schemas.DraftView:
        return {
            "client": draft.client,
            "profile": draft.profile,
            "base_artifact": draft.base_artifact,
            "updated_at": draft.updated_at,
            "config": mask_secrets(draft.payload),
        }

    def add_server_to_config(
        self,
        client: str,
        profile: str,
        server_id: str,
        *,
        name: str | None = None,
        parameters: dict[str, Any] | None = None,
        optional_env: list[str] | None = None,
    ) -> schemas.DraftView:
        """Add a catalog server to the profile's draft (secrets become placeholders)."""
        clients.get_client(client)
        server = catalog.get_server(server_id, self.catalog_file)
        entry = server.instantiate(parameters or {}, optional_env or ())
        entry_name = check_server_name(name or server.id)

        def add(config: dict[str, Any]) -> dict[str, Any]:
            payload = {**config, "mcpServers": {**config.get("mcpServers", {}), entry_name: entry}}
            require_valid(payload)
            return payload

        return self._edit(client, profile, add)

    def remove_server_from_config(self, client: str, profile: str, name: str) -> schemas.DraftView:
        """Remove a server from the profile's draft."""

        def remove(config: dict[str, Any]) -> dict[str, Any]:
            servers = dict(config.get("mcpServers", {}))
            if name not in servers:
                raise NotFoundError(f"The draft of {client}/{profile} has no server named {shown(name)}.")
            del servers[name]
            return {**config, "mcpServers": servers}

        return self._edit(client, profile, remove)

    def view_draft_config(self, client: str, profile: str) -> schemas.DraftWithDiff:
        """The draft (masked) and how it differs from the published config."""
        draft = self._draft(client, profile)
        diff = cast("schemas.ConfigDiff", self._diff_against_published(draft).to_dict())
        return {**self._show(draft), "diff": diff}

    def clear_draft_config(self, client: str, profile: str) -> schemas.DraftCleared:
        """Drop the profile's draft."""
        self.app.require_writable()
        clients.get_client(client)
        with self.drafts.lock():
            cleared = self.drafts.clear(client, profile)
        return {"client": client, "profile": profile, "cleared": cleared}

    def diff_config(self, client: str, profile: str) -> schemas.ProfileDiff:
        """How the draft differs from the published config (env values masked)."""
        diff = self._diff_against_published(self._draft(client, profile))
        return cast("schemas.ProfileDiff", {"client": client, "profile": profile, **diff.to_dict()})

    def _diff_against_published(self, draft: Draft) -> ConfigDiff:
        try:
            _, published = operations.read_published(self.app, draft.client, draft.profile)
        except NotFoundError:
            published = None
        return diff_configs(published, draft.payload)

    def validate_config(self, client: str, profile: str) -> schemas.ValidationResult:
        """Check the draft against the config rules, secrets included."""
        draft = self._draft(client, profile)
        report = validate_config(draft.payload).to_dict()
        return cast("schemas.ValidationResult", {"client": client, "profile": profile, **report})

    def publish_config(self, client: str, profile: str, changelog: str = "") -> schemas.PublishResult:
        """Publish the draft through the one gate (``operations.publish_payload`` checks all of it), then drop it;
        the result shows exactly what was signed.

        The publish succeeds only if the profile is still at the draft's base
        artifact (checked under the index lock) or already holds the draft's
        config, so the diff shown is from the config this publish replaced.
        """
        key = self.app.require_writable()
        operations.check_changelog(changelog)  # the gate checks it again; a hostile changelog is refused first
        with self.drafts.lock():  # no edit can slip in between publishing the draft and dropping it
            draft = self.drafts.get(client, profile, key)
            if draft is None:
                raise NotFoundError(
                    f"There is no draft of {client}/{profile} to publish.",
                    "Edit the profile first (add_server_to_config / remove_server_from_config).",
                )
            base = None if draft.base_artifact is None else self.app.index.objects.get_json(draft.base_artifact)
            result = operations.publish_payload(
                self.app, client, profile, draft.payload, changelog, base_artifact=draft.base_artifact
            )
            self.drafts.clear(client, profile)
        replaced = base if result["changed"] else draft.payload  # unchanged: it was already published
        return cast("schemas.PublishResult", {**result, "diff": diff_configs(replaced, draft.payload).to_dict()})
